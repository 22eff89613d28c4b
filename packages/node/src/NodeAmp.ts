/**
 * Node.js wiring for `@amp-effect/core`: the HTTP client, the file system and the persistence
 * policy, so that an application needs one layer to get a `TokenService`.
 *
 * The store is picked by `PersistencePolicy.chooseStore` (`AMP_TOKEN_STORE`,
 * `AMP_TOKEN_PERSISTENCE`, `AMP_TESTS`; a mock environment never persists). The Redis store
 * comes from `@amp-effect/redis`, an optional peer dependency loaded only when it is picked:
 * install it (and `redis`) to use `AMP_TOKEN_STORE=redis`.
 *
 * @example
 * ```ts
 * import { AmpConfig, TokenService } from "@amp-effect/core"
 * import { NodeAmp } from "@amp-effect/node"
 * import { Effect } from "effect"
 *
 * const program = Effect.flatMap(TokenService.TokenService, (tokens) => tokens.getToken)
 *
 * // Everything from the environment: AMP_USERNAME, AMP_PASSWORD, API_RETRY_*, AMP_TOKEN_STORE, ...
 * const fromEnv = program.pipe(Effect.provide(NodeAmp.layerConfig()))
 * // The same variables under a prefix: ISSUER_AMP_USERNAME, ISSUER_AMP_PASSWORD, ...
 * const issuer = program.pipe(Effect.provide(NodeAmp.layerConfig(AmpConfig.nested("ISSUER"))))
 * // A store of the application's choosing instead of the persistence policy's.
 * const ownFile = program.pipe(
 *   Effect.provide(NodeAmp.layerWithStore(NodeAmp.layerFileStore("/var/lib/my-app/token.json")))
 * )
 * ```
 *
 * @since 0.1.0
 */
import { AmpClient, AmpConfig, AuthApi, PersistencePolicy, TokenService, TokenStore } from "@amp-effect/core"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Config, Context, Effect, Layer, Option } from "effect"
import * as NodeTokenStore from "./NodeTokenStore.js"

/**
 * The options of the `layerConfig` constructors: a `Config` for each field of `AmpConfig`, by
 * default the one `AmpConfig` reads from the seed's variables (see `AmpConfig.Fields`).
 * `AmpConfig.nested(prefix)` reads them all under a prefix; `Config.nested` one of them.
 *
 * @since 0.1.0
 * @category models
 */
export type ConfigOptions = { readonly [K in keyof AmpConfig.Fields]?: AmpConfig.Fields[K] | undefined }

/**
 * What this package needs of `@amp-effect/redis`, which it loads only when `AMP_TOKEN_STORE`
 * picks the Redis store: the package is an optional peer dependency, so applications without
 * Redis never install `redis`.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisStorePackage {
  readonly RedisTokenStore: {
    /** The store from `AMP_REDIS_*`, its keys named after the account given here. */
    readonly layerConfig: (options: {
      readonly baseUrl: Config.Config<string>
      readonly username: Config.Config<string>
    }) => Layer.Layer<TokenStore.TokenStore, AmpConfig.AmpConfigError>
  }
}

/**
 * The package the Redis store comes from. A variable, not a literal, in the `import()`: so
 * that TypeScript and bundlers leave the optional package alone.
 */
const redisPackage: string = "@amp-effect/redis"

/** Loads `@amp-effect/redis`; its absence is an `AmpConfigError` that says what to install. */
const loadRedisStore = (specifier: string): Effect.Effect<RedisStorePackage, AmpConfig.AmpConfigError> =>
  Effect.tryPromise({
    try: () => import(specifier) as Promise<RedisStorePackage>,
    catch: (cause) =>
      new AmpConfig.AmpConfigError({
        variable: "AMP_TOKEN_STORE",
        reason: `is "redis", but ${specifier} could not be loaded: install it with its client ` +
          `(npm install ${specifier} redis)${cause instanceof Error ? ` (${cause.message.split("\n")[0]})` : ""}`
      })
  })

/**
 * The token file at `path`, on Node's file system, shared safely by any number of processes of
 * this machine: atomic saves, mode 0600, and a lock beside it whose owner is this process (a
 * lock left by a killed process is taken over at once). See `TokenStore.makeFile`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFileStore = (
  path: string,
  options?: TokenStore.FileStoreOptions
): Layer.Layer<TokenStore.TokenStore> => NodeTokenStore.layer(path, options)

/** Every field of `AmpConfig`, from `options` where given. */
const configOf = (options: ConfigOptions | undefined): Config.Config<AmpConfig.AmpConfig> =>
  Config.all({
    baseUrl: options?.baseUrl ?? AmpConfig.baseUrl,
    username: options?.username ?? AmpConfig.username,
    password: options?.password ?? AmpConfig.password,
    retry: options?.retry ?? AmpConfig.retry,
    requestTimeout: options?.requestTimeout ?? AmpConfig.requestTimeout,
    tokenPersistence: options?.tokenPersistence ?? AmpConfig.tokenPersistence,
    tests: options?.tests ?? AmpConfig.tests,
    tokenFile: options?.tokenFile ?? AmpConfig.tokenFile,
    refreshMargin: options?.refreshMargin ?? AmpConfig.refreshMargin,
    tokenStore: options?.tokenStore ?? AmpConfig.tokenStore
  })

/** Logs which store `layer` gave, from its own description, once it is built. */
const announce = <E>(layer: Layer.Layer<TokenStore.TokenStore, E>, line: (description: string) => string) =>
  Layer.tap(layer, (context) => Effect.logInfo(line(Context.get(context, TokenStore.TokenStore).description)))

/**
 * The store the persistence policy picks from the configuration (`PersistencePolicy.chooseStore`):
 * the `AMP_TOKEN_FILE` file, Redis (from `@amp-effect/redis`, configured by `AMP_REDIS_*`), memory,
 * or nothing. An info log line says which store was chosen and why. Every variable is checked,
 * so a bad one fails here with an `AmpConfigError`; so does `AMP_TOKEN_STORE=redis` without
 * `@amp-effect/redis` installed.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPolicyStore = (
  options?: ConfigOptions
): Layer.Layer<TokenStore.TokenStore, AmpConfig.AmpConfigError> =>
  Layer.unwrapEffect(
    Effect.gen(function*() {
      const config = yield* AmpConfig.read(configOf(options))
      const choice = PersistencePolicy.chooseStore(config)
      const why = choice.reason === "AMP_TOKEN_STORE" ? `AMP_TOKEN_STORE=${choice.store}` : choice.reason
      switch (choice.store) {
        case "file": {
          yield* Effect.logInfo(`Token persistence on (${why}): tokens are kept in ${config.tokenFile}`)
          return layerFileStore(config.tokenFile)
        }
        case "memory": {
          yield* Effect.logInfo(
            `Token persistence off (${why}): tokens are shared in this process's memory, lost when it exits`
          )
          return TokenStore.layerMemory
        }
        case "redis": {
          const redis = yield* loadRedisStore(redisPackage)
          const store = redis.RedisTokenStore.layerConfig({
            baseUrl: Config.succeed(config.baseUrl),
            username: Config.succeed(config.username)
          })
          return announce(store, (description) => `Token persistence on (${why}): tokens are kept in ${description}`)
        }
        case "none": {
          const ignored = choice.reason === "mock" && Option.isSome(config.tokenStore)
            ? ` (AMP_TOKEN_STORE=${config.tokenStore.value} ignored)`
            : ""
          yield* Effect.logInfo(
            choice.reason === "mock"
              ? `Token persistence off: mock credentials or a local/mock base URL never persist${ignored}`
              : choice.reason === "AMP_TOKEN_STORE"
              ? `Token persistence off (${why})`
              : "Token persistence off: set AMP_TOKEN_PERSISTENCE=true to keep tokens between runs"
          )
          return TokenStore.layerNoop
        }
      }
    })
  )

/**
 * A `TokenService` with the given store: the AMP endpoints over Node's HTTP client (undici),
 * the credentials, refresh margin and retry policy read from `Config` (`options`, by default
 * the seed's variables).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWithStore = <E, R>(
  store: Layer.Layer<TokenStore.TokenStore, E, R>,
  options?: ConfigOptions
): Layer.Layer<TokenService.TokenService, AmpConfig.AmpConfigError | E, R> =>
  TokenService.layerConfig(options).pipe(
    Layer.provide(Layer.merge(AuthApi.layerConfig(options).pipe(Layer.provide(NodeHttpClient.layerUndici)), store))
  )

/**
 * Everything from `Config` (`options`, by default the seed's variables), the store chosen by
 * the persistence policy (`layerPolicyStore`). `AmpConfig.nested(prefix)` reads every variable
 * under a prefix (`ISSUER_AMP_USERNAME`, ...); `Config.nested` renames one group, as here.
 *
 * @example
 * ```ts
 * import { AmpConfig, TokenService } from "@amp-effect/core"
 * import { MockAmpServer, NodeAmp } from "@amp-effect/node"
 * import { Config, ConfigProvider, Effect } from "effect"
 *
 * // The application's own API_RETRY_MAX_ATTEMPTS means something else: this layer reads
 * // AMP_API_RETRY_* instead, and every other variable under its usual name.
 * const tokens = NodeAmp.layerConfig({ retry: Config.nested(AmpConfig.retry, "AMP") })
 *
 * // Tried against the loopback mock, with a map (joined with `_`) for the environment.
 * const program = Effect.gen(function*() {
 *   const server = yield* MockAmpServer.make()
 *   yield* server.script("obtain", MockAmpServer.MockFault.status(503))
 *   const env = ConfigProvider.fromMap(
 *     new Map([
 *       ["AMP_API_BASE_URL", server.baseUrl],
 *       ["AMP_USERNAME", "mock_user"],
 *       ["AMP_PASSWORD", "mock_pass"],
 *       ["API_RETRY_MAX_ATTEMPTS", "the application's own"],
 *       ["AMP_API_RETRY_MAX_ATTEMPTS", "2"],
 *       ["AMP_API_RETRY_BASE_DELAY_MS", "0"]
 *     ]),
 *     { pathDelim: "_" }
 *   )
 *   yield* Effect.flatMap(TokenService.TokenService, (service) => service.getToken).pipe(
 *     Effect.provide(tokens),
 *     Effect.withConfigProvider(env)
 *   )
 *   // The 503 was retried, as AMP_API_RETRY_MAX_ATTEMPTS allows.
 *   console.log((yield* server.counters).obtain)
 *   // Output: 2
 * })
 *
 * Effect.runPromise(Effect.scoped(program))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options?: ConfigOptions
): Layer.Layer<TokenService.TokenService, AmpConfig.AmpConfigError> =>
  layerWithStore(layerPolicyStore(options), options)

/**
 * The authenticated `AmpClient` and the `TokenService` behind it, everything from `Config`
 * (`options`, as for `layerConfig`; the store by the persistence policy), over Node's HTTP
 * client.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerClient = (
  options?: ConfigOptions
): Layer.Layer<AmpClient.AmpClient | TokenService.TokenService, AmpConfig.AmpConfigError> =>
  AmpClient.layerConfig(options).pipe(
    Layer.provideMerge(layerConfig(options)),
    Layer.provide(NodeHttpClient.layerUndici)
  )
