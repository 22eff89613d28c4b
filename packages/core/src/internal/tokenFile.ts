/**
 * The file operations behind `TokenStore.layerFile`, over the abstract `FileSystem`.
 *
 * @internal
 */
import type { FileSystem, Path } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Clock, DateTime, Effect, Either, Option, ParseResult, Random } from "effect"
import * as TokenData from "../TokenData.js"

export interface FileContext {
  readonly fs: FileSystem.FileSystem
  readonly path: Path.Path
  readonly target: string
  readonly keepCorrupt: number
}

/** Temp files older than this are leftovers of a writer that died, and are removed. */
const staleTempMillis = 60_000

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

const isNotFound = (error: PlatformError) => error._tag === "SystemError" && error.reason === "NotFound"

/** Reads the file, tightening loose permissions first; `None` when it does not exist. */
export const readIfExists = (ctx: FileContext): Effect.Effect<Option.Option<string>, PlatformError> =>
  Effect.gen(function*() {
    const info = yield* ctx.fs.stat(ctx.target)
    if ((info.mode & 0o077) !== 0) {
      yield* ctx.fs.chmod(ctx.target, 0o600)
      yield* Effect.logWarning(
        `The token file ${ctx.target} was readable by others (mode ${(info.mode & 0o777).toString(8)}); changed it to 600`
      )
    }
    return Option.some(yield* ctx.fs.readFileString(ctx.target))
  }).pipe(Effect.catchIf(isNotFound, () => Effect.succeedNone))

const stamp = Effect.map(Clock.currentTimeMillis, (now) => DateTime.formatIso(DateTime.unsafeMake(now)).replace(/[-:.]/g, ""))

/**
 * Moves the (corrupt) target to `<target>.corrupt-<time>`, mode 0600, keeping only the newest
 * `keepCorrupt` of them. Returns the new path.
 */
export const moveAside = (ctx: FileContext): Effect.Effect<string, PlatformError> =>
  Effect.gen(function*() {
    const aside = `${ctx.target}.corrupt-${yield* stamp}`
    yield* ctx.fs.rename(ctx.target, aside)
    yield* ctx.fs.chmod(aside, 0o600)
    const prefix = `${ctx.path.basename(ctx.target)}.corrupt-`
    const dir = ctx.path.dirname(ctx.target)
    const kept = (yield* ctx.fs.readDirectory(dir)).filter((name) => name.startsWith(prefix)).sort().reverse()
    yield* Effect.forEach(kept.slice(ctx.keepCorrupt), (name) => ctx.fs.remove(ctx.path.join(dir, name)), {
      discard: true
    })
    return aside
  })

/**
 * Writes `bytes` to the target so that a crash at any moment leaves the old file or the new
 * one: exclusive temp file (mode 0600 from its creation), flush, rename, flush the directory.
 */
export const writeAtomically = (ctx: FileContext, bytes: Uint8Array): Effect.Effect<void, PlatformError> =>
  Effect.gen(function*() {
    const dir = ctx.path.dirname(ctx.target)
    yield* ctx.fs.makeDirectory(dir, { recursive: true, mode: 0o700 })
    const temp = `${ctx.target}.tmp-${(yield* Clock.currentTimeMillis).toString(36)}-${
      (yield* Random.nextIntBetween(0, 2 ** 31)).toString(36)
    }`
    yield* Effect.scoped(Effect.gen(function*() {
      const file = yield* ctx.fs.open(temp, { flag: "wx", mode: 0o600 })
      yield* file.writeAll(bytes)
      yield* file.sync
    })).pipe(Effect.onError(() => Effect.ignore(ctx.fs.remove(temp))))
    yield* ctx.fs.rename(temp, ctx.target).pipe(Effect.onError(() => Effect.ignore(ctx.fs.remove(temp))))
    // Makes the rename itself durable; not every platform can open a directory, hence ignore.
    yield* Effect.ignore(Effect.scoped(Effect.flatMap(ctx.fs.open(dir, { flag: "r" }), (handle) => handle.sync)))
    yield* removeStaleTemps(ctx)
  })

/** Removes temp files left by writers killed mid-save (old enough that no writer owns them). */
const removeStaleTemps = (ctx: FileContext): Effect.Effect<void> =>
  Effect.gen(function*() {
    const dir = ctx.path.dirname(ctx.target)
    const prefix = `${ctx.path.basename(ctx.target)}.tmp-`
    const now = yield* Clock.currentTimeMillis
    const names = (yield* ctx.fs.readDirectory(dir)).filter((name) => name.startsWith(prefix))
    yield* Effect.forEach(names, (name) => {
      const file = ctx.path.join(dir, name)
      return Effect.flatMap(ctx.fs.stat(file), (info) =>
        Option.match(info.mtime, {
          onNone: () => Effect.void,
          onSome: (mtime) => now - mtime.getTime() > staleTempMillis ? ctx.fs.remove(file) : Effect.void
        }))
    }, { discard: true })
  }).pipe(Effect.ignore)
