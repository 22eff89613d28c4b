/**
 * Crash-safe work on a target file and the files beside it, for the token file and its lock.
 * Names created beside the target are `<target>.<kind>-<owner>-<random>`, `<owner>` being
 * `h<host hash>-p<pid>` (or `x`): a leftover of a dead process of this host goes at once.
 *
 * @internal
 */
import type { FileSystem, Path } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Effect, Option } from "effect"
import type { LocalProcess } from "../LocalProcess.js"
import * as StoreLock from "./storeLock.js"

/** A target file, its file system, and who we are (for the names we create). */
export interface FileContext {
  readonly fs: FileSystem.FileSystem
  readonly path: Path.Path
  readonly target: string
  readonly local: LocalProcess | undefined
}

/**
 * A leftover whose owner cannot be checked is removed once this much older than the file a save
 * just wrote: both times are the file system's, so a skewed host clock does not matter.
 */
const abandonedAfterMillis = 60_000

/** A platform error in words, for messages: the reason and the system's description. */
export const describe = (error: PlatformError): string =>
  error._tag === "SystemError" ? `${error.reason}${error.description ? `: ${error.description}` : ""}` : error.message

export const isNotFound = (error: PlatformError): boolean => error._tag === "SystemError" && error.reason === "NotFound"

export const isAlreadyExists = (error: PlatformError): boolean =>
  error._tag === "SystemError" && error.reason === "AlreadyExists"

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

/** The sibling of the target named `<target>.<kind>`. */
export const sibling = (ctx: FileContext, kind: string): string => `${ctx.target}.${kind}`

/** A fresh sibling of the target that carries its owner, `<target>.<kind>-<owner>-<random>`. */
export const uniqueSibling = (ctx: FileContext, kind: string): Effect.Effect<string> =>
  Effect.map(StoreLock.nonce, (suffix) => `${sibling(ctx, kind)}-${ownerTag(ctx.local)}-${suffix}`)

/**
 * A kind of sibling that only exists for a moment, so that any found later was left by a dead
 * process. An `owned` kind is named by `uniqueSibling`; others are judged by age only.
 */
export interface LeftoverKind {
  readonly kind: string
  readonly owned: boolean
}

/** The temp files of `writeAtomically`. */
export const tempKind: LeftoverKind = { kind: "tmp", owned: true }

/**
 * Creates `file` exclusively with mode 0600 (never through a symbolic link), writes and flushes
 * it, and answers its `stat` (the file system's "now"). A missing directory is created (0700). A
 * half-written file is removed; one that existed before is never touched.
 */
export const createExclusive = (
  ctx: FileContext,
  file: string,
  text: string
): Effect.Effect<FileSystem.File.Info, PlatformError> => {
  const write = Effect.scoped(Effect.gen(function*() {
    const handle = yield* ctx.fs.open(file, { flag: "wx", mode: 0o600 })
    return yield* handle.writeAll(new TextEncoder().encode(text)).pipe(
      Effect.zipRight(handle.sync),
      Effect.zipRight(handle.stat),
      Effect.onError(() => Effect.ignore(ctx.fs.remove(file)))
    )
  }))
  const makeDirectory = ctx.fs.makeDirectory(ctx.path.dirname(file), { recursive: true, mode: 0o700 })
  return Effect.catchIf(write, isNotFound, () => Effect.zipRight(makeDirectory, write))
}

/**
 * Replaces the target with `text` so that a crash leaves the old file or the new one: a temp
 * file, renamed over the target (replacing a symbolic link, never following it), then the
 * directory flushed. Answers the temp file's `stat`, for `removeLeftovers`.
 */
export const writeAtomically = (ctx: FileContext, text: string): Effect.Effect<FileSystem.File.Info, PlatformError> =>
  Effect.gen(function*() {
    const temp = yield* uniqueSibling(ctx, tempKind.kind)
    const written = yield* createExclusive(ctx, temp, text)
    yield* ctx.fs.rename(temp, ctx.target).pipe(Effect.onError(() => Effect.ignore(ctx.fs.remove(temp))))
    // Makes the rename durable; not every platform can open a directory, hence best effort.
    const directory = ctx.fs.open(ctx.path.dirname(ctx.target), { flag: "r" })
    yield* Effect.ignore(Effect.scoped(Effect.flatMap(directory, (handle) => handle.sync)))
    return written
  })

/**
 * Renames `from` to `to` and checks with `isExpected(to)` that what moved is what the caller had
 * looked at: a file another process may replace at any moment is moved without a check-then-act
 * race. `true` when moved; a file found replaced meanwhile is put back with `link`, which fails
 * rather than overwrite a file created at `from` since: the newer file wins.
 */
export const renameIfUnchanged = (
  fs: FileSystem.FileSystem,
  from: string,
  to: string,
  isExpected: (moved: string) => Effect.Effect<boolean, PlatformError>
): Effect.Effect<boolean, PlatformError> =>
  Effect.gen(function*() {
    const renamed = yield* fs.rename(from, to).pipe(
      Effect.as(true),
      Effect.catchIf(isNotFound, () => Effect.succeed(false))
    )
    if (!renamed) return false
    if (yield* isExpected(to)) return true
    yield* fs.link(to, from).pipe(
      Effect.zipRight(fs.remove(to)),
      Effect.catchAll((error) =>
        Effect.logDebug(`Could not put ${from} back (${describe(error)}); a newer one took its place`)
      )
    )
    return false
  })

/**
 * Removes leftovers of the given kinds whose name says they belong to a dead process of this
 * host, or that are `abandonedAfterMillis` older than `reference`, a file just written. Names we
 * would not make are not ours to remove. Best effort: a failure only costs space.
 */
export const removeLeftovers = (
  ctx: FileContext,
  kinds: ReadonlyArray<LeftoverKind>,
  reference: FileSystem.File.Info
): Effect.Effect<void> =>
  Effect.gen(function*() {
    const dir = ctx.path.dirname(ctx.target)
    const base = ctx.path.basename(ctx.target)
    const names = yield* ctx.fs.readDirectory(dir)
    yield* Effect.forEach(names, (name) => {
      const found = kinds.find(({ kind }) => name.startsWith(`${base}.${kind}-`))
      if (found === undefined) return Effect.void
      const owner = found.owned ? ownerPattern.exec(name.slice(base.length + found.kind.length + 2)) : undefined
      if (owner === null) return Effect.void // not a name we make: not ours to remove
      const file = ctx.path.join(dir, name)
      return Effect.flatMap(
        Effect.flatMap(isDeadHere(ctx, owner), (dead) => dead ? Effect.succeed(true) : isOld(ctx, file, reference)),
        (abandoned) => abandoned ? ctx.fs.remove(file) : Effect.void
      ).pipe(Effect.catchAll(() => Effect.void)) // gone already, or not ours to remove
    }, { discard: true })
  }).pipe(Effect.catchAll((error) => Effect.logDebug(`Could not clean up beside ${ctx.target}: ${describe(error)}`)))

/** Whether the owner in a leftover's name is another process of this host that is not running. */
const isDeadHere = (ctx: FileContext, owner: RegExpExecArray | undefined): Effect.Effect<boolean> => {
  const pid = owner?.[2] === undefined ? undefined : Number(owner[2])
  if (ctx.local === undefined || pid === undefined || pid === ctx.local.pid) return Effect.succeed(false)
  if (owner?.[1] !== fnv1a(ctx.local.hostname)) return Effect.succeed(false)
  return Effect.map(ctx.local.isAlive(pid), (alive) => !alive)
}

const isOld = (
  ctx: FileContext,
  file: string,
  reference: FileSystem.File.Info
): Effect.Effect<boolean, PlatformError> =>
  Effect.map(ctx.fs.stat(file), (info) => {
    const now = mtimeOf(reference)
    const mtime = mtimeOf(info)
    return now !== undefined && mtime !== undefined && now - mtime > abandonedAfterMillis
  })

export const mtimeOf = (info: FileSystem.File.Info): number | undefined => Option.getOrUndefined(info.mtime)?.getTime()
