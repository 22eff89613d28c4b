/**
 * The storage of the lock beside the token file (`token.json.lock`), for `storeLock.ts`: an owner
 * record created exclusively (atomic on every local file system). Many waiters see a stale lock
 * at once and none may delete a lock another has created since, so a waiter first creates a
 * claim on that very lock, exclusively; the winner deletes the lock only if it still holds the
 * record judged stale. Releasing renames the lock aside and checks it is ours before deleting.
 *
 * @internal
 */
import type { PlatformError } from "@effect/platform/Error"
import { Clock, DateTime, Effect, Either, Option, Schema } from "effect"
import { Rfc3339 } from "../TokenData.js"
import * as AtomicFile from "./atomicFile.js"
import * as StoreLock from "./storeLock.js"

/** What the lock file holds; snake case like the token file. */
const LockRecord = Schema.Struct({
  pid: Schema.NullOr(Schema.Int.pipe(Schema.positive())),
  host: Schema.NullOr(Schema.String),
  nonce: Schema.String,
  acquired_at: Rfc3339,
  lease_until: Rfc3339
})

const decodeRecord = Schema.decodeEither(Schema.parseJson(LockRecord), { onExcessProperty: "ignore" })

export interface LockContext extends AtomicFile.FileContext {
  readonly lockPath: string
  readonly leaseMillis: number
}

/** A released lock, renamed to be deleted: `<target>.lock.stale-<owner>-<random>`. */
const releasing: AtomicFile.LeftoverKind = { kind: "lock.stale", owned: true }

/** A claim on a stale lock, named after the lock it claims: `<target>.lock.claim-<nonce>`. */
const claims: AtomicFile.LeftoverKind = { kind: "lock.claim", owned: false }

/** What a lock leaves behind when its process dies mid-operation; saves sweep them. */
export const leftoverKinds: ReadonlyArray<AtomicFile.LeftoverKind> = [releasing, claims]

/** The storage of the lock at `ctx.lockPath`. */
export const storage = (ctx: LockContext): StoreLock.Storage => ({
  take: (owner) => Effect.mapError(take(ctx, owner), AtomicFile.describe),
  release: (owner) => Effect.mapError(removeIfStill(ctx, owner), AtomicFile.describe)
})

const justReleased: StoreLock.Attempt = { _tag: "Busy", holder: "nobody (it was just released)" }

/** One attempt: `Taken`, or `Busy` when someone else holds the lock. */
const take = (ctx: LockContext, owner: StoreLock.Owner): Effect.Effect<StoreLock.Attempt, PlatformError> =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const text = recordOf(ctx, owner, now)
    if (yield* create(ctx, ctx.lockPath, text)) return { _tag: "Taken" } as const
    const found = yield* readText(ctx, ctx.lockPath)
    if (Option.isNone(found)) return justReleased
    const stale = yield* staleness(ctx, ctx.lockPath, found.value, now)
    if (Option.isSome(stale) && (yield* takeOver(ctx, owner, found.value, stale.value, now))) {
      if (yield* create(ctx, ctx.lockPath, text)) return { _tag: "Taken" } as const
    }
    return { _tag: "Busy", holder: holderOf(found.value) } as const
  }).pipe(
    // The lock vanished between two looks: released meanwhile, try again.
    Effect.catchIf(AtomicFile.isNotFound, () => Effect.succeed(justReleased))
  )

/** The record of `owner` holding the lock from `now` for one lease. */
const recordOf = (ctx: LockContext, owner: StoreLock.Owner, now: number): string =>
  JSON.stringify(
    Schema.encodeSync(LockRecord)({
      pid: owner.pid,
      host: owner.host,
      nonce: owner.nonce,
      acquired_at: DateTime.unsafeMake(now),
      lease_until: DateTime.unsafeMake(now + ctx.leaseMillis)
    })
  ) + "\n"

const holderOf = (text: string): string =>
  Either.match(decodeRecord(text), {
    onLeft: () => "an unreadable lock file",
    onRight: (record) => `${StoreLock.describeOwner(record)}, lease until ${DateTime.formatIso(record.lease_until)}`
  })

/** Why the lock (or claim) at `path`, found with `text`, may be removed; `None` while held. */
const staleness = (
  ctx: LockContext,
  path: string,
  text: string,
  now: number
): Effect.Effect<Option.Option<string>, PlatformError> => {
  const decoded = decodeRecord(text)
  if (Either.isRight(decoded)) {
    const record = decoded.right
    return StoreLock.staleness(record, DateTime.toEpochMillis(record.lease_until), now, ctx.local)
  }
  // Not a record (a foreign file, or a writer killed between create and write): judge it by its
  // age, with the lease as the limit.
  return Effect.map(ctx.fs.stat(path), (info) => {
    const mtime = AtomicFile.mtimeOf(info)
    return mtime !== undefined && now - mtime > ctx.leaseMillis
      ? Option.some("it is unreadable and older than the lease")
      : Option.none()
  })
}

const readText = (ctx: LockContext, path: string): Effect.Effect<Option.Option<string>, PlatformError> =>
  ctx.fs.readFileString(path).pipe(
    Effect.map(Option.some),
    Effect.catchIf(AtomicFile.isNotFound, () => Effect.succeedNone)
  )

/** Creates `path` with `text`, exclusively (mode 0600); `false` when it exists already. */
const create = (ctx: LockContext, path: string, text: string): Effect.Effect<boolean, PlatformError> =>
  AtomicFile.createExclusive(ctx, path, text).pipe(
    Effect.as(true),
    Effect.catchIf(AtomicFile.isAlreadyExists, () => Effect.succeed(false))
  )

/** The claim's name: the stale lock's nonce, or a hash of an unreadable lock's content. */
const claimPath = (ctx: LockContext, stale: string): string => {
  const nonce = Either.getOrUndefined(decodeRecord(stale))?.nonce
  const key = nonce !== undefined && /^[0-9a-zA-Z]{1,64}$/.test(nonce) ? nonce : `u${AtomicFile.fnv1a(stale)}`
  return `${AtomicFile.sibling(ctx, claims.kind)}-${key}`
}

/** Deletes the lock found stale with text `stale` if this waiter wins the claim on it (`true`). */
const takeOver = (
  ctx: LockContext,
  owner: StoreLock.Owner,
  stale: string,
  reason: string,
  now: number
): Effect.Effect<boolean, PlatformError> =>
  Effect.gen(function*() {
    const claim = claimPath(ctx, stale)
    if (!(yield* create(ctx, claim, recordOf(ctx, owner, now)))) {
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

/** Deletes the lock file if it is still `owner`'s (`true`); otherwise leaves it as it is. */
const removeIfStill = (ctx: LockContext, owner: StoreLock.Owner): Effect.Effect<boolean, PlatformError> =>
  Effect.gen(function*() {
    const aside = yield* AtomicFile.uniqueSibling(ctx, releasing.kind)
    const moved = yield* AtomicFile.renameIfUnchanged(
      ctx.fs,
      ctx.lockPath,
      aside,
      (moved) =>
        Effect.map(
          ctx.fs.readFileString(moved),
          (text) => Either.getOrUndefined(decodeRecord(text))?.nonce === owner.nonce
        )
    )
    // Not moved: put back (nothing left aside), or its owner lost it anyway.
    yield* moved ? ctx.fs.remove(aside) : Effect.ignore(ctx.fs.remove(aside))
    return moved
  })
