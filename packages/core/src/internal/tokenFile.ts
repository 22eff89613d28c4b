/**
 * The token file: its format, reading it (with the permission and symbolic-link checks), and
 * moving a corrupt or foreign one aside. Writing it is `atomicFile.ts`'s work.
 *
 * @internal
 */
import type { FileSystem } from "@effect/platform"
import { type PlatformError, SystemError } from "@effect/platform/Error"
import { DateTime, Effect, Either, Option, ParseResult } from "effect"
import * as TokenData from "../TokenData.js"
import * as AtomicFile from "./atomicFile.js"
import * as StoreLock from "./storeLock.js"

export interface TokenFileContext extends AtomicFile.FileContext {
  readonly keepCorrupt: number
  readonly checkPermissions: boolean
}

const corruptKind = "corrupt"

/** A token file is a few hundred bytes; anything much larger is not one (and is not read). */
const maxFileBytes = 64 * 1024

/** What is wrong with the file's text, without quoting the content. */
const describeParseError = (error: ParseResult.ParseError): string => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  if (issue === undefined) return "unreadable"
  const where = issue.path.length === 0 ? "" : ` at ${issue.path.map(String).join(".")}`
  return issue._tag === "Missing" ? `missing field${where}` : `invalid content${where}`
}

/** The token in the file, or `None`; a corrupt or foreign file is moved aside with a warning. */
export const load = (ctx: TokenFileContext): Effect.Effect<Option.Option<TokenData.TokenData>, PlatformError> =>
  Effect.gen(function*() {
    // A second look only when a writer replaced the bad file while we were moving it aside.
    for (let look = 0; look < 2; look++) {
      const found = yield* inspect(ctx)
      if (found === undefined) return Option.none()
      if (Either.isRight(found.decoded)) return Option.some(found.decoded.right)
      const aside = yield* moveAside(ctx, found.info)
      if (Option.isSome(aside)) {
        yield* Effect.logWarning(
          `The token file ${ctx.target} is not a valid token file (${found.decoded.left}); moved it to ${aside.value} and will obtain a new token`
        )
        return Option.none()
      }
    }
    return Option.none()
  })

interface Found {
  readonly info: FileSystem.File.Info
  /** The token, or what is wrong with the file (never its content). */
  readonly decoded: Either.Either<TokenData.TokenData, string>
}

/**
 * Reads the target, tightening a file readable by others to 0600 (`checkPermissions`). A
 * symbolic link is read through (a user may point `token.json` elsewhere) but never changed
 * through. Anything but a regular file (a FIFO would block the read) is refused.
 */
const inspect = (ctx: TokenFileContext): Effect.Effect<Found | undefined, PlatformError> =>
  Effect.gen(function*() {
    const link = yield* ctx.fs.readLink(ctx.target).pipe(
      Effect.map(Option.some),
      // Anything else (EINVAL for a regular file, or no readlink on this platform) is no link
      Effect.catchAll((error) => AtomicFile.isNotFound(error) ? Effect.fail(error) : Effect.succeedNone)
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
    } else if (ctx.checkPermissions) {
      yield* tightenMode(ctx, info)
    }
    if (Number(info.size) > maxFileBytes) {
      return { info, decoded: Either.left(`${info.size} bytes, far larger than a token file`) }
    }
    const text = yield* ctx.fs.readFileString(ctx.target)
    return { info, decoded: Either.mapLeft(TokenData.decodeFile(text), describeParseError) }
  }).pipe(Effect.catchIf(AtomicFile.isNotFound, () => Effect.succeed(undefined)))

/** Changes a regular file readable by group or others to 0600, with a warning. */
const tightenMode = (ctx: TokenFileContext, info: FileSystem.File.Info): Effect.Effect<void> => {
  if ((info.mode & 0o077) === 0) return Effect.void
  const mode = (info.mode & 0o777).toString(8)
  return ctx.fs.chmod(ctx.target, 0o600).pipe(
    Effect.zipRight(
      Effect.logWarning(`The token file ${ctx.target} was readable by others (mode ${mode}); changed it to 600`)
    ),
    Effect.catchAll((error) =>
      Effect.logWarning(
        `The token file ${ctx.target} is readable by others (mode ${mode}) and could not be changed to 600: ${
          AtomicFile.describe(error)
        }`
      )
    )
  )
}

/** Whether `a` and `b` describe the same file, unchanged (inode where known, size and mtime). */
const sameFile = (a: FileSystem.File.Info, b: FileSystem.File.Info): boolean =>
  a.dev === b.dev && Option.getEquivalence((x: number, y: number) => x === y)(a.ino, b.ino) &&
  a.size === b.size &&
  AtomicFile.mtimeOf(a) === AtomicFile.mtimeOf(b)

/**
 * Moves the target, `seen` corrupt, to `<target>.corrupt-<time>-<random>` (mode 0600), keeping
 * the newest `keepCorrupt`. `None` when a writer replaced it meanwhile: the caller reads again.
 */
const moveAside = (
  ctx: TokenFileContext,
  seen: FileSystem.File.Info
): Effect.Effect<Option.Option<string>, PlatformError> =>
  Effect.gen(function*() {
    const time = DateTime.formatIso(yield* DateTime.now).replace(/[-:.]/g, "")
    const aside = `${AtomicFile.sibling(ctx, corruptKind)}-${time}-${yield* StoreLock.nonce}`
    const moved = yield* AtomicFile.renameIfUnchanged(
      ctx.fs,
      ctx.target,
      aside,
      (moved) => Effect.map(ctx.fs.stat(moved), (info) => sameFile(info, seen))
    )
    if (!moved) return Option.none()
    // A moved symbolic link stays a link: chmod would change its target, which is not ours
    const isLink = yield* ctx.fs.readLink(aside).pipe(Effect.as(true), Effect.orElseSucceed(() => false))
    if (!isLink) yield* ctx.fs.chmod(aside, 0o600)
    yield* pruneCorrupt(ctx)
    return Option.some(aside)
  })

/** Keeps the newest `keepCorrupt` files moved aside; best effort (a failure only costs space). */
const pruneCorrupt = (ctx: TokenFileContext): Effect.Effect<void> =>
  Effect.gen(function*() {
    const dir = ctx.path.dirname(ctx.target)
    const prefix = `${ctx.path.basename(AtomicFile.sibling(ctx, corruptKind))}-`
    const kept = (yield* ctx.fs.readDirectory(dir)).filter((name) => name.startsWith(prefix)).sort().reverse()
    yield* Effect.forEach(kept.slice(ctx.keepCorrupt), (name) => ctx.fs.remove(ctx.path.join(dir, name)), {
      discard: true
    })
  }).pipe(
    Effect.catchAll((error) =>
      Effect.logDebug(`Could not prune old corrupt token files: ${AtomicFile.describe(error)}`)
    )
  )
