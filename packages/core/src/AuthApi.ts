/**
 * The two AMP authentication endpoints, over an abstract `HttpClient`:
 *
 * - `obtain`: `POST {base}/user/obtain_token` with `{"username", "password"}`.
 * - `refresh`: `GET {base}/user/refresh-token` with `Authorization: token <current>`
 *   (the documented path; the Rust client's `POST /user/refresh_token` does not exist).
 *
 * Each attempt is cut at the request timeout and retried under the `RetryPolicy`. Answers are
 * decoded with `Schema`; every failure is one of the typed `AuthError`s.
 *
 * @since 0.1.0
 */
import { HttpClient, HttpClientRequest, type HttpClientResponse } from "@effect/platform"
import {
  Cause,
  Clock,
  Context,
  DateTime,
  Duration,
  Effect,
  Exit,
  Layer,
  Metric,
  Option,
  Redacted,
  Schema
} from "effect"
import * as AmpConfig from "./AmpConfig.js"
import * as RetryPolicy from "./RetryPolicy.js"
import { TokenString } from "./TokenData.js"
import {
  type AuthError,
  describeCause,
  type Endpoint,
  InvalidCredentials,
  MalformedResponse,
  RateLimited,
  RefreshRejected,
  RequestTimeout,
  scrub,
  ServerError,
  TransportError
} from "./TokenError.js"
import * as TokenMetrics from "./TokenMetrics.js"

/** The AMP authentication endpoints. Swap the layer to script them in tests. */
export class AuthApi extends Context.Tag("@amp-effect/core/AuthApi")<AuthApi, {
  /** Logs in with the configured credentials and returns a new token. */
  readonly obtain: Effect.Effect<Redacted.Redacted<string>, AuthError>
  /** Exchanges a still-valid token for a new one. */
  readonly refresh: (token: Redacted.Redacted<string>) => Effect.Effect<Redacted.Redacted<string>, AuthError>
}>() {}

/** What `make` needs: where and as whom to log in, and how hard to try. */
export interface AuthApiOptions extends AmpConfig.Credentials {
  readonly retry: RetryPolicy.RetryOptions
  readonly requestTimeout: Duration.DurationInput
}

const TokenResponse = Schema.Struct({ token: TokenString })
const decodeTokenResponse = Schema.decodeUnknownOption(TokenResponse)

/** Builds the service over the `HttpClient` in context. */
export const make = Effect.fnUntraced(function*(options: AuthApiOptions) {
  const client = yield* HttpClient.HttpClient
  const timeout = Duration.decode(options.requestTimeout)
  const base = options.baseUrl.replace(/\/+$/, "")

  // One attempt: send, classify the answer, cut at the timeout. `secrets` are scrubbed from
  // anything the server says that ends up in an error.
  const attempt = (
    endpoint: Endpoint,
    request: HttpClientRequest.HttpClientRequest,
    secrets: () => ReadonlyArray<string>
  ): Effect.Effect<Redacted.Redacted<string>, AuthError> =>
    client.execute(request).pipe(
      Effect.mapError((error) =>
        new TransportError({ endpoint, reason: scrub(describeTransportError(error), secrets()) })
      ),
      Effect.flatMap((response) => classify(endpoint, response, secrets)),
      Effect.timeoutFail({ duration: timeout, onTimeout: () => new RequestTimeout({ endpoint, timeout }) })
    )

  // A whole call: attempts under the retry policy, in one span that records how many attempts
  // it took and how it ended, counted in the endpoint's metric.
  const call = (
    endpoint: Endpoint,
    request: HttpClientRequest.HttpClientRequest,
    secrets: () => ReadonlyArray<string>
  ) =>
    Effect.suspend(() => {
      let attempts = 0
      return Effect.suspend(() => {
        attempts++
        return attempt(endpoint, request, secrets)
      }).pipe(
        RetryPolicy.retry(options.retry, RetryPolicy.authTarget),
        Effect.onExit((exit) => {
          const outcome = Exit.isSuccess(exit) ? "success" : Option.getOrElse(
            Option.map(Cause.failureOption(exit.cause), (error) => error._tag),
            () => "interrupted"
          )
          return Effect.zipRight(
            Effect.annotateCurrentSpan({ attempts, outcome }),
            Metric.increment(
              Metric.tagged(
                endpoint === "obtain_token" ? TokenMetrics.logins : TokenMetrics.refreshes,
                "outcome",
                outcome
              )
            )
          )
        }),
        Effect.withSpan(endpoint === "obtain_token" ? "AuthApi.obtain" : "AuthApi.refresh", {
          attributes: { endpoint }
        })
      )
    })

  const obtain = call(
    "obtain_token",
    HttpClientRequest.post(`${base}/user/obtain_token`).pipe(
      HttpClientRequest.acceptJson,
      // The password leaves its Redacted box here, at the last moment, and only in the body.
      (request) =>
        HttpClientRequest.bodyUnsafeJson(request, {
          username: options.username,
          password: Redacted.value(options.password)
        })
    ),
    () => [Redacted.value(options.password)]
  )

  const refresh = (token: Redacted.Redacted<string>) =>
    call(
      "refresh-token",
      HttpClientRequest.get(`${base}/user/refresh-token`).pipe(
        HttpClientRequest.acceptJson,
        HttpClientRequest.setHeader("authorization", `token ${Redacted.value(token)}`)
      ),
      () => [Redacted.value(token), Redacted.value(options.password)]
    )

  return AuthApi.of({ obtain, refresh })
})

/** Turns an answer into a token or the `AuthError` its status means. */
const classify = (
  endpoint: Endpoint,
  response: HttpClientResponse.HttpClientResponse,
  secrets: () => ReadonlyArray<string>
): Effect.Effect<Redacted.Redacted<string>, AuthError> => {
  const status = response.status
  const detail = Effect.map(
    Effect.orElseSucceed(response.text, () => ""),
    (text) => scrub(text, secrets())
  )
  if (status >= 200 && status < 300) {
    return Effect.flatMap(
      Effect.either(response.json),
      (body) =>
        Option.match(body._tag === "Right" ? decodeTokenResponse(body.right) : Option.none(), {
          // The body is not quoted: a half-right answer may still contain a token.
          onNone: () =>
            new MalformedResponse({
              endpoint,
              status,
              reason: body._tag === "Left"
                ? "the body is not JSON"
                : "expected a JSON object with a \"token\" string of printable characters"
            }),
          onSome: ({ token }) => Effect.succeed(Redacted.make(token))
        })
    )
  }
  if (status === 429) {
    return Effect.flatMap(
      retryAfter(response.headers["retry-after"]),
      (wait) => new RateLimited(wait === undefined ? { endpoint } : { endpoint, retryAfter: wait })
    )
  }
  if (status >= 500 || status === 408) {
    return Effect.zipRight(Effect.ignore(response.text), new ServerError({ endpoint, status }))
  }
  if (status >= 400) {
    return Effect.flatMap(detail, (detail): Effect.Effect<never, AuthError> =>
      endpoint === "obtain_token"
        ? Effect.fail(new InvalidCredentials({ status, detail }))
        : Effect.fail(new RefreshRejected({ status, detail })))
  }
  return Effect.zipRight(
    Effect.ignore(response.text),
    new MalformedResponse({ endpoint, status, reason: "unexpected HTTP status" })
  )
}

/**
 * Parses `Retry-After`: delay-seconds or an HTTP date (relative to `Clock`). `undefined` when
 * absent or unreadable, in which case the normal backoff applies.
 */
export const retryAfter = (header: string | undefined): Effect.Effect<Duration.Duration | undefined> =>
  Effect.map(Clock.currentTimeMillis, (now) => {
    if (header === undefined) return undefined
    const text = header.trim()
    if (/^\d+$/.test(text)) return Duration.seconds(Number(text))
    // `new Date` reads IMF-fixdate ("Wed, 21 Oct 2015 07:28:00 GMT"), the format HTTP uses.
    return Option.match(DateTime.make(new Date(text)), {
      onNone: () => undefined,
      onSome: (date) => Duration.millis(Math.max(0, DateTime.toEpochMillis(date) - now))
    })
  })

const describeTransportError = (error: { readonly message: string; readonly cause?: unknown }): string => {
  const cause = describeCause(error)
  return cause.length === 0 ? error.message : `${error.message}: ${cause}`
}

/** The service from explicit options; needs an `HttpClient`. */
export const layer = (options: AuthApiOptions): Layer.Layer<AuthApi, never, HttpClient.HttpClient> =>
  Layer.effect(AuthApi, make(options))

/** The service from `AMP_*` / `API_*` variables (see `AmpConfig`); needs an `HttpClient`. */
export const layerConfig: Layer.Layer<AuthApi, AmpConfig.AmpConfigError, HttpClient.HttpClient> = Layer.effect(
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
