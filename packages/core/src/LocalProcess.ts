/**
 * This process, as the file store's lock needs to know it: who it is (recorded in the lock
 * file and in the names of temp files) and whether another process of the same host is still
 * running, so that a lock or a temp file left by a killed process is dealt with at once rather
 * than when its lease runs out. The core cannot know this by itself; `@amp-effect/node`
 * supplies it (`NodeTokenStore.localProcess`).
 *
 * @since 0.1.0
 */
import type { Effect } from "effect"

/**
 * This process and a liveness check of its neighbours on the same host.
 *
 * @since 0.1.0
 * @category models
 */
export interface LocalProcess {
  readonly pid: number
  readonly hostname: string
  /** Whether process `pid` of this host is running. Answer `true` when unsure. */
  readonly isAlive: (pid: number) => Effect.Effect<boolean>
}
