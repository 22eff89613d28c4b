/**
 * The one HTTP pipeline to the AMP API, under both `AuthApi` (no token) and `AmpClient` (the
 * token and its 401 recovery on top): the base URL, one attempt (send, cut at the per-attempt
 * timeout, classify the answers every AMP call treats alike), retries under the `RetryPolicy`,
 * and the scrubbing of secrets from anything a server or a transport says.
 *
 * What an error is called and where it happened is the caller's: an attempt is given a
 * `fail` that turns a `Failure` into an `AuthError` naming the endpoint, or into an `ApiError`
 * naming method and path.
 *
 * @internal
 */
import {
  Headers,
  HttpClient,
  type HttpClientError,
  type HttpClientRequest,
  type HttpClientResponse
} from "@effect/platform"
import { Clock, DateTime, Duration, Effect, FiberRef, Option, type Scope } from "effect"
import type { AmpHttpError } from "../AmpHttpError.js"
import * as RetryPolicy from "../RetryPolicy.js"

/** What the pipeline needs: where the API is, how hard to try, how long one attempt may take. */
export interface Options {
  readonly baseUrl: string
  readonly retry: RetryPolicy.RetryOptions
  readonly requestTimeout: Duration.DurationInput
}

/** A failure the pipeline found, before the caller names where it happened. */
export interface Failure {
  readonly reason: "TransportError" | "RequestTimeout" | "ServerError" | "RateLimited" | "InvalidRequest"
  readonly status?: number
  readonly detail?: string
  readonly retryAfter?: Duration.Duration
  readonly timeout?: Duration.Duration
}

/** How one kind of call uses an attempt. */
export interface Call<A, E> {
  /** Names a failure: an `AuthError` with its endpoint, an `ApiError` with method and path. */
  readonly fail: (failure: Failure) => E
  /** The secrets this request carries, to scrub from transport text (only read on a failure). */
  readonly secrets: () => ReadonlyArray<string>
  /** What an answer other than 429, 408 or 5xx means; runs within the attempt's timeout. */
  readonly onResponse: (response: HttpClientResponse.HttpClientResponse) => Effect.Effect<A, E>
}

/** The pipeline, built once per layer. */
export interface AmpHttp {
  /** The base URL, without a trailing slash. */
  readonly baseUrl: string
  /** `baseUrl` + `path`, with exactly one slash between them. */
  readonly url: (path: string) => string
  /** One attempt: send, cut at the timeout, classify. No retry. */
  readonly attempt: <A, E>(request: HttpClientRequest.HttpClientRequest, call: Call<A, E>) => Effect.Effect<A, E>
  /** Retries the transient failures that `retried` selects under the policy of the options. */
  readonly retry: (
    retried: (error: AmpHttpError) => boolean
  ) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

/**
 * Builds the pipeline over the `HttpClient` in context. For as long as the scope is open, the
 * fiber that builds it (and so the program a layer built with it is provided to: a layer's
 * FiberRef changes stay in the fiber that built it, are joined back from the fibers that build
 * siblings concurrently, and are replayed where a memoized layer is reused) keeps the
 * `Authorization` header among the redacted ones: it holds the token on every authenticated
 * AMP request, and must show as `<redacted>` in spans even where an application set its own
 * list.
 */
export const make = (options: Options): Effect.Effect<AmpHttp, never, HttpClient.HttpClient | Scope.Scope> =>
  Effect.zipRight(
    Effect.locallyScopedWith(Headers.currentRedactedNames, withAuthorization),
    Effect.map(HttpClient.HttpClient, (http) => fromClient(http, options))
  )

const withAuthorization = (names: ReadonlyArray<string | RegExp>): ReadonlyArray<string | RegExp> =>
  names.includes("authorization") ? names : [...names, "authorization"]

/**
 * Runs a request that carries a token with `Authorization` among the redacted names. The
 * layer put it there when it was built, so this is one read; the list is only extended here
 * where something replaced it after that: the application around a call, or a sibling layer
 * built at the same time (`Layer.merge` joins the siblings' changes, and the one that set its
 * own list wins over ours, which changed nothing where the default list already had it).
 */
const redacting = <A, E>(sending: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.flatMap(FiberRef.get(Headers.currentRedactedNames), (names) =>
    names.includes("authorization")
      ? sending
      : Effect.locally(sending, Headers.currentRedactedNames, [...names, "authorization"]))

const fromClient = (http: HttpClient.HttpClient, options: Options): AmpHttp => {
  const baseUrl = normalizeBaseUrl(options.baseUrl)
  const timeout = Duration.decode(options.requestTimeout)

  const attempt = <A, E>(
    request: HttpClientRequest.HttpClientRequest,
    call: Call<A, E>
  ): Effect.Effect<A, E> =>
    http.execute(request).pipe(
      Effect.mapError((error) => call.fail(fromClientError(error, call.secrets()))),
      Effect.flatMap((response): Effect.Effect<A, E> => {
        const status = response.status
        if (status === 429) {
          return Effect.zipRight(
            discard(response),
            Effect.flatMap(retryAfter(response.headers["retry-after"]), (wait) =>
              Effect.fail(call.fail(
                wait === undefined
                  ? { reason: "RateLimited", status }
                  : { reason: "RateLimited", status, retryAfter: wait }
              )))
          )
        }
        if (status >= 500 || status === 408) {
          return Effect.zipRight(discard(response), Effect.fail(call.fail({ reason: "ServerError", status })))
        }
        return call.onResponse(response)
      }),
      Effect.timeoutFail({ duration: timeout, onTimeout: () => call.fail({ reason: "RequestTimeout", timeout }) }),
      (sending) => request.headers["authorization"] === undefined ? sending : redacting(sending)
    )

  return {
    baseUrl,
    url: (path) => joinUrl(baseUrl, path),
    attempt,
    retry: (retried) => RetryPolicy.retry(options.retry, retried)
  }
}

/**
 * The base URL as every request is built from it: without trailing slashes, so that
 * `https://amp-test.blockstream.com/api/` and `.../api` are the same API.
 */
export const normalizeBaseUrl = (url: string): string => url.replace(/\/+$/, "")

/** `base` + `path`, with exactly one slash between them (`base` has no trailing slash). */
export const joinUrl = (base: string, path: string): string =>
  path.length === 0 ? base : path.startsWith("/") ? base + path : `${base}/${path}`

/** Reads and drops a body nobody will read, so that the connection can be reused. */
export const discard = (response: HttpClientResponse.HttpClientResponse): Effect.Effect<void> =>
  Effect.ignore(response.text)

/** The body as text for an error's `detail`: scrubbed of `secrets`, "" when unreadable. */
export const detailOf = (
  response: HttpClientResponse.HttpClientResponse,
  secrets: ReadonlyArray<string>
): Effect.Effect<string> => Effect.map(Effect.orElseSucceed(response.text, () => ""), (text) => scrub(text, secrets))

/** What the `HttpClient` failure means: no answer, or a request that could not be sent. */
const fromClientError = (error: HttpClientError.HttpClientError, secrets: ReadonlyArray<string>): Failure => {
  const cause = describeCause(error)
  if (error._tag === "RequestError" && error.reason === "Transport") {
    return { reason: "TransportError", detail: scrub(cause.length === 0 ? error.message : cause, secrets) }
  }
  return {
    reason: "InvalidRequest",
    detail: scrub(cause.length === 0 ? error.message : `${error.reason}: ${cause}`, secrets)
  }
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

/**
 * The messages of an error's cause and of that cause's own cause ("fetch failed: connect
 * ECONNREFUSED 127.0.0.1:9"), or "" when it has none: what a transport failure really was.
 */
export const describeCause = (error: { readonly cause?: unknown }): string => {
  const cause = error.cause instanceof Error ? error.cause : undefined
  if (cause === undefined) return ""
  return cause.cause instanceof Error ? `${cause.message}: ${cause.cause.message}` : cause.message
}

/**
 * Makes server-supplied text safe to keep in an error: whitespace folded, every occurrence of
 * a secret replaced, and cut to `maxLength` characters.
 */
export const scrub = (text: string, secrets: ReadonlyArray<string>, maxLength = 200): string => {
  let safe = text.replace(/\s+/g, " ").trim()
  for (const secret of secrets) {
    // A secret of one to three characters would garble every message and protect nothing.
    if (secret.length >= 4) safe = safe.split(secret).join("<redacted>")
  }
  return safe.length > maxLength ? `${safe.slice(0, maxLength)}…` : safe
}
