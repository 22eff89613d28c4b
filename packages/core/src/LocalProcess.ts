/**
 * This process, as the file store's lock needs to know it: who it is, and whether another
 * process of this host still runs (so that what a killed one left is dealt with at once).
 * `@amp-effect/node` supplies it (`NodeTokenStore.localProcess`).
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
