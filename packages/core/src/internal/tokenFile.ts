/**
 * The file operations behind `TokenStore.layerFile`, over the abstract `FileSystem`.
 *
 * Every name this module creates beside the target starts with the target's name, so that a
 * listing of the directory tells ours apart from the user's files:
 *
 * - `token.json.tmp-<owner>-<random>`: a save in progress (renamed over `token.json` at the end)
 * - `token.json.corrupt-<time>-<random>`: a corrupt or foreign file moved aside (kept, bounded)
 * - `token.json.lock`, `token.json.lock.stale-<owner>-<random>`, `token.json.lock.claim-<nonce>`:
 *   see `fileLock.ts`
 *
 * `<owner>` is `h<host hash>-p<pid>` when the platform tells us who we are, `x` otherwise; it
 * lets the next save remove a temp file whose writer died at once, instead of after an hour.
 *
 * @internal
 */
import type { FileSystem, Path } from "@effect/platform"
import { type PlatformError, SystemError } from "@effect/platform/Error"
import { Clock, DateTime, Effect, Either, Option, ParseResult, Random } from "effect"
import * as TokenData from "../TokenData.js"
import type { LocalProcess } from "../TokenStore.js"

export interface FileContext {
  readonly fs: FileSystem.FileSystem
  readonly path: Path.Path
  readonly target: string
  readonly keepCorrupt: number
  readonly local: LocalProcess | undefined
}

/**
 * A leftover whose owner cannot be checked (other host, no liveness check) is removed once its
 * modification time is this much older than the file the current save just wrote. Both times
 * come from the file system's clock, so neither `TestClock` nor a skewed host clock matters.
 */
const abandonedAfterMillis = 60_000

/** A token file is a few hundred bytes; anything much larger is not one (and is not read). */
const maxFileBytes = 64 * 1024

export const encode = (data: TokenData.TokenData): Uint8Array => new TextEncoder().encode(TokenData.encodeFile(data))

/** Decodes the file's text; the error names what is wrong without quoting the content. */
export const decode = (text: string): Either.Either<TokenData.TokenData, string> =>
  Either.mapLeft(TokenData.decodeFile(text), (error) => describeParseError(error))

const describeParseError = (error: ParseResult.ParseError): string => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  if (issue === undefined) return "unreadable"
  const where = issue.path.length === 0 ? "" : ` at ${issue.path.map(String).join(".")}`
  return issue._tag === "Missing" ? `missing field${where}` : `invalid content${where}`
}

export const describe = (error: PlatformError): string =>
  error._tag === "SystemError" ? `${error.reason}${error.description ? `: ${error.description}` : ""}` : error.message

export const isNotFound = (error: PlatformError): boolean => error._tag === "SystemError" && error.reason === "NotFound"

export const isAlreadyExists = (error: PlatformError): boolean =>
  error._tag === "SystemError" && error.reason === "AlreadyExists"

// -----------------------------------------------------------------------------
// Names
// -----------------------------------------------------------------------------

/** FNV-1a, 32 bits, in hex: a short, file-name-safe tag for a text (not a security measure). */
export const fnv1a = (text: string): string => {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash.toString(16).padStart(8, "0")
}

const ownerTag = (local: LocalProcess | undefined): string =>
  local === undefined ? "x" : `h${fnv1a(local.hostname)}-p${local.pid}`

const ownerPattern = /^(?:h([0-9a-f]{8})-p(\d+)|x)-[0-9a-z]+$/

/** 64 random bits in base 36: unguessable enough that nobody can pre-create our names. */
export const randomSuffix: Effect.Effect<string> = Effect.map(
  Effect.all([Random.nextIntBetween(0, 2 ** 32), Random.nextIntBetween(0, 2 ** 32)]),
  ([a, b]) => a.toString(36).padStart(7, "0") + b.toString(36).padStart(7, "0")
)

/** A fresh sibling of the target, `<target>.<kind>-<owner>-<random>`. */
export const uniqueSibling = (ctx: FileContext, kind: string): Effect.Effect<string> =>
  Effect.map(randomSuffix, (suffix) => `${ctx.target}.${kind}-${ownerTag(ctx.local)}-${suffix}`)

/**
 * Sibling kinds that only ever exist for a moment, so that any found later were left by a dead
 * process. Claims are named after the lock they claim, not their owner: judged by age only.
 */
const transientKinds = ["tmp", "lock.stale", "lock.claim"] as const

// -----------------------------------------------------------------------------
// Reading
// -----------------------------------------------------------------------------

/** What `inspect` found at the target. */
export type Found =
  | { readonly _tag: "Missing" }
  /** Not something to read as a token file: too large, or not a regular file. */
  | { readonly _tag: "Unreadable"; readonly info: FileSystem.File.Info; readonly reason: string }
  | { readonly _tag: "Text"; readonly info: FileSystem.File.Info; readonly text: string }

/**
 * Reads the target. A regular file readable by group or others is tightened to 0600 first,
 * with a warning. A symbolic link is read through (a user may point `token.json` elsewhere)
 * but never changed through: no chmod here, and the next save replaces the link itself.
 * Anything but a regular file (a directory, a FIFO that would block the read) is refused.
 */
export const inspect = (ctx: FileContext): Effect.Effect<Found, PlatformError> =>
  Effect.gen(function*() {
    const link = yield* ctx.fs.readLink(ctx.target).pipe(
      Effect.map(Option.some),
      // Anything else (EINVAL for a regular file, or no readlink on this platform) is no link
      Effect.catchAll((error) => isNotFound(error) ? Effect.fail(error) : Effect.succeedNone)
    )
    const info = yield* ctx.fs.stat(ctx.target)
    if (info.type !== "File") {
      return yield* new SystemError({
        reason: "BadResource",
        module: "FileSystem",
        method: "stat",
        pathOrDescriptor: ctx.target,
        description: `not a regular file (${info.type})`
      })
    }
    if (Option.isSome(link)) {
      yield* Effect.logWarning(
        `The token file ${ctx.target} is a symbolic link to ${link.value}; it is read, but never written through: the next save replaces the link with a regular file`
      )
    } else if ((info.mode & 0o077) !== 0) {
      const mode = (info.mode & 0o777).toString(8)
      yield* ctx.fs.chmod(ctx.target, 0o600).pipe(
        Effect.zipRight(
          Effect.logWarning(`The token file ${ctx.target} was readable by others (mode ${mode}); changed it to 600`)
        ),
        Effect.catchAll((error) =>
          Effect.logWarning(
            `The token file ${ctx.target} is readable by others (mode ${mode}) and could not be changed to 600: ${
              describe(error)
            }`
          )
        )
      )
    }
    if (Number(info.size) > maxFileBytes) {
      return { _tag: "Unreadable", info, reason: `${info.size} bytes, far larger than a token file` } as const
    }
    const text = yield* ctx.fs.readFileString(ctx.target)
    return { _tag: "Text", info, text } as const
  }).pipe(Effect.catchIf(isNotFound, () => Effect.succeed({ _tag: "Missing" } as const)))

/** Whether `a` and `b` describe the same file, unchanged (inode where known, size and mtime). */
const sameFile = (a: FileSystem.File.Info, b: FileSystem.File.Info): boolean =>
  a.dev === b.dev && Option.getEquivalence((x: number, y: number) => x === y)(a.ino, b.ino) &&
  a.size === b.size &&
  Option.getOrUndefined(a.mtime)?.getTime() === Option.getOrUndefined(b.mtime)?.getTime()

// -----------------------------------------------------------------------------
// Moving aside
// -----------------------------------------------------------------------------

/** How `renameIfUnchanged` ended. */
export type RenameOutcome = "Moved" | "Missing" | "Changed"

/**
 * Renames `from` to `to`, then checks with `isExpected(to)` that what moved is what the caller
 * had looked at. Rename moves whatever is at `from` at that instant, so this is how a file that
 * another process may replace at any moment is moved without a check-then-act race. When the
 * moved file turns out to be another one (replaced meanwhile), it is put back with `link`,
 * which fails rather than overwrite a file created at `from` since: the newer file wins.
 */
export const renameIfUnchanged = (
  fs: FileSystem.FileSystem,
  from: string,
  to: string,
  isExpected: (moved: string) => Effect.Effect<boolean, PlatformError>
): Effect.Effect<RenameOutcome, PlatformError> =>
  Effect.gen(function*() {
    const renamed = yield* fs.rename(from, to).pipe(
      Effect.as(true),
      Effect.catchIf(isNotFound, () => Effect.succeed(false))
    )
    if (!renamed) return "Missing"
    if (yield* isExpected(to)) return "Moved"
    yield* fs.link(to, from).pipe(
      Effect.zipRight(fs.remove(to)),
      Effect.catchAll((error) =>
        Effect.logDebug(`Could not put ${from} back (${describe(error)}); a newer one took its place`)
      )
    )
    return "Changed"
  })

const stamp = Effect.map(
  Clock.currentTimeMillis,
  (now) => DateTime.formatIso(DateTime.unsafeMake(now)).replace(/[-:.]/g, "")
)

/**
 * Moves the target, which was `seen` and found corrupt or foreign, to
 * `<target>.corrupt-<time>-<random>` (mode 0600), keeping only the newest `keepCorrupt` of
 * them. `None` when the target changed meanwhile (a writer replaced it): the caller reads again.
 */
export const moveAside = (
  ctx: FileContext,
  seen: FileSystem.File.Info
): Effect.Effect<Option.Option<string>, PlatformError> =>
  Effect.gen(function*() {
    const aside = `${ctx.target}.corrupt-${yield* stamp}-${yield* randomSuffix}`
    const outcome = yield* renameIfUnchanged(
      ctx.fs,
      ctx.target,
      aside,
      (moved) => Effect.map(ctx.fs.stat(moved), (info) => sameFile(info, seen))
    )
    if (outcome !== "Moved") return Option.none()
    // A moved symbolic link stays a link: chmod would change its target, which is not ours
    const isLink = yield* ctx.fs.readLink(aside).pipe(Effect.as(true), Effect.orElseSucceed(() => false))
    if (!isLink) yield* ctx.fs.chmod(aside, 0o600)
    yield* pruneCorrupt(ctx)
    return Option.some(aside)
  })

/** Keeps the newest `keepCorrupt` files moved aside; best effort (a failure only costs space). */
const pruneCorrupt = (ctx: FileContext): Effect.Effect<void> =>
  Effect.gen(function*() {
    const dir = ctx.path.dirname(ctx.target)
    const prefix = `${ctx.path.basename(ctx.target)}.corrupt-`
    const kept = (yield* ctx.fs.readDirectory(dir)).filter((name) => name.startsWith(prefix)).sort().reverse()
    yield* Effect.forEach(kept.slice(ctx.keepCorrupt), (name) => ctx.fs.remove(ctx.path.join(dir, name)), {
      discard: true
    })
  }).pipe(Effect.catchAll((error) => Effect.logDebug(`Could not prune old corrupt token files: ${describe(error)}`)))

// -----------------------------------------------------------------------------
// Writing
// -----------------------------------------------------------------------------

/**
 * Writes `bytes` to the target so that a crash at any moment leaves the old file or the new
 * one: a temp file beside it (exclusive create, so never through a symbolic link, and mode
 * 0600 from its creation, so never readable by others), flush, rename over the target (which
 * replaces a symbolic link rather than following it), flush the directory. A missing directory
 * is created with mode 0700. Afterwards, temp files left by writers that died are removed.
 */
export const writeAtomically = (ctx: FileContext, bytes: Uint8Array): Effect.Effect<void, PlatformError> =>
  Effect.gen(function*() {
    const dir = ctx.path.dirname(ctx.target)
    const temp = yield* uniqueSibling(ctx, "tmp")
    const written = yield* writeNew(ctx.fs, temp, bytes).pipe(
      Effect.catchIf(
        isNotFound,
        () =>
          Effect.zipRight(ctx.fs.makeDirectory(dir, { recursive: true, mode: 0o700 }), writeNew(ctx.fs, temp, bytes))
      ),
      Effect.onError(() => Effect.ignore(ctx.fs.remove(temp)))
    )
    yield* ctx.fs.rename(temp, ctx.target).pipe(Effect.onError(() => Effect.ignore(ctx.fs.remove(temp))))
    yield* syncDirectory(ctx.fs, dir)
    yield* removeLeftovers(ctx, written)
  })

/**
 * Creates `file` exclusively with mode 0600, writes and flushes it; returns what `stat` says
 * of it (its modification time is the file system's "now"). When the write fails after the
 * file was created (disk full), the half-written file is removed; a file that existed before
 * (`AlreadyExists`) is never touched.
 */
export const writeNew = (
  fs: FileSystem.FileSystem,
  file: string,
  bytes: Uint8Array
): Effect.Effect<FileSystem.File.Info, PlatformError> =>
  Effect.scoped(Effect.gen(function*() {
    const handle = yield* fs.open(file, { flag: "wx", mode: 0o600 })
    return yield* Effect.zipRight(Effect.zipRight(handle.writeAll(bytes), handle.sync), handle.stat).pipe(
      Effect.onError(() => Effect.ignore(fs.remove(file)))
    )
  }))

/** Makes a rename in `dir` durable; not every platform can open a directory, hence best effort. */
export const syncDirectory = (fs: FileSystem.FileSystem, dir: string): Effect.Effect<void> =>
  Effect.ignore(Effect.scoped(Effect.flatMap(fs.open(dir, { flag: "r" }), (handle) => handle.sync)))

/**
 * Removes temp files (and lock files moved aside) left by processes killed mid-operation. One
 * is abandoned when its name says it belongs to a process of this host that is no longer
 * running, or when it is `abandonedAfterMillis` older than `reference`, the file just written.
 * Files of live processes, including this one, are left alone: they may be mid-write.
 */
const removeLeftovers = (ctx: FileContext, reference: FileSystem.File.Info): Effect.Effect<void> =>
  Effect.gen(function*() {
    const dir = ctx.path.dirname(ctx.target)
    const base = ctx.path.basename(ctx.target)
    const now = Option.getOrUndefined(reference.mtime)?.getTime()
    const ourHost = ctx.local === undefined ? undefined : fnv1a(ctx.local.hostname)
    const names = yield* ctx.fs.readDirectory(dir)
    yield* Effect.forEach(names, (name) => {
      const kind = transientKinds.find((kind) => name.startsWith(`${base}.${kind}-`))
      if (kind === undefined) return Effect.void
      const owner = kind === "lock.claim" ? undefined : ownerPattern.exec(name.slice(base.length + kind.length + 2))
      if (owner === null) return Effect.void // not a name we make: not ours to remove
      const file = ctx.path.join(dir, name)
      const pid = owner?.[2] === undefined ? undefined : Number(owner[2])
      const deadHere = ctx.local !== undefined && owner?.[1] === ourHost && pid !== undefined && pid !== ctx.local.pid
        ? Effect.map(ctx.local.isAlive(pid), (alive) => !alive)
        : Effect.succeed(false)
      const old = Effect.map(ctx.fs.stat(file), (info) => {
        const mtime = Option.getOrUndefined(info.mtime)?.getTime()
        return now !== undefined && mtime !== undefined && now - mtime > abandonedAfterMillis
      })
      return Effect.flatMap(
        Effect.flatMap(deadHere, (dead) => dead ? Effect.succeed(true) : old),
        (abandoned) => abandoned ? ctx.fs.remove(file) : Effect.void
      ).pipe(Effect.catchAll(() => Effect.void)) // gone already, or not ours to remove
    }, { discard: true })
  }).pipe(Effect.catchAll((error) => Effect.logDebug(`Could not clean up beside ${ctx.target}: ${describe(error)}`)))
