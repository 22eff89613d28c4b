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
 * import { Config, Effect } from "effect"
 *
 * const program = Effect.flatMap(TokenService.TokenService, (tokens) => tokens.getToken)
 *
 * // Everything from the environment: AMP_USERNAME, AMP_PASSWORD, API_RETRY_*, AMP_TOKEN_STORE, ...
 * const fromEnv = program.pipe(Effect.provide(NodeAmp.layerConfig()))
 * // The same variables under a prefix: ISSUER_AMP_USERNAME, ISSUER_AMP_PASSWORD, ...
 * const issuer = program.pipe(Effect.provide(NodeAmp.layerConfig(AmpConfig.nested("ISSUER"))))
 * // AMP_API_RETRY_* rather than API_RETRY_*, which the application uses for something else.
 * const ownRetry = program.pipe(
 *   Effect.provide(NodeAmp.layerConfig({ retry: Config.nested(AmpConfig.retry, "AMP") }))
 * )
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
import { Config, Context, Effect, Layer, Option, Record } from "effect"
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

/** What this package needs of `@amp-effect/redis`, an optional peer loaded only for the Redis store. */
interface RedisStorePackage {
  readonly RedisTokenStore: {
    readonly layerConfig: (options: {
      readonly baseUrl: Config.Config<string>
      readonly username: Config.Config<string>
    }) => Layer.Layer<TokenStore.TokenStore, AmpConfig.AmpConfigError>
  }
}

/**
 * Loads `@amp-effect/redis`; its absence is an `AmpConfigError` that says what to install. The
 * specifier is a variable, not a literal, so that TypeScript and bundlers leave it alone.
 */
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
const configOf = (options: ConfigOptions = {}): Config.Config<AmpConfig.AmpConfig> =>
  Config.all(Record.map(AmpConfig.fields, (config, key) => options[key] ?? config) as AmpConfig.Fields)

/** Why no store keeps the tokens, for the info log line. */
const whyNone = (choice: PersistencePolicy.StoreChoice, config: AmpConfig.AmpConfig): string => {
  switch (choice.reason) {
    case "mock":
      return "Token persistence off: mock credentials or a local/mock base URL never persist" +
        Option.match(config.tokenStore, { onNone: () => "", onSome: (store) => ` (AMP_TOKEN_STORE=${store} ignored)` })
    case "AMP_TOKEN_STORE":
      return "Token persistence off (AMP_TOKEN_STORE=none)"
    default:
      return "Token persistence off: set AMP_TOKEN_PERSISTENCE=true to keep tokens between runs"
  }
}

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
          const redis = yield* loadRedisStore("@amp-effect/redis")
          // Logged once built, from the store's own description (which names the server).
          return redis.RedisTokenStore.layerConfig({
            baseUrl: Config.succeed(config.baseUrl),
            username: Config.succeed(config.username)
          }).pipe(Layer.tap((context) => {
            const where = Context.get(context, TokenStore.TokenStore).description
            return Effect.logInfo(`Token persistence on (${why}): tokens are kept in ${where}`)
          }))
        }
        case "none": {
          yield* Effect.logInfo(whyNone(choice, config))
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
 * under a prefix (`ISSUER_AMP_USERNAME`, ...); `Config.nested` renames one group.
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
