/**
 * Node.js wiring for `@amp-effect/core`: the HTTP client, the file system and the persistence
 * policy, so that an application needs one layer to get a `TokenService`.
 *
 * ```ts
 * import { NodeAmp } from "@amp-effect/node"
 * program.pipe(Effect.provide(NodeAmp.layerConfig))      // everything from the environment
 * program.pipe(Effect.provide(NodeAmp.layerWithStore(NodeAmp.layerFileStore("/var/lib/app/token.json"))))
 * ```
 *
 * @since 0.1.0
 */
import { AmpClient, AmpConfig, AuthApi, PersistencePolicy, TokenService, TokenStore } from "@amp-effect/core"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Effect, Layer } from "effect"
import * as NodeTokenStore from "./NodeTokenStore.js"

/**
 * The token file at `path`, on Node's file system, shared safely by any number of processes of
 * this machine: atomic saves, mode 0600, and a lock beside it whose owner is this process (a
 * lock left by a killed process is taken over at once). See `TokenStore.makeFile`.
 */
export const layerFileStore = (
  path: string,
  options?: TokenStore.FileStoreOptions
): Layer.Layer<TokenStore.TokenStore> => NodeTokenStore.layer(path, options)

/**
 * The store the persistence policy picks from the environment: the `AMP_TOKEN_FILE` file when
 * persistence is on, nothing otherwise (see `PersistencePolicy`). An info log line says which
 * store was chosen and why.
 */
export const layerPolicyStore: Layer.Layer<TokenStore.TokenStore, AmpConfig.AmpConfigError> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const config = yield* AmpConfig.load
    if (PersistencePolicy.shouldPersist(config)) {
      yield* Effect.logInfo(
        `Token persistence on (${
          config.tokenPersistence ? "AMP_TOKEN_PERSISTENCE" : "AMP_TESTS=live"
        }): tokens are kept in ${config.tokenFile}`
      )
      return layerFileStore(config.tokenFile)
    }
    yield* Effect.logInfo(
      PersistencePolicy.isMockEnvironment(config)
        ? "Token persistence off: mock credentials or a local/mock base URL never persist"
        : "Token persistence off: set AMP_TOKEN_PERSISTENCE=true to keep tokens between runs"
    )
    return TokenStore.layerNoop
  })
)

/**
 * A `TokenService` configured from the environment with the given store: the AMP client over
 * Node's HTTP client (undici), the refresh margin and retry policy from the variables.
 */
export const layerWithStore = <E, R>(
  store: Layer.Layer<TokenStore.TokenStore, E, R>
): Layer.Layer<TokenService.TokenService, AmpConfig.AmpConfigError | E, R> =>
  TokenService.layerConfig.pipe(
    Layer.provide(Layer.merge(AuthApi.layerConfig.pipe(Layer.provide(NodeHttpClient.layerUndici)), store))
  )

/** Everything from the environment, the store chosen by the persistence policy. */
export const layerConfig: Layer.Layer<TokenService.TokenService, AmpConfig.AmpConfigError> = layerWithStore(
  layerPolicyStore
)

/**
 * The authenticated `AmpClient` and the `TokenService` behind it, everything from the
 * environment (store by the persistence policy), over Node's HTTP client.
 */
export const layerClient: Layer.Layer<
  AmpClient.AmpClient | TokenService.TokenService,
  AmpConfig.AmpConfigError
> = AmpClient.layerConfig.pipe(
  Layer.provideMerge(layerConfig),
  Layer.provide(NodeHttpClient.layerUndici)
)
