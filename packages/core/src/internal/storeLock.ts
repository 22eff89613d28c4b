/**
 * The lock protocol every shared store uses (`StoreLock.make`).
 *
 * @internal
 */
import { DateTime, Duration, Effect, Metric, Option, Random, Schedule, type Scope } from "effect"
import type { LocalProcess } from "../LocalProcess.js"
import { TokenStoreError } from "../TokenError.js"
import * as TokenMetrics from "../TokenMetrics.js"

export interface Owner {
  readonly pid: number | null
  readonly host: string | null
  readonly nonce: string
}

export type Attempt = { readonly _tag: "Taken" } | { readonly _tag: "Busy"; readonly holder: string }

export interface Storage {
  readonly take: (owner: Owner) => Effect.Effect<Attempt, string>
  readonly extend?: ((owner: Owner) => Effect.Effect<boolean, string>) | undefined
  readonly release: (owner: Owner) => Effect.Effect<boolean, string>
  readonly holder?: Effect.Effect<string> | undefined
}

export interface Options {
  readonly store: TokenStoreError["store"]
  readonly name: string
  readonly where: string
  readonly lease: Duration.Duration
  readonly timeout: Duration.Duration
  readonly whenUnavailable: "proceed" | "fail"
  readonly localProcess?: LocalProcess | undefined
  readonly lost?: Metric.Metric.Counter<number> | undefined
  readonly unavailable?: Metric.Metric.Counter<number> | undefined
}

export type WithLock = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TokenStoreError, R>

/** Polls at 10, 20, 40... ms, at most every 100 ms, jittered so that waiters do not move in step. */
const backoff = (timeout: Duration.Duration) =>
  Schedule.exponential(Duration.millis(10), 2).pipe(
    Schedule.union(Schedule.spaced(Duration.millis(100))),
    Schedule.jittered,
    Schedule.upTo(timeout)
  )

/** 64 random bits in base 36: unguessable enough that nobody can pre-create our names. */
export const nonce: Effect.Effect<string> = Effect.map(
  Effect.all([Random.nextIntBetween(0, 2 ** 32), Random.nextIntBetween(0, 2 ** 32)]),
  ([a, b]) => a.toString(36).padStart(7, "0") + b.toString(36).padStart(7, "0")
)

export const describeOwner = (owner: Pick<Owner, "pid" | "host">): string =>
  `process ${owner.pid ?? "?"} on ${owner.host ?? "an unknown host"}`

/**
 * Why a lock of `owner` whose lease ends at `leaseUntil` may be taken over at `now`: its lease
 * ran out, or its owner, a process of this host, is no longer running. `None` while it is held.
 */
export const staleness = (
  owner: Pick<Owner, "pid" | "host">,
  leaseUntil: number,
  now: number,
  local: LocalProcess | undefined
): Effect.Effect<Option.Option<string>> => {
  if (now >= leaseUntil) {
    const until = DateTime.formatIso(DateTime.unsafeMake(leaseUntil))
    return Effect.succeed(Option.some(`its lease ran out (${describeOwner(owner)}, lease until ${until})`))
  }
  if (local === undefined || owner.host !== local.hostname || owner.pid === null || owner.pid === local.pid) {
    return Effect.succeedNone
  }
  const pid = owner.pid
  return Effect.map(
    local.isAlive(pid),
    (alive) => alive ? Option.none() : Option.some(`its owner, process ${pid}, is no longer running`)
  )
}

export const make = (storage: Storage, options: Options): Effect.Effect<WithLock> =>
  Effect.map(
    // Fibers of one process queue here first, so that only one of them polls the storage.
    Effect.makeSemaphore(1),
    (semaphore) => (effect) =>
      semaphore.withPermits(1)(Effect.scoped(Effect.zipRight(hold(storage, options), effect))).pipe(
        Effect.withSpan("TokenStore.withLock", { attributes: { store: options.store } })
      )
  )

const counted = (options: Options, operation: string) =>
  options.unavailable === undefined
    ? Effect.void
    : Metric.increment(Metric.tagged(options.unavailable, "operation", operation))

/** Takes the lock for the current scope and keeps its lease renewed until the scope closes. */
const hold = (storage: Storage, options: Options): Effect.Effect<void, TokenStoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const owner: Owner = {
      pid: options.localProcess?.pid ?? null,
      host: options.localProcess?.hostname ?? null,
      nonce: yield* nonce
    }
    const lost = yield* Effect.once(lostWarning(options))
    let attempts = 0
    const attempt = Effect.suspend(() => {
      attempts++
      return storage.take(owner)
    }).pipe(Effect.flatMap((found) => found._tag === "Taken" ? Effect.void : Effect.fail(found)))
    const outcome = yield* Effect.acquireRelease(attempt, () => release(storage, options, owner, lost)).pipe(
      Effect.retry({ schedule: backoff(options.timeout), while: (error) => typeof error !== "string" }),
      Effect.either
    )
    yield* Effect.annotateCurrentSpan({ attempts, waited: attempts > 1 })
    if (attempts > 1) yield* Metric.increment(TokenMetrics.lockWaits)
    if (outcome._tag === "Right") {
      if (storage.extend !== undefined) yield* Effect.forkScoped(keepExtending(storage.extend, options, owner, lost))
      return
    }
    const failure = outcome.left
    const error = (reason: string) =>
      new TokenStoreError({ store: options.store, operation: "lock", path: options.where, reason })
    if (typeof failure !== "string") {
      const holder = storage.holder === undefined ? failure.holder : yield* storage.holder
      return yield* error(`still held by ${holder} after waiting ${Duration.format(options.timeout)}`)
    }
    yield* counted(options, "lock")
    if (options.whenUnavailable === "fail") return yield* error(failure)
    yield* Effect.logWarning(
      `Could not take the ${options.name} (${failure}); renewing without it, so other processes may log in too`
    )
  }).pipe(Effect.withSpan("TokenStore.lockWait", { attributes: { store: options.store, lock: options.where } }))

const lostWarning = (options: Options) =>
  Effect.zipRight(
    options.lost === undefined ? Effect.void : Metric.increment(options.lost),
    Effect.logWarning(
      `The ${options.name} was taken over by another process while held (its lease of ${
        Duration.format(options.lease)
      } ran out), so that process may be renewing too; a token it saves is kept if it expires later`
    )
  )

/** Releases the lock if it is still ours. Never fails. */
const release = (storage: Storage, options: Options, owner: Owner, lost: Effect.Effect<void>) =>
  storage.release(owner).pipe(
    Effect.flatMap((released) => released ? Effect.void : lost),
    Effect.catchAll((reason) =>
      counted(options, "release").pipe(Effect.zipRight(Effect.logWarning(
        `Could not release the ${options.name} (${reason}); others take it over when its lease runs out`
      )))
    )
  )

/** Extends the lease every third of it while held; stops once the lock is lost. */
const keepExtending = (
  extend: (owner: Owner) => Effect.Effect<boolean, string>,
  options: Options,
  owner: Owner,
  lost: Effect.Effect<void>
) =>
  Effect.sleep(Duration.unsafeDivide(options.lease, 3)).pipe(
    Effect.zipRight(extend(owner)),
    Effect.flatMap((extended) => extended ? Effect.succeed(true) : Effect.as(lost, false)),
    // A missed extension is no loss yet: the lease still runs. The next one will tell.
    Effect.catchAll((reason) =>
      counted(options, "extend").pipe(
        Effect.zipRight(Effect.logDebug(`Could not extend the ${options.name}: ${reason}`)),
        Effect.as(true)
      )
    ),
    Effect.repeat({ while: (held) => held })
  )
