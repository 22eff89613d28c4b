/**
 * Where tokens persist between runs: `layerFile(path)` (the Rust client's `token.json`, written
 * crash-safely with mode 0600, shared between processes through a lock file beside it),
 * `layerMemory` (for tests and for services of one process), `layerNoop` (nothing is kept).
 *
 * @since 0.1.0
 */
import type { FileSystem, Path } from "@effect/platform"
import { Context, Effect, Layer, Option, Ref } from "effect"
import * as internal from "./internal/fileStore.js"
import type { TokenData } from "./TokenData.js"
import type { TokenStoreError } from "./TokenError.js"

/**
 * A place to keep the current token between runs.
 *
 * @since 0.1.0
 * @category tags
 */
export class TokenStore extends Context.Tag("@amp-effect/core/TokenStore")<TokenStore, {
  /** Says where tokens go, for log lines: `"file /home/me/token.json"`, `"memory"`, `"none"`. */
  readonly description: string
  /**
   * The stored token, or `None` when there is none. A corrupt or foreign file counts as none:
   * it is moved aside (never deleted) and a warning is logged.
   */
  readonly load: Effect.Effect<Option.Option<TokenData>, TokenStoreError>
  /**
   * Replaces the stored token with `data` and answers the token the store holds afterwards:
   * `data`, or one another process saved meanwhile that expires as late or later (the fence that
   * keeps a renewer whose lock ran out from replacing a newer token). `replacing`, the token
   * this save supersedes, never fences its successor out. Readers never see a mix.
   */
  readonly save: (data: TokenData, replacing?: TokenData) => Effect.Effect<TokenData, TokenStoreError>
  /** Forgets the stored token; nothing to remove is not an error. */
  readonly remove: Effect.Effect<void, TokenStoreError>
  /** Runs `effect` holding the store's exclusive lock (processes renew one at a time). */
  readonly withLock: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TokenStoreError, R>
}>() {}

/**
 * Keeps the token in a `Ref`: survives service rebuilds within one process, not restarts.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory: Effect.Effect<TokenStore["Type"]> = Effect.map(
  Ref.make(Option.none<TokenData>()),
  (ref) =>
    TokenStore.of({
      description: "memory",
      load: Ref.get(ref),
      save: (data) => Ref.set(ref, Option.some(data)).pipe(Effect.as(data)),
      remove: Ref.set(ref, Option.none()),
      withLock: (effect) => effect
    })
)

/**
 * An in-memory store.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMemory: Layer.Layer<TokenStore> = Layer.effect(TokenStore, makeMemory)

/**
 * A store that keeps nothing: every run starts without a token.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerNoop: Layer.Layer<TokenStore> = Layer.succeed(
  TokenStore,
  TokenStore.of({
    description: "none",
    load: Effect.succeedNone,
    save: Effect.succeed,
    remove: Effect.void,
    withLock: (effect) => effect
  })
)

/**
 * Options for the file store; each is documented on its field.
 *
 * @since 0.1.0
 * @category models
 */
export type FileStoreOptions = internal.FileStoreOptions

/**
 * The token file at `path`, shared by the processes of one machine. `save` writes a temp file
 * (mode 0600), flushes it, renames it over `path` (replacing a symbolic link, never writing
 * through it) and flushes the directory. `load` tightens a file readable by others to 0600 and
 * moves a corrupt one aside to `<path>.corrupt-<time>-<random>`. `withLock` holds `<path>.lock`
 * (not reentrant), or runs unlocked with a warning when the file system refuses the lock file.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeFile: (
  path: string,
  options?: FileStoreOptions
) => Effect.Effect<TokenStore["Type"], never, FileSystem.FileSystem | Path.Path> = internal.makeFile

/**
 * The file store (see `makeFile`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFile = (
  path: string,
  options?: FileStoreOptions
): Layer.Layer<TokenStore, never, FileSystem.FileSystem | Path.Path> =>
  Layer.effect(TokenStore, makeFile(path, options))
