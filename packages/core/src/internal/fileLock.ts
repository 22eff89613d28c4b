/**
 * The lock beside the token file (`token.json.lock`), over the abstract `FileSystem`.
 *
 * - Taking it: create the lock file exclusively (mode 0600) with an owner record: process id,
 *   host, a random nonce and the end of its lease. Creation either succeeds or fails with
 *   "already exists", atomically, on every local file system.
 * - Waiting: poll with jittered exponential backoff (a `Schedule`) until `timeout`, then fail
 *   with `TokenStoreError` (operation "lock"). Never a hang. Fibers of one process queue on a
 *   semaphore first, so only one of them polls the file.
 * - Taking over: a lock whose lease ran out, or whose owner on this host is no longer running.
 *   Many waiters see the same stale lock at once, and none may delete a lock another has
 *   created since, so a waiter first creates a claim on that very lock,
 *   `token.json.lock.claim-<its nonce>`, exclusively: one waiter wins, re-reads the lock, and
 *   deletes it only if it still holds the record judged stale. The others go on waiting, and
 *   then everyone competes to create the lock as usual. A claim whose own creator died is
 *   judged (and removed) by the same rules as a lock.
 * - Releasing: the lock is renamed to `token.json.lock.stale-<owner>-<random>` and checked to
 *   hold our record before it is deleted, so a process only ever deletes its own lock (see
 *   `AtomicFile.renameIfUnchanged`).
 *
 * Every function below takes the one `LockContext`; `make` puts them together.
 *
 * @internal
 */
import type { PlatformError } from "@effect/platform/Error"
import { Clock, Data, DateTime, Duration, Effect, Either, Metric, Option, Schedule, Schema, Scope } from "effect"
import { Rfc3339 } from "../TokenData.js"
import { TokenStoreError } from "../TokenError.js"
import * as TokenMetrics from "../TokenMetrics.js"
import * as AtomicFile from "./atomicFile.js"

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

/** The lock of one token file: where it is, its lease and how long to wait for it. */
export interface LockContext extends AtomicFile.FileContext {
  readonly lockPath: string
  readonly leaseMillis: number
  readonly timeout: Duration.Duration
}

/** The lock of `file`'s target: `<target>.lock`. */
export const makeContext = (
  file: AtomicFile.FileContext,
  lease: Duration.Duration,
  timeout: Duration.Duration
): LockContext => ({ ...file, lockPath: AtomicFile.sibling(file, "lock"), leaseMillis: Duration.toMillis(lease), timeout })

/** A released lock, renamed to be deleted: `<target>.lock.stale-<owner>-<random>`. */
const releasing: AtomicFile.LeftoverKind = { kind: "lock.stale", owned: true }

/** A claim on a stale lock, named after the lock it claims: `<target>.lock.claim-<nonce>`. */
const claims: AtomicFile.LeftoverKind = { kind: "lock.claim", owned: false }

/**
 * What a lock leaves behind when its process dies mid-operation; saves of the token file sweep
 * them (`AtomicFile.removeLeftovers`).
 */
export const leftoverKinds: ReadonlyArray<AtomicFile.LeftoverKind> = [releasing, claims]

/**
 * A `withLock`: runs an effect holding the lock. File system failures other than contention
 * (read-only, full, permission denied) do not stop the caller: a warning is logged and the
 * effect runs unlocked, since such a store cannot share a token between processes anyway.
 */
export const make = (
  ctx: LockContext
): Effect.Effect<<A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TokenStoreError, R>> =>
  Effect.map(
    Effect.makeSemaphore(1),
    (semaphore) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      semaphore.withPermits(1)(
        Effect.acquireUseRelease(
          Scope.make(),
          (scope) => Effect.zipRight(acquire(ctx, scope), effect),
          (scope, exit) => Scope.close(scope, exit)
        )
      )
  )

// -----------------------------------------------------------------------------
// Waiting
// -----------------------------------------------------------------------------

/** Polls at 10, 20, 40... ms, at most every 250 ms, jittered so waiters do not move in step. */
const backoff = (ctx: LockContext) =>
  Schedule.exponential(Duration.millis(10), 2).pipe(
    Schedule.union(Schedule.spaced(Duration.millis(250))),
    Schedule.jittered,
    Schedule.upTo(ctx.timeout)
  )

/**
 * Waits for the lock and registers its release in `scope`; `None` when running unlocked.
 * One span per wait, with how many attempts it took; a wait for another process is counted.
 */
const acquire = (ctx: LockContext, scope: Scope.Scope): Effect.Effect<Option.Option<string>, TokenStoreError> =>
  Effect.suspend(() => {
    let attempts = 0
    const counted = Effect.suspend(() => {
      attempts++
      return attempt(ctx)
    })
    return Effect.acquireRelease(counted, (text) => release(ctx, text)).pipe(
      Scope.extend(scope),
      Effect.retry({ schedule: backoff(ctx), while: (error) => error._tag === "Busy" }),
      Effect.map(Option.some),
      Effect.catchAll((error) =>
        error._tag === "Busy"
          ? Effect.fail(
            new TokenStoreError({
              operation: "lock",
              path: ctx.lockPath,
              reason: `still held by ${error.holder} after waiting ${Duration.format(ctx.timeout)}`
            })
          )
          : Effect.as(
            Effect.logWarning(
              `Could not take the token lock ${ctx.lockPath} (${
                AtomicFile.describe(error)
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
      Effect.withSpan("TokenStore.lockWait", { attributes: { lock: ctx.lockPath } })
    )
  })

/** One attempt: the lock's record text when taken, `Busy` when someone else holds it. */
const attempt = (ctx: LockContext): Effect.Effect<string, Busy | PlatformError> =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const text = yield* newRecord(ctx, now)
    if (yield* create(ctx, ctx.lockPath, text)) return text
    return yield* Effect.gen(function*() {
      const found = yield* readText(ctx, ctx.lockPath)
      if (Option.isNone(found)) return yield* Effect.fail(justReleased)
      const stale = yield* staleness(ctx, ctx.lockPath, found.value, now)
      if (Option.isSome(stale) && (yield* takeOver(ctx, found.value, stale.value, now))) {
        if (yield* create(ctx, ctx.lockPath, text)) return text
      }
      return yield* new Busy({ holder: holderOf(found.value) })
    }).pipe(
      // The lock vanished between two looks: released meanwhile, try again.
      Effect.catchIf(
        (error) => error._tag !== "Busy" && AtomicFile.isNotFound(error),
        () => Effect.fail(justReleased)
      )
    )
  })

// -----------------------------------------------------------------------------
// Records
// -----------------------------------------------------------------------------

/** A record of this process holding something from `now` for one lease. */
const newRecord = (ctx: LockContext, now: number): Effect.Effect<string> =>
  Effect.map(AtomicFile.randomSuffix, (nonce) =>
    encodeRecord({
      pid: ctx.local?.pid ?? null,
      host: ctx.local?.hostname ?? null,
      nonce,
      acquired_at: DateTime.unsafeMake(now),
      lease_until: DateTime.unsafeMake(now + ctx.leaseMillis)
    }))

const describeHolder = (record: LockRecord): string =>
  `process ${record.pid ?? "?"} on ${record.host ?? "an unknown host"}, lease until ${
    DateTime.formatIso(record.lease_until)
  }`

const holderOf = (text: string): string =>
  Either.match(decodeRecord(text), { onLeft: () => "an unreadable lock file", onRight: describeHolder })

/** Why the lock (or claim) at `path`, found with `text`, may be removed; `None` while held. */
const staleness = (
  ctx: LockContext,
  path: string,
  text: string,
  now: number
): Effect.Effect<Option.Option<string>, PlatformError> => {
  const decoded = decodeRecord(text)
  if (Either.isLeft(decoded)) {
    // Not a record (a foreign file, or a writer killed between create and write): judge it by
    // its age, with the lease as the limit.
    return Effect.map(ctx.fs.stat(path), (info) => {
      const mtime = Option.getOrUndefined(info.mtime)?.getTime()
      return mtime !== undefined && now - mtime > ctx.leaseMillis
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

// -----------------------------------------------------------------------------
// Files
// -----------------------------------------------------------------------------

const readText = (ctx: LockContext, path: string): Effect.Effect<Option.Option<string>, PlatformError> =>
  ctx.fs.readFileString(path).pipe(
    Effect.map(Option.some),
    Effect.catchIf(AtomicFile.isNotFound, () => Effect.succeedNone)
  )

/** Creates `path` with `text`, exclusively (mode 0600); `false` when it exists already. */
const create = (ctx: LockContext, path: string, text: string): Effect.Effect<boolean, PlatformError> =>
  AtomicFile.createExclusive(ctx, path, new TextEncoder().encode(text)).pipe(
    Effect.as(true),
    Effect.catchIf(AtomicFile.isAlreadyExists, () => Effect.succeed(false))
  )

/** The claim's name: the stale lock's nonce, or a hash of an unreadable lock's content. */
const claimPath = (ctx: LockContext, stale: string): string => {
  const nonce = Either.getOrUndefined(decodeRecord(stale))?.nonce
  const key = nonce !== undefined && /^[0-9a-zA-Z]{1,64}$/.test(nonce) ? nonce : `u${AtomicFile.fnv1a(stale)}`
  return `${AtomicFile.sibling(ctx, claims.kind)}-${key}`
}

/**
 * Deletes the lock found stale with text `stale`, if this waiter wins the claim on it and it is
 * still that lock; `true` when deleted.
 */
const takeOver = (ctx: LockContext, stale: string, reason: string, now: number): Effect.Effect<boolean, PlatformError> =>
  Effect.gen(function*() {
    const claim = claimPath(ctx, stale)
    if (!(yield* create(ctx, claim, yield* newRecord(ctx, now)))) {
      // Another waiter is taking this lock over, or died doing so: then its claim goes.
      const other = yield* readText(ctx, claim)
      if (Option.isSome(other) && Option.isSome(yield* staleness(ctx, claim, other.value, now))) {
        yield* Effect.ignore(ctx.fs.remove(claim))
      }
      return false
    }
    return yield* Effect.gen(function*() {
      // Only a claim holder deletes a lock (its owner is dead or out of lease), and we hold the
      // only claim on this one: between this look and the removal, it stays this lock.
      const current = yield* readText(ctx, ctx.lockPath)
      if (Option.isNone(current) || current.value !== stale) return false
      yield* ctx.fs.remove(ctx.lockPath)
      yield* Effect.logWarning(`Took over the token lock ${ctx.lockPath}: ${reason}`)
      return true
    }).pipe(Effect.ensuring(Effect.ignore(ctx.fs.remove(claim))))
  })

/** Releases the lock we took with `text`; a lock taken over meanwhile is left to its new owner. */
const release = (ctx: LockContext, text: string): Effect.Effect<void> =>
  removeIfStill(ctx, text).pipe(
    Effect.flatMap((outcome) =>
      outcome === "Moved"
        ? Effect.void
        : Effect.logWarning(`The token lock ${ctx.lockPath} was taken over by another process while held`)
    ),
    Effect.catchAll((error) =>
      Effect.logWarning(
        `Could not release the token lock ${ctx.lockPath} (${
          AtomicFile.describe(error)
        }); others take it over when its lease runs out`
      )
    )
  )

/** Deletes the lock file if it still holds exactly `text`; otherwise leaves it as it is. */
const removeIfStill = (ctx: LockContext, text: string): Effect.Effect<AtomicFile.RenameOutcome, PlatformError> =>
  Effect.gen(function*() {
    const aside = yield* AtomicFile.uniqueSibling(ctx, releasing.kind)
    const outcome = yield* AtomicFile.renameIfUnchanged(
      ctx.fs,
      ctx.lockPath,
      aside,
      (moved) => Effect.map(ctx.fs.readFileString(moved), (movedText) => movedText === text)
    )
    // Moved: ours to delete. Changed: put back, or (when that failed) its owner lost it anyway.
    yield* outcome === "Moved" ? ctx.fs.remove(aside) : Effect.ignore(ctx.fs.remove(aside))
    return outcome
  })
