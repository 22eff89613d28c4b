/**
 * The two AMP authentication endpoints: `obtain` posts `{"username", "password"}` to
 * `{base}/user/obtain_token`; `refresh` GETs `{base}/user/refresh-token` (the documented path,
 * not the Rust client's `POST /user/refresh_token`) with `Authorization: token <current>`.
 *
 * @since 0.1.0
 */
import { HttpClient, HttpClientRequest, type HttpClientResponse } from "@effect/platform"
import { Cause, Config, Context, type Duration, Effect, Exit, Layer, Metric, Option, Redacted, Schema } from "effect"
import * as AmpConfig from "./AmpConfig.js"
import { AuthError, type Endpoint } from "./AmpHttpError.js"
import * as AmpHttp from "./internal/ampHttp.js"
import * as RetryPolicy from "./RetryPolicy.js"
import { TokenString } from "./TokenData.js"
import * as TokenMetrics from "./TokenMetrics.js"

/**
 * The AMP authentication endpoints. Swap the layer to script them in tests.
 *
 * @since 0.1.0
 * @category tags
 */
export class AuthApi extends Context.Tag("@amp-effect/core/AuthApi")<AuthApi, {
  /** Logs in with the configured credentials and returns a new token. */
  readonly obtain: Effect.Effect<Redacted.Redacted<string>, AuthError>
  /** Exchanges a still-valid token for a new one. */
  readonly refresh: (token: Redacted.Redacted<string>) => Effect.Effect<Redacted.Redacted<string>, AuthError>
}>() {}

/**
 * What `make` needs: the credentials; `retry` (default `RetryPolicy.defaultOptions`) and
 * `requestTimeout`, per attempt, answer body included (default 10 s).
 *
 * @since 0.1.0
 * @category models
 */
export interface AuthApiOptions extends AmpConfig.Credentials {
  readonly retry?: RetryPolicy.RetryOptions | undefined
  readonly requestTimeout?: Duration.DurationInput | undefined
}

/**
 * The options of `layerConfig`: a `Config` for each option, by default the `AmpConfig` one of
 * the same name. Use `Config.nested` (or `AmpConfig.nested(prefix)`) to read other names.
 *
 * @since 0.1.0
 * @category models
 */
export type ConfigOptions = {
  readonly [K in keyof AuthApiOptions]?: Config.Config<NonNullable<AuthApiOptions[K]>> | undefined
}

/**
 * Builds the service over the `HttpClient` in context.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options: AuthApiOptions
) => Effect.Effect<AuthApi["Type"], never, HttpClient.HttpClient> = Effect.fnUntraced(
  function*(options: AuthApiOptions) {
    const pipeline = (endpoint: Endpoint) =>
      AmpHttp.make({
        baseUrl: options.baseUrl,
        retry: options.retry ?? RetryPolicy.defaultOptions,
        requestTimeout: options.requestTimeout ?? AmpConfig.defaultRequestTimeout
      }, (failure) => new AuthError({ endpoint, ...failure })).pipe(
        // The body is read within each attempt's timeout: a server that sends its headers and
        // then stalls is cut, and retried, like one that sends nothing.
        Effect.updateService(
          HttpClient.HttpClient,
          HttpClient.transformResponse(Effect.tap((response) => Effect.ignore(response.text)))
        )
      )
    const clients = { obtain_token: yield* pipeline("obtain_token"), "refresh-token": yield* pipeline("refresh-token") }

    // One span per call, with the attempts it took (the retries update it) and its outcome,
    // which the endpoint's metric counts.
    const call = (endpoint: Endpoint, request: HttpClientRequest.HttpClientRequest, secrets: ReadonlyArray<string>) =>
      clients[endpoint].execute(request).pipe(
        Effect.flatMap((response) => answer(endpoint, response, secrets)),
        Effect.onExit((exit) => {
          const outcome = Exit.isSuccess(exit) ? "success" : Option.getOrElse(
            Option.map(Cause.failureOption(exit.cause), (error) => error.reason),
            () => "interrupted"
          )
          const metric = endpoint === "obtain_token" ? TokenMetrics.logins : TokenMetrics.refreshes
          return Effect.zipRight(
            Effect.annotateCurrentSpan("outcome", outcome),
            Metric.increment(Metric.tagged(metric, "outcome", outcome))
          )
        }),
        Effect.withSpan(endpoint === "obtain_token" ? "AuthApi.obtain" : "AuthApi.refresh", {
          attributes: { endpoint, attempts: 1 }
        })
      )

    // The password and the token leave their Redacted box here, at the last moment.
    return AuthApi.of({
      obtain: call(
        "obtain_token",
        HttpClientRequest.post("/user/obtain_token").pipe(
          HttpClientRequest.acceptJson,
          HttpClientRequest.bodyUnsafeJson({ username: options.username, password: Redacted.value(options.password) })
        ),
        [Redacted.value(options.password)]
      ),
      refresh: (token) =>
        call(
          "refresh-token",
          HttpClientRequest.get("/user/refresh-token").pipe(
            HttpClientRequest.acceptJson,
            HttpClientRequest.setHeader("authorization", `token ${Redacted.value(token)}`)
          ),
          [Redacted.value(token), Redacted.value(options.password)]
        )
    })
  }
)

const TokenResponse = Schema.Struct({ token: TokenString }).annotations({
  message: () => "expected a JSON object with a \"token\""
})

/** A token from a 2xx, or the `AuthError` a 4xx (other than 408 and 429) means. */
const answer = (
  endpoint: Endpoint,
  response: HttpClientResponse.HttpClientResponse,
  secrets: ReadonlyArray<string>
): Effect.Effect<Redacted.Redacted<string>, AuthError> => {
  const status = response.status
  if (status < 400) {
    return Effect.mapBoth(AmpHttp.decodeBody(response, TokenResponse), {
      onFailure: (detail) => new AuthError({ endpoint, reason: "MalformedResponse", status, detail }),
      onSuccess: ({ token }) => Redacted.make(token)
    })
  }
  if (status === 404 && endpoint === "obtain_token") {
    // Nothing answers at this URL: the base URL is wrong, not the password.
    return Effect.fail(new AuthError({ endpoint, reason: "NotFound", status, detail: response.request.url }))
  }
  // Refused credentials are never retried: retrying risks locking the account.
  return Effect.flatMap(AmpHttp.detailOf(response, secrets), (detail) =>
    new AuthError({
      endpoint,
      reason: endpoint === "obtain_token" ? "InvalidCredentials" : "RefreshRejected",
      status,
      detail
    }))
}

/**
 * The service from explicit options; needs an `HttpClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: AuthApiOptions): Layer.Layer<AuthApi, never, HttpClient.HttpClient> =>
  Layer.effect(AuthApi, make(options))

/**
 * The service with its options read from `Config` (by default the `AMP_*` / `API_*` variables
 * of `AmpConfig`); needs an `HttpClient`. A missing or invalid value fails the layer with an
 * `AmpConfigError` naming the variable.
 *
 * @example
 * ```ts
 * import { AmpConfig, AuthApi } from "@amp-effect/core"
 * import { Config } from "effect"
 *
 * // API_RETRY_* is the application's own: read AMP_API_RETRY_* for this client.
 * const api = AuthApi.layerConfig({ retry: Config.nested(AmpConfig.retry, "AMP") })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options?: ConfigOptions
): Layer.Layer<AuthApi, AmpConfig.AmpConfigError, HttpClient.HttpClient> =>
  Layer.effect(
    AuthApi,
    Effect.flatMap(
      AmpConfig.read(Config.all({
        baseUrl: options?.baseUrl ?? AmpConfig.baseUrl,
        username: options?.username ?? AmpConfig.username,
        password: options?.password ?? AmpConfig.password,
        retry: options?.retry ?? AmpConfig.retry,
        requestTimeout: options?.requestTimeout ?? AmpConfig.requestTimeout
      })),
      make
    )
  )
