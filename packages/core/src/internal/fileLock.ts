/**
 * The lock beside the token file (`token.json.lock`), over the abstract `FileSystem`.
 *
 * - Taking it: create the lock file exclusively (mode 0600) with an owner record: process id,
 *   host, a random nonce and the end of its lease. Creation either succeeds or fails with
 *   "already exists", atomically, on every local file system.
 * - Waiting: poll with jittered exponential backoff (a `Schedule`) until `timeout`, then fail
 *   with `TokenStoreError` (operation "lock"). Never a hang.
 * - Taking over: a lock whose lease ran out, or whose owner on this host is no longer running.
 *   Many waiters see the same stale lock at once, and none may delete a lock another has
 *   created since, so a waiter first creates a claim on that very lock,
 *   `token.json.lock.claim-<its nonce>`, exclusively: one waiter wins, re-reads the lock, and
 *   deletes it only if it still holds the record judged stale. The others go on waiting, and
 *   then everyone competes to create the lock as usual. A claim whose own creator died is
 *   judged (and removed) by the same rules as a lock.
 * - Releasing: the lock is renamed to a unique name and checked to hold our record before it
 *   is deleted, so a process only ever deletes its own lock (see `renameIfUnchanged`).
 *
 * @internal
 */
import type { PlatformError } from "@effect/platform/Error"
import { Clock, Data, DateTime, Duration, Effect, Either, Metric, Option, Schedule, Schema, Scope } from "effect"
import { Rfc3339 } from "../TokenData.js"
import { TokenStoreError } from "../TokenError.js"
import * as TokenMetrics from "../TokenMetrics.js"
import * as TokenFile from "./tokenFile.js"

/** What the lock file holds. Snake case like the token file; readable by a person with `cat`. */
const LockRecord = Schema.Struct({
  pid: Schema.NullOr(Schema.Int.pipe(Schema.positive())),
  host: Schema.NullOr(Schema.String),
  nonce: Schema.String,
  acquired_at: Rfc3339,
  lease_until: Rfc3339
})
type LockRecord = typeof LockRecord.Type

const LockRecordJson = Schema.parseJson(LockRecord)
const decodeRecord = Schema.decodeEither(LockRecordJson, { onExcessProperty: "ignore" })
const encodeRecord = (record: LockRecord): string => JSON.stringify(Schema.encodeSync(LockRecord)(record)) + "\n"

/** Someone else holds the lock; `holder` says who, for the message when the wait times out. */
class Busy extends Data.TaggedError("Busy")<{ readonly holder: string }> {}

const justReleased = new Busy({ holder: "nobody (it was just released)" })

export interface LockContext extends TokenFile.FileContext {
  readonly lockPath: string
  readonly lease: Duration.Duration
  readonly timeout: Duration.Duration
}

/**
 * Wraps `effect` so that it runs holding the lock. File system failures other than contention
 * (read-only, full, permission denied) do not stop the caller: a warning is logged and `effect`
 * runs unlocked, since such a store cannot share a token between processes anyway.
 */
export const make = (ctx: LockContext) => {
  const { fs, lockPath } = ctx
  const leaseMillis = Duration.toMillis(ctx.lease)

  /** Polls at 10, 20, 40... ms, at most every 250 ms, jittered so waiters do not move in step. */
  const backoff = Schedule.exponential(Duration.millis(10), 2).pipe(
    Schedule.union(Schedule.spaced(Duration.millis(250))),
    Schedule.jittered,
    Schedule.upTo(ctx.timeout)
  )

  const describeHolder = (record: LockRecord) =>
    `process ${record.pid ?? "?"} on ${record.host ?? "an unknown host"}, lease until ${
      DateTime.formatIso(record.lease_until)
    }`

  const readText = (path: string) =>
    fs.readFileString(path).pipe(
      Effect.map(Option.some),
      Effect.catchIf(TokenFile.isNotFound, () => Effect.succeedNone)
    )

  /** Why the lock (or claim) at `path`, found with `text`, may be removed; `None` while held. */
  const staleness = (path: string, text: string, now: number): Effect.Effect<Option.Option<string>, PlatformError> => {
    const decoded = decodeRecord(text)
    if (Either.isLeft(decoded)) {
      // Not a record (a foreign file, or a writer killed between create and write): judge it
      // by its age, with the lease as the limit.
      return Effect.map(fs.stat(path), (info) => {
        const mtime = Option.getOrUndefined(info.mtime)?.getTime()
        return mtime !== undefined && now - mtime > leaseMillis
          ? Option.some("it is unreadable and older than the lease")
          : Option.none()
      })
    }
    const record = decoded.right
    if (now >= DateTime.toEpochMillis(record.lease_until)) {
      return Effect.succeed(Option.some(`its lease ran out (${describeHolder(record)})`))
    }
    const local = ctx.local
    if (local === undefined || record.host !== local.hostname || record.pid === null || record.pid === local.pid) {
      return Effect.succeedNone
    }
    return Effect.map(
      local.isAlive(record.pid),
      (alive) => alive ? Option.none() : Option.some(`its owner, process ${record.pid}, is no longer running`)
    )
  }

  const holderOf = (text: string) =>
    Either.match(decodeRecord(text), { onLeft: () => "an unreadable lock file", onRight: describeHolder })

  /** Creates `path` with `text`, exclusively (mode 0600); `false` when it exists already. */
  const create = (path: string, text: string): Effect.Effect<boolean, PlatformError> => {
    const bytes = new TextEncoder().encode(text)
    return TokenFile.writeNew(fs, path, bytes).pipe(
      // A missing directory is created, as `save` would.
      Effect.catchIf(TokenFile.isNotFound, () =>
        Effect.zipRight(
          fs.makeDirectory(ctx.path.dirname(path), { recursive: true, mode: 0o700 }),
          TokenFile.writeNew(fs, path, bytes)
        )),
      Effect.as(true),
      Effect.catchIf(TokenFile.isAlreadyExists, () => Effect.succeed(false))
    )
  }

  /** A record of this process holding something from `now` for one lease. */
  const newRecord = (now: number) =>
    Effect.map(TokenFile.randomSuffix, (nonce) =>
      encodeRecord({
        pid: ctx.local?.pid ?? null,
        host: ctx.local?.hostname ?? null,
        nonce,
        acquired_at: DateTime.unsafeMake(now),
        lease_until: DateTime.unsafeMake(now + leaseMillis)
      }))

  /** The claim's name: the stale lock's nonce, or a hash of an unreadable lock's content. */
  const claimPath = (stale: string) => {
    const nonce = Either.getOrUndefined(decodeRecord(stale))?.nonce
    const key = nonce !== undefined && /^[0-9a-zA-Z]{1,64}$/.test(nonce) ? nonce : `u${TokenFile.fnv1a(stale)}`
    return `${lockPath}.claim-${key}`
  }

  /**
   * Deletes the lock found stale with text `stale`, if this waiter wins the claim on it and it
   * is still that lock; `true` when deleted.
   */
  const takeOver = (stale: string, reason: string, now: number) =>
    Effect.gen(function*() {
      const claim = claimPath(stale)
      if (!(yield* create(claim, yield* newRecord(now)))) {
        // Another waiter is taking this lock over, or died doing so: then its claim goes.
        const other = yield* readText(claim)
        if (Option.isSome(other) && Option.isSome(yield* staleness(claim, other.value, now))) {
          yield* Effect.ignore(fs.remove(claim))
        }
        return false
      }
      return yield* Effect.gen(function*() {
        // Only a claim holder deletes a lock (its owner is dead or out of lease), and we hold
        // the only claim on this one: between this look and the removal, it stays this lock.
        const current = yield* readText(lockPath)
        if (Option.isNone(current) || current.value !== stale) return false
        yield* fs.remove(lockPath)
        yield* Effect.logWarning(`Took over the token lock ${lockPath}: ${reason}`)
        return true
      }).pipe(Effect.ensuring(Effect.ignore(fs.remove(claim))))
    })

  /** Deletes the lock file if it still holds exactly `text`; otherwise leaves it as it is. */
  const removeIfStill = (text: string) =>
    Effect.gen(function*() {
      const aside = yield* TokenFile.uniqueSibling(ctx, "lock.stale")
      const outcome = yield* TokenFile.renameIfUnchanged(
        fs,
        lockPath,
        aside,
        (moved) => Effect.map(fs.readFileString(moved), (movedText) => movedText === text)
      )
      // Moved: ours to delete. Changed: put back, or (when that failed) its owner lost it anyway.
      yield* outcome === "Moved" ? fs.remove(aside) : Effect.ignore(fs.remove(aside))
      return outcome
    })

  /** One attempt: the lock's record text when taken, `Busy` when someone else holds it. */
  const attempt: Effect.Effect<string, Busy | PlatformError> = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const text = yield* newRecord(now)
    if (yield* create(lockPath, text)) return text
    return yield* Effect.gen(function*() {
      const found = yield* readText(lockPath)
      if (Option.isNone(found)) return yield* Effect.fail(justReleased)
      const stale = yield* staleness(lockPath, found.value, now)
      if (Option.isSome(stale) && (yield* takeOver(found.value, stale.value, now))) {
        if (yield* create(lockPath, text)) return text
      }
      return yield* new Busy({ holder: holderOf(found.value) })
    }).pipe(
      // The lock vanished between two looks: released meanwhile, try again.
      Effect.catchIf(
        (error) => error._tag !== "Busy" && TokenFile.isNotFound(error),
        () => Effect.fail(justReleased)
      )
    )
  })

  const release = (text: string) =>
    removeIfStill(text).pipe(
      Effect.flatMap((outcome) =>
        outcome === "Moved"
          ? Effect.void
          : Effect.logWarning(`The token lock ${lockPath} was taken over by another process while held`)
      ),
      Effect.catchAll((error) =>
        Effect.logWarning(
          `Could not release the token lock ${lockPath} (${
            TokenFile.describe(error)
          }); others take it over when its lease runs out`
        )
      )
    )

  /**
   * Waits for the lock and registers its release in `scope`; `None` when running unlocked.
   * One span per wait, with how many attempts it took; a wait for another process is counted.
   */
  const acquire = (scope: Scope.Scope) =>
    Effect.suspend(() => {
      let attempts = 0
      const counted = Effect.suspend(() => {
        attempts++
        return attempt
      })
      return Effect.acquireRelease(counted, release).pipe(
        Scope.extend(scope),
        Effect.retry({ schedule: backoff, while: (error) => error._tag === "Busy" }),
        Effect.map(Option.some),
        Effect.catchAll((error) =>
          error._tag === "Busy"
            ? Effect.fail(
              new TokenStoreError({
                operation: "lock",
                path: lockPath,
                reason: `still held by ${error.holder} after waiting ${Duration.format(ctx.timeout)}`
              })
            )
            : Effect.as(
              Effect.logWarning(
                `Could not take the token lock ${lockPath} (${
                  TokenFile.describe(error)
                }); renewing without it, so other processes may log in too`
              ),
              Option.none<string>()
            )
        ),
        Effect.onExit(() =>
          Effect.zipRight(
            Effect.annotateCurrentSpan({ attempts, waited: attempts > 1 }),
            attempts > 1 ? Metric.increment(TokenMetrics.lockWaits) : Effect.void
          )
        ),
        Effect.withSpan("TokenStore.lockWait", { attributes: { lock: lockPath } })
      )
    })

  return <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | TokenStoreError, R> =>
    Effect.acquireUseRelease(
      Scope.make(),
      (scope) => Effect.zipRight(acquire(scope), effect),
      (scope, exit) => Scope.close(scope, exit)
    )
}
