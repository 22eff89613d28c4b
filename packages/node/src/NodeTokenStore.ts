/**
 * The token file store on Node: `TokenStore.layerFile` over Node's file system, with this
 * process's id and host recorded in the lock and a liveness check of other processes, so that
 * a lock left by a killed process is taken over at once rather than when its lease runs out.
 *
 * @since 0.1.0
 */
import { type LocalProcess, TokenStore } from "@amp-effect/core"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { Effect, Layer } from "effect"
import * as Os from "node:os"

/**
 * Whether process `pid` of this host is running: signal 0 checks without signalling. `EPERM`
 * means it runs under another user. Ids that `kill` would read as process groups (0, negative)
 * are never checked: they count as alive, so only the lease applies.
 *
 * @since 0.1.0
 * @category utils
 */
export const isAlive = (pid: number): Effect.Effect<boolean> =>
  Effect.sync(() => {
    if (!Number.isSafeInteger(pid) || pid <= 0) return true
    try {
      process.kill(pid, 0)
      return true
    } catch (error) {
      return (error as NodeJS.ErrnoException).code !== "ESRCH"
    }
  })

/**
 * This process, for the file store's lock.
 *
 * @since 0.1.0
 * @category constants
 */
export const localProcess: LocalProcess.LocalProcess = {
  pid: process.pid,
  hostname: Os.hostname(),
  isAlive
}

/**
 * The file store's options on this platform: this process for the lock, and no POSIX mode check
 * on Windows, where modes mean nothing and the check would warn on every load.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultOptions: TokenStore.FileStoreOptions = {
  localProcess,
  checkPermissions: process.platform !== "win32"
}

/**
 * The token file at `path` on Node's file system (see `TokenStore.makeFile`), with
 * `defaultOptions` under the given ones. Give it to `TokenService` as its store.
 *
 * @example
 * ```ts
 * import { TokenService } from "@amp-effect/core"
 * import { NodeTokenStore } from "@amp-effect/node"
 * import { Layer } from "effect"
 *
 * // A token file shared by the processes of this machine; a renewal waits at most 30 seconds
 * // for another process's lock.
 * const store = NodeTokenStore.layer("/var/lib/my-app/token.json", { lockTimeout: "30 seconds" })
 * const tokens = TokenService.layer().pipe(Layer.provide(store)) // still needs an `AuthApi`
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (path: string, options?: TokenStore.FileStoreOptions): Layer.Layer<TokenStore.TokenStore> =>
  TokenStore.layerFile(path, { ...defaultOptions, ...options }).pipe(
    Layer.provide(Layer.merge(NodeFileSystem.layer, NodePath.layer))
  )
