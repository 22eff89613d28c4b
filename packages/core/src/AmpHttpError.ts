/**
 * How a call to the AMP API can fail: one vocabulary of reasons for both of the library's
 * HTTP clients, in the shape of `@effect/platform`'s `HttpClientError`.
 *
 * - `AuthError`: a call to an authentication endpoint (`AuthApi.obtain`, `AuthApi.refresh`),
 *   named by its endpoint: `obtain_token` or `refresh-token`.
 * - `ApiError`: a request sent through `AmpClient`, named by its method and path
 *   (`GET /api/assets/`).
 *
 * Both carry a `reason` saying what went wrong, and the same optional facts: the HTTP status,
 * a `detail` (server text, cut short and scrubbed of secrets, or what the transport said), the
 * wait a 429 asked for, the timeout that ran out. Messages name the cause and never a secret.
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

/**
 * The AMP authentication endpoint a call was made to, as named in errors, logs and metrics.
 *
 * @since 0.1.0
 * @category models
 */
export const Endpoint = Schema.Literal("obtain_token", "refresh-token")

/**
 * @since 0.1.0
 * @category models
 */
export type Endpoint = typeof Endpoint.Type

/*
 * The reasons both clients share: what the transport or a generic answer means.
 *
 * - `TransportError`: no HTTP answer (connection refused or reset, DNS failure, ...). Transient.
 * - `RequestTimeout`: no answer within `API_REQUEST_TIMEOUT_SECONDS`. Transient.
 * - `ServerError`: HTTP 5xx or 408. Transient.
 * - `RateLimited`: HTTP 429, with the wait its `Retry-After` asked for in `retryAfter`. Transient.
 * - `MalformedResponse`: a 2xx (or an unexpected status) whose body is not what the API promises.
 * - `InvalidRequest`: the request could not be sent as given (invalid URL, body not encodable).
 * - `Redirected`: a 3xx answer. AMP never redirects, and a credential must never follow one:
 *   `detail` names the origin the `Location` pointed to, which was sent nothing. Final.
 */
const sharedReasons = [
  "TransportError",
  "RequestTimeout",
  "ServerError",
  "RateLimited",
  "MalformedResponse",
  "InvalidRequest",
  "Redirected"
] as const

/**
 * Why a call to an authentication endpoint failed: one the two clients share (`TransportError`,
 * `RequestTimeout`, `ServerError` and `RateLimited`, which are transient; `MalformedResponse`,
 * `InvalidRequest` and `Redirected`, which are final), or
 *
 * - `InvalidCredentials`: `obtain_token` answered a 4xx (other than 404, 408, 429): the
 *   username or password was refused. Never retried: retrying risks locking the account.
 * - `RefreshRejected`: `refresh-token` answered a 4xx (other than 408, 429).
 * - `NotFound`: `obtain_token` answered 404: the base URL is wrong (often a missing `/api`).
 *
 * @since 0.1.0
 * @category models
 */
export const AuthReason = Schema.Literal(...sharedReasons, "InvalidCredentials", "RefreshRejected", "NotFound")

/**
 * @since 0.1.0
 * @category models
 */
export type AuthReason = typeof AuthReason.Type

/**
 * Why a request through `AmpClient` failed: one the two clients share (see `AuthReason`), or
 *
 * - `Unauthorized`: 401/403 with the current token, and again with the token renewed after
 *   that rejection. Never retried further.
 * - `StatusCode`: a typed endpoint (`listAssets`, `getAsset`, ...) got a status that is none of
 *   the above (404, 400, ...). `AmpClient.httpClient` returns such answers as they are.
 *
 * @since 0.1.0
 * @category models
 */
export const ApiReason = Schema.Literal(...sharedReasons, "Unauthorized", "StatusCode")

/**
 * @since 0.1.0
 * @category models
 */
export type ApiReason = typeof ApiReason.Type

/** The facts both error classes may carry besides their reason. */
const facts = {
  /** The HTTP status of the answer, when there was one. */
  status: Schema.optional(Schema.Number),
  /**
   * More about the cause: what the server said (its `detail`, printable, cut short, secrets
   * removed), what the transport said, what did not decode, (`NotFound`) the URL asked, or
   * (`Redirected`) the origin the redirect pointed to.
   */
  detail: Schema.optional(Schema.String),
  /** `RateLimited`: the wait the server's `Retry-After` asked for, when it sent one. */
  retryAfter: Schema.optional(Schema.DurationFromSelf),
  /** `RequestTimeout`: the per-attempt timeout that ran out. */
  timeout: Schema.optional(Schema.DurationFromSelf)
}

/**
 * A call to an AMP authentication endpoint failed. Only the transient reasons
 * (`isTransient`) are retried, under the `RetryPolicy`, before this error is seen.
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
 * A request sent through `AmpClient` failed. `path` is the URL path without the query: what
 * was asked for, never who asked.
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
 * Any failure of a call to the AMP API, authentication or not.
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
export const isAmpHttpError = (u: unknown): u is AmpHttpError => isAuthError(u) || isApiError(u)

/**
 * Whether `u` is an `AuthError`.
 *
 * @since 0.1.0
 * @category refinements
 */
export const isAuthError = (u: unknown): u is AuthError => Predicate.isTagged(u, "AuthError")

/**
 * Whether `u` is an `ApiError`.
 *
 * @since 0.1.0
 * @category refinements
 */
export const isApiError = (u: unknown): u is ApiError => Predicate.isTagged(u, "ApiError")

/**
 * True for failures worth another attempt: 5xx/408, no answer, a timeout and 429. Refused
 * credentials, refused refreshes, rejections, wrong URLs and malformed answers are final.
 *
 * @since 0.1.0
 * @category predicates
 */
export const isTransient = (error: AmpHttpError): boolean => {
  switch (error.reason) {
    case "ServerError":
    case "TransportError":
    case "RequestTimeout":
    case "RateLimited":
      return true
    default:
      return false
  }
}

/** The one wording of every reason; `target` is the endpoint, or method and path. */
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
