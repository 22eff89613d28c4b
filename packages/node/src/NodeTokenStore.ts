/**
 * The token file store on Node: `TokenStore.layerFile` over Node's file system, with this process
 * in the lock and a liveness check, so that a killed process's lock is taken over at once.
 *
 * @since 0.1.0
 */
import { type LocalProcess, TokenStore } from "@amp-effect/core"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { Effect, Layer } from "effect"
import * as Os from "node:os"

/**
 * This process, for the file store's lock. Another process of this host is alive unless signal 0
 * says it does not exist (`EPERM`: it runs under another user). Ids that `kill` reads as process
 * groups (0, negative) count as alive, so only the lease frees their lock.
 *
 * @since 0.1.0
 * @category constants
 */
export const localProcess: LocalProcess.LocalProcess = {
  pid: process.pid,
  hostname: Os.hostname(),
  isAlive: (pid) =>
    Effect.sync(() => {
      if (!Number.isSafeInteger(pid) || pid <= 0) return true
      try {
        process.kill(pid, 0)
        return true
      } catch (error) {
        return (error as NodeJS.ErrnoException).code !== "ESRCH"
      }
    })
}

/**
 * The file store's options on Node: this process for the lock, and no POSIX mode check on
 * Windows, where modes mean nothing and the check would warn on every load.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultOptions: TokenStore.FileStoreOptions = {
  localProcess,
  checkPermissions: process.platform !== "win32"
}

/**
 * The token file at `path` on Node's file system (`TokenStore.makeFile`), with `defaultOptions`
 * under the given ones.
 *
 * @example
 * ```ts
 * import { NodeTokenStore } from "@amp-effect/node"
 *
 * // A renewal waits at most 30 seconds for another process's lock.
 * export const store = NodeTokenStore.layer("/var/lib/my-app/token.json", { lockTimeout: "30 seconds" })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (path: string, options?: TokenStore.FileStoreOptions): Layer.Layer<TokenStore.TokenStore> =>
  TokenStore.layerFile(path, { ...defaultOptions, ...options }).pipe(
    Layer.provide(Layer.merge(NodeFileSystem.layer, NodePath.layer))
  )
