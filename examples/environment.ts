/**
 * Not an example itself: where the examples find AMP.
 *
 * Unless `AMP_API_BASE_URL` is set, `runExample` starts the embedded mock AMP server on
 * 127.0.0.1 and points the configuration at it (credentials `mock_user` / `mock_pass`), so
 * every example runs offline with `pnpm tsx examples/<name>.ts`. With `AMP_API_BASE_URL`,
 * `AMP_USERNAME` and `AMP_PASSWORD` set, the same example talks to that AMP instead.
 */
import { MockAmpServer } from "@amp-effect/node"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Config, ConfigProvider, Console, Effect, Option } from "effect"

/**
 * Runs `effect` against the embedded mock server (handed to `effect` as `Some`) or, when
 * `AMP_API_BASE_URL` is set, against that server (`None`).
 */
export const withAmp = <A, E, R>(
  effect: (mock: Option.Option<MockAmpServer.MockAmpServer.Service>) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | Error, R> =>
  Effect.gen(function*() {
    const live = yield* Config.option(Config.nonEmptyString("AMP_API_BASE_URL")).pipe(
      Effect.mapError((error) => new Error(`AMP_API_BASE_URL: ${error}`))
    )
    if (Option.isSome(live)) return yield* effect(Option.none())
    return yield* Effect.scoped(Effect.gen(function*() {
      const server = yield* MockAmpServer.MockAmpServer.make()
      yield* Console.log(`[embedded mock AMP server at ${server.baseUrl}; set AMP_API_BASE_URL to use a real one]`)
      const provider = yield* Effect.configProviderWith((current) =>
        Effect.succeed(
          ConfigProvider.fromJson({
            AMP_API_BASE_URL: server.baseUrl,
            AMP_USERNAME: MockAmpServer.MockAmpServer.defaultCredentials.username,
            AMP_PASSWORD: MockAmpServer.MockAmpServer.defaultCredentials.password
          }).pipe(ConfigProvider.orElse(() => current))
        )
      )
      return yield* Effect.withConfigProvider(effect(Option.some(server)), provider)
    }))
  })

/** Runs an example as a program: `withAmp`, then Node's `runMain` (exit code 1 on failure). */
export const runExample = <A, E>(
  effect: (mock: Option.Option<MockAmpServer.MockAmpServer.Service>) => Effect.Effect<A, E>
): void => NodeRuntime.runMain(withAmp(effect))
