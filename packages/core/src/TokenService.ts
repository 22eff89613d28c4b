/**
 * The token service: an always-valid AMP token for whoever asks.
 *
 * `getToken` answers from memory while the token is valid and outside the refresh margin: no
 * lock, no I/O. Otherwise one fiber renews it (refresh while the token is still valid, a new
 * login when refresh fails or the token has expired) while every other caller waits for that
 * one result; the new token is kept in memory and saved to the `TokenStore`.
 *
 * @since 0.1.0
 */
import {
  Cause,
  Clock,
  Context,
  DateTime,
  Deferred,
  Duration,
  Effect,
  Layer,
  Metric,
  Option,
  Redacted,
  Ref
} from "effect"
import * as AmpConfig from "./AmpConfig.js"
import { AuthApi } from "./AuthApi.js"
import { TokenData } from "./TokenData.js"
import { type AuthError, NoTokenToRefresh, type TokenStoreError } from "./TokenError.js"
import * as TokenInfo from "./TokenInfo.js"
import * as TokenMetrics from "./TokenMetrics.js"
import { TokenStore } from "./TokenStore.js"

/** Always-valid AMP tokens. */
export class TokenService extends Context.Tag("@amp-effect/core/TokenService")<TokenService, {
  /**
   * A valid token: from memory when it is valid and not within the refresh margin, otherwise
   * renewed (refresh, falling back to login; login when expired) and saved.
   */
  readonly getToken: Effect.Effect<Redacted.Redacted<string>, AuthError | TokenStoreError>
  /** Logs in now, whatever the current token, and saves the new token. */
  readonly obtainToken: Effect.Effect<Redacted.Redacted<string>, AuthError | TokenStoreError>
  /**
   * Refreshes the current token through the refresh endpoint now, with no fallback to login:
   * fails with `NoTokenToRefresh` when there is no unexpired token, or with the refresh error.
   */
  readonly refreshToken: Effect.Effect<Redacted.Redacted<string>, AuthError | TokenStoreError | NoTokenToRefresh>
  /** Renews now whatever the margin says: refresh when possible, else login. */
  readonly forceRefresh: Effect.Effect<Redacted.Redacted<string>, AuthError | TokenStoreError>
  /**
   * Renews after the server rejected `rejected` (a 401): when it is still the current token it
   * is replaced (refresh, else login); when another fiber already replaced it, the new token
   * is returned without a call.
   */
  readonly renewRejected: (
    rejected: Redacted.Redacted<string>
  ) => Effect.Effect<Redacted.Redacted<string>, AuthError | TokenStoreError>
  /** Facts about the current token, or `None` when there is none. Never a network call. */
  readonly getTokenInfo: Effect.Effect<Option.Option<TokenInfo.TokenInfo>>
  /** Forgets the token in memory and in the store. */
  readonly clearToken: Effect.Effect<void, TokenStoreError>
}>() {}

/** Options of the service. */
export interface TokenServiceOptions {
  /** Renew this long before expiry. Default 5 minutes. */
  readonly refreshMargin?: Duration.DurationInput
}

/** The default refresh margin: five minutes, as the Rust client. */
export const defaultRefreshMargin = Duration.minutes(5)

/**
 * When a renewal fails while the current token is still valid, `getToken` keeps serving that
 * token and tries again this much later (or at expiry, whichever comes first).
 */
export const renewalRetryDelay = Duration.seconds(30)

/** How a renewal is asked for. */
type Mode =
  | { readonly _tag: "Auto" } // getToken: only if the token is missing, expired or in the margin
  | { readonly _tag: "Obtain" } // always log in
  | { readonly _tag: "Refresh" } // always renew: refresh if possible, else log in
  | { readonly _tag: "Rejected"; readonly token: Redacted.Redacted<string> } // renew if `token` is current

interface Current {
  readonly data: TokenData
  readonly expiresAt: number
  readonly refreshAt: number
}

interface State {
  readonly current: Current | undefined
  /** The renewal under way, if any: `getToken` callers wait for it instead of queueing. */
  readonly pending: Deferred.Deferred<Redacted.Redacted<string>, AuthError | TokenStoreError> | undefined
  /** Counts finished renewals, so that waiters can tell that one ended while they waited. */
  readonly generation: number
  /** How the last renewal ended, shared with the fibers that waited for it. */
  readonly lastFailure: AuthError | TokenStoreError | undefined
}

/** Builds the service over an `AuthApi` and a `TokenStore`, loading the stored token first. */
export const make = Effect.fnUntraced(function*(options?: TokenServiceOptions) {
  const api = yield* AuthApi
  const store = yield* TokenStore
  const margin = Duration.toMillis(options?.refreshMargin ?? defaultRefreshMargin)
  const toCurrent = (data: TokenData): Current => {
    const expiresAt = DateTime.toEpochMillis(data.expiresAt)
    return { data, expiresAt, refreshAt: expiresAt - margin }
  }

  /**
   * Reads the store; a failure or an expired token counts as none. An expired token is removed
   * only under the store's lock (`removeExpired`), so that a fresh token another process saved
   * in the meantime is never deleted.
   */
  const loadStored = (removeExpired: boolean) =>
    Effect.gen(function*() {
      const stored = yield* store.load.pipe(
        Effect.map(Option.map((data) => data.withJwtExpiry())),
        Effect.catchAll((error) =>
          Effect.as(
            Effect.zipRight(
              persistenceFailed(error),
              Effect.logWarning(`${error.message}; continuing without a stored token`)
            ),
            Option.none<TokenData>()
          )
        )
      )
      if (Option.isNone(stored)) return undefined
      const now = yield* Clock.currentTimeMillis
      const current = toCurrent(stored.value)
      if (now < current.expiresAt) return current
      if (!removeExpired) return undefined
      yield* Effect.logInfo(`The stored token expired at ${DateTime.formatIso(stored.value.expiresAt)}; removing it`)
      yield* store.remove.pipe(
        Effect.catchAll((error) => Effect.zipRight(persistenceFailed(error), Effect.logWarning(error.message)))
      )
      return undefined
    })

  const state = yield* Ref.make<State>({
    current: yield* loadStored(false).pipe(Effect.withSpan("TokenService.load")),
    pending: undefined,
    generation: 0,
    lastFailure: undefined
  })
  const semaphore = yield* Effect.makeSemaphore(1)

  const save = (data: TokenData) =>
    store.save(data).pipe(
      Effect.catchAll((error) =>
        Effect.zipRight(
          persistenceFailed(error),
          Effect.logWarning(`${error.message}; the token is kept in memory only`)
        )
      )
    )

  const login = Effect.flatMap(api.obtain, fromServer)

  /**
   * The token lifecycle, in one place, run under the store's lock (other processes renew one
   * at a time): re-read the store (another process may have just renewed) → refresh while the
   * token is valid, falling back to a login → keep and save.
   */
  const lifecycle = (mode: Mode, known: Current | undefined) =>
    store.withLock(Effect.gen(function*() {
      // Waiting for another process's lock can take a while: decide with the time of now.
      const now = yield* Clock.currentTimeMillis
      const fromStore = yield* loadStored(true)
      let current = known
      if (fromStore !== undefined && !sameToken(fromStore, current)) {
        // Another process renewed while we were deciding: use its token if it will do.
        current = fromStore
        if (!needsRenewal(mode, current, now)) {
          yield* renewed("file", current, now)
          return current
        }
      }
      const canRefresh = mode._tag !== "Obtain" && current !== undefined && now < current.expiresAt
      const data = canRefresh
        ? yield* api.refresh(current!.data.token).pipe(
          Effect.flatMap(fromServer),
          Effect.catchAll((error) =>
            Effect.zipRight(
              Effect.zipRight(
                Metric.increment(TokenMetrics.refreshFallbacks),
                Effect.logWarning(`Token refresh failed (${error.message}); logging in instead`)
              ),
              login
            )
          )
        )
        : yield* login
      const fresh = toCurrent(data)
      yield* renewed("server", fresh, now)
      yield* save(data)
      return fresh
    }))

  /**
   * A renewal, with the semaphore held: re-check (another fiber may have finished while we
   * waited, and its outcome is shared), then run the lifecycle, announcing it as `pending` so
   * that `getToken` callers arriving meanwhile wait for its outcome too.
   */
  const renew = (mode: Mode, seenGeneration: number) =>
    Effect.gen(function*() {
      const before = yield* Ref.get(state)
      if (before.generation !== seenGeneration) {
        // A renewal finished while we waited for the semaphore: share its outcome.
        if (before.lastFailure !== undefined) return yield* Effect.fail(before.lastFailure)
        if (before.current !== undefined) return before.current.data.token
      }
      if (!needsRenewal(mode, before.current, yield* Clock.currentTimeMillis)) return before.current!.data.token

      const pending = yield* Deferred.make<Redacted.Redacted<string>, AuthError | TokenStoreError>()
      return yield* Ref.update(state, (s) => ({ ...s, pending })).pipe(
        Effect.zipRight(lifecycle(mode, before.current)),
        // getToken with a token that still works: a failed renewal is not the caller's problem yet.
        Effect.catchAll((error) => mode._tag === "Auto" ? keepServing(before.current, error) : Effect.fail(error)),
        Effect.tap((current) =>
          Ref.update(state, (s) => ({ ...s, current, generation: s.generation + 1, lastFailure: undefined }))
        ),
        Effect.tapError((error) =>
          Ref.update(state, (s) => ({ ...s, generation: s.generation + 1, lastFailure: error }))
        ),
        Effect.map((current) => current.data.token),
        // Whoever waits on `pending` gets this renewal's outcome, however it ends (it is
        // announced inside, so an interruption never leaves it announced and unresolved); if
        // the renewal was interrupted, they start one of their own.
        Effect.onExit((exit) =>
          Effect.zipRight(
            Ref.update(state, (s) => s.pending === pending ? { ...s, pending: undefined } : s),
            Deferred.done(pending, exit)
          )
        )
      )
    })

  /**
   * After a failed renewal in the refresh margin, the current token is still valid: serve it,
   * and try again after `renewalRetryDelay` (or at expiry) instead of on every call.
   */
  const keepServing = (current: Current | undefined, error: AuthError | TokenStoreError) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      current === undefined || now >= current.expiresAt
        ? Effect.fail(error)
        : Effect.as(
          Effect.logWarning(
            `Could not renew the AMP token (${error.message}); the current one is valid for ${
              Duration.format(Duration.millis(current.expiresAt - now))
            } more, trying again in ${Duration.format(renewalRetryDelay)}`
          ),
          { ...current, refreshAt: Math.min(current.expiresAt, now + Duration.toMillis(renewalRetryDelay)) }
        ))

  /** Takes the semaphore, remembering which renewal generation was current before waiting. */
  const serialized = (mode: Mode, name: string) =>
    Effect.flatMap(Ref.get(state), ({ generation }) => semaphore.withPermits(1)(renew(mode, generation))).pipe(
      Effect.withSpan(name)
    )

  const serializedAuto = serialized({ _tag: "Auto" }, "TokenService.renew")

  /**
   * `getToken`'s slow path. While a renewal is under way, wait for its outcome with everyone
   * else (one wake-up for all, not a hand-off of the semaphore from one waiter to the next);
   * otherwise take the semaphore and re-check.
   */
  const auto: Effect.Effect<Redacted.Redacted<string>, AuthError | TokenStoreError> = Effect.flatMap(
    Ref.get(state),
    ({ pending }) =>
      pending === undefined ? serializedAuto : Effect.catchAllCause(
        Deferred.await(pending),
        (cause) => Cause.isInterruptedOnly(cause) ? serializedAuto : Effect.failCause(cause)
      )
  )

  // The hot path: no span, no lock, no I/O. A span per call would cost more than the lookup.
  const getToken = Effect.flatMap(Ref.get(state), ({ current }) =>
    current === undefined
      ? auto
      : Effect.flatMap(Clock.currentTimeMillis, (now) =>
        now < current.refreshAt ? Effect.succeed(current.data.token) : auto))

  const refreshToken = semaphore.withPermits(1)(Effect.gen(function*() {
    const { current } = yield* Ref.get(state)
    const now = yield* Clock.currentTimeMillis
    if (current === undefined) return yield* new NoTokenToRefresh({ reason: "no token" })
    if (now >= current.expiresAt) return yield* new NoTokenToRefresh({ reason: "expired" })
    const fresh = yield* store.withLock(Effect.gen(function*() {
      const data = yield* Effect.flatMap(api.refresh(current.data.token), fromServer)
      yield* save(data)
      return toCurrent(data)
    }))
    yield* Ref.update(state, (s) => ({ ...s, current: fresh, generation: s.generation + 1, lastFailure: undefined }))
    yield* renewed("server", fresh, now)
    return fresh.data.token
  })).pipe(Effect.withSpan("TokenService.refreshToken"))

  const getTokenInfo = Effect.flatMap(
    Ref.get(state),
    ({ current }) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const info = current === undefined
          ? Option.none()
          : Option.some(TokenInfo.make(current.data, now, Duration.millis(margin)))
        return Effect.as(
          Metric.set(
            TokenMetrics.secondsUntilExpiry,
            current === undefined ? 0 : Math.max(0, current.expiresAt - now) / 1000
          ),
          info
        )
      })
  )

  const clearToken = semaphore.withPermits(1)(
    Effect.zipRight(
      Ref.update(state, (s) => ({ ...s, current: undefined })),
      store.remove
    )
  ).pipe(Effect.withSpan("TokenService.clearToken"))

  return TokenService.of({
    getToken,
    obtainToken: serialized({ _tag: "Obtain" }, "TokenService.obtainToken"),
    refreshToken,
    forceRefresh: serialized({ _tag: "Refresh" }, "TokenService.forceRefresh"),
    renewRejected: (token) => serialized({ _tag: "Rejected", token }, "TokenService.renewRejected"),
    getTokenInfo,
    clearToken
  })
})

/** Whether `mode` calls for a new token, given the current one at `now`. */
const needsRenewal = (mode: Mode, current: Current | undefined, now: number): boolean => {
  if (current === undefined) return true
  switch (mode._tag) {
    case "Auto":
      return now >= current.refreshAt
    case "Rejected":
      return Redacted.value(current.data.token) === Redacted.value(mode.token) || now >= current.expiresAt
    case "Obtain":
    case "Refresh":
      return true
  }
}

const sameToken = (candidate: Current, current: Current | undefined) =>
  current !== undefined && Redacted.value(candidate.data.token) === Redacted.value(current.data.token)

/** Records where a renewed token came from, on the span and in the metrics. */
const renewed = (source: "server" | "file", current: Current, now: number) =>
  Effect.all([
    Effect.annotateCurrentSpan("source", source),
    Metric.increment(Metric.tagged(TokenMetrics.renewals, "source", source)),
    Metric.set(TokenMetrics.secondsUntilExpiry, Math.max(0, current.expiresAt - now) / 1000)
  ], { discard: true })

const persistenceFailed = (error: TokenStoreError) =>
  Metric.increment(Metric.tagged(TokenMetrics.persistenceFailures, "operation", error.operation))

/** Stamps a token just received from the server with the time it was obtained. */
const fromServer = (token: Redacted.Redacted<string>) =>
  Effect.map(Clock.currentTimeMillis, (now) => TokenData.fromToken(token, DateTime.unsafeMake(now)))

/** The service with explicit options; needs an `AuthApi` and a `TokenStore`. */
export const layer = (options?: TokenServiceOptions): Layer.Layer<TokenService, never, AuthApi | TokenStore> =>
  Layer.effect(TokenService, make(options))

/** The service with the refresh margin from `AMP_TOKEN_REFRESH_MARGIN_SECONDS`. */
export const layerConfig: Layer.Layer<TokenService, AmpConfig.AmpConfigError, AuthApi | TokenStore> = Layer.effect(
  TokenService,
  Effect.flatMap(AmpConfig.refreshMargin, (refreshMargin) => make({ refreshMargin }))
)

/**
 * A service that always answers with `token` (default `"mock-token"`): no network, no disk,
 * nothing left behind. For application tests that do not care about the token's lifecycle.
 */
export const layerMock = (token = "mock-token"): Layer.Layer<TokenService> =>
  Layer.effect(
    TokenService,
    Effect.map(Clock.currentTimeMillis, (now) => {
      const data = TokenData.fromToken(Redacted.make(token), DateTime.unsafeMake(now))
      const fixed = Effect.succeed(data.token)
      return TokenService.of({
        getToken: fixed,
        obtainToken: fixed,
        refreshToken: fixed,
        forceRefresh: fixed,
        renewRejected: () => fixed,
        getTokenInfo: Effect.map(
          Clock.currentTimeMillis,
          (at) => Option.some(TokenInfo.make(data, Math.max(at, now), defaultRefreshMargin))
        ),
        clearToken: Effect.void
      })
    })
  )
