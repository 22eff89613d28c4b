/**
 * How a call to the AMP API can fail: `AuthError` (the authentication endpoints) and `ApiError`
 * (requests through `AmpClient`), each with a `reason`, and messages that name the cause and
 * never a secret.
 *
 * @example
 * ```ts
 * import { TokenService } from "@amp-effect/core"
 * import { Effect } from "effect"
 *
 * // A refused password is worth a clear message; any other failure is passed on.
 * const token = TokenService.TokenService.pipe(
 *   Effect.flatMap((tokens) => tokens.getToken),
 *   Effect.catchTag("AuthError", (error) =>
 *     error.reason === "InvalidCredentials"
 *       ? Effect.dieMessage("AMP refused the password: update AMP_PASSWORD")
 *       : Effect.fail(error))
 * )
 * ```
 *
 * @since 0.1.0
 */
import { Duration, Predicate, Schema } from "effect"

const Endpoint = Schema.Literal("obtain_token", "refresh-token")
const shared = [
  "TransportError",
  "RequestTimeout",
  "ServerError",
  "RateLimited",
  "MalformedResponse",
  "InvalidRequest",
  "Redirected"
] as const
const AuthReason = Schema.Literal(...shared, "InvalidCredentials", "RefreshRejected", "NotFound")
const ApiReason = Schema.Literal(...shared, "Unauthorized", "StatusCode")

/**
 * The AMP authentication endpoint a call was made to, as named in errors, logs and metrics.
 *
 * @since 0.1.0
 * @category models
 */
export type Endpoint = typeof Endpoint.Type

/**
 * Why a call to an authentication endpoint failed. Transient, so retried under the
 * `RetryPolicy`: `TransportError` (no answer), `RequestTimeout`, `ServerError` (5xx, 408),
 * `RateLimited` (429, with the server's wait in `retryAfter`). Final: `MalformedResponse` (a
 * body that is not what the API promises), `InvalidRequest` (could not be sent), `Redirected`
 * (a 3xx: never followed, `detail` names the origin it pointed to), `InvalidCredentials` (a 4xx
 * from `obtain_token`), `RefreshRejected` (a 4xx from `refresh-token`), `NotFound` (404 from
 * `obtain_token`: the base URL is wrong).
 *
 * @since 0.1.0
 * @category models
 */
export type AuthReason = typeof AuthReason.Type

/**
 * Why a request through `AmpClient` failed: the shared reasons of `AuthReason`, or
 * `Unauthorized` (rejected again after one renewal) or `StatusCode` (a typed endpoint got
 * another status, such as 404).
 *
 * @since 0.1.0
 * @category models
 */
export type ApiReason = typeof ApiReason.Type

const facts = {
  status: Schema.optional(Schema.Number),
  /** The server's text (decoded, bounded, secrets removed), the transport's, or what failed to decode. */
  detail: Schema.optional(Schema.String),
  /** `RateLimited`: the wait the server's `Retry-After` asked for. */
  retryAfter: Schema.optional(Schema.DurationFromSelf),
  /** `RequestTimeout`: the per-attempt timeout that ran out. */
  timeout: Schema.optional(Schema.DurationFromSelf)
}

/**
 * A call to an AMP authentication endpoint failed.
 *
 * @since 0.1.0
 * @category errors
 */
export class AuthError extends Schema.TaggedError<AuthError>()("AuthError", {
  endpoint: Endpoint,
  reason: AuthReason,
  ...facts
}) {
  override get message(): string {
    return describe(this.endpoint, this)
  }
}

/**
 * A request sent through `AmpClient` failed. `path` is the URL path, without the query.
 *
 * @since 0.1.0
 * @category errors
 */
export class ApiError extends Schema.TaggedError<ApiError>()("ApiError", {
  method: Schema.String,
  path: Schema.String,
  reason: ApiReason,
  ...facts
}) {
  override get message(): string {
    return describe(`${this.method} ${this.path}`, this)
  }
}

/**
 * Any failure of a call to the AMP API.
 *
 * @since 0.1.0
 * @category errors
 */
export type AmpHttpError = AuthError | ApiError

/**
 * Whether `u` is an `AuthError` or an `ApiError`.
 *
 * @since 0.1.0
 * @category refinements
 */
export const isAmpHttpError = (u: unknown): u is AmpHttpError =>
  Predicate.isTagged(u, "AuthError") || Predicate.isTagged(u, "ApiError")

const transient: ReadonlySet<string> = new Set(["ServerError", "TransportError", "RequestTimeout", "RateLimited"])

/**
 * True for the failures worth another attempt: 5xx/408, no answer, a timeout and 429.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isTransient = (error: AmpHttpError): boolean => transient.has(error.reason)

const describe = (target: string, error: AmpHttpError): string => {
  const status = error.status === undefined ? "" : ` (HTTP ${error.status})`
  const answered = error.status === undefined ? "answered" : `answered HTTP ${error.status}`
  const detail = error.detail === undefined || error.detail.length === 0 ? "" : `: ${error.detail}`
  switch (error.reason) {
    case "InvalidCredentials":
      return `AMP rejected the username or password${status}${detail}`
    case "RefreshRejected":
      return `AMP refused to refresh the token${status}${detail}`
    case "NotFound":
      return `AMP has no ${target} endpoint at ${error.detail ?? "the configured URL"}${status}: check ` +
        "AMP_API_BASE_URL, the API's base URL, which ends in /api (such as https://amp-test.blockstream.com/api)"
    case "Unauthorized":
      return `AMP rejected ${target}${status} even with a renewed token`
    case "RateLimited":
      return error.retryAfter === undefined
        ? `AMP rate limited ${target} (HTTP 429, no Retry-After)`
        : `AMP rate limited ${target} (HTTP 429): the server asks to wait ${Duration.format(error.retryAfter)}`
    case "RequestTimeout":
      return `AMP ${target} did not answer within ${
        error.timeout === undefined ? "the request timeout" : Duration.format(error.timeout)
      }`
    case "ServerError":
      return `AMP ${target} failed on the server side${status}`
    case "TransportError":
      return `AMP ${target} is unreachable${detail}`
    case "MalformedResponse":
      return `AMP ${target} ${answered} with an unexpected body${detail}`
    case "StatusCode":
      return `AMP ${target} ${answered}${detail}`
    case "InvalidRequest":
      return `Could not send ${target}${detail}`
    case "Redirected":
      return `AMP ${target} ${answered}, a redirect to ${error.detail ?? "no Location"}: AMP does not ` +
        "redirect, so it was not followed and nothing was sent there (check AMP_API_BASE_URL)"
  }
}
