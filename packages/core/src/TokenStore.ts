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
import { FileSystem, Path } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Context, Duration, Effect, Either, Layer, Option, Ref } from "effect"
import * as FileLock from "./internal/fileLock.js"
import * as TokenFile from "./internal/tokenFile.js"
import type { TokenData } from "./TokenData.js"
import { TokenStoreError } from "./TokenError.js"

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

/**
 * This process, as the file store's lock needs to know it: who it is (recorded in the lock
 * file) and whether another process of the same host is still running (so that a lock left by
 * a killed process is taken over at once instead of when its lease runs out). The core cannot
 * know this by itself; `@amp-effect/node` supplies it (`NodeTokenStore.localProcess`).
 */
export interface LocalProcess {
  readonly pid: number
  readonly hostname: string
  /** Whether process `pid` of this host is running. Answer `true` when unsure. */
  readonly isAlive: (pid: number) => Effect.Effect<boolean>
}

/** Options for the file store. */
export interface FileStoreOptions {
  /** How many corrupt files moved aside are kept (newest first). Default 3. */
  readonly keepCorrupt?: number
  /**
   * How long a lock stays valid when its owner cannot be checked (another host, no
   * `localProcess`, or an owner alive but stuck): after this, waiters take it over. It should
   * exceed one renewal (with the default retry policy at most about a minute), else a slow
   * renewal may be joined by a second login (never a corrupt file). Default 60 seconds.
   */
  readonly lockLease?: Duration.DurationInput
  /**
   * How long `withLock` waits for the lock before failing with a `TokenStoreError` (operation
   * `"lock"`). Longer than the lease, so that a waiter outlives a dead owner's lease on another
   * host. Default 90 seconds.
   */
  readonly lockTimeout?: Duration.DurationInput
  /**
   * This process and a liveness check of its neighbours (see `LocalProcess`). Without it, locks
   * record no owner and are taken over only when their lease runs out.
   */
  readonly localProcess?: LocalProcess
}

/** Default of `FileStoreOptions.lockLease`. */
export const defaultLockLease: Duration.Duration = Duration.seconds(60)

/** Default of `FileStoreOptions.lockTimeout`. */
export const defaultLockTimeout: Duration.Duration = Duration.seconds(90)

/**
 * The token file at `path` (relative paths resolve against the working directory). Any number
 * of processes of one machine may share it.
 *
 * - `save` writes a new file beside the target (exclusive create, mode 0600), flushes it and
 *   renames it over the target, then flushes the directory where the platform allows: a crash
 *   leaves the old file or the new one. Renaming replaces a symbolic link at `path` rather than
 *   writing through it. A missing directory is created with mode 0700. Temp files left by
 *   writers that died are removed.
 * - `load` tightens a file readable by group or others to 0600 (with a warning), and moves a
 *   corrupt or foreign file aside to `<path>.corrupt-<time>-<random>` (with a warning) instead
 *   of deleting it. A symbolic link is read through, never changed through.
 * - `withLock` holds `<path>.lock` (see `FileStoreOptions` for lease and timeout). It is not
 *   reentrant. When the file system refuses the lock file (read-only, full), it logs a warning
 *   and runs the effect unlocked rather than fail: such a store shares nothing anyway.
 */
export const makeFile = Effect.fnUntraced(function*(path: string, options?: FileStoreOptions) {
  const fs = yield* FileSystem.FileSystem
  const paths = yield* Path.Path
  const target = paths.resolve(path)
  const fail = (operation: TokenStoreError["operation"]) => (error: PlatformError) =>
    new TokenStoreError({ operation, path: target, reason: TokenFile.describe(error) })
  const ctx: TokenFile.FileContext = {
    fs,
    path: paths,
    target,
    keepCorrupt: Math.max(0, options?.keepCorrupt ?? 3),
    local: options?.localProcess
  }

  const load = Effect.gen(function*() {
    // A second look only when a writer replaced the bad file while we were moving it aside.
    for (let look = 0; look < 2; look++) {
      const found = yield* TokenFile.inspect(ctx)
      if (found._tag === "Missing") return Option.none<TokenData>()
      const decoded = found._tag === "Text" ? TokenFile.decode(found.text) : Either.left(found.reason)
      if (Either.isRight(decoded)) return Option.some(decoded.right)
      const aside = yield* TokenFile.moveAside(ctx, found.info)
      if (Option.isSome(aside)) {
        yield* Effect.logWarning(
          `The token file ${target} is not a valid token file (${decoded.left}); moved it to ${aside.value} and will obtain a new token`
        )
        return Option.none<TokenData>()
      }
    }
    return Option.none<TokenData>()
  }).pipe(Effect.mapError(fail("load")), Effect.withSpan("TokenStore.load", { attributes: { store: "file" } }))

  const save = (data: TokenData) =>
    TokenFile.writeAtomically(ctx, TokenFile.encode(data)).pipe(
      Effect.mapError(fail("save")),
      Effect.withSpan("TokenStore.save", { attributes: { store: "file" } })
    )

  const remove = fs.remove(target).pipe(
    Effect.catchIf(TokenFile.isNotFound, () => Effect.void),
    Effect.mapError(fail("remove"))
  )

  // Fibers of this process queue here, so only one of them polls the lock file.
  const semaphore = yield* Effect.makeSemaphore(1)
  const fileLock = FileLock.make({
    ...ctx,
    lockPath: `${target}.lock`,
    lease: Duration.decode(options?.lockLease ?? defaultLockLease),
    timeout: Duration.decode(options?.lockTimeout ?? defaultLockTimeout)
  })
  const withLock = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    semaphore.withPermits(1)(fileLock(effect)).pipe(Effect.withSpan("TokenStore.withLock"))

  return TokenStore.of({ description: `file ${target}`, load, save, remove, withLock })
})

/** The file store (see `makeFile`); needs a `FileSystem` and a `Path`. */
export const layerFile = (
  path: string,
  options?: FileStoreOptions
): Layer.Layer<TokenStore, never, FileSystem.FileSystem | Path.Path> =>
  Layer.effect(TokenStore, makeFile(path, options))
