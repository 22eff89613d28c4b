/**
 * The two AMP authentication endpoints, over an abstract `HttpClient`:
 *
 * - `obtain`: `POST {base}/user/obtain_token` with `{"username", "password"}`.
 * - `refresh`: `GET {base}/user/refresh-token` with `Authorization: token <current>`
 *   (the documented path; the Rust client's `POST /user/refresh_token` does not exist).
 *
 * Both go through the library's one AMP HTTP pipeline (the one `AmpClient` uses too, without
 * the token): each attempt is cut at the request timeout and retried under the `RetryPolicy`.
 * Answers are decoded with `Schema`; every failure is an `AuthError` whose `reason` says how.
 *
 * @since 0.1.0
 */
import { HttpClientRequest, type HttpClientResponse } from "@effect/platform"
import type { HttpClient } from "@effect/platform"
import type { Duration } from "effect"
import { Cause, Config, Context, Effect, Exit, Layer, Metric, Option, Redacted, Schema, type Scope } from "effect"
import * as AmpConfig from "./AmpConfig.js"
import { AuthError, type Endpoint, isAuthError } from "./AmpHttpError.js"
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
 * What `make` needs: where and as whom to log in (`baseUrl`, `username`, `password`: no
 * defaults), and how hard to try.
 *
 * @since 0.1.0
 * @category models
 */
export interface AuthApiOptions extends AmpConfig.Credentials {
  /** The retry policy of both endpoints. Default `RetryPolicy.defaultOptions` (3 attempts, 1 s, 30 s). */
  readonly retry?: RetryPolicy.RetryOptions | undefined
  /**
   * How long one attempt may take, answer body included. Default
   * `AmpConfig.defaultRequestTimeout` (10 seconds).
   */
  readonly requestTimeout?: Duration.DurationInput | undefined
}

/**
 * The options of `layerConfig`: a `Config` for each option of `AuthApiOptions`, by default the
 * one `AmpConfig` reads from the seed's variables. Use `Config.nested` (or
 * `AmpConfig.nested(prefix)` for all of them) to read them under other names.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConfigOptions {
  /** Default `AmpConfig.baseUrl` (`AMP_API_BASE_URL`, else `AmpConfig.defaultBaseUrl`). */
  readonly baseUrl?: Config.Config<string> | undefined
  /** Default `AmpConfig.username` (`AMP_USERNAME`, required). */
  readonly username?: Config.Config<string> | undefined
  /** Default `AmpConfig.password` (`AMP_PASSWORD`, required). */
  readonly password?: Config.Config<Redacted.Redacted<string>> | undefined
  /** Default `AmpConfig.retry` (`API_RETRY_*`, else `RetryPolicy.defaultOptions`). */
  readonly retry?: Config.Config<RetryPolicy.RetryOptions> | undefined
  /**
   * Default `AmpConfig.requestTimeout` (`API_REQUEST_TIMEOUT_SECONDS`, else
   * `AmpConfig.defaultRequestTimeout`).
   */
  readonly requestTimeout?: Config.Config<Duration.DurationInput> | undefined
}

const TokenResponse = Schema.Struct({ token: TokenString })
const decodeTokenResponse = Schema.decodeUnknownOption(TokenResponse)

/**
 * Builds the service over the `HttpClient` in context. Scoped: for as long as the scope is
 * open, the `Authorization` header (which carries the token to refresh) is a redacted header.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options: AuthApiOptions
) => Effect.Effect<AuthApi["Type"], never, HttpClient.HttpClient | Scope.Scope> = Effect.fnUntraced(
  function*(options: AuthApiOptions) {
    const http = yield* AmpHttp.make({
      baseUrl: options.baseUrl,
      retry: options.retry ?? RetryPolicy.defaultOptions,
      requestTimeout: options.requestTimeout ?? AmpConfig.defaultRequestTimeout
    })

    // A whole call: attempts under the retry policy, in one span that records how many
    // attempts it took and how it ended, counted in the endpoint's metric. `secrets` are
    // scrubbed from anything the server or the transport says that ends up in an error.
    const call = (
      endpoint: Endpoint,
      request: HttpClientRequest.HttpClientRequest,
      secrets: () => ReadonlyArray<string>
    ) =>
      Effect.suspend(() => {
        let attempts = 0
        const attempt = http.attempt(request, {
          fail: (failure) => new AuthError({ endpoint, ...failure }),
          secrets,
          onResponse: (response) => answer(endpoint, response, http.url(path[endpoint]), secrets)
        })
        return Effect.suspend(() => {
          attempts++
          return attempt
        }).pipe(
          http.retry(isAuthError),
          Effect.onExit((exit) => {
            const outcome = Exit.isSuccess(exit) ? "success" : Option.getOrElse(
              Option.map(Cause.failureOption(exit.cause), (error) => error.reason),
              () => "interrupted"
            )
            return Effect.zipRight(
              Effect.annotateCurrentSpan({ attempts, outcome }),
              Metric.increment(Metric.tagged(
                endpoint === "obtain_token" ? TokenMetrics.logins : TokenMetrics.refreshes,
                "outcome",
                outcome
              ))
            )
          }),
          Effect.withSpan(endpoint === "obtain_token" ? "AuthApi.obtain" : "AuthApi.refresh", {
            attributes: { endpoint }
          })
        )
      })

    const obtain = call(
      "obtain_token",
      HttpClientRequest.post(http.url(path.obtain_token)).pipe(
        HttpClientRequest.acceptJson,
        // The password leaves its Redacted box here, at the last moment, and only in the body.
        HttpClientRequest.bodyUnsafeJson({ username: options.username, password: Redacted.value(options.password) })
      ),
      () => [Redacted.value(options.password)]
    )

    const refresh = (token: Redacted.Redacted<string>) =>
      call(
        "refresh-token",
        HttpClientRequest.get(http.url(path["refresh-token"])).pipe(
          HttpClientRequest.acceptJson,
          HttpClientRequest.setHeader("authorization", `token ${Redacted.value(token)}`)
        ),
        () => [Redacted.value(token), Redacted.value(options.password)]
      )

    return AuthApi.of({ obtain, refresh })
  }
)

const path: Record<Endpoint, string> = {
  obtain_token: "/user/obtain_token",
  "refresh-token": "/user/refresh-token"
}

/**
 * What an answer means, once the pipeline has dealt with 429, 408 and 5xx: a token, or the
 * `AuthError` its status means.
 */
const answer = (
  endpoint: Endpoint,
  response: HttpClientResponse.HttpClientResponse,
  url: string,
  secrets: () => ReadonlyArray<string>
): Effect.Effect<Redacted.Redacted<string>, AuthError> => {
  const status = response.status
  if (status >= 200 && status < 300) {
    return Effect.flatMap(
      Effect.either(response.json),
      (body) =>
        Option.match(body._tag === "Right" ? decodeTokenResponse(body.right) : Option.none(), {
          // The body is not quoted: a half-right answer may still contain a token.
          onNone: () =>
            new AuthError({
              endpoint,
              reason: "MalformedResponse",
              status,
              detail: body._tag === "Left"
                ? "the body is not JSON"
                : "expected a JSON object with a \"token\" string of printable characters"
            }),
          onSome: ({ token }) => Effect.succeed(Redacted.make(token))
        })
    )
  }
  if (status === 404 && endpoint === "obtain_token") {
    // Nothing answers at this URL: the base URL is wrong, not the password.
    return Effect.zipRight(
      AmpHttp.discard(response),
      new AuthError({ endpoint, reason: "NotFound", status, detail: url })
    )
  }
  if (status >= 400) {
    return Effect.flatMap(AmpHttp.detailOf(response, secrets()), (detail) =>
      new AuthError({
        endpoint,
        reason: endpoint === "obtain_token" ? "InvalidCredentials" : "RefreshRejected",
        status,
        detail
      }))
  }
  return Effect.zipRight(
    AmpHttp.discard(response),
    new AuthError({ endpoint, reason: "MalformedResponse", status, detail: "unexpected HTTP status" })
  )
}

/**
 * The service from explicit options; needs an `HttpClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: AuthApiOptions): Layer.Layer<AuthApi, never, HttpClient.HttpClient> =>
  Layer.scoped(AuthApi, make(options))

/**
 * The service with its options read from `Config` (see `ConfigOptions`; by default the
 * `AMP_*` / `API_*` variables of `AmpConfig`); needs an `HttpClient`. A missing or invalid
 * value fails the layer with an `AmpConfigError` naming the variable.
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
  Layer.scoped(
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
