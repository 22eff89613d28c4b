/**
 * The lock a shared token store holds while one process renews, written once for every store
 * (the file, Redis, a Postgres store). A store supplies only its storage primitives (`Storage`:
 * take the lock for an owner with a lease, extend it, release it if still ours); `make` turns
 * them into the store's `withLock`:
 *
 * - **Waiting**: attempts are retried with one jittered exponential backoff (10 ms doubling to
 *   100 ms) until `timeout`, then fail with a `TokenStoreError` (operation `"lock"`) naming the
 *   holder. Fibers of one process queue before polling, so only one of them polls. A wait for
 *   another process is counted (`amp_token_lock_waits_total`) and traced (`TokenStore.lockWait`).
 * - **Lease**: while the effect runs, the lease is extended every third of it (when the storage
 *   can extend). A lock found no longer ours (when extending or releasing) is reported once: a
 *   warning and the `lost` metric. The store's save is the fence: it never lets the holder that
 *   lost its lease replace a newer token (see `TokenStore.save`).
 * - **Release**: on exit, however the effect ends, and only if the lock is still ours.
 * - **Storage unreachable**: `whenUnavailable: "proceed"` runs the effect unlocked with a
 *   warning (and the `unavailable` metric, operation `"lock"`); `"fail"` fails it.
 *
 * Stale locks (an owner killed while holding) are the storage's to recognise, with `staleness`
 * where the lock records its owner and lease: a lease that ran out, or an owner of this host that
 * is no longer running. A storage whose locks expire by themselves (Redis `PX`, a Postgres
 * session's advisory lock) has nothing to do.
 *
 * @since 0.1.0
 */
import type { Effect, Option } from "effect"
import * as internal from "./internal/storeLock.js"
import type { LocalProcess } from "./LocalProcess.js"

/**
 * Who takes a lock: this process's id and host (`null` when unknown) and a nonce unique to one
 * acquisition, so that a lock is recognised as ours and nobody else's.
 *
 * @since 0.1.0
 * @category models
 */
export type Owner = internal.Owner

/**
 * One attempt to take the lock: `Taken`, or `Busy` with a description of its holder for the
 * message of a wait that timed out (`"process 12 on host-a"`).
 *
 * @since 0.1.0
 * @category models
 */
export type Attempt = internal.Attempt

/**
 * A store's lock primitives. Each fails with the reason the storage cannot be reached (a short
 * text that never holds a secret).
 *
 * - `take`: one attempt to take the lock for `owner`, for one lease; a storage that recognises
 *   stale locks takes them over here.
 * - `extend`: a fresh lease for `owner`'s lock; `false` when it is no longer `owner`'s. Omitted
 *   when the storage cannot extend: the lease then has to outlast a renewal.
 * - `release`: deletes `owner`'s lock; `false` when it was no longer `owner`'s (left as it is).
 * - `holder`: who holds the lock, for the message of a wait that timed out, when `take` cannot
 *   say without another round trip.
 *
 * @since 0.1.0
 * @category models
 */
export type Storage = internal.Storage

/**
 * How a store's lock behaves and is named.
 *
 * - `store`, `where`: for errors (`TokenStoreError`'s `store` and `path`);
 * - `name`: the lock in log lines, `"token lock /x/token.json.lock"`;
 * - `lease`, `timeout`: how long a lock lasts without being extended; how long to wait for it;
 * - `whenUnavailable`: run unlocked (`"proceed"`) or fail (`"fail"`) when the storage is down;
 * - `localProcess`: this process, recorded as the owner;
 * - `lost`, `unavailable`: the store's counters of lost leases and of operations that failed to
 *   reach the storage (tagged `operation` = `lock` | `extend` | `release`).
 *
 * @since 0.1.0
 * @category models
 */
export type Options = internal.Options

/**
 * A store's `withLock`: runs `effect` holding the lock.
 *
 * @since 0.1.0
 * @category models
 */
export type WithLock = internal.WithLock

/**
 * The `withLock` of a store over `storage`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (storage: Storage, options: Options) => Effect.Effect<WithLock> = internal.make

/**
 * Why a lock recording `owner` and a lease until `leaseUntil` (epoch ms) may be taken over at
 * `now`: its lease ran out, or its owner, a process of this host, is no longer running (asked of
 * `local`). `None` while it is held.
 *
 * @since 0.1.0
 * @category utils
 */
export const staleness: (
  owner: Pick<Owner, "pid" | "host">,
  leaseUntil: number,
  now: number,
  local: LocalProcess | undefined
) => Effect.Effect<Option.Option<string>> = internal.staleness

/**
 * A lock's owner for messages: `"process 12 on host-a"`.
 *
 * @since 0.1.0
 * @category utils
 */
export const describeOwner: (owner: Pick<Owner, "pid" | "host">) => string = internal.describeOwner
