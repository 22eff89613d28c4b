/**
 * The Redis token store: one token key and one lock key per AMP account, over any node-redis
 * client. See `RedisTokenStore.ts` for what it promises; this file is how.
 *
 * @internal
 */
import { type TokenData, TokenError, TokenMetrics, TokenStore } from "@amp-effect/core"
import { Clock, Data, DateTime, Duration, Effect, Either, Metric, Option, Schedule, Scope } from "effect"
import { createHash, randomBytes } from "node:crypto"
import * as Os from "node:os"
import type { EncryptionKey } from "../EncryptionKey.js"
import * as RedisMetrics from "../RedisMetrics.js"
import type { RedisClient } from "../RedisTokenStore.js"
import * as Envelope from "./envelope.js"

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
  readonly encryptionKeys: ReadonlyArray<EncryptionKey>
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
  readonly timedOut: boolean
  readonly noScript: boolean
}> {}

class Busy extends Data.TaggedError("Busy") {}

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

/**
 * Sends commands with a timeout each. When the client is not connected, the first command of
 * an outage waits up to the timeout for it to reconnect (a restarted Redis is back in
 * milliseconds); if it does not, later commands fail at once until it is back.
 */
const makeConnection = (settings: Settings) =>
  Effect.gen(function*() {
    const { client } = settings
    const timeoutMillis = Duration.toMillis(settings.commandTimeout)
    let lastError: string | undefined
    let down = false
    const onError = (error: unknown) => {
      lastError = messageOf(error)
    }
    const onReady = () => {
      down = false
      lastError = undefined
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

    // The URL's password, should a message ever quote it (none of node-redis's do).
    const scrub = (text: string) =>
      settings.secrets.reduce((safe, secret) => secret.length < 4 ? safe : safe.split(secret).join("<redacted>"), text)
    const unreachable = () =>
      new RedisFailure({
        reason: scrub(`Redis is unreachable${lastError === undefined ? "" : ` (${lastError})`}`),
        timedOut: false,
        noScript: false
      })

    const waitReady = Effect.async<void>((resume) => {
      if (client.isReady) return resume(Effect.void)
      const ready = () => resume(Effect.void)
      client.on("ready", ready)
      return Effect.sync(() => client.off("ready", ready))
    })

    const send = (args: Array<string>): Effect.Effect<unknown, RedisFailure> =>
      Effect.suspend(() => {
        if (!client.isOpen) {
          return Effect.fail(
            new RedisFailure({
              reason: "the Redis client is closed (an application's client must be connected before use)",
              timedOut: false,
              noScript: false
            })
          )
        }
        // Interruptible even where the caller is not (a lock's acquisition and release), so
        // that the timeout can always abandon a command Redis does not answer.
        const command = Effect.interruptible(Effect.tryPromise({
          try: (signal) => client.sendCommand(args, { abortSignal: signal }),
          catch: (error) =>
            client.isReady
              ? new RedisFailure({
                reason: scrub(`Redis answered ${args[0]} with an error: ${messageOf(error)}`),
                timedOut: false,
                noScript: messageOf(error).startsWith("NOSCRIPT")
              })
              : unreachable()
        }))
        if (client.isReady) {
          return timeoutAfterIo(command, settings.commandTimeout, () =>
            new RedisFailure({
              reason: `Redis did not answer ${args[0]} within ${timeoutMillis} ms`,
              timedOut: true,
              noScript: false
            }))
        }
        if (down) return Effect.fail(unreachable())
        return timeoutAfterIo(
          Effect.zipRight(Effect.interruptible(waitReady), command),
          settings.commandTimeout,
          () => {
            if (client.isReady) {
              return new RedisFailure({
                reason: `Redis did not answer ${args[0]} within ${timeoutMillis} ms`,
                timedOut: true,
                noScript: false
              })
            }
            down = true
            return unreachable()
          }
        )
      })

    /** Runs a script by its SHA, sending its source when Redis does not know it (after a restart). */
    const evalScript = (s: Script, keys: ReadonlyArray<string>, args: ReadonlyArray<string>) =>
      send(["EVALSHA", s.sha, String(keys.length), ...keys, ...args]).pipe(
        Effect.catchIf(
          (failure) => failure.noScript,
          () => send(["EVAL", s.source, String(keys.length), ...keys, ...args])
        )
      )

    /** Marks Redis as down at once (the first connection failed): no command waits for it. */
    const markDown = (reason: string | undefined) =>
      Effect.sync(() => {
        if (client.isReady) return
        down = true
        lastError = reason ?? lastError
      })

    return { send, evalScript, markDown, unreachable }
  })

// -----------------------------------------------------------------------------
// The store
// -----------------------------------------------------------------------------

/** Who holds a lock, as stored in it: readable in `redis-cli GET`, unique per acquisition. */
const ownerValue = () =>
  JSON.stringify({ host: Os.hostname(), pid: process.pid, nonce: randomBytes(12).toString("hex") })

const describeOwner = (value: string | undefined): string => {
  if (value === undefined) return "another process"
  try {
    const owner = JSON.parse(value) as { host?: unknown; pid?: unknown }
    return typeof owner.host === "string" && typeof owner.pid === "number"
      ? `process ${owner.pid} on ${owner.host}`
      : "another process"
  } catch {
    return "another process"
  }
}

interface Holding {
  readonly owner: string
  lost: boolean
}

/** What the store's operations work with: its settings, its connection, and what follows from them. */
interface Context {
  readonly settings: Settings
  readonly connection: Effect.Effect.Success<ReturnType<typeof makeConnection>>
  readonly keys: Keys
  readonly where: string
  readonly leaseMillis: number
}

export const make = (settings: Settings) =>
  Effect.gen(function*() {
    const connection = yield* makeConnection(settings)
    const ctx: Context = {
      settings,
      connection,
      keys: settings.keys,
      where: settings.where,
      leaseMillis: Duration.toMillis(settings.lockLease)
    }
    // Fibers of this process queue here, so only one of them polls Redis.
    const semaphore = yield* Effect.makeSemaphore(1)
    const withLock = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | TokenError.TokenStoreError, R> =>
      semaphore.withPermits(1)(
        Effect.acquireUseRelease(
          Scope.make(),
          (scope) => Effect.zipRight(Scope.extend(held(ctx), scope), effect),
          (scope, exit) => Scope.close(scope, exit)
        )
      ).pipe(Effect.withSpan("TokenStore.withLock", { attributes: { store: "redis" } }))
    return {
      store: TokenStore.TokenStore.of({
        description: `redis ${ctx.where} ${ctx.keys.token}`,
        load: load(ctx),
        save: (data, replacing) => save(ctx, data, replacing),
        remove: remove(ctx),
        withLock
      }),
      markDown: connection.markDown
    }
  })

const storeError =
  (ctx: Context, operation: TokenError.TokenStoreError["operation"], key: string) => (failure: RedisFailure) =>
    Effect.zipRight(
      Metric.increment(Metric.tagged(RedisMetrics.unavailable, "operation", operation)),
      Effect.fail(new TokenError.TokenStoreError({ operation, path: `${ctx.where} ${key}`, reason: failure.reason }))
    )

const load = (ctx: Context) =>
  ctx.connection.send(["GET", ctx.keys.token]).pipe(
    Effect.catchAll(storeError(ctx, "load", ctx.keys.token)),
    Effect.flatMap((reply) => {
      if (reply === null || reply === undefined) return Effect.succeedNone
      const text = textOf(reply)
      const decoded = text === undefined
        ? Either.left<Envelope.Unreadable>({ reason: "unreadable", detail: "it is not a string" })
        : Envelope.decode(text, ctx.settings.account, ctx.settings.encryptionKeys)
      if (Either.isRight(decoded)) return Effect.succeed(Option.some(decoded.right))
      return Effect.as(
        Effect.zipRight(
          Metric.increment(Metric.tagged(RedisMetrics.corrupt, "reason", decoded.left.reason)),
          Effect.logWarning(
            `The token in Redis (${ctx.where} ${ctx.keys.token}) cannot be used: ${decoded.left.detail}; ` +
              "treating it as missing, so a new token will be obtained"
          )
        ),
        Option.none<TokenData.TokenData>()
      )
    }),
    Effect.withSpan("TokenStore.load", { attributes: { store: "redis", key: ctx.keys.token } })
  )

const save = (ctx: Context, data: TokenData.TokenData, replacing: TokenData.TokenData | undefined) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const expiresAt = DateTime.toEpochMillis(data.expiresAt)
    // The key lives as long as the token has left, by this process's clock (see PX below).
    const ttl = Math.ceil(expiresAt - now)
    if (ttl <= 0) {
      yield* Effect.logDebug(`Not saving an already expired token to Redis (${ctx.keys.token})`)
      return data
    }
    const envelope = Envelope.encode(data, ctx.settings.account, ctx.settings.encryptionKeys[0])
    const replaced = replacing === undefined ? "" : Envelope.fingerprint(replacing)
    const reply = yield* ctx.connection.evalScript(
      saveScript,
      [ctx.keys.token],
      [envelope, String(expiresAt), String(ttl), replaced]
    ).pipe(Effect.catchAll(storeError(ctx, "save", ctx.keys.token)))
    const [written, stored] = Array.isArray(reply) ? reply : [reply]
    if (Number(written) === 1) return data
    yield* Metric.increment(RedisMetrics.saveRejections)
    const kept = Envelope.decode(textOf(stored) ?? "", ctx.settings.account, ctx.settings.encryptionKeys)
    if (Either.isLeft(kept)) {
      return yield* new TokenError.TokenStoreError({
        operation: "save",
        path: `${ctx.where} ${ctx.keys.token}`,
        reason: `it keeps a token that expires later, which this process cannot read: ${kept.left.detail}`
      })
    }
    yield* Effect.logWarning(
      `Kept the token already in Redis (${ctx.keys.token}): it expires at ${
        DateTime.formatIso(kept.right.expiresAt)
      }, not before this process's new one (${
        DateTime.formatIso(data.expiresAt)
      }), so another process renewed meanwhile`
    )
    return kept.right
  }).pipe(Effect.withSpan("TokenStore.save", { attributes: { store: "redis", key: ctx.keys.token } }))

const remove = (ctx: Context) =>
  ctx.connection.send(["DEL", ctx.keys.token]).pipe(
    Effect.catchAll(storeError(ctx, "remove", ctx.keys.token)),
    Effect.asVoid,
    Effect.withSpan("TokenStore.remove", { attributes: { store: "redis", key: ctx.keys.token } })
  )

// --- the lock ------------------------------------------------------------------

/** The lock, held for the current scope: its release and the lease extension registered there. */
const held = (ctx: Context) =>
  Effect.acquireRelease(
    acquire(ctx),
    Option.match({ onNone: () => Effect.void, onSome: (holding) => release(ctx, holding) })
  ).pipe(
    Effect.tap(Option.match({
      onNone: () => Effect.void,
      onSome: (holding) => Effect.forkScoped(keepExtending(ctx, holding))
    }))
  )

/**
 * Polls at 10, 20, 40... ms, at most every 100 ms, jittered so waiters do not move in step: a
 * few commands a second per waiter, and the lock changes hands soon after its release.
 */
const backoff = (ctx: Context) =>
  Schedule.exponential(Duration.millis(10), 2).pipe(
    Schedule.union(Schedule.spaced(Duration.millis(100))),
    Schedule.jittered,
    Schedule.upTo(ctx.settings.lockTimeout)
  )

const lost = (ctx: Context, holding: Holding) =>
  Effect.suspend(() => {
    if (holding.lost) return Effect.void
    holding.lost = true
    return Effect.zipRight(
      Metric.increment(RedisMetrics.lockLost),
      Effect.logWarning(
        `Lost the Redis lock ${ctx.keys.lock}: its lease (${ctx.leaseMillis} ms) ran out while this process held it, ` +
          "so another process may be renewing too (a token it saves is kept if it expires later)"
      )
    )
  })

/** Deletes our lock, unless it is someone else's by now. Never fails. */
const release = (ctx: Context, holding: Holding) =>
  ctx.connection.evalScript(releaseScript, [ctx.keys.lock], [holding.owner]).pipe(
    Effect.flatMap((reply) => Number(reply) === 1 ? Effect.void : lost(ctx, holding)),
    Effect.catchAll((failure) =>
      Effect.zipRight(
        Metric.increment(Metric.tagged(RedisMetrics.unavailable, "operation", "release")),
        Effect.logWarning(
          `Could not release the Redis lock ${ctx.keys.lock} (${failure.reason}); ` +
            `others take it when its lease runs out, within ${ctx.leaseMillis} ms`
        )
      )
    )
  )

/** Extends the lease every third of it while held; stops once the lock is lost. */
const keepExtending = (ctx: Context, holding: Holding) =>
  Effect.sleep(Duration.millis(ctx.leaseMillis / 3)).pipe(
    Effect.zipRight(
      ctx.connection.evalScript(extendScript, [ctx.keys.lock], [holding.owner, String(ctx.leaseMillis)])
    ),
    Effect.flatMap((reply) => Number(reply) === 1 ? Effect.succeed(true) : Effect.as(lost(ctx, holding), false)),
    // A missed extension is no loss yet: the lease still runs. The next one will tell.
    Effect.catchAll((failure) =>
      Effect.as(
        Effect.zipRight(
          Metric.increment(Metric.tagged(RedisMetrics.unavailable, "operation", "extend")),
          Effect.logDebug(`Could not extend the Redis lock ${ctx.keys.lock}: ${failure.reason}`)
        ),
        true
      )
    ),
    Effect.repeat({ while: (holding) => holding })
  )

/**
 * Takes the lock, waiting while another process holds it. `None` when Redis is unavailable and
 * the store proceeds without it.
 */
const acquire = (ctx: Context) =>
  Effect.gen(function*() {
    const keys = ctx.keys
    const send = ctx.connection.send
    const owner = ownerValue()
    let attempts = 0
    const attempt = Effect.suspend(() => {
      attempts++
      return send(["SET", keys.lock, owner, "NX", "PX", String(ctx.leaseMillis)])
    }).pipe(Effect.flatMap((reply) => textOf(reply) === "OK" ? Effect.void : Effect.fail(new Busy())))
    // The wait can be interrupted (acquireRelease would otherwise shield it): at worst a lock
    // taken just before the interruption stays until its lease runs out.
    const outcome = yield* attempt.pipe(
      Effect.retry({ schedule: backoff(ctx), while: (error) => error._tag === "Busy" }),
      Effect.interruptible,
      Effect.either
    )
    yield* Effect.annotateCurrentSpan({ attempts, waited: attempts > 1 })
    if (attempts > 1) yield* Metric.increment(TokenMetrics.lockWaits)
    if (Either.isRight(outcome)) return Option.some<Holding>({ owner, lost: false })
    const failure = outcome.left
    if (failure._tag === "Busy") {
      const holder = yield* send(["GET", keys.lock]).pipe(Effect.map(textOf), Effect.orElseSucceed(() => undefined))
      return yield* new TokenError.TokenStoreError({
        operation: "lock",
        path: `${ctx.where} ${keys.lock}`,
        reason: `still held by ${describeOwner(holder)} after waiting ${Duration.format(ctx.settings.lockTimeout)}`
      })
    }
    if (failure.timedOut) {
      // The SET may still run once Redis answers again. Queued behind it on the same
      // connection, this release frees the lock then instead of at the end of its lease.
      // EVAL, not EVALSHA: nobody waits for a NOSCRIPT answer to send the script after it.
      yield* Effect.forkDaemon(Effect.ignore(send(["EVAL", releaseScript.source, "1", keys.lock, owner])))
    }
    yield* Metric.increment(Metric.tagged(RedisMetrics.unavailable, "operation", "lock"))
    if (ctx.settings.whenUnavailable === "fail") {
      return yield* new TokenError.TokenStoreError({
        operation: "lock",
        path: `${ctx.where} ${keys.lock}`,
        reason: failure.reason
      })
    }
    yield* Effect.logWarning(
      `Could not take the Redis lock ${keys.lock} (${failure.reason}); renewing without it, ` +
        "so other processes may log in too until Redis is back"
    )
    return Option.none<Holding>()
  }).pipe(Effect.withSpan("TokenStore.lockWait", { attributes: { store: "redis", lock: ctx.keys.lock } }))
