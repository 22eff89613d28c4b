/**
 * An authenticated `HttpClient` for the AMP API, and a few typed endpoints built on it.
 *
 * Every request sent through `AmpClient.httpClient`:
 *
 * - has the base URL prepended (`"/assets/"` → `https://amp-test.blockstream.com/api/assets/`);
 * - carries `Authorization: token <t>` from `TokenService.getToken`, a header that logs and
 *   traces show as `<redacted>`;
 * - on a 401 or 403, asks `TokenService.renewRejected` for a new token (one renewal shared by
 *   every request rejected with the same token; none when another fiber already renewed) and
 *   is sent once more; a second rejection fails with `Unauthorized`;
 * - on a transient failure (5xx/408, no answer, timeout, 429) is retried under the library's
 *   `RetryPolicy` when its method is idempotent, or when the caller opted in
 *   (`retryNonIdempotent`, `withRetryNonIdempotent`).
 *
 * Other answers (2xx, 404, 400, ...) are returned as they are, for the caller to read.
 *
 * ```ts
 * const assets = yield* AmpClient.AmpClient.pipe(Effect.flatMap((amp) => amp.listAssets))
 * ```
 *
 * @since 0.1.0
 */
import { Headers, HttpClient, type HttpClientError, HttpClientRequest, HttpClientResponse } from "@effect/platform"
import { Context, Duration, Effect, FiberRef, Layer, Option, ParseResult, Redacted, Schema } from "effect"
import { globalValue } from "effect/GlobalValue"
import * as AmpConfig from "./AmpConfig.js"
import { retryAfter } from "./AuthApi.js"
import * as RetryPolicy from "./RetryPolicy.js"
import { type AuthError, describeCause, scrub, type TokenStoreError } from "./TokenError.js"
import { TokenService } from "./TokenService.js"

// -----------------------------------------------------------------------------
// Errors
// -----------------------------------------------------------------------------

const requestFields = {
  method: Schema.String,
  /** The URL path, without query: what was asked for, never who asked. */
  path: Schema.String
}

/**
 * AMP rejected a request (401/403) with the current token, and again with the token renewed
 * after that rejection: the account lacks the right, or tokens are being revoked as fast as
 * they are issued. Never retried further.
 */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  ...requestFields,
  status: Schema.Number
}) {
  override get message() {
    return `AMP rejected ${this.method} ${this.path} (HTTP ${this.status}) even with a renewed token`
  }
}

/** The request got no HTTP answer: connection refused or reset, DNS failure, ... (transient) */
export class ApiTransportError extends Schema.TaggedError<ApiTransportError>()("ApiTransportError", {
  ...requestFields,
  reason: Schema.String
}) {
  override get message() {
    return `AMP is unreachable (${this.method} ${this.path}): ${this.reason}`
  }
}

/** No answer within `API_REQUEST_TIMEOUT_SECONDS` (transient). */
export class ApiRequestTimeout extends Schema.TaggedError<ApiRequestTimeout>()("ApiRequestTimeout", {
  ...requestFields,
  timeout: Schema.DurationFromSelf
}) {
  override get message() {
    return `AMP did not answer ${this.method} ${this.path} within ${Duration.format(this.timeout)}`
  }
}

/** The server answered 5xx or 408 (transient). */
export class ApiServerError extends Schema.TaggedError<ApiServerError>()("ApiServerError", {
  ...requestFields,
  status: Schema.Number
}) {
  override get message() {
    return `AMP failed on the server side for ${this.method} ${this.path} (HTTP ${this.status})`
  }
}

/** The server answered 429, with the wait its `Retry-After` asked for when it sent one (transient). */
export class ApiRateLimited extends Schema.TaggedError<ApiRateLimited>()("ApiRateLimited", {
  ...requestFields,
  retryAfter: Schema.optional(Schema.DurationFromSelf)
}) {
  override get message() {
    return this.retryAfter === undefined
      ? `AMP rate limited ${this.method} ${this.path} (HTTP 429, no Retry-After)`
      : `AMP rate limited ${this.method} ${this.path} (HTTP 429): the server asks to wait ${
        Duration.format(this.retryAfter)
      }`
  }
}

/** The request could not be sent as given (invalid URL, body that cannot be encoded). */
export class ApiRequestError extends Schema.TaggedError<ApiRequestError>()("ApiRequestError", {
  ...requestFields,
  reason: Schema.String
}) {
  override get message() {
    return `Could not send ${this.method} ${this.path}: ${this.reason}`
  }
}

/** A typed endpoint got an answer other than 2xx that is not one of the above (404, 400, ...). */
export class ApiStatusError extends Schema.TaggedError<ApiStatusError>()("ApiStatusError", {
  ...requestFields,
  status: Schema.Number,
  detail: Schema.String
}) {
  override get message() {
    return `AMP answered ${this.method} ${this.path} with HTTP ${this.status}${
      this.detail.length === 0 ? "" : `: ${this.detail}`
    }`
  }
}

/** A typed endpoint got a 2xx whose body is not what the API promises. */
export class ApiMalformedResponse extends Schema.TaggedError<ApiMalformedResponse>()("ApiMalformedResponse", {
  ...requestFields,
  status: Schema.Number,
  reason: Schema.String
}) {
  override get message() {
    return `AMP answered ${this.method} ${this.path} (HTTP ${this.status}) with an unexpected body: ${this.reason}`
  }
}

/** Failures of a request itself (the token aside). */
export type ApiError =
  | Unauthorized
  | ApiTransportError
  | ApiRequestTimeout
  | ApiServerError
  | ApiRateLimited
  | ApiRequestError
  | ApiStatusError
  | ApiMalformedResponse

/** Everything an authenticated call can fail with: the request's failures and the token's. */
export type AmpClientError = ApiError | AuthError | TokenStoreError

// -----------------------------------------------------------------------------
// Models of the typed endpoints
// -----------------------------------------------------------------------------

/** `GET /info`: the API's version. */
export class Info extends Schema.Class<Info>("Info")({
  version: Schema.String
}) {}

/** `GET /changelog`: what changed in each API version, keyed by version. Kept as the server sends it. */
export const Changelog = Schema.Record({ key: Schema.String, value: Schema.Unknown })
export type Changelog = typeof Changelog.Type

/** One asset of `GET /assets/` (the fields the examples use; the API sends more). */
export class Asset extends Schema.Class<Asset>("Asset")({
  assetUuid: Schema.propertySignature(Schema.String).pipe(Schema.fromKey("asset_uuid")),
  assetId: Schema.propertySignature(Schema.String).pipe(Schema.fromKey("asset_id")),
  name: Schema.String,
  ticker: Schema.optionalWith(Schema.String, { nullable: true }),
  precision: Schema.Number,
  domain: Schema.optionalWith(Schema.String, { nullable: true }),
  isRegistered: Schema.propertySignature(Schema.Boolean).pipe(Schema.fromKey("is_registered")),
  isAuthorized: Schema.propertySignature(Schema.Boolean).pipe(Schema.fromKey("is_authorized")),
  isLocked: Schema.propertySignature(Schema.Boolean).pipe(Schema.fromKey("is_locked"))
}) {}

// -----------------------------------------------------------------------------
// Service
// -----------------------------------------------------------------------------

/** The authenticated AMP client. */
export class AmpClient extends Context.Tag("@amp-effect/core/AmpClient")<AmpClient, {
  /**
   * An `HttpClient` for AMP: takes paths relative to the base URL (`"/assets/"`), adds the
   * token, recovers once from a 401/403 and retries transient failures. Its requests need no
   * further context.
   */
  readonly httpClient: HttpClient.HttpClient.With<AmpClientError>
  /** `GET /info` (sent without a token: the endpoint needs none). */
  readonly info: Effect.Effect<Info, ApiError>
  /** `GET /changelog`. */
  readonly changelog: Effect.Effect<Changelog, AmpClientError>
  /** `GET /assets/`. */
  readonly listAssets: Effect.Effect<ReadonlyArray<Asset>, AmpClientError>
  /** `GET /assets/{assetUuid}`; an unknown asset is an `ApiStatusError` with status 404. */
  readonly getAsset: (assetUuid: string) => Effect.Effect<Asset, AmpClientError>
}>() {}

/** What `make` needs. */
export interface AmpClientOptions {
  /** The API's base URL, ending in `/api` (a trailing slash is ignored). */
  readonly baseUrl: string
  readonly retry: RetryPolicy.RetryOptions
  /** How long one attempt may wait for the answer's headers. */
  readonly requestTimeout: Duration.DurationInput
  /**
   * Also retry transient failures of POST and PATCH requests. Off by default: a POST that timed
   * out may have been carried out, and sending it again may do it twice.
   */
  readonly retryNonIdempotent?: boolean
}

/** Methods whose repetition has the effect of one request (RFC 9110, 9.2.2). */
const idempotentMethods: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"])

/** The retry policy's view of the client's errors: 5xx/408, no answer, timeout and 429 are transient. */
const clientRetryTarget: RetryPolicy.RetryTarget<RetryPolicy.RetryableError> = {
  isTransient: (error) =>
    error._tag === "ApiServerError" || error._tag === "ApiTransportError" || error._tag === "ApiRequestTimeout" ||
    error._tag === "ApiRateLimited",
  endpoint: () => "api"
}

const retryNonIdempotentRef = globalValue(
  "@amp-effect/core/AmpClient/retryNonIdempotent",
  () => FiberRef.unsafeMake(false)
)

/**
 * Lets the AMP requests made by `effect` be retried on transient failures whatever their
 * method. Use it for a POST the server treats idempotently (for instance one that carries an
 * idempotency key).
 */
export const withRetryNonIdempotent = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.locally(effect, retryNonIdempotentRef, true)

/** A 401, or the 403 some deployments answer for an expired or revoked token. */
const isRejection = (status: number) => status === 401 || status === 403

/** Builds the client over the `HttpClient` and the `TokenService` in context. */
export const make = Effect.fnUntraced(function*(options: AmpClientOptions) {
  const http = yield* HttpClient.HttpClient
  const tokens = yield* TokenService
  const base = options.baseUrl.replace(/\/+$/, "")
  const timeout = Duration.decode(options.requestTimeout)

  /**
   * One attempt: send `request` (with `token` when given) and turn the answers that call for
   * a retry into errors. Rejections (401/403) are returned for the caller to handle.
   */
  const send = (
    request: HttpClientRequest.HttpClientRequest,
    token: Option.Option<Redacted.Redacted<string>>
  ): Effect.Effect<HttpClientResponse.HttpClientResponse, ApiError> => {
    // Only an error needs to say where it happened: no URL parsing on the way to a success.
    const where = () => describe(request)
    const authorized = Option.match(token, {
      onNone: () => request,
      // The token leaves its Redacted box here, at the last moment, and only in this header.
      onSome: (token) => HttpClientRequest.setHeader(request, "authorization", `token ${Redacted.value(token)}`)
    })
    return http.execute(authorized).pipe(
      Effect.mapError((error) => fromHttpClientError(where(), error, token)),
      Effect.flatMap((response): Effect.Effect<HttpClientResponse.HttpClientResponse, ApiError> => {
        const status = response.status
        if (status === 429) {
          return Effect.zipRight(
            discard(response),
            Effect.flatMap(
              retryAfter(response.headers["retry-after"]),
              (wait) => new ApiRateLimited(wait === undefined ? where() : { ...where(), retryAfter: wait })
            )
          )
        }
        if (status >= 500 || status === 408) {
          return Effect.zipRight(discard(response), new ApiServerError({ ...where(), status }))
        }
        return Effect.succeed(response)
      }),
      Effect.timeoutFail({ duration: timeout, onTimeout: () => new ApiRequestTimeout({ ...where(), timeout }) }),
      // Whatever else is configured, this header stays out of logs and spans. It is redacted by
      // default, so the (costlier) local override is only paid where an application removed it.
      (sending) =>
        Effect.flatMap(FiberRef.get(Headers.currentRedactedNames), (names) =>
          names.includes("authorization")
            ? sending
            : Effect.locally(sending, Headers.currentRedactedNames, [...names, "authorization"]))
    )
  }

  /** Retries transient failures under the policy, when the method (or the caller) allows it. */
  const retrying = <A, E extends RetryPolicy.RetryableError>(
    request: HttpClientRequest.HttpClientRequest,
    attempt: Effect.Effect<A, E>
  ): Effect.Effect<A, E> => {
    const retried = RetryPolicy.retry(options.retry, clientRetryTarget as RetryPolicy.RetryTarget<E>)(attempt)
    return idempotentMethods.has(request.method) || options.retryNonIdempotent === true
      ? retried
      : Effect.flatMap(FiberRef.get(retryNonIdempotentRef), (optedIn) => optedIn ? retried : attempt)
  }

  const withBase = (request: HttpClientRequest.HttpClientRequest) =>
    HttpClientRequest.setUrl(request, joinUrl(base, request.url))

  /**
   * The authenticated request: token → send → on a rejection, renew the rejected token (or
   * pick up the one another fiber already got) and send once more → a second rejection is
   * `Unauthorized`. Transient failures retry the whole attempt; the renewal happens at most
   * once per request.
   */
  const authenticated = (request: HttpClientRequest.HttpClientRequest) =>
    Effect.suspend(() => {
      let renewed = false
      // The rare path, after a 401/403: renew once and send again; a second rejection is final.
      const recover = (token: Redacted.Redacted<string>, rejected: HttpClientResponse.HttpClientResponse) =>
        Effect.gen(function*() {
          let response = rejected
          if (!renewed) {
            renewed = true
            yield* discard(response)
            yield* Effect.logDebug(`AMP rejected the token (HTTP ${response.status}); renewing it`)
            response = yield* send(request, Option.some(yield* tokens.renewRejected(token)))
          }
          if (isRejection(response.status)) {
            yield* discard(response)
            return yield* new Unauthorized({ ...describe(request), status: response.status })
          }
          return response
        })
      const attempt = Effect.flatMap(tokens.getToken, (token) =>
        Effect.flatMap(
          send(request, Option.some(token)),
          (response) => isRejection(response.status) ? recover(token, response) : Effect.succeed(response)
        ))
      return retrying(request, attempt)
    })

  const httpClient: HttpClient.HttpClient.With<AmpClientError> = HttpClient.makeWith<
    never,
    never,
    AmpClientError,
    never
  >(
    (request) => Effect.flatMap(request, (request) => authenticated(withBase(request))),
    Effect.succeed
  )

  /** The same without a token, for the endpoints that need none. */
  const publicClient: HttpClient.HttpClient.With<ApiError> = HttpClient.makeWith<never, never, ApiError, never>(
    (request) =>
      Effect.flatMap(request, (request) => {
        const full = withBase(request)
        return retrying(full, send(full, Option.none()))
      }),
    Effect.succeed
  )

  /** GETs `path` and decodes a 2xx body with `schema`; any other answer is an `ApiStatusError`. */
  const getJson = <A, I, E>(
    client: HttpClient.HttpClient.With<E>,
    path: string,
    schema: Schema.Schema<A, I>
  ): Effect.Effect<A, E | ApiStatusError | ApiMalformedResponse> =>
    Effect.flatMap(client.get(path), (response): Effect.Effect<A, ApiStatusError | ApiMalformedResponse> => {
      const where = { method: "GET", path: new URL(joinUrl(base, path)).pathname }
      const status = response.status
      if (status < 200 || status >= 300) {
        return Effect.flatMap(
          Effect.orElseSucceed(response.text, () => ""),
          (text) => new ApiStatusError({ ...where, status, detail: scrub(text, []) })
        )
      }
      return HttpClientResponse.schemaBodyJson(schema)(response).pipe(
        Effect.mapError((error) =>
          new ApiMalformedResponse({
            ...where,
            status,
            reason: ParseResult.isParseError(error)
              ? scrub(ParseResult.TreeFormatter.formatErrorSync(error), [], 300)
              : "the body is not JSON"
          })
        )
      )
    })

  return AmpClient.of({
    httpClient,
    info: getJson(publicClient, "/info", Info).pipe(Effect.withSpan("AmpClient.info")),
    changelog: getJson(httpClient, "/changelog", Changelog).pipe(Effect.withSpan("AmpClient.changelog")),
    listAssets: getJson(httpClient, "/assets/", Schema.Array(Asset)).pipe(Effect.withSpan("AmpClient.listAssets")),
    getAsset: Effect.fn("AmpClient.getAsset")((assetUuid: string) =>
      getJson(httpClient, `/assets/${encodeURIComponent(assetUuid)}`, Asset)
    )
  })
})

/** Method and path of a request, for errors: never its headers, body or query. */
const describe = (request: HttpClientRequest.HttpClientRequest) => ({
  method: request.method,
  path: URL.canParse(request.url) ? new URL(request.url).pathname : request.url.split(/[?#]/, 1)[0]!
})

/** `base` + `path`, with exactly one slash between them. */
const joinUrl = (base: string, path: string) =>
  path.length === 0 ? base : path.startsWith("/") ? base + path : `${base}/${path}`

/** Reads and drops a body nobody will read, so the connection can be reused. */
const discard = (response: HttpClientResponse.HttpClientResponse) => Effect.ignore(response.text)

const fromHttpClientError = (
  where: { readonly method: string; readonly path: string },
  error: HttpClientError.HttpClientError,
  token: Option.Option<Redacted.Redacted<string>>
): ApiError => {
  const secrets = Option.match(token, { onNone: () => [], onSome: (token) => [Redacted.value(token)] })
  const detail = scrub(describeCause(error), secrets)
  return error._tag === "RequestError" && error.reason === "Transport"
    ? new ApiTransportError({ ...where, reason: detail.length === 0 ? "no answer" : detail })
    : new ApiRequestError({ ...where, reason: detail.length === 0 ? error.reason : `${error.reason}: ${detail}` })
}

/** The client with explicit options; needs an `HttpClient` and a `TokenService`. */
export const layer = (
  options: AmpClientOptions
): Layer.Layer<AmpClient, never, HttpClient.HttpClient | TokenService> => Layer.effect(AmpClient, make(options))

/**
 * The client with the base URL, retry policy and request timeout from `AMP_API_BASE_URL`,
 * `API_RETRY_*` and `API_REQUEST_TIMEOUT_SECONDS`; needs an `HttpClient` and a `TokenService`.
 */
export const layerConfig: Layer.Layer<AmpClient, AmpConfig.AmpConfigError, HttpClient.HttpClient | TokenService> = Layer
  .effect(
    AmpClient,
    Effect.flatMap(
      Effect.all({
        baseUrl: AmpConfig.baseUrl,
        retry: AmpConfig.retry,
        requestTimeout: AmpConfig.requestTimeout
      }),
      make
    )
  )
