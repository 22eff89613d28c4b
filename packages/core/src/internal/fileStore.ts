/**
 * `TokenStore.makeFile`: the token file (`tokenFile.ts`), written atomically (`atomicFile.ts`)
 * and shared through its lock (`fileLock.ts`). This is the one place that knows all three.
 *
 * @internal
 */
import { FileSystem, Path } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Duration, Effect } from "effect"
import type { TokenData } from "../TokenData.js"
import { TokenStoreError } from "../TokenError.js"
import type { FileStoreOptions, TokenStore } from "../TokenStore.js"
import * as AtomicFile from "./atomicFile.js"
import * as FileLock from "./fileLock.js"
import * as StoreLock from "./storeLock.js"
import * as TokenFile from "./tokenFile.js"

export const defaultLockLease: Duration.Duration = Duration.seconds(60)

export const defaultLockTimeout: Duration.Duration = Duration.seconds(90)

/** Every kind of leftover a save sweeps: its own temp files and the lock's. */
const leftoverKinds: ReadonlyArray<AtomicFile.LeftoverKind> = [AtomicFile.tempKind, ...FileLock.leftoverKinds]

export const makeFile = (
  path: string,
  options?: FileStoreOptions
): Effect.Effect<TokenStore["Type"], never, FileSystem.FileSystem | Path.Path> =>
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
    const lease = Duration.decode(options?.lockLease ?? defaultLockLease)
    const lock = FileLock.storage(ctx, lease)
    // A file system that refuses the lock file (read-only, full) shares nothing anyway: proceed.
    const withFileLock = yield* StoreLock.make(lock.storage, {
      store: "file",
      name: `token lock ${lock.ctx.lockPath}`,
      where: lock.ctx.lockPath,
      lease,
      timeout: Duration.decode(options?.lockTimeout ?? defaultLockTimeout),
      whenUnavailable: "proceed",
      localProcess: options?.localProcess
    })
    const span = { attributes: { store: "file" } }

    return {
      description: `file ${target}`,
      load: TokenFile.load(ctx).pipe(Effect.mapError(fail("load")), Effect.withSpan("TokenStore.load", span)),
      save: (data: TokenData) =>
        AtomicFile.writeAtomically(ctx, TokenFile.encode(data)).pipe(
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
      withLock: withFileLock
    }
  })
