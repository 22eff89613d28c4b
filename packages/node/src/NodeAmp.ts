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
import { AmpConfig, AuthApi, PersistencePolicy, TokenService, TokenStore } from "@amp-effect/core"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodePath from "@effect/platform-node/NodePath"
import { Effect, Layer } from "effect"

/** The token file at `path`, on Node's file system. */
export const layerFileStore = (
  path: string,
  options?: TokenStore.FileStoreOptions
): Layer.Layer<TokenStore.TokenStore> =>
  TokenStore.layerFile(path, options).pipe(Layer.provide(Layer.merge(NodeFileSystem.layer, NodePath.layer)))

/**
 * The store the persistence policy picks from the environment: the `AMP_TOKEN_FILE` file when
 * persistence is on, nothing otherwise (see `PersistencePolicy`). A log line says which.
 */
export const layerPolicyStore: Layer.Layer<TokenStore.TokenStore, AmpConfig.AmpConfigError> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const config = yield* AmpConfig.load
    if (PersistencePolicy.shouldPersist(config)) {
      yield* Effect.logDebug(`Token persistence on: ${config.tokenFile}`)
      return layerFileStore(config.tokenFile)
    }
    yield* Effect.logDebug(
      PersistencePolicy.isMockEnvironment(config)
        ? "Token persistence off: mock credentials or a local/mock base URL"
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
