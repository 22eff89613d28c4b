/**
 * `TokenStore.makeFile`: the token file (`tokenFile.ts`), written atomically (`atomicFile.ts`)
 * and shared through its lock (`fileLock.ts`).
 *
 * @internal
 */
import { FileSystem, Path } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Duration, Effect } from "effect"
import type { LocalProcess } from "../LocalProcess.js"
import * as TokenData from "../TokenData.js"
import { TokenStoreError } from "../TokenError.js"
import * as AtomicFile from "./atomicFile.js"
import * as FileLock from "./fileLock.js"
import * as StoreLock from "./storeLock.js"
import * as TokenFile from "./tokenFile.js"

export interface FileStoreOptions {
  /** How many corrupt files moved aside are kept (newest first). Default 3. */
  readonly keepCorrupt?: number
  /**
   * How long a lock stays valid when its owner cannot be checked (another host, no
   * `localProcess`, an owner alive but stuck): then waiters take it over. It should exceed one
   * renewal, else a slow renewal may be joined by a second login. Default 60 seconds.
   */
  readonly lockLease?: Duration.DurationInput
  /**
   * How long `withLock` waits for the lock before failing with a `TokenStoreError` (operation
   * `"lock"`); longer than the lease, to outlive a dead owner's. Default 90 seconds.
   */
  readonly lockTimeout?: Duration.DurationInput
  /** This process (see `LocalProcess`); without it, locks are taken over only when their lease runs out. */
  readonly localProcess?: LocalProcess | undefined
  /**
   * Whether `load` tightens a file readable by group or others to 0600, with a warning. Off
   * where modes mean nothing (Windows; `NodeTokenStore.layer` decides). Default `true`.
   */
  readonly checkPermissions?: boolean
}

const leftoverKinds: ReadonlyArray<AtomicFile.LeftoverKind> = [AtomicFile.tempKind, ...FileLock.leftoverKinds]

export const makeFile = (path: string, options?: FileStoreOptions) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const paths = yield* Path.Path
    const target = paths.resolve(path)
    const fail = (operation: TokenStoreError["operation"]) => (error: PlatformError) =>
      new TokenStoreError({ store: "file", operation, path: target, reason: AtomicFile.describe(error) })
    const ctx: TokenFile.TokenFileContext = {
      fs,
      path: paths,
      target,
      local: options?.localProcess,
      keepCorrupt: Math.max(0, options?.keepCorrupt ?? 3),
      checkPermissions: options?.checkPermissions ?? true
    }
    const lease = Duration.decode(options?.lockLease ?? Duration.seconds(60))
    const lock = { ...ctx, lockPath: AtomicFile.sibling(ctx, "lock"), leaseMillis: Duration.toMillis(lease) }
    // A file system that refuses the lock file (read-only, full) shares nothing anyway: proceed.
    const withLock = yield* StoreLock.make(FileLock.storage(lock), {
      store: "file",
      name: `token lock ${lock.lockPath}`,
      where: lock.lockPath,
      lease,
      timeout: Duration.decode(options?.lockTimeout ?? Duration.seconds(90)),
      whenUnavailable: "proceed",
      localProcess: options?.localProcess
    })
    const span = { attributes: { store: "file" } }

    return {
      description: `file ${target}`,
      load: TokenFile.load(ctx).pipe(Effect.mapError(fail("load")), Effect.withSpan("TokenStore.load", span)),
      save: (data: TokenData.TokenData) =>
        AtomicFile.writeAtomically(ctx, TokenData.encodeFile(data)).pipe(
          // Afterwards, what writers and lock holders that died left beside the file goes.
          Effect.flatMap((written) => AtomicFile.removeLeftovers(ctx, leftoverKinds, written)),
          Effect.as(data),
          Effect.mapError(fail("save")),
          Effect.withSpan("TokenStore.save", span)
        ),
      remove: fs.remove(target).pipe(
        Effect.catchIf(AtomicFile.isNotFound, () => Effect.void),
        Effect.mapError(fail("remove"))
      ),
      withLock
    }
  })
