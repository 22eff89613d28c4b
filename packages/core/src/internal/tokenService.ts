/**
 * The token service. Read `lifecycle` first: the whole life of the token. The state is one slot:
 * `Idle`, or one fiber `Renewing` (or `Clearing`) while the others wait on its `Deferred`, as
 * `Effect.cachedInvalidateWithTTL` keeps its work in flight.
 *
 * @internal
 */
import { Cause, Clock, DateTime, Deferred, Duration, Effect, Exit, Metric, Option, Redacted, Ref } from "effect"
import * as AmpConfig from "../AmpConfig.js"
import { AuthApi } from "../AuthApi.js"
import { TokenData } from "../TokenData.js"
import { type AuthError, NoTokenToRefresh, type TokenStoreError } from "../TokenError.js"
import * as TokenInfo from "../TokenInfo.js"
import * as TokenMetrics from "../TokenMetrics.js"
import { TokenStore } from "../TokenStore.js"

/** After a failed renewal in the margin, a still-valid token is served this long before retrying. */
const renewalRetryDelay = Duration.seconds(30)

/** The token in memory, with the instants that matter. */
export interface Current {
  readonly data: TokenData
  readonly expiresAt: number
  /** From this instant `getToken` renews: expiry − margin, or later after a failed renewal. */
  readonly refreshAt: number
}

export type State = Idle | Renewing | Clearing

export interface Idle {
  readonly _tag: "Idle"
  readonly current: Current | undefined
}

/** One fiber renews the token; whoever shares its result waits on `outcome`. */
export interface Renewing {
  readonly _tag: "Renewing"
  readonly current: Current | undefined
  /** Which operation started it: tells whose callers it can answer. */
  readonly kind: Mode["_tag"]
  readonly outcome: Deferred.Deferred<Current, RenewalError>
}

/** One fiber forgets the token (`clearToken`); the others wait for `done`. */
export interface Clearing {
  readonly _tag: "Clearing"
  readonly current: undefined
  readonly done: Deferred.Deferred<void>
}

export type Busy = Renewing | Clearing

/** How a caller asks for a token. */
export type Mode =
  /** `getToken`: a renewal only when the token is missing, expired or within the margin. */
  | { readonly _tag: "Auto" }
  /** `renewRejected`: a renewal only while `token`, which the server rejected, is still current. */
  | { readonly _tag: "Rejected"; readonly token: Redacted.Redacted<string> }
  /** The explicit calls; any renewal but `queuedBehind`, the last one waited for, started after them. */
  | { readonly _tag: "Obtain" | "Refresh" | "RefreshOnly"; readonly queuedBehind: Busy | undefined }

/** What a call does next: serve, start a renewal, share the one under way, queue behind it, or refuse. */
export type Decision =
  | { readonly _tag: "Serve"; readonly current: Current }
  | { readonly _tag: "Start" }
  | { readonly _tag: "Share"; readonly outcome: Deferred.Deferred<Current, RenewalError> }
  | { readonly _tag: "Queue"; readonly behind: Busy }
  | { readonly _tag: "Refuse"; readonly reason: "no token" | "expired" }

export type RenewalError = AuthError | TokenStoreError | NoTokenToRefresh

/**
 * The whole policy of who renews, who shares whose result and who waits. `getToken` and
 * `renewRejected` share every renewal under way (a wrong password costs one attempt) but a
 * `refreshToken`'s. The explicit calls wait for the renewal under way when called, and share a
 * later one that renews at least as they would.
 */
export const decide = (mode: Mode, state: State, now: number): Decision => {
  const current = state.current
  switch (mode._tag) {
    case "Auto":
    case "Rejected": {
      const answers = current !== undefined && (mode._tag === "Auto"
        ? now < current.refreshAt
        : now < current.expiresAt && Redacted.value(current.data.token) !== Redacted.value(mode.token))
      if (answers) return { _tag: "Serve", current }
      if (state._tag === "Idle") return { _tag: "Start" }
      if (state._tag === "Renewing" && state.kind !== "RefreshOnly") return { _tag: "Share", outcome: state.outcome }
      return { _tag: "Queue", behind: state }
    }
    case "Obtain":
    case "Refresh":
    case "RefreshOnly": {
      if (state._tag === "Idle") {
        if (mode._tag !== "RefreshOnly") return { _tag: "Start" }
        if (current === undefined) return { _tag: "Refuse", reason: "no token" }
        return now < current.expiresAt ? { _tag: "Start" } : { _tag: "Refuse", reason: "expired" }
      }
      const startedAfterCall = mode.queuedBehind !== undefined && state !== mode.queuedBehind
      if (state._tag === "Renewing" && startedAfterCall && explicitAnswers[mode._tag].includes(state.kind)) {
        return { _tag: "Share", outcome: state.outcome }
      }
      return { _tag: "Queue", behind: state }
    }
  }
}

/** Which renewals, started after an explicit call, answer it. */
const explicitAnswers: Record<"Obtain" | "Refresh" | "RefreshOnly", ReadonlyArray<Mode["_tag"]>> = {
  Obtain: ["Obtain"],
  Refresh: ["Obtain", "Refresh"],
  RefreshOnly: ["RefreshOnly"]
}

interface Service {
  readonly api: AuthApi["Type"]
  readonly store: TokenStore["Type"]
  readonly margin: number
  readonly state: Ref.Ref<State>
}

/**
 * The token's lifecycle, for every operation but `clearToken`. Deciding and announcing a renewal
 * are one atomic update, and the renewal is settled uninterruptibly, so no waiter is stranded.
 */
const lifecycle = (service: Service, mode: Mode): Effect.Effect<Current, RenewalError> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const outcome = yield* Deferred.make<Current, RenewalError>()
      const now = yield* Clock.currentTimeMillis
      const [decision, before] = yield* Ref.modify(service.state, (state): [[Decision, State], State] => {
        const decision = decide(mode, state, now)
        return [
          [decision, state],
          decision._tag === "Start" ? { _tag: "Renewing", current: state.current, kind: mode._tag, outcome } : state
        ]
      })
      switch (decision._tag) {
        case "Serve":
          return decision.current
        case "Refuse":
          return yield* new NoTokenToRefresh({ reason: decision.reason })
        case "Queue": {
          yield* restore(awaitEnd(decision.behind))
          const next = mode._tag === "Auto" || mode._tag === "Rejected"
            ? mode
            : { ...mode, queuedBehind: decision.behind }
          return yield* restore(lifecycle(service, next))
        }
        case "Share": {
          const exit = yield* restore(Effect.exit(Deferred.await(decision.outcome)))
          if (Exit.isSuccess(exit)) return exit.value
          // The renewing fiber was interrupted, so there is no answer to share: decide again.
          if (Cause.isInterruptedOnly(exit.cause)) return yield* restore(lifecycle(service, mode))
          // Its failure is this call's too (a wrong password costs one attempt, not one per
          // caller), unless the token it left in memory answers this caller (`keepServing`).
          const after = decide(mode, yield* Ref.get(service.state), yield* Clock.currentTimeMillis)
          return after._tag === "Serve" ? after.current : yield* exit
        }
        case "Start": {
          const renew = renewal(service, mode, before.current)
          const exit = yield* Effect.exit(
            restore(mode._tag === "Auto" ? Effect.withSpan(renew, "TokenService.renew") : renew)
          )
          // getToken with a token that still works: a failed renewal is not the caller's problem yet.
          const kept = mode._tag === "Auto" && Exit.isFailure(exit)
            ? yield* keepServing(before.current, exit.cause)
            : undefined
          // The state first, then the outcome: whoever wakes up finds the slot free.
          yield* Ref.set(service.state, {
            _tag: "Idle",
            current: Exit.isSuccess(exit) ? exit.value : kept ?? before.current
          })
          yield* Deferred.done(outcome, exit)
          return kept ?? (yield* exit)
        }
      }
    })
  )

/**
 * One renewal, under the store's lock: re-read the store (another process may have just renewed)
 * → refresh while the token is valid → fall back to a login → save.
 */
const renewal = (service: Service, mode: Mode, known: Current | undefined) =>
  service.store.withLock(Effect.gen(function*() {
    // Waiting for another process's lock can take a while: decide with the time of now.
    const now = yield* Clock.currentTimeMillis
    let base = known
    const stored = yield* loadStored(service, true)
    if (stored !== undefined && !sameToken(stored.data, known?.data)) {
      // Another process renewed: keep its token if it answers this call as if it were in memory.
      base = stored
      if (decide(mode, { _tag: "Idle", current: stored }, now)._tag === "Serve") {
        yield* renewed("file", stored, now)
        return stored
      }
    }
    const login = Effect.flatMap(service.api.obtain, fromServer)
    let data: TokenData
    if (base === undefined || now >= base.expiresAt) {
      // Nothing that can be refreshed: an expired token is replaced by a login, never refreshed.
      if (mode._tag === "RefreshOnly") {
        return yield* new NoTokenToRefresh({ reason: base === undefined ? "no token" : "expired" })
      }
      data = yield* login
    } else if (mode._tag === "Obtain") {
      data = yield* login
    } else {
      // A valid token: refresh it, and log in if that fails (except for `refreshToken`).
      data = yield* service.api.refresh(base.data.token).pipe(
        Effect.flatMap(fromServer),
        Effect.catchAll((error) =>
          mode._tag === "RefreshOnly" ? Effect.fail(error) : Metric.increment(TokenMetrics.refreshFallbacks).pipe(
            Effect.zipRight(Effect.logWarning(`Token refresh failed (${error.message}); logging in instead`)),
            Effect.zipRight(login)
          )
        )
      )
    }
    yield* renewed("server", toCurrent(data, service.margin), now)
    // The store may keep a later token another process saved meanwhile (this lock ran out).
    const held = yield* save(service, data, base?.data)
    if (held !== data) {
      yield* Effect.logWarning("Another process saved a token that expires later during this renewal; using it")
    }
    return toCurrent(held, service.margin)
  }))

/**
 * After a failed renewal in the margin, a still-valid token is served until `renewalRetryDelay`
 * (or expiry) instead of renewing on every call. `undefined` when there is none to keep.
 */
const keepServing = (current: Current | undefined, cause: Cause.Cause<RenewalError>) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const error = Cause.failureOption(cause)
    if (current === undefined || now >= current.expiresAt || Option.isNone(error)) return undefined
    yield* Effect.logWarning(
      `Could not renew the AMP token (${error.value.message}); the current one is valid for ${
        Duration.format(Duration.millis(current.expiresAt - now))
      } more, trying again in ${Duration.format(renewalRetryDelay)}`
    )
    return { ...current, refreshAt: Math.min(current.expiresAt, now + Duration.toMillis(renewalRetryDelay)) }
  })

/** Forgets the token, after the work under way (so that a renewal cannot bring it back). */
const clear = (service: Service): Effect.Effect<void, TokenStoreError> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const done = yield* Deferred.make<void>()
      const before = yield* Ref.modify(service.state, (state): [State, State] => [
        state,
        state._tag === "Idle" ? { _tag: "Clearing", current: undefined, done } : state
      ])
      if (before._tag !== "Idle") {
        yield* restore(awaitEnd(before))
        return yield* restore(clear(service))
      }
      const exit = yield* Effect.exit(restore(service.store.remove))
      yield* Ref.set(service.state, { _tag: "Idle", current: undefined })
      yield* Deferred.succeed(done, undefined)
      return yield* exit
    })
  )

/** Waits until `busy` ends, however it ends. */
const awaitEnd = (busy: Busy): Effect.Effect<void> =>
  busy._tag === "Renewing" ? Effect.asVoid(Effect.exit(Deferred.await(busy.outcome))) : Deferred.await(busy.done)

export const make = (options?: { readonly refreshMargin?: Duration.DurationInput }) =>
  Effect.gen(function*() {
    const api = yield* AuthApi
    const store = yield* TokenStore
    const margin = Duration.toMillis(options?.refreshMargin ?? AmpConfig.defaultRefreshMargin)
    const current = yield* loadStored({ store, margin }, false).pipe(Effect.withSpan("TokenService.load"))
    const service: Service = { api, store, margin, state: yield* Ref.make<State>({ _tag: "Idle", current }) }
    const token = (mode: Mode) => Effect.map(lifecycle(service, mode), (current) => current.data.token)
    const renew = (mode: Mode, name: string) =>
      withLoginFallback(token(mode)).pipe(Effect.withSpan(`TokenService.${name}`))

    // The hot path: one Ref.get and a clock read; a span would cost more than the lookup.
    const slow = withLoginFallback(token({ _tag: "Auto" }))
    const getToken = Effect.flatMap(Ref.get(service.state), ({ current }) =>
      current === undefined
        ? slow
        : Effect.flatMap(
          Clock.currentTimeMillis,
          (now) => now < current.refreshAt ? Effect.succeed(current.data.token) : slow
        ))

    const getTokenInfo = Effect.gen(function*() {
      const { current } = yield* Ref.get(service.state)
      const now = yield* Clock.currentTimeMillis
      yield* setSecondsLeft(current, now)
      return current === undefined
        ? Option.none()
        : Option.some(TokenInfo.make(current.data, now, Duration.millis(margin)))
    })

    return {
      getToken,
      obtainToken: renew({ _tag: "Obtain", queuedBehind: undefined }, "obtainToken"),
      refreshToken: token({ _tag: "RefreshOnly", queuedBehind: undefined }).pipe(
        Effect.withSpan("TokenService.refreshToken")
      ),
      forceRefresh: renew({ _tag: "Refresh", queuedBehind: undefined }, "forceRefresh"),
      renewRejected: (rejected: Redacted.Redacted<string>) =>
        renew({ _tag: "Rejected", token: rejected }, "renewRejected"),
      getTokenInfo,
      clearToken: clear(service).pipe(Effect.withSpan("TokenService.clearToken"))
    }
  })

/** Only `refreshToken` has no login fallback: for the others `NoTokenToRefresh` is a bug. */
const withLoginFallback = <A>(effect: Effect.Effect<A, RenewalError>): Effect.Effect<A, AuthError | TokenStoreError> =>
  Effect.catchTag(effect, "NoTokenToRefresh", (error) => Effect.die(error))

const toCurrent = (data: TokenData, margin: number): Current => {
  const expiresAt = DateTime.toEpochMillis(data.expiresAt)
  return { data, expiresAt, refreshAt: expiresAt - margin }
}

/**
 * Reads the store; a failure or an expired token counts as none. An expired token is removed
 * only under the store's lock (`removeExpired`), never a fresh one another process just saved.
 */
const loadStored = (service: Pick<Service, "store" | "margin">, removeExpired: boolean) =>
  Effect.gen(function*() {
    const stored = yield* service.store.load.pipe(
      Effect.map(Option.map((data) => data.withJwtExpiry())),
      Effect.catchAll((error) => Effect.as(storeFailed(error, "continuing without a stored token"), Option.none()))
    )
    if (Option.isNone(stored)) return undefined
    const now = yield* Clock.currentTimeMillis
    const current = toCurrent(stored.value, service.margin)
    if (now < current.expiresAt) return current
    if (!removeExpired) return undefined
    yield* Effect.logInfo(`The stored token expired at ${DateTime.formatIso(stored.value.expiresAt)}; removing it`)
    yield* service.store.remove.pipe(Effect.catchAll((error) => storeFailed(error, "it stays in the store")))
    return undefined
  })

/** Saves `data`; the token to serve: `data`, or the later one the store kept instead. */
const save = (service: Service, data: TokenData, replacing: TokenData | undefined) =>
  service.store.save(data, replacing).pipe(
    Effect.map((held) => sameToken(held, data) ? data : held.withJwtExpiry()),
    Effect.catchAll((error) => Effect.as(storeFailed(error, "the token is kept in memory only"), data))
  )

const sameToken = (candidate: TokenData, current: TokenData | undefined) =>
  current !== undefined && Redacted.value(candidate.token) === Redacted.value(current.token)

/** Records where a renewed token came from, on the span and in the metrics. */
const renewed = (source: "server" | "file", current: Current, now: number) =>
  Effect.all([
    Effect.annotateCurrentSpan("source", source),
    Metric.increment(Metric.tagged(TokenMetrics.renewals, "source", source)),
    setSecondsLeft(current, now)
  ], { discard: true })

const setSecondsLeft = (current: Current | undefined, now: number) =>
  Metric.set(TokenMetrics.secondsUntilExpiry, current === undefined ? 0 : Math.max(0, current.expiresAt - now) / 1000)

/** A store failure the service lives with: counted and logged, with what happens instead. */
const storeFailed = (error: TokenStoreError, instead: string) =>
  Effect.zipRight(
    Metric.increment(Metric.tagged(TokenMetrics.persistenceFailures, "operation", error.operation)),
    Effect.logWarning(`${error.message}; ${instead}`)
  )

/** Stamps a token just received from the server with the time it was obtained. */
const fromServer = (token: Redacted.Redacted<string>) =>
  Effect.map(Clock.currentTimeMillis, (now) => TokenData.fromToken(token, DateTime.unsafeMake(now)))
