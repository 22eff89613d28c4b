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
import { Cause, Context, Effect, Exit, Layer, Metric, Option, Redacted, Schema, type Scope } from "effect"
import * as AmpConfig from "./AmpConfig.js"
import { AuthError, type Endpoint, isAuthError } from "./AmpHttpError.js"
import * as AmpHttp from "./internal/ampHttp.js"
import type * as RetryPolicy from "./RetryPolicy.js"
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
 * What `make` needs: where and as whom to log in, and how hard to try.
 *
 * @since 0.1.0
 * @category models
 */
export interface AuthApiOptions extends AmpConfig.Credentials {
  readonly retry: RetryPolicy.RetryOptions
  /** How long one attempt may take, answer body included. */
  readonly requestTimeout: Duration.DurationInput
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
    const http = yield* AmpHttp.make(options)

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
 * The service from `AMP_*` / `API_*` variables (see `AmpConfig`); needs an `HttpClient`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: Layer.Layer<AuthApi, AmpConfig.AmpConfigError, HttpClient.HttpClient> = Layer.scoped(
  AuthApi,
  Effect.flatMap(
    Effect.all({
      credentials: AmpConfig.credentials,
      retry: AmpConfig.retry,
      requestTimeout: AmpConfig.requestTimeout
    }),
    ({ credentials, requestTimeout, retry }) => make({ ...credentials, retry, requestTimeout })
  )
)
