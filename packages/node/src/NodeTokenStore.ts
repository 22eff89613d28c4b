/**
 * The token file store on Node: `TokenStore.layerFile` over Node's file system, with this
 * process's id and host recorded in the lock and a liveness check of other processes, so that
 * a lock left by a killed process is taken over at once rather than when its lease runs out.
 *
 * @since 0.1.0
 */
import { TokenStore } from "@amp-effect/core"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { Effect, Layer } from "effect"
import * as Os from "node:os"

/**
 * Whether process `pid` of this host is running: signal 0 checks without signalling. `EPERM`
 * means it runs under another user. Ids that `kill` would read as process groups (0, negative)
 * are never checked: they count as alive, so only the lease applies.
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

/** This process, for the file store's lock. */
export const localProcess: TokenStore.LocalProcess = {
  pid: process.pid,
  hostname: Os.hostname(),
  isAlive
}

/** The token file at `path` on Node's file system (see `TokenStore.makeFile`). */
export const layer = (path: string, options?: TokenStore.FileStoreOptions): Layer.Layer<TokenStore.TokenStore> =>
  TokenStore.layerFile(path, { localProcess, ...options }).pipe(
    Layer.provide(Layer.merge(NodeFileSystem.layer, NodePath.layer))
  )
