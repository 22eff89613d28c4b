/**
 * A `TokenStore` in Redis (or Valkey): one token and one renewal for a whole fleet of
 * processes on any number of machines. `TokenService` renews under the store's lock and
 * re-reads the store first, so with this store N replicas make one login, not N.
 *
 * What it does:
 *
 * - **Keys.** `<prefix>:{<hash>}:token` and `<prefix>:{<hash>}:lock`, where the hash is the
 *   first 128 bits of SHA-256 over the base URL and the username (never the username in
 *   clear). The braces are a Redis Cluster hash tag: both keys land in one slot.
 * - **Save is a compare-and-set**, one Lua script: the token is written if nothing is stored,
 *   if the stored token is the one it replaces (recognised by a fingerprint stored beside it,
 *   so a refresh in the same second as its predecessor is saved), or if it expires later. A
 *   refused save answers the stored token, which the token service then serves: the process
 *   and the fleet never disagree. It is logged and counted
 *   (`amp_token_redis_save_rejections_total`), never an error. The key
 *   expires with the token: its time to live is the token's remaining lifetime as the saving
 *   process's `Clock` measures it (`PX`), so neither Redis's clock nor a test's `TestClock`
 *   has to agree with the token's `exp` for the key to outlive the token by nothing.
 * - **The lock** is `SET lock <owner> NX PX <lease>` under the lock kit (`StoreLock` of
 *   `@amp-effect/core`). The owner value names the process (host, pid) and a random nonce. The
 *   lease is extended every third of it while the renewal runs; release is a compare-and-delete
 *   script, so a process only ever deletes its own lock. Waiters poll with jittered backoff and
 *   fail with `TokenStoreError` (operation `"lock"`) after `lockTimeout`. A holder killed mid-renewal
 *   frees the lock when its lease runs out (`lockLease`, 10 s by default). A holder that lost
 *   its lease (paused, Redis stalled) finishes its renewal, but its save is fenced by the
 *   compare-and-set: it never replaces the newer token of the process that took over. The
 *   lease is measured by Redis alone: client clocks play no part in the lock.
 * - **Redis down or stalled.** Every command has a timeout (`commandTimeout`, 2 s). When the
 *   client is disconnected, the first command of an outage waits up to that long for it to
 *   reconnect; the next ones fail at once until it is back. `getToken` with a valid token in
 *   memory never reaches the store at all. `load` and `save` failures are `TokenStoreError`s
 *   that the token service logs and counts before carrying on from memory. When the lock
 *   cannot be had because Redis is unreachable, the renewal goes ahead without it (one login
 *   per replica during an outage), with a warning and `amp_token_redis_unavailable_total
 *   {operation="lock"}`; `whenUnavailable: "fail"` fails it instead. A lock `SET` whose answer
 *   timed out is followed by a release, so a lock taken late is freed at once when Redis wakes.
 * - **Encryption at rest** (optional): AES-256-GCM with the first of `encryptionKey`, the
 *   key's id stored beside the value (see `EncryptionKey`). The stored bytes never contain the
 *   token. A value that does not decrypt (unknown key id, no key configured, tampered) counts as
 *   no token: a warning, `amp_token_redis_corrupt_total`, and a fresh login whose save
 *   replaces it. Values stored in clear are still read after encryption is turned on, so
 *   turning it on costs no login; the next save encrypts.
 *
 * With `@amp-effect/node`, `AMP_TOKEN_STORE=redis` picks this store by itself
 * (`NodeAmp.layerConfig`); the example gives it explicitly.
 *
 * @example
 * ```ts
 * import { TokenService } from "@amp-effect/core"
 * import { NodeAmp } from "@amp-effect/node"
 * import { RedisTokenStore } from "@amp-effect/redis"
 * import { Effect, Redacted } from "effect"
 *
 * const program = Effect.flatMap(TokenService.TokenService, (tokens) => tokens.getToken)
 *
 * const store = RedisTokenStore.layer({
 *   url: Redacted.make("redis://cache:6379"),
 *   account: { baseUrl: "https://amp.blockstream.com/api", username: "svc-issuer" }
 * })
 * const withStore = program.pipe(Effect.provide(NodeAmp.layerWithStore(store)))
 *
 * // Or everything from AMP_REDIS_URL, AMP_REDIS_KEY_PREFIX, AMP_TOKEN_ENCRYPTION_KEY, and the
 * // account from AMP_API_BASE_URL and AMP_USERNAME:
 * const fromEnv = program.pipe(Effect.provide(NodeAmp.layerWithStore(RedisTokenStore.layerConfig())))
 * ```
 *
 * @since 0.1.0
 */
import { AmpConfig, EncryptionKey, TokenStore } from "@amp-effect/core"
import { Config, Duration, Effect, Either, Layer, Option, Redacted, type Scope } from "effect"
import * as internal from "./internal/redisTokenStore.js"
import * as RedisConfig from "./RedisConfig.js"

/**
 * The AMP account whose token is stored: its keys are named from a hash of both. An
 * `AmpConfig` or `AmpConfig.Credentials` value fits as it is.
 *
 * @since 0.1.0
 * @category models
 */
export interface Account {
  readonly baseUrl: string
  readonly username: string
}

/**
 * What the store needs of a node-redis client: `RedisClientType` of `redis` 5 and 6 fits, as
 * do clients from `client.duplicate()` or `client.withTypeMapping(...)`.
 *
 * @since 0.1.0
 * @category models
 */
export type RedisClient = internal.RedisClient

/**
 * Options shared by every constructor.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoreOptions {
  /** Whose token this is. */
  readonly account: Account
  /** First part of every key, `amp-effect` by default (see `RedisConfig.isKeyPrefix`). */
  readonly keyPrefix?: string | undefined
  /**
   * How long the lock stays taken without being extended: how long a killed holder blocks the
   * others. The holder extends it every third of it while it renews. Default 10 seconds.
   */
  readonly lockLease?: Duration.DurationInput | undefined
  /**
   * How long `withLock` waits for another process's lock before failing with a
   * `TokenStoreError` (operation `"lock"`). It should exceed one renewal (with the default
   * retry policy at most about a minute). Default 90 seconds, as the file store.
   */
  readonly lockTimeout?: Duration.DurationInput | undefined
  /** How long one Redis command may take before it counts as failed. Default 2 seconds. */
  readonly commandTimeout?: Duration.DurationInput | undefined
  /**
   * Encrypts the stored token with AES-256-GCM. With several keys the first encrypts and all
   * decrypt (rotation). Default: none, the token is stored in clear.
   */
  readonly encryptionKey?: EncryptionKey.EncryptionKey | ReadonlyArray<EncryptionKey.EncryptionKey> | undefined
  /**
   * When Redis cannot be reached to take the lock: `"proceed"` (the default) renews without it,
   * with a warning and a metric, so a Redis outage costs one login per replica and never a
   * token; `"fail"` fails the renewal with a `TokenStoreError` (operation `"lock"`), which
   * `getToken` survives while its current token is valid.
   */
  readonly whenUnavailable?: "proceed" | "fail" | undefined
}

/**
 * Options of `make` and `layer`: the store's own client, opened on `url`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends StoreOptions {
  /** `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS. */
  readonly url: Redacted.Redacted<string> | string
}

/**
 * Default of `StoreOptions.lockLease`.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultLockLease: Duration.Duration = Duration.seconds(10)

/**
 * Default of `StoreOptions.lockTimeout`.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultLockTimeout: Duration.Duration = Duration.seconds(90)

/**
 * Default of `StoreOptions.commandTimeout`.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultCommandTimeout: Duration.Duration = Duration.seconds(2)

/**
 * The names of an account's token key and lock key, for inspection with `redis-cli` and for
 * tools: `amp-effect:{3f2a…}:token` and `amp-effect:{3f2a…}:lock`.
 *
 * @since 0.1.0
 * @category utils
 */
export const keys = (
  account: Account,
  keyPrefix: string = RedisConfig.defaultKeyPrefix
): { readonly token: string; readonly lock: string } =>
  internal.keysFor(keyPrefix, internal.accountHash(account.baseUrl, account.username))

const positive = (name: string, input: Duration.DurationInput | undefined, fallback: Duration.Duration) => {
  const duration = Duration.decode(input ?? fallback)
  if (!Duration.greaterThan(duration, Duration.zero) || !Duration.isFinite(duration)) {
    throw new globalThis.Error(`RedisTokenStore: ${name} must be a positive, finite duration`)
  }
  return duration
}

const settingsOf = (
  client: RedisClient,
  options: StoreOptions,
  where: string,
  secrets: ReadonlyArray<string>
): internal.Settings => {
  const prefix = options.keyPrefix ?? RedisConfig.defaultKeyPrefix
  if (!RedisConfig.isKeyPrefix(prefix)) {
    throw new globalThis.Error(
      `RedisTokenStore: keyPrefix ${JSON.stringify(prefix)} must be 1 to 64 letters, digits or .:_-/`
    )
  }
  const account = internal.accountHash(options.account.baseUrl, options.account.username)
  const encryptionKeys = options.encryptionKey === undefined
    ? []
    : Array.isArray(options.encryptionKey)
    ? options.encryptionKey
    : [options.encryptionKey as EncryptionKey.EncryptionKey]
  return {
    client,
    where,
    secrets,
    account,
    keys: internal.keysFor(prefix, account),
    lockLease: positive("lockLease", options.lockLease, defaultLockLease),
    lockTimeout: Duration.decode(options.lockTimeout ?? defaultLockTimeout),
    commandTimeout: positive("commandTimeout", options.commandTimeout, defaultCommandTimeout),
    encryptionKeys,
    whenUnavailable: options.whenUnavailable ?? "proceed"
  }
}

/**
 * The store over an application's own connected client, for the lifetime of the scope. The
 * store adds two event listeners (removed when the scope closes) and never closes the client:
 * it did not open it. Invalid options (a key prefix with braces, a zero timeout) are defects.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeFromClient = (
  client: RedisClient,
  options: StoreOptions
): Effect.Effect<TokenStore.TokenStore["Type"], never, Scope.Scope> =>
  Effect.flatMap(
    Effect.try({ try: () => settingsOf(client, options, "redis (an application's client)", []), catch: (e) => e }),
    (settings) => Effect.map(internal.make(settings), ({ store }) => store)
  ).pipe(Effect.orDie)

/**
 * The store with a client of its own, opened on `options.url` and closed with the scope.
 *
 * It waits up to `commandTimeout` for the first connection. When Redis cannot be reached it
 * still succeeds, with a warning: the client keeps reconnecting (every second at most), and
 * meanwhile the store behaves as for an outage (see the module's documentation).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<TokenStore.TokenStore["Type"], never, Scope.Scope> =>
  Effect.gen(function*() {
    const url = typeof options.url === "string" ? options.url : Redacted.value(options.url)
    if (!RedisConfig.isRedisUrl(url)) {
      return yield* Effect.dieMessage("RedisTokenStore: url must be a redis:// or rediss:// URL")
    }
    const where = RedisConfig.describeUrl(url)
    const commandTimeout = Duration.decode(options.commandTimeout ?? defaultCommandTimeout)
    const client = yield* internal.openClient(url, commandTimeout)
    const settings = yield* Effect.try({
      try: () => settingsOf(client, options, where, internal.secretsOf(url)),
      catch: (error) => error
    }).pipe(Effect.orDie)
    const { markDown, store } = yield* internal.make(settings)
    yield* internal.connectFirst(client, settings, markDown)
    return store
  })

/**
 * A layer of `make`: the store and its own client, closed when the layer is released.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options): Layer.Layer<TokenStore.TokenStore> =>
  Layer.scoped(TokenStore.TokenStore, make(options))

/**
 * A layer of `makeFromClient`: the store over an application's client, which stays open.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromClient = (client: RedisClient, options: StoreOptions): Layer.Layer<TokenStore.TokenStore> =>
  Layer.scoped(TokenStore.TokenStore, makeFromClient(client, options))

/**
 * The options of `layerConfig`: the store's options that have no variable, and a `Config` for
 * each one that has (by default the variable `RedisConfig` or `AmpConfig` reads).
 *
 * @since 0.1.0
 * @category models
 */
export interface ConfigOptions extends Omit<StoreOptions, "account" | "keyPrefix" | "encryptionKey"> {
  /** Default `RedisConfig.url` (`AMP_REDIS_URL`, required). */
  readonly url?: Config.Config<Redacted.Redacted<string>> | undefined
  /** Default `RedisConfig.keyPrefix` (`AMP_REDIS_KEY_PREFIX`, else `RedisConfig.defaultKeyPrefix`). */
  readonly keyPrefix?: Config.Config<string> | undefined
  /** Default `EncryptionKey.config` of `@amp-effect/core` (`AMP_TOKEN_ENCRYPTION_KEY`, else none). */
  readonly encryptionKey?: Config.Config<ReadonlyArray<EncryptionKey.EncryptionKey>> | undefined
  /** The account's base URL. Default `AmpConfig.baseUrl` (`AMP_API_BASE_URL`). */
  readonly baseUrl?: Config.Config<string> | undefined
  /** The account's user name. Default `AMP_USERNAME` (required: the keys are named after it). */
  readonly username?: Config.Config<string> | undefined
}

/** `AMP_USERNAME`, with what the store needs it for when it is missing. */
const accountUsername: Config.Config<string> = Config.option(Config.nonEmptyString()).pipe(
  Config.mapOrFail(Option.match({
    onNone: () => Either.left(AmpConfig.notSet("the Redis token store names its keys after the account")),
    onSome: Either.right
  })),
  Config.nested("AMP_USERNAME")
)

/**
 * The store from `Config`: by default `AMP_REDIS_URL`, `AMP_REDIS_KEY_PREFIX`,
 * `AMP_TOKEN_ENCRYPTION_KEY` (see `RedisConfig`), and the account from `AMP_API_BASE_URL` and
 * `AMP_USERNAME`; `options` may read any of them elsewhere (`Config.nested`, ...) and sets what
 * has no variable (lease, timeouts, `whenUnavailable`). A missing or invalid value fails the
 * layer with an `AmpConfigError` naming the variable.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (options?: ConfigOptions): Layer.Layer<TokenStore.TokenStore, AmpConfig.AmpConfigError> => {
  const { baseUrl, encryptionKey, keyPrefix, url, username, ...store } = options ?? {}
  return Layer.scoped(
    TokenStore.TokenStore,
    Effect.flatMap(
      AmpConfig.read(Config.all({
        url: url ?? RedisConfig.url,
        keyPrefix: keyPrefix ?? RedisConfig.keyPrefix,
        encryptionKey: encryptionKey ?? EncryptionKey.config,
        baseUrl: baseUrl ?? AmpConfig.baseUrl,
        username: username ?? accountUsername
      })),
      (config) =>
        make({
          ...store,
          url: config.url,
          keyPrefix: config.keyPrefix,
          encryptionKey: config.encryptionKey,
          account: { baseUrl: config.baseUrl, username: config.username }
        })
    )
  )
}
