/**
 * The lock a shared token store holds while one process renews, written once for every store.
 * A store supplies its storage primitives (`Storage`); `make` turns them into its `withLock`:
 * polling with a jittered backoff (10 ms doubling to 100 ms) until `timeout`, then a
 * `TokenStoreError` naming the holder; the lease extended every third of it while the effect
 * runs; release on exit if the lock is still ours; a lost lease reported once (a warning and the
 * `lost` metric); an unreachable storage run through unlocked (`whenUnavailable: "proceed"`) or
 * failed. Stale locks are the storage's to recognise, in `take`.
 *
 * @since 0.1.0
 */
import type { Effect } from "effect"
import * as internal from "./internal/storeLock.js"

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
 * A store's lock primitives; each fails with the reason the storage cannot be reached (a short
 * text that never holds a secret).
 *
 * - `take`: one attempt to take the lock for `owner`, for one lease (taking over a stale one);
 * - `extend`: a fresh lease for `owner`'s lock, `false` when it is no longer `owner`'s; omitted
 *   when the storage cannot extend (the lease then has to outlast a renewal);
 * - `release`: deletes `owner`'s lock; `false` when it was no longer `owner`'s;
 * - `holder`: who holds the lock, for the timeout's message, when `take` cannot say.
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
 * A lock's owner for messages: `"process 12 on host-a"`.
 *
 * @since 0.1.0
 * @category utils
 */
export const describeOwner: (owner: Pick<Owner, "pid" | "host">) => string = internal.describeOwner
