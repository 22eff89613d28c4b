/**
 * The two AMP authentication endpoints, over an abstract `HttpClient`:
 *
 * - `obtain`: `POST {base}/user/obtain_token` with `{"username", "password"}`.
 * - `refresh`: `GET {base}/user/refresh-token` with `Authorization: token <current>`
 *   (the documented path; the Rust client's `POST /user/refresh_token` does not exist).
 *
 * Both go through the library's one AMP HTTP pipeline (the one `AmpClient` uses too): each
 * attempt is cut at the request timeout and retried under the `RetryPolicy`; a redirect is
 * refused, never followed. Answers are decoded with `Schema` (the token by `TokenData`'s
 * `TokenString` rule); every failure is an `AuthError` whose `reason` says how.
 *
 * @since 0.1.0
 */
import { HttpClient, HttpClientRequest, type HttpClientResponse } from "@effect/platform"
import type { Duration } from "effect"
import {
  Cause,
  Config,
  Context,
  Effect,
  Either,
  Exit,
  Layer,
  Metric,
  Option,
  ParseResult,
  Redacted,
  Schema
} from "effect"
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
        // The answer's body is read within each attempt's timeout: a server that sends its
        // headers and then stalls is cut, and retried, like one that sends nothing.
        Effect.updateService(HttpClient.HttpClient, HttpClient.transformResponse(Effect.tap(readBody)))
      )
    const clients = { obtain_token: yield* pipeline("obtain_token"), "refresh-token": yield* pipeline("refresh-token") }

    // A whole call, in one span that records how many attempts it took (the retries update it)
    // and how it ended, counted in the endpoint's metric.
    const call = (endpoint: Endpoint, request: HttpClientRequest.HttpClientRequest, secrets: ReadonlyArray<string>) =>
      Effect.annotateCurrentSpan("attempts", 1).pipe(
        Effect.zipRight(clients[endpoint].execute(request)),
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
          attributes: { endpoint }
        })
      )

    return AuthApi.of({
      obtain: Effect.suspend(() =>
        call(
          "obtain_token",
          HttpClientRequest.post("/user/obtain_token").pipe(
            HttpClientRequest.acceptJson,
            // The password leaves its Redacted box here, at the last moment, and only in the body.
            HttpClientRequest.bodyUnsafeJson({ username: options.username, password: Redacted.value(options.password) })
          ),
          [Redacted.value(options.password)]
        )
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

const readBody = (response: HttpClientResponse.HttpClientResponse) => Effect.ignore(response.text)

const TokenResponse = Schema.Struct({ token: TokenString }).annotations({
  message: () => "expected a JSON object with a \"token\""
})
const decodeTokenResponse = Schema.decodeUnknownEither(TokenResponse)

/**
 * What an answer the pipeline let through (2xx, or a 4xx other than 408 and 429) means: a
 * token, or the `AuthError` its status means.
 */
const answer = (
  endpoint: Endpoint,
  response: HttpClientResponse.HttpClientResponse,
  secrets: ReadonlyArray<string>
): Effect.Effect<Redacted.Redacted<string>, AuthError> => {
  const status = response.status
  if (status < 300) {
    return response.json.pipe(
      Effect.mapError(() => "the body is not JSON"),
      // Never the body itself in the error: a half-right answer may still contain a token.
      Effect.flatMap((body) => Either.mapLeft(decodeTokenResponse(body), problem)),
      Effect.mapBoth({
        onFailure: (detail) => new AuthError({ endpoint, reason: "MalformedResponse", status, detail }),
        onSuccess: ({ token }) => Redacted.make(token)
      })
    )
  }
  if (status === 404 && endpoint === "obtain_token") {
    // Nothing answers at this URL: the base URL is wrong, not the password.
    return Effect.fail(new AuthError({ endpoint, reason: "NotFound", status, detail: response.request.url }))
  }
  return Effect.flatMap(AmpHttp.detailOf(response, secrets), (detail) =>
    new AuthError({
      endpoint,
      reason: endpoint === "obtain_token" ? "InvalidCredentials" : "RefreshRejected",
      status,
      detail
    }))
}

/** What is wrong with a token answer, in the schema's words (which never quote the value). */
const problem = (error: ParseResult.ParseError): string =>
  ParseResult.ArrayFormatter.formatErrorSync(error).map(({ message, path }) =>
    path.length === 0 ? message : `${path.join(".")}: ${message}`
  ).join("; ")

/**
 * The service from explicit options; needs an `HttpClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: AuthApiOptions): Layer.Layer<AuthApi, never, HttpClient.HttpClient> =>
  Layer.effect(AuthApi, make(options))

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
