/**
 * Where tokens persist between runs. Three implementations share one contract:
 *
 * - `layerFile(path)`: the Rust client's `token.json`, over the abstract `FileSystem`,
 *   written crash-safely (temp file + rename) with mode 0600.
 * - `layerMemory`: in memory, for tests and for sharing between services of one process.
 * - `layerNoop`: nothing is kept; what the persistence policy picks in mock environments.
 *
 * @since 0.1.0
 */
import { FileSystem, Path } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Context, Effect, Either, Layer, Option, Ref } from "effect"
import { TokenStoreError } from "./TokenError.js"
import * as TokenFile from "./internal/tokenFile.js"
import type { TokenData } from "./TokenData.js"

/** A place to keep the current token between runs. */
export class TokenStore extends Context.Tag("@amp-effect/core/TokenStore")<TokenStore, {
  /** Says where tokens go, for log lines: `"file /home/me/token.json"`, `"memory"`, `"none"`. */
  readonly description: string
  /**
   * The stored token, or `None` when there is none. A corrupt or foreign file counts as none:
   * it is moved aside (never deleted) and a warning is logged.
   */
  readonly load: Effect.Effect<Option.Option<TokenData>, TokenStoreError>
  /** Replaces the stored token. Readers see the old token or the new one, never a mix. */
  readonly save: (data: TokenData) => Effect.Effect<void, TokenStoreError>
  /** Forgets the stored token; nothing to remove is not an error. */
  readonly remove: Effect.Effect<void, TokenStoreError>
  /**
   * Runs `effect` while holding the store's exclusive lock, so that processes sharing the store
   * renew one at a time. Stores that are not shared run `effect` as it is.
   */
  readonly withLock: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TokenStoreError, R>
}>() {}

/** Keeps the token in a `Ref`: survives service rebuilds within one process, not restarts. */
export const makeMemory: Effect.Effect<TokenStore["Type"]> = Effect.map(
  Ref.make(Option.none<TokenData>()),
  (ref) =>
    TokenStore.of({
      description: "memory",
      load: Ref.get(ref),
      save: (data) => Ref.set(ref, Option.some(data)),
      remove: Ref.set(ref, Option.none()),
      withLock: (effect) => effect
    })
)

/** An in-memory store (see `makeMemory`). */
export const layerMemory: Layer.Layer<TokenStore> = Layer.effect(TokenStore, makeMemory)

/** A store that keeps nothing: every run starts without a token. */
export const layerNoop: Layer.Layer<TokenStore> = Layer.succeed(
  TokenStore,
  TokenStore.of({
    description: "none",
    load: Effect.succeedNone,
    save: () => Effect.void,
    remove: Effect.void,
    withLock: (effect) => effect
  })
)

/** Options for the file store. */
export interface FileStoreOptions {
  /** How many corrupt files moved aside are kept (newest first). Default 3. */
  readonly keepCorrupt?: number
}

/**
 * The token file at `path` (relative paths resolve against the working directory).
 *
 * - `save` writes a new file beside the target (exclusive create, mode 0600), flushes it and
 *   renames it over the target, then flushes the directory where the platform allows: a crash
 *   leaves the old file or the new one. Renaming replaces a symbolic link at `path` rather than
 *   writing through it. A missing directory is created with mode 0700.
 * - `load` tightens a file readable by group or others to 0600 (with a warning), and moves a
 *   corrupt or foreign file aside to `<path>.corrupt-<time>` (with a warning) instead of
 *   deleting it.
 */
export const makeFile = Effect.fnUntraced(function*(path: string, options?: FileStoreOptions) {
  const fs = yield* FileSystem.FileSystem
  const paths = yield* Path.Path
  const target = paths.resolve(path)
  const fail = (operation: TokenStoreError["operation"]) => (error: PlatformError) =>
    new TokenStoreError({ operation, path: target, reason: TokenFile.describe(error) })
  const ctx = { fs, path: paths, target, keepCorrupt: options?.keepCorrupt ?? 3 }

  const load = Effect.gen(function*() {
    const text = yield* TokenFile.readIfExists(ctx)
    if (Option.isNone(text)) return Option.none<TokenData>()
    const decoded = TokenFile.decode(text.value)
    if (Either.isRight(decoded)) return Option.some(decoded.right)
    const aside = yield* TokenFile.moveAside(ctx)
    yield* Effect.logWarning(
      `The token file ${target} is not a valid token file (${decoded.left}); moved it to ${aside} and will obtain a new token`
    )
    return Option.none<TokenData>()
  }).pipe(Effect.mapError(fail("load")), Effect.withSpan("TokenStore.load", { attributes: { store: "file" } }))

  const save = (data: TokenData) =>
    TokenFile.writeAtomically(ctx, TokenFile.encode(data)).pipe(
      Effect.mapError(fail("save")),
      Effect.withSpan("TokenStore.save", { attributes: { store: "file" } })
    )

  const remove = fs.remove(target).pipe(
    Effect.catchIf((error) => error._tag === "SystemError" && error.reason === "NotFound", () => Effect.void),
    Effect.mapError(fail("remove"))
  )

  return TokenStore.of({ description: `file ${target}`, load, save, remove, withLock: (effect) => effect })
})

/** The file store (see `makeFile`); needs a `FileSystem` and a `Path`. */
export const layerFile = (
  path: string,
  options?: FileStoreOptions
): Layer.Layer<TokenStore, never, FileSystem.FileSystem | Path.Path> => Layer.effect(TokenStore, makeFile(path, options))
