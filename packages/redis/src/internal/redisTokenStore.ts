/**
 * The Redis token store: one token key and one lock key per AMP account, over any node-redis
 * client. See `RedisTokenStore.ts` for what it promises; this file is how.
 *
 * @internal
 */
import { type EncryptionKey, type TokenData, TokenEnvelope, TokenError, TokenStore } from "@amp-effect/core"
import * as StoreLock from "@amp-effect/core/StoreLock"
import { Clock, Data, DateTime, Duration, Effect, Either, Metric, Option } from "effect"
import { createHash } from "node:crypto"
import * as Os from "node:os"
import * as RedisMetrics from "../RedisMetrics.js"

/** What the store needs of a node-redis client (see `RedisTokenStore.RedisClient`). */
export interface RedisClient {
  readonly isOpen: boolean
  readonly isReady: boolean
  sendCommand(args: Array<string>, options?: { abortSignal?: AbortSignal }): Promise<unknown>
  on(event: "ready" | "error", listener: (...args: Array<unknown>) => void): unknown
  off(event: "ready" | "error", listener: (...args: Array<unknown>) => void): unknown
}

export interface Keys {
  readonly token: string
  readonly lock: string
}

export interface Settings {
  readonly client: RedisClient
  /** Where the store is, for messages: `redis://cache:6379` (never a password). */
  readonly where: string
  /** Texts that must never appear in a message (the URL's password). */
  readonly secrets: ReadonlyArray<string>
  /** The hash of the account, bound into encrypted values. */
  readonly account: string
  readonly keys: Keys
  readonly lockLease: Duration.Duration
  readonly lockTimeout: Duration.Duration
  readonly commandTimeout: Duration.Duration
  readonly encryptionKeys: ReadonlyArray<EncryptionKey.EncryptionKey>
  readonly whenUnavailable: "proceed" | "fail"
}

/** The hash naming an account's keys: SHA-256 of base URL and username, 32 hex digits. */
export const accountHash = (baseUrl: string, username: string): string =>
  createHash("sha256").update(`${baseUrl.replace(/\/+$/, "")}\n${username}`).digest("hex").slice(0, 32)

/** Both keys share the hash tag `{<hash>}`, so a Redis Cluster puts them in one slot. */
export const keysFor = (prefix: string, hash: string): Keys => ({
  token: `${prefix}:{${hash}}:token`,
  lock: `${prefix}:{${hash}}:lock`
})

// -----------------------------------------------------------------------------
// Scripts
// -----------------------------------------------------------------------------

interface Script {
  readonly source: string
  readonly sha: string
}

const script = (source: string): Script => ({ source, sha: createHash("sha1").update(source).digest("hex") })

/**
 * Compare-and-set. KEYS[1] the token key; ARGV: the envelope, its expiry (epoch ms), the time
 * to live (ms), the fingerprint of the token it replaces (or ""). Writes unless the stored value
 * expires as late or later and is not the token replaced; answers `{1}` when written, `{0,
 * stored value}` when not. A stored value that is not an envelope is overwritten.
 */
const saveScript = script(`local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and type(decoded) == 'table' then
    local stored = tonumber(decoded['exp'])
    if stored and stored >= tonumber(ARGV[2]) and decoded['fp'] ~= ARGV[4] then return {0, current} end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return {1}`)

/** Compare-and-delete: deletes the lock only if it still holds our owner value. */
const releaseScript = script(`if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

/** Compare-and-extend: a new lease of ARGV[2] ms, only if the lock still holds our owner value. */
const extendScript = script(`if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)

// -----------------------------------------------------------------------------
// Commands
// -----------------------------------------------------------------------------

/** A command that got no usable answer: Redis unreachable, too slow, or answering an error. */
class RedisFailure extends Data.TaggedError("RedisFailure")<{
  readonly reason: string
  /** The command may have run anyway: its answer did not come in time. */
  readonly timedOut?: boolean
  readonly noScript?: boolean
}> {}

/**
 * Fails with `onTimeout()` when `effect` has not finished `duration` after it started, like
 * `Effect.timeoutFail`, but only after letting pending I/O in: a process that was starved of
 * CPU runs its expired timers before it reads the answers waiting on its sockets, and would
 * otherwise judge Redis slow when it was itself. `setImmediate` runs after the I/O phase.
 */
export const timeoutAfterIo = <A, E, R, E2>(
  effect: Effect.Effect<A, E, R>,
  duration: Duration.Duration,
  onTimeout: () => E2
): Effect.Effect<A, E | E2, R> =>
  Effect.raceFirst(
    effect,
    // Interruptible even inside an uninterruptible region, so that losing the race ends it.
    Effect.interruptible(
      Effect.sleep(duration).pipe(
        Effect.zipRight(Effect.async<void>((resume) => {
          const handle = setImmediate(() => resume(Effect.void))
          return Effect.sync(() => clearImmediate(handle))
        })),
        Effect.zipRight(Effect.suspend(() => Effect.fail(onTimeout())))
      )
    )
  )

const messageOf = (error: unknown): string => error instanceof Error ? error.message : String(error)

const textOf = (reply: unknown): string | undefined =>
  typeof reply === "string" ? reply : reply instanceof Uint8Array ? Buffer.from(reply).toString("utf8") : undefined

/** The client and what the store knows of its connection. */
interface Link {
  readonly settings: Settings
  /** The last connection error, for messages. */
  lastError: string | undefined
  /** Redis did not come back within a command timeout: fail at once until it is ready. */
  down: boolean
}

/** The URL's password, should a message ever quote it (none of node-redis's do), goes. */
const scrub = (link: Link, text: string) =>
  link.settings.secrets.reduce(
    (safe, secret) => secret.length < 4 ? safe : safe.split(secret).join("<redacted>"),
    text
  )

const unreachable = (link: Link) =>
  new RedisFailure({
    reason: scrub(link, `Redis is unreachable${link.lastError === undefined ? "" : ` (${link.lastError})`}`)
  })

const waitReady = (client: RedisClient) =>
  Effect.async<void>((resume) => {
    if (client.isReady) return resume(Effect.void)
    const ready = () => resume(Effect.void)
    client.on("ready", ready)
    return Effect.sync(() => client.off("ready", ready))
  })

/**
 * Sends one command with a timeout. When the client is not connected, the first command of an
 * outage waits up to the timeout for it to reconnect (a restarted Redis is back in
 * milliseconds); if it does not, later commands fail at once until it is back.
 */
const send = (link: Link, args: Array<string>): Effect.Effect<unknown, RedisFailure> =>
  Effect.suspend(() => {
    const { client, commandTimeout } = link.settings
    if (!client.isOpen) {
      return Effect.fail(
        new RedisFailure({
          reason: "the Redis client is closed (an application's client must be connected before use)"
        })
      )
    }
    // Interruptible even where the caller is not (a lock's acquisition and release), so that
    // the timeout can always abandon a command Redis does not answer.
    const command = Effect.interruptible(Effect.tryPromise({
      try: (signal) => client.sendCommand(args, { abortSignal: signal }),
      catch: (error) =>
        client.isReady
          ? new RedisFailure({
            reason: scrub(link, `Redis answered ${args[0]} with an error: ${messageOf(error)}`),
            noScript: messageOf(error).startsWith("NOSCRIPT")
          })
          : unreachable(link)
    }))
    const slow = () =>
      new RedisFailure({
        reason: `Redis did not answer ${args[0]} within ${Duration.toMillis(commandTimeout)} ms`,
        timedOut: true
      })
    if (client.isReady) return timeoutAfterIo(command, commandTimeout, slow)
    if (link.down) return Effect.fail(unreachable(link))
    return timeoutAfterIo(Effect.zipRight(Effect.interruptible(waitReady(client)), command), commandTimeout, () => {
      if (client.isReady) return slow()
      link.down = true
      return unreachable(link)
    })
  })

/** Runs a script by its SHA, sending its source when Redis does not know it (after a restart). */
const evalScript = (link: Link, s: Script, keys: ReadonlyArray<string>, args: ReadonlyArray<string>) =>
  send(link, ["EVALSHA", s.sha, String(keys.length), ...keys, ...args]).pipe(
    Effect.catchIf(
      (failure) => failure.noScript === true,
      () => send(link, ["EVAL", s.source, String(keys.length), ...keys, ...args])
    )
  )

/** Follows the client's connection through its events, for the scope's lifetime. */
const follow = (link: Link) => {
  const { client } = link.settings
  const onError = (error: unknown) => {
    link.lastError = messageOf(error)
  }
  const onReady = () => {
    link.down = false
    link.lastError = undefined
  }
  return Effect.acquireRelease(
    Effect.sync(() => {
      client.on("error", onError)
      client.on("ready", onReady)
    }),
    () =>
      Effect.sync(() => {
        client.off("error", onError)
        client.off("ready", onReady)
      })
  )
}

// -----------------------------------------------------------------------------
// A client of the store's own
// -----------------------------------------------------------------------------

/**
 * node-redis, loaded when a store opens a client of its own: importing the store loads none of
 * its half a megabyte, and a store over an application's client never loads it at all. Missing,
 * it is a broken installation (a required peer).
 */
const loadRedis = Effect.tryPromise({ try: () => import("redis"), catch: messageOf }).pipe(
  Effect.orDieWith((cause) =>
    new globalThis.Error(`RedisTokenStore needs the redis package (npm install redis): ${cause}`)
  )
)

/** A client on `url`, closed with the scope; it connects in `connectFirst`. */
export const openClient = (url: string, commandTimeout: Duration.Duration) =>
  Effect.flatMap(loadRedis, ({ createClient }) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        const client = createClient({
          url,
          // Fail fast while disconnected: the store waits for a reconnection itself, bounded.
          disableOfflineQueue: true,
          socket: {
            connectTimeout: Math.max(1, Duration.toMillis(commandTimeout)),
            reconnectStrategy: (retries: number) =>
              Math.round(Math.min(50 * 2 ** retries, 1000) * (0.75 + Math.random() / 2))
          }
        })
        // The store reads errors through its own listener; this one outlives it, so that a
        // late error while closing is never an unhandled 'error' event.
        client.on("error", () => {})
        return client
      }),
      (client) => Effect.sync(() => client.isOpen && client.destroy())
    ))

/** The URL's password, in both the forms a URL may spell it: kept out of every message. */
export const secretsOf = (url: string): Array<string> => {
  const raw = new URL(url).password
  let decoded = raw
  try {
    decoded = decodeURIComponent(raw)
  } catch {
    // not percent-encoded: the raw form is the only one
  }
  return [...new Set([raw, decoded])].filter((secret) => secret !== "")
}

/**
 * The first connection: ready, refused or slow, whichever comes first. Only a refusal (or
 * another connection error) marks Redis as down at once; a slow start leaves the first command
 * to wait for the connection again, as in any outage.
 */
export const connectFirst = (
  client: RedisClient & { connect(): Promise<unknown> },
  settings: Settings,
  markDown: (reason: string) => Effect.Effect<void>
) =>
  timeoutAfterIo(
    Effect.async<Option.Option<string>>((resume) => {
      const ready = () => resume(Effect.succeedNone)
      const failed = (error: unknown) => resume(Effect.succeed(Option.some(messageOf(error))))
      client.on("ready", ready)
      client.on("error", failed)
      client.connect().catch(() => {}) // rejects only when closed meanwhile
      return Effect.sync(() => {
        client.off("ready", ready)
        client.off("error", failed)
      })
    }),
    settings.commandTimeout,
    () => `no connection within ${Duration.toMillis(settings.commandTimeout)} ms`
  ).pipe(
    Effect.catchAll((slow) =>
      Effect.as(Effect.logWarning(`Redis at ${settings.where} is slow to answer (${slow})`), Option.none())
    ),
    Effect.flatMap((refused) =>
      Option.isNone(refused) || client.isReady ? Effect.void : Effect.zipRight(
        markDown(refused.value),
        Effect.logWarning(
          `Could not connect to Redis at ${settings.where} (${refused.value}); reconnecting in the background, ` +
            "and renewing tokens without it meanwhile"
        )
      )
    )
  )

// -----------------------------------------------------------------------------
// The store
// -----------------------------------------------------------------------------

/** The store over `settings.client`, and `markDown` for a first connection that failed. */
export const make = (settings: Settings) =>
  Effect.gen(function*() {
    const link: Link = { settings, lastError: undefined, down: false }
    yield* follow(link)
    const { keys } = settings
    const withLock = yield* StoreLock.make(lockStorage(link), {
      store: "redis",
      name: `Redis lock ${keys.lock}`,
      where: `${settings.where} (key ${keys.lock})`,
      lease: settings.lockLease,
      timeout: settings.lockTimeout,
      whenUnavailable: settings.whenUnavailable,
      localProcess: { pid: process.pid, hostname: Os.hostname(), isAlive: () => Effect.succeed(true) },
      lost: RedisMetrics.lockLost,
      unavailable: RedisMetrics.unavailable
    })
    const span = (name: string) => Effect.withSpan(name, { attributes: { store: "redis", key: keys.token } })
    return {
      store: TokenStore.TokenStore.of({
        description: `redis ${settings.where} ${keys.token}`,
        load: span("TokenStore.load")(load(link)),
        save: (data, replacing) => span("TokenStore.save")(save(link, data, replacing)),
        remove: send(link, ["DEL", keys.token]).pipe(
          Effect.catchAll(storeError(link, "remove")),
          Effect.asVoid,
          span("TokenStore.remove")
        ),
        withLock
      }),
      /** Marks Redis as down at once (the first connection failed): no command waits for it. */
      markDown: (reason: string) =>
        Effect.sync(() => {
          if (settings.client.isReady) return
          link.down = true
          link.lastError = reason
        })
    }
  })

const storeError = (link: Link, operation: TokenError.TokenStoreError["operation"]) => (failure: RedisFailure) =>
  Effect.zipRight(
    Metric.increment(Metric.tagged(RedisMetrics.unavailable, "operation", operation)),
    Effect.fail(
      new TokenError.TokenStoreError({
        store: "redis",
        operation,
        path: `${link.settings.where} (key ${link.settings.keys.token})`,
        reason: failure.reason
      })
    )
  )

const load = (link: Link) =>
  send(link, ["GET", link.settings.keys.token]).pipe(
    Effect.catchAll(storeError(link, "load")),
    Effect.flatMap((reply) => {
      if (reply === null || reply === undefined) return Effect.succeedNone
      const { keys, where } = link.settings
      const text = textOf(reply)
      const decoded = text === undefined
        ? new TokenEnvelope.Unreadable({ reason: "unreadable", detail: "it is not a string" })
        : TokenEnvelope.decode(text, envelopeOptions(link))
      return decoded.pipe(
        Effect.asSome,
        Effect.catchAll((unreadable) =>
          Effect.as(
            Effect.zipRight(
              Metric.increment(Metric.tagged(RedisMetrics.corrupt, "reason", unreadable.reason)),
              Effect.logWarning(
                `The token in Redis (${where} ${keys.token}) cannot be used: ${unreadable.detail}; ` +
                  "treating it as missing, so a new token will be obtained"
              )
            ),
            Option.none<TokenData.TokenData>()
          )
        )
      )
    })
  )

const envelopeOptions = (link: Link): TokenEnvelope.Options => ({
  store: "redis",
  account: link.settings.account,
  keys: link.settings.encryptionKeys
})

/** The compare-and-set (`saveScript`): answers the token Redis holds afterwards. */
const save = (link: Link, data: TokenData.TokenData, replacing: TokenData.TokenData | undefined) =>
  Effect.gen(function*() {
    const { keys } = link.settings
    const now = yield* Clock.currentTimeMillis
    const expiresAt = DateTime.toEpochMillis(data.expiresAt)
    // The key lives as long as the token has left, by this process's clock (see PX below).
    const ttl = Math.ceil(expiresAt - now)
    if (ttl <= 0) {
      yield* Effect.logDebug(`Not saving an already expired token to Redis (${keys.token})`)
      return data
    }
    const replaced = replacing === undefined ? "" : yield* TokenEnvelope.fingerprint(replacing, "redis")
    const reply = yield* evalScript(link, saveScript, [keys.token], [
      yield* TokenEnvelope.encode(data, envelopeOptions(link)),
      String(expiresAt),
      String(ttl),
      replaced
    ]).pipe(Effect.catchAll(storeError(link, "save")))
    const [written, stored] = Array.isArray(reply) ? reply : [reply]
    if (Number(written) === 1) return data
    yield* Metric.increment(RedisMetrics.saveRejections)
    const kept = yield* Effect.either(TokenEnvelope.decode(textOf(stored) ?? "", envelopeOptions(link)))
    if (Either.isLeft(kept)) {
      return yield* new TokenError.TokenStoreError({
        store: "redis",
        operation: "save",
        path: `${link.settings.where} (key ${keys.token})`,
        reason: `it keeps a token that expires later, which this process cannot read: ${kept.left.detail}`
      })
    }
    yield* Effect.logWarning(
      `Kept the token already in Redis (${keys.token}): it expires at ${
        DateTime.formatIso(kept.right.expiresAt)
      }, not before this process's new one (${
        DateTime.formatIso(data.expiresAt)
      }), so another process renewed meanwhile`
    )
    return kept.right
  })

// --- the lock ------------------------------------------------------------------

/** Who holds a lock, as stored in it: readable in `redis-cli GET`, unique per acquisition. */
const ownerValue = (owner: StoreLock.Owner) => JSON.stringify({ host: owner.host, pid: owner.pid, nonce: owner.nonce })

const describeOwnerValue = (value: string | undefined): string => {
  try {
    const owner = JSON.parse(value ?? "") as { host?: unknown; pid?: unknown }
    return typeof owner.host === "string" && typeof owner.pid === "number"
      ? StoreLock.describeOwner({ host: owner.host, pid: owner.pid })
      : "another process"
  } catch {
    return "another process"
  }
}

/**
 * The lock's storage: `SET NX PX` to take it, compare-and-extend and compare-and-delete scripts
 * to extend and release it. Redis expires a lock whose holder died: nothing is ever stale here.
 */
const lockStorage = (link: Link): StoreLock.Storage => {
  const { keys, lockLease } = link.settings
  const lease = String(Duration.toMillis(lockLease))
  const reason = (failure: RedisFailure) => failure.reason
  const ours = (script: Script, args: ReadonlyArray<string>) =>
    evalScript(link, script, [keys.lock], args).pipe(
      Effect.map((reply) => Number(reply) === 1),
      Effect.mapError(reason)
    )
  return {
    take: (owner) =>
      send(link, ["SET", keys.lock, ownerValue(owner), "NX", "PX", lease]).pipe(
        Effect.map((reply): StoreLock.Attempt =>
          textOf(reply) === "OK" ? { _tag: "Taken" } : { _tag: "Busy", holder: "another process" }
        ),
        // The SET may still run once Redis answers again. Queued behind it on the same
        // connection, this release frees the lock then instead of at the end of its lease.
        // EVAL, not EVALSHA: nobody waits for a NOSCRIPT answer to send the script after it.
        Effect.tapError((failure) =>
          failure.timedOut === true
            ? Effect.forkDaemon(
              Effect.ignore(send(link, ["EVAL", releaseScript.source, "1", keys.lock, ownerValue(owner)]))
            )
            : Effect.void
        ),
        Effect.mapError(reason)
      ),
    extend: (owner) => ours(extendScript, [ownerValue(owner), lease]),
    release: (owner) => ours(releaseScript, [ownerValue(owner)]),
    holder: send(link, ["GET", keys.lock]).pipe(
      Effect.map((reply) => describeOwnerValue(textOf(reply))),
      Effect.orElseSucceed(() => "another process")
    )
  }
}
