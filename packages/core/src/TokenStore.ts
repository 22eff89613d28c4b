/**
 * Where tokens persist between runs. Three implementations share one contract:
 *
 * - `layerFile(path)`: the Rust client's `token.json`, over the abstract `FileSystem`,
 *   written crash-safely (temp file + rename) with mode 0600, shared between processes
 *   through a lock file beside it.
 * - `layerMemory`: in memory, for tests and for sharing between services of one process.
 * - `layerNoop`: nothing is kept; what the persistence policy picks in mock environments.
 *
 * @since 0.1.0
 */
import type { FileSystem, Path } from "@effect/platform"
import { Context, type Duration, Effect, Layer, Option, Ref } from "effect"
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
   * `data`, or the one a shared store kept instead because another process saved it meanwhile
   * and it expires as late or later (the fence that keeps a renewer whose lock ran out from
   * replacing a newer token). `replacing` is the token this save supersedes (the one the
   * renewal read or refreshed): it never fences its own successor out. Readers see the old
   * token or the new one, never a mix.
   */
  readonly save: (data: TokenData, replacing?: TokenData) => Effect.Effect<TokenData, TokenStoreError>
  /** Forgets the stored token; nothing to remove is not an error. */
  readonly remove: Effect.Effect<void, TokenStoreError>
  /**
   * Runs `effect` while holding the store's exclusive lock, so that processes sharing the store
   * renew one at a time. Stores that are not shared run `effect` as it is.
   */
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
 * An in-memory store (see `makeMemory`).
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
 * Options for the file store: how many corrupt files are kept, the lock's lease and timeout,
 * this process (`LocalProcess`) and whether modes are checked; each is documented on its field.
 *
 * @since 0.1.0
 * @category models
 */
export type FileStoreOptions = internal.FileStoreOptions

/**
 * Default of `FileStoreOptions.lockLease`: 60 seconds.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultLockLease: Duration.Duration = internal.defaultLockLease

/**
 * Default of `FileStoreOptions.lockTimeout`: 90 seconds.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultLockTimeout: Duration.Duration = internal.defaultLockTimeout

/**
 * The token file at `path` (relative paths resolve against the working directory). Any number
 * of processes of one machine may share it.
 *
 * - `save` writes a new file beside the target (exclusive create, mode 0600), flushes it and
 *   renames it over the target, then flushes the directory where the platform allows: a crash
 *   leaves the old file or the new one. Renaming replaces a symbolic link at `path` rather than
 *   writing through it. A missing directory is created with mode 0700. Temp files left by
 *   writers that died are removed.
 * - `load` tightens a file readable by group or others to 0600 (with a warning; see
 *   `checkPermissions`), and moves a corrupt or foreign file aside to
 *   `<path>.corrupt-<time>-<random>` (with a warning) instead of deleting it. A symbolic link
 *   is read through, never changed through.
 * - `withLock` holds `<path>.lock` (see `FileStoreOptions` for lease and timeout). It is not
 *   reentrant. When the file system refuses the lock file (read-only, full), it logs a warning
 *   and runs the effect unlocked rather than fail: such a store shares nothing anyway.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeFile: (
  path: string,
  options?: FileStoreOptions
) => Effect.Effect<TokenStore["Type"], never, FileSystem.FileSystem | Path.Path> = internal.makeFile

/**
 * The file store (see `makeFile`); needs a `FileSystem` and a `Path`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFile = (
  path: string,
  options?: FileStoreOptions
): Layer.Layer<TokenStore, never, FileSystem.FileSystem | Path.Path> =>
  Layer.effect(TokenStore, makeFile(path, options))
