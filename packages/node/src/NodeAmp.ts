/**
 * Node.js wiring for `@amp-effect/core`: the HTTP client, the file system and the persistence
 * policy, so that an application needs one layer to get a `TokenService`.
 *
 * The store is picked by `PersistencePolicy.chooseStore`. The Redis and Postgres stores come from
 * `@amp-effect/redis` and `@amp-effect/postgres`, optional peers loaded only when picked.
 * HTTP goes through undici, over the application's `NodeHttpClient.Dispatcher` when it provides
 * one (a `ProxyAgent`, say), and never follows a redirect, whatever that dispatcher is composed with.
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
import * as HttpClient from "@effect/platform/HttpClient"
import { Config, Context, Effect, Layer, Option, Record } from "effect"
import * as NodeTokenStore from "./NodeTokenStore.js"

/**
 * A `Config` for each field of `AmpConfig` (`AmpConfig.Fields`), by default `AmpConfig`'s own.
 *
 * @since 0.1.0
 * @category models
 */
export type ConfigOptions = { readonly [K in keyof AmpConfig.Fields]?: AmpConfig.Fields[K] | undefined }

/** The `layerConfig` of `RedisTokenStore` and `PostgresTokenStore`, as this package calls it. */
type SharedStoreLayer = (options: {
  readonly baseUrl: Config.Config<string>
  readonly username: Config.Config<string>
}) => Layer.Layer<TokenStore.TokenStore, AmpConfig.AmpConfigError>

/** The optional peers that hold the shared stores: the module each exports, what to install. */
const sharedStores = {
  redis: ["RedisTokenStore", "its client (npm install @amp-effect/redis redis)"],
  postgres: ["PostgresTokenStore", "its driver (npm install @amp-effect/postgres @effect/sql @effect/sql-pg)"]
} as const

/**
 * Loads the optional peer that holds a shared store, or fails saying what to install. The
 * specifier is computed so that TypeScript and bundlers leave it alone.
 */
const loadStore = (kind: keyof typeof sharedStores): Effect.Effect<SharedStoreLayer, AmpConfig.AmpConfigError> => {
  const specifier = `@amp-effect/${kind}`
  return Effect.tryPromise({
    try: () => import(specifier) as Promise<{ readonly [module: string]: { readonly layerConfig: SharedStoreLayer } }>,
    catch: (cause) =>
      new AmpConfig.AmpConfigError({
        variable: "AMP_TOKEN_STORE",
        reason: `is "${kind}", but ${specifier} could not be loaded: install it with ${sharedStores[kind][1]}` +
          (cause instanceof Error ? ` (${cause.message.split("\n")[0]})` : "")
      })
  }).pipe(Effect.map((loaded) => loaded[sharedStores[kind][0]]!.layerConfig))
}

/**
 * The token file at `path`, shared safely by the processes of this machine (`NodeTokenStore.layer`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFileStore: typeof NodeTokenStore.layer = NodeTokenStore.layer

const configOf = (options: ConfigOptions = {}): Config.Config<AmpConfig.AmpConfig> =>
  Config.all(Record.map(AmpConfig.fields, (config, key) => options[key] ?? config) as AmpConfig.Fields)

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
 * The store `PersistencePolicy.chooseStore` picks: the `AMP_TOKEN_FILE` file, Redis
 * (`AMP_REDIS_*`), Postgres (`AMP_POSTGRES_*`), memory or none, announced at info level with
 * the reason. Fails on a bad variable, or when the store's package is not installed.
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
      const keptIn = (where: string) => Effect.logInfo(`Token persistence on (${why}): tokens are kept in ${where}`)
      switch (choice.store) {
        case "file":
          yield* keptIn(config.tokenFile)
          return layerFileStore(config.tokenFile)
        case "memory":
          yield* Effect.logInfo(
            `Token persistence off (${why}): tokens are shared in this process's memory, lost when it exits`
          )
          return TokenStore.layerMemory
        case "none":
          yield* Effect.logInfo(whyNone(choice, config))
          return TokenStore.layerNoop
        default: {
          const layerConfig = yield* loadStore(choice.store)
          // Announced once built, by the store's description: the server, never its credentials.
          return layerConfig({
            baseUrl: Config.succeed(config.baseUrl),
            username: Config.succeed(config.username)
          }).pipe(Layer.tap((context) => keptIn(Context.get(context, TokenStore.TokenStore).description)))
        }
      }
    })
  )

/** `maxRedirections: 0` turns undici's redirect interceptor off (undici 7's types lack it). */
const withoutRedirects = <A, E, R>(sent: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.serviceOption(NodeHttpClient.UndiciRequestOptions), (own) => {
    const options = { ...Option.getOrUndefined(own), maxRedirections: 0 } as NodeHttpClient.UndiciRequestOptions["Type"]
    return Effect.provideService(sent, NodeHttpClient.UndiciRequestOptions, options)
  })

/**
 * Undici over the application's `Dispatcher`, else one of its own, never following a redirect
 * (even through a dispatcher composed to): a 3xx reaches the core's pipeline, which refuses it.
 */
const layerHttp: Layer.Layer<HttpClient.HttpClient> = Layer.effect(
  HttpClient.HttpClient,
  Effect.map(HttpClient.HttpClient, HttpClient.transform(withoutRedirects))
).pipe(
  Layer.provide(NodeHttpClient.layerUndiciWithoutDispatcher),
  Layer.provide(Layer.scoped(
    NodeHttpClient.Dispatcher,
    Effect.flatMap(
      Effect.serviceOption(NodeHttpClient.Dispatcher),
      Option.match({ onNone: () => NodeHttpClient.makeDispatcher, onSome: Effect.succeed })
    )
  ))
)

/**
 * A `TokenService` with the given store, everything else from `Config` (`options`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWithStore = <E, R>(
  store: Layer.Layer<TokenStore.TokenStore, E, R>,
  options?: ConfigOptions
): Layer.Layer<TokenService.TokenService, AmpConfig.AmpConfigError | E, R> =>
  TokenService.layerConfig(options).pipe(
    Layer.provide(Layer.merge(AuthApi.layerConfig(options).pipe(Layer.provide(layerHttp)), store))
  )

/**
 * A `TokenService` from `Config` (`options`), its store picked by `layerPolicyStore`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options?: ConfigOptions
): Layer.Layer<TokenService.TokenService, AmpConfig.AmpConfigError> =>
  layerWithStore(layerPolicyStore(options), options)

/**
 * `layerConfig` and the authenticated `AmpClient` over it.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerClient = (
  options?: ConfigOptions
): Layer.Layer<AmpClient.AmpClient | TokenService.TokenService, AmpConfig.AmpConfigError> =>
  AmpClient.layerConfig(options).pipe(
    Layer.provideMerge(layerConfig(options)),
    Layer.provide(layerHttp)
  )
