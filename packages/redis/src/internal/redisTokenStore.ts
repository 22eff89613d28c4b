/**
 * The Redis token store over any node-redis client: `RedisTokenStore.ts` says what it promises.
 *
 * @internal
 */
import { type EncryptionKey, type TokenData, TokenEnvelope, TokenError, TokenStore } from "@amp-effect/core"
import * as StoreLock from "@amp-effect/core/StoreLock"
import { Clock, Data, DateTime, Duration, Effect, Either, Metric, Option, Schema } from "effect"
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

export interface Settings {
  /** Where the store is, for messages: `redis://cache:6379` (never a password). */
  readonly where: string
  /** Texts no message may quote (the URL's password). */
  readonly secrets: ReadonlyArray<string>
  /** The account's hash, bound into sealed values. */
  readonly account: string
  readonly keys: ReturnType<typeof keysFor>
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
export const keysFor = (prefix: string, hash: string) => ({
  token: `${prefix}:{${hash}}:token`,
  lock: `${prefix}:{${hash}}:lock`
})

const script = (source: string) => ({ source, sha: createHash("sha1").update(source).digest("hex") })

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

/** A command that got no usable answer: Redis unreachable, too slow, or answering an error. */
class RedisFailure extends Data.TaggedError("RedisFailure")<{
  readonly reason: string
  /** The command may have run anyway: its answer did not come in time. */
  readonly timedOut?: boolean
  readonly noScript?: boolean
}> {}

/**
 * `Effect.timeoutFail`, but failing only after letting pending I/O in: a process starved of CPU
 * runs its expired timers before it reads the answers waiting on its sockets, and would
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

/** A reply as text: node-redis answers strings, or buffers under a type mapping. */
const textOf = (reply: unknown): string => reply instanceof Uint8Array ? new TextDecoder().decode(reply) : String(reply)

/** The client and what the store knows of its connection. */
export interface Link {
  readonly client: RedisClient
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

/** `Effect.async` runs its returned effect only when interrupted: a listener that fired removes itself. */
const waitReady = (client: RedisClient) =>
  Effect.async<void>((resume) => {
    if (client.isReady) return resume(Effect.void)
    const ready = () => {
      client.off("ready", ready)
      resume(Effect.void)
    }
    client.on("ready", ready)
    return Effect.sync(() => client.off("ready", ready))
  })

/**
 * Sends one command with a timeout. During an outage the first command waits up to the timeout
 * for a reconnection (a restarted Redis is back in milliseconds), later ones fail at once.
 */
const send = (link: Link, args: Array<string>): Effect.Effect<unknown, RedisFailure> =>
  Effect.suspend(() => {
    const { client } = link
    const timeout = link.settings.commandTimeout
    if (!client.isOpen) {
      const reason = "the Redis client is closed (an application's client must be connected before use)"
      return Effect.fail(new RedisFailure({ reason }))
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
    if (link.down) return Effect.fail(unreachable(link))
    return timeoutAfterIo(Effect.zipRight(Effect.interruptible(waitReady(client)), command), timeout, () => {
      if (client.isReady) {
        const reason = `Redis did not answer ${args[0]} within ${Duration.toMillis(timeout)} ms`
        return new RedisFailure({ reason, timedOut: true })
      }
      link.down = true
      return unreachable(link)
    })
  })

/** Runs a script by its SHA, sending its source when Redis does not know it (after a restart). */
const evalScript = (link: Link, s: ReturnType<typeof script>, key: string, args: ReadonlyArray<string>) =>
  send(link, ["EVALSHA", s.sha, "1", key, ...args]).pipe(
    Effect.catchIf(
      (failure) => failure.noScript === true,
      () => send(link, ["EVAL", s.source, "1", key, ...args])
    )
  )

/**
 * node-redis, loaded only when a store opens a client of its own (half a megabyte). Missing, it
 * is a broken installation (a required peer).
 */
const loadRedis = Effect.tryPromise({ try: () => import("redis"), catch: messageOf }).pipe(
  Effect.orDieWith((cause) =>
    new globalThis.Error(`RedisTokenStore needs the redis package (npm install redis): ${cause}`)
  )
)

/** Reconnection delays: 50 ms doubling up to 1 s, each ±25 % so that a fleet spreads out. */
export const reconnectDelay = (retries: number): number =>
  Math.round(Math.min(50 * 2 ** retries, 1000) * (0.75 + Math.random() / 2))

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
            reconnectStrategy: reconnectDelay
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
  const decoded = Either.getOrElse(Either.try(() => decodeURIComponent(raw)), () => raw)
  return [...new Set([raw, decoded])].filter((secret) => secret !== "")
}

/**
 * The first connection: ready, refused or slow, whichever comes first. Only a refusal marks
 * Redis as down at once; after a slow start the first command waits again, as in any outage.
 */
export const connectFirst = (link: Link & { readonly client: { connect(): Promise<unknown> } }) => {
  const { client, settings } = link
  const connected = Effect.async<void, string>((resume) => {
    const settle = (outcome: Effect.Effect<void, string>) => {
      stop()
      resume(outcome)
    }
    const ready = () => settle(Effect.void)
    const failed = (error: unknown) => settle(Effect.fail(messageOf(error)))
    const stop = () => {
      client.off("ready", ready)
      client.off("error", failed)
    }
    client.on("ready", ready)
    client.on("error", failed)
    client.connect().catch(() => {}) // rejects only when closed meanwhile
    return Effect.sync(stop)
  })
  const wait = Duration.toMillis(settings.commandTimeout)
  return timeoutAfterIo(connected, settings.commandTimeout, () => undefined).pipe(
    Effect.catchAll((refused) => {
      if (refused === undefined) {
        return Effect.logWarning(`Redis at ${settings.where} is slow to answer (no connection within ${wait} ms)`)
      }
      if (client.isReady) return Effect.void
      link.down = true
      link.lastError = refused
      return Effect.logWarning(
        `Could not connect to Redis at ${settings.where} (${scrub(link, refused)}); reconnecting in the background, ` +
          "and renewing tokens without it meanwhile"
      )
    })
  )
}

/** The store over `client`, and its link for `connectFirst`; follows the client's events. */
export const make = <C extends RedisClient>(client: C, settings: Settings) =>
  Effect.gen(function*() {
    const link = { client, settings, lastError: undefined as string | undefined, down: false }
    const onError = (error: unknown) => {
      link.lastError = messageOf(error)
    }
    const onReady = () => {
      link.down = false
      link.lastError = undefined
    }
    yield* Effect.acquireRelease(
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
    const store = TokenStore.TokenStore.of({
      description: `redis ${settings.where} ${keys.token}`,
      load: span("TokenStore.load")(load(link)),
      save: (data, replacing) => span("TokenStore.save")(save(link, data, replacing)),
      remove: send(link, ["DEL", keys.token]).pipe(
        Effect.catchAll(storeError(link, "remove")),
        Effect.asVoid,
        span("TokenStore.remove")
      ),
      withLock
    })
    return { store, link }
  })

const tokenKey = (link: Link) => `${link.settings.where} (key ${link.settings.keys.token})`

const storeError = (link: Link, operation: TokenError.TokenStoreError["operation"]) => (failure: RedisFailure) =>
  Effect.zipRight(
    Metric.increment(Metric.tagged(RedisMetrics.unavailable, "operation", operation)),
    new TokenError.TokenStoreError({ store: "redis", operation, path: tokenKey(link), reason: failure.reason })
  )

const envelope = (link: Link): TokenEnvelope.Options => ({
  store: "redis",
  account: link.settings.account,
  keys: link.settings.encryptionKeys
})

const load = (link: Link) =>
  Effect.gen(function*() {
    const { keys, where } = link.settings
    const reply = yield* send(link, ["GET", keys.token]).pipe(Effect.catchAll(storeError(link, "load")))
    // node-redis answers null for a missing key, never undefined.
    if (reply === null) return Option.none<TokenData.TokenData>()
    const decoded = yield* Effect.either(TokenEnvelope.decode(textOf(reply), envelope(link)))
    if (Either.isRight(decoded)) return Option.some(decoded.right)
    yield* Metric.increment(Metric.tagged(RedisMetrics.corrupt, "reason", decoded.left.reason))
    yield* Effect.logWarning(
      `The token in Redis (${where} ${keys.token}) cannot be used: ${decoded.left.detail}; ` +
        "treating it as missing, so a new token will be obtained"
    )
    return Option.none<TokenData.TokenData>()
  })

/** The compare-and-set (`saveScript`): answers the token Redis holds afterwards. */
const save = (link: Link, data: TokenData.TokenData, replacing: TokenData.TokenData | undefined) =>
  Effect.gen(function*() {
    const { keys } = link.settings
    const expiresAt = DateTime.toEpochMillis(data.expiresAt)
    // The key lives as long as the token has left, by this process's clock (see PX below).
    const ttl = expiresAt - (yield* Clock.currentTimeMillis)
    if (ttl <= 0) {
      yield* Effect.logDebug(`Not saving an already expired token to Redis (${keys.token})`)
      return data
    }
    const reply = yield* evalScript(link, saveScript, keys.token, [
      yield* TokenEnvelope.encode(data, envelope(link)),
      String(expiresAt),
      String(ttl),
      replacing === undefined ? "" : yield* TokenEnvelope.fingerprint(replacing, "redis")
    ]).pipe(Effect.catchAll(storeError(link, "save")))
    const [written, stored] = reply as ReadonlyArray<unknown>
    if (Number(written) === 1) return data
    yield* Metric.increment(RedisMetrics.saveRejections)
    const kept = yield* TokenEnvelope.decode(textOf(stored), envelope(link)).pipe(
      Effect.catchTag("Unreadable", ({ detail }) =>
        new TokenError.TokenStoreError({
          store: "redis",
          operation: "save",
          path: tokenKey(link),
          reason: `it keeps a token that expires later, which this process cannot read: ${detail}`
        }))
    )
    yield* Effect.logWarning(
      `Kept the token already in Redis (${keys.token}): it expires at ${DateTime.formatIso(kept.expiresAt)}, ` +
        `not before this process's new one (${
          DateTime.formatIso(data.expiresAt)
        }), so another process renewed meanwhile`
    )
    return kept
  })

/** Who holds a lock, as stored in it: readable in `redis-cli GET`, unique per acquisition. */
const ownerValue = (owner: StoreLock.Owner) => JSON.stringify({ host: owner.host, pid: owner.pid, nonce: owner.nonce })

const decodeOwner = Schema.decodeOption(Schema.parseJson(Schema.Struct({ host: Schema.String, pid: Schema.Number })))

/**
 * The lock's storage: `SET NX PX` to take it, compare-and-extend and compare-and-delete scripts
 * to extend and release it. Redis expires a lock whose holder died: nothing is ever stale here.
 */
const lockStorage = (link: Link): StoreLock.Storage => {
  const { keys, lockLease } = link.settings
  const lease = String(Duration.toMillis(lockLease))
  const reason = (failure: RedisFailure) => failure.reason
  const ours = (s: ReturnType<typeof script>, args: ReadonlyArray<string>) =>
    evalScript(link, s, keys.lock, args).pipe(Effect.map((reply) => Number(reply) === 1), Effect.mapError(reason))
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
      Effect.map((reply) =>
        Option.match(decodeOwner(textOf(reply)), { onNone: () => "another process", onSome: StoreLock.describeOwner })
      ),
      Effect.orElseSucceed(() => "another process")
    )
  }
}
