/**
 * An authenticated `HttpClient` for the AMP API, and a few typed endpoints built on it.
 *
 * A request through `httpClient` has the base URL prepended and carries `Authorization: token
 * <t>` (shown as `<redacted>` in traces). On a 401 or 403 the token is renewed once (one renewal
 * shared by every request rejected with the same token) and the request sent again; a second
 * rejection is reason `Unauthorized`. Transient failures are retried when the method is
 * idempotent or the caller opted in. A 3xx is reason `Redirected`, never followed. Other answers
 * (2xx, 404, ...) are returned as they are.
 *
 * @example
 * ```ts
 * import { AmpClient } from "@amp-effect/core"
 * import { Effect } from "effect"
 *
 * // A typed endpoint, and an endpoint without one: its JSON is yours to decode.
 * const program = Effect.gen(function*() {
 *   const amp = yield* AmpClient.AmpClient
 *   const assets = yield* amp.listAssets
 *   const response = yield* amp.httpClient.get("/assets/")
 *   const json = yield* response.json
 *   return { names: assets.map((asset) => asset.name), json }
 * })
 * ```
 *
 * @since 0.1.0
 */
import { HttpClient, HttpClientRequest, type HttpClientResponse } from "@effect/platform"
import { Config, Context, type Duration, Effect, FiberRef, Layer, Redacted, Schema } from "effect"
import { globalValue } from "effect/GlobalValue"
import * as AmpConfig from "./AmpConfig.js"
import { type AmpHttpError, ApiError, type AuthError } from "./AmpHttpError.js"
import * as AmpHttp from "./internal/ampHttp.js"
import * as RetryPolicy from "./RetryPolicy.js"
import type { TokenStoreError } from "./TokenError.js"
import { TokenService } from "./TokenService.js"

/**
 * What an authenticated call can fail with: the request (`ApiError`) or the token.
 *
 * @since 0.1.0
 * @category errors
 */
export type AmpClientError = ApiError | AuthError | TokenStoreError

/**
 * `GET /info`: the API's version.
 *
 * @since 0.1.0
 * @category models
 */
export class Info extends Schema.Class<Info>("Info")({ version: Schema.String }) {}

/**
 * `GET /changelog`: what changed in each API version, keyed by version, as the server sends it.
 *
 * @since 0.1.0
 * @category models
 */
export const Changelog = Schema.Record({ key: Schema.String, value: Schema.Unknown })

/**
 * @since 0.1.0
 * @category models
 */
export type Changelog = typeof Changelog.Type

/**
 * One asset of `GET /assets/` (the fields the examples use; the API sends more).
 *
 * @since 0.1.0
 * @category models
 */
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

/**
 * The authenticated AMP client. A typed endpoint fails with reason `StatusCode` on an answer
 * that is not a 2xx (a 404 for an unknown asset).
 *
 * @since 0.1.0
 * @category tags
 */
export class AmpClient extends Context.Tag("@amp-effect/core/AmpClient")<AmpClient, {
  /** Takes paths relative to the base URL (`"/assets/"`); its requests need no further context. */
  readonly httpClient: HttpClient.HttpClient.With<AmpClientError>
  /** `GET /info`, sent without a token: the endpoint needs none. */
  readonly info: Effect.Effect<Info, ApiError>
  readonly changelog: Effect.Effect<Changelog, AmpClientError>
  readonly listAssets: Effect.Effect<ReadonlyArray<Asset>, AmpClientError>
  readonly getAsset: (assetUuid: string) => Effect.Effect<Asset, AmpClientError>
}>() {}

/**
 * What `make` needs: `baseUrl`; `retry` (default `RetryPolicy.defaultOptions`); `requestTimeout`
 * per attempt, until the headers (default 10 s); `retryNonIdempotent`, to retry POST and PATCH
 * too (default `false`: a POST that timed out may have been carried out).
 *
 * @since 0.1.0
 * @category models
 */
export interface AmpClientOptions {
  readonly baseUrl: string
  readonly retry?: RetryPolicy.RetryOptions | undefined
  readonly requestTimeout?: Duration.DurationInput | undefined
  readonly retryNonIdempotent?: boolean
}

/**
 * The options of `layerConfig`: a `Config` for each, by default the `AmpConfig` one of the
 * same name (`Config.nested` or `AmpConfig.nested(prefix)` read other names).
 *
 * @since 0.1.0
 * @category models
 */
export type ConfigOptions = {
  readonly [K in "baseUrl" | "retry" | "requestTimeout"]?:
    | Config.Config<NonNullable<AmpClientOptions[K]>>
    | undefined
}

/** Methods whose repetition has the effect of one request (RFC 9110, 9.2.2). */
const idempotentMethods: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"])

const retryNonIdempotentRef = globalValue(
  "@amp-effect/core/AmpClient/retryNonIdempotent",
  () => FiberRef.unsafeMake(false)
)

/**
 * Lets the AMP requests made by `effect` be retried on transient failures whatever their
 * method: for a POST the server treats idempotently (with an idempotency key).
 *
 * @example
 * ```ts
 * import { AmpClient } from "@amp-effect/core"
 * import { HttpClientRequest } from "@effect/platform"
 * import { Effect } from "effect"
 *
 * const post = (path: string, body: unknown) =>
 *   Effect.flatMap(AmpClient.AmpClient, (amp) =>
 *     amp.httpClient.execute(HttpClientRequest.post(path).pipe(HttpClientRequest.bodyUnsafeJson(body)))
 *   ).pipe(AmpClient.withRetryNonIdempotent)
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const withRetryNonIdempotent = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.locally(effect, retryNonIdempotentRef, true)

/** A 401, or the 403 some deployments answer for an expired or revoked token. */
const isRejection = (status: number) => status === 401 || status === 403

/**
 * Builds the client over the `HttpClient` and the `TokenService` in context.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (
  options: AmpClientOptions
) => Effect.Effect<AmpClient["Type"], never, HttpClient.HttpClient | TokenService> = Effect
  .fnUntraced(function*(options: AmpClientOptions) {
    const tokens = yield* TokenService
    const baseUrl = AmpHttp.normalizeBaseUrl(options.baseUrl)
    const retried = (error: AmpHttpError) =>
      error._tag === "ApiError" && (idempotentMethods.has(error.method) || options.retryNonIdempotent === true)
        ? Effect.succeed(true)
        : FiberRef.get(retryNonIdempotentRef)
    const pipeline = yield* AmpHttp.make({
      baseUrl,
      retry: options.retry ?? RetryPolicy.defaultOptions,
      requestTimeout: options.requestTimeout ?? AmpConfig.defaultRequestTimeout,
      retried
    }, (failure, request) => new ApiError({ ...describe(request), ...failure }))

    // The token leaves its Redacted box here, at the last moment, and only in this header.
    const authorize = (request: HttpClientRequest.HttpClientRequest, token: Redacted.Redacted<string>) =>
      HttpClientRequest.setHeader(request, "authorization", `token ${Redacted.value(token)}`)

    // After a 401/403: renew the rejected token (or pick up the one another fiber got) and send
    // once more through the bare pipeline, so a request is renewed at most once (the base URL
    // the pipeline put in front comes off first).
    const recover = (rejected: HttpClientResponse.HttpClientResponse) =>
      Effect.gen(function*() {
        const request = rejected.request
        yield* Effect.ignore(rejected.text)
        yield* Effect.logDebug(`AMP rejected the token (HTTP ${rejected.status}); renewing it`)
        const token = yield* tokens.renewRejected(Redacted.make(request.headers["authorization"]!.slice(6)))
        const path = HttpClientRequest.setUrl(request, request.url.slice(baseUrl.length))
        const response = yield* pipeline.execute(authorize(path, token))
        if (!isRejection(response.status)) return response
        yield* Effect.ignore(response.text)
        return yield* new ApiError({ ...describe(request), reason: "Unauthorized", status: response.status })
      })

    const httpClient: HttpClient.HttpClient.With<AmpClientError> = pipeline.pipe(
      HttpClient.mapRequestEffect((request) => Effect.map(tokens.getToken, (token) => authorize(request, token))),
      HttpClient.transformResponse(
        Effect.flatMap((response) => isRejection(response.status) ? recover(response) : Effect.succeed(response))
      )
    )

    return AmpClient.of({
      httpClient,
      info: getJson(pipeline, "/info", Info).pipe(Effect.withSpan("AmpClient.info")),
      changelog: getJson(httpClient, "/changelog", Changelog).pipe(Effect.withSpan("AmpClient.changelog")),
      listAssets: getJson(httpClient, "/assets/", Schema.Array(Asset)).pipe(Effect.withSpan("AmpClient.listAssets")),
      getAsset: Effect.fn("AmpClient.getAsset")((assetUuid: string) =>
        getJson(httpClient, `/assets/${encodeURIComponent(assetUuid)}`, Asset)
      )
    })
  })

/** GETs `path` and decodes a 2xx body with `schema`; any other answer is a `StatusCode` error. */
const getJson = <A, I, E>(
  client: HttpClient.HttpClient.With<E>,
  path: string,
  schema: Schema.Schema<A, I>
): Effect.Effect<A, E | ApiError> =>
  Effect.flatMap(client.get(path), (response): Effect.Effect<A, ApiError> => {
    const status = response.status
    const fail = (reason: "StatusCode" | "MalformedResponse", detail: string) =>
      new ApiError({ ...describe(response.request), reason, status, detail })
    return status >= 400
      ? Effect.flatMap(AmpHttp.detailOf(response, []), (detail) => fail("StatusCode", detail))
      : Effect.mapError(AmpHttp.decodeBody(response, schema), (detail) => fail("MalformedResponse", detail))
  })

/** Method and path of a request, for errors: never its headers, body or query. */
const describe = (request: HttpClientRequest.HttpClientRequest) => ({
  method: request.method,
  path: URL.canParse(request.url) ? new URL(request.url).pathname : request.url.split(/[?#]/, 1)[0]!
})

/**
 * The client with explicit options; needs an `HttpClient` and a `TokenService`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: AmpClientOptions
): Layer.Layer<AmpClient, never, HttpClient.HttpClient | TokenService> => Layer.effect(AmpClient, make(options))

/**
 * The client with its options read from `Config` (by default `AMP_API_BASE_URL`, `API_RETRY_*`
 * and `API_REQUEST_TIMEOUT_SECONDS`); needs an `HttpClient` and a `TokenService`. A missing or
 * invalid value fails the layer with an `AmpConfigError` naming the variable.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options?: ConfigOptions
): Layer.Layer<AmpClient, AmpConfig.AmpConfigError, HttpClient.HttpClient | TokenService> =>
  Layer.effect(
    AmpClient,
    Effect.flatMap(
      AmpConfig.read(Config.all({
        baseUrl: options?.baseUrl ?? AmpConfig.baseUrl,
        retry: options?.retry ?? AmpConfig.retry,
        requestTimeout: options?.requestTimeout ?? AmpConfig.requestTimeout
      })),
      make
    )
  )
