/**
 * The one HTTP pipeline to the AMP API, under both `AuthApi` and `AmpClient`, composed from
 * `HttpClient`'s own combinators and read top to bottom in `make`.
 *
 * @internal
 */
import {
  FetchHttpClient,
  Headers,
  HttpClient,
  HttpClientError,
  HttpClientRequest,
  type HttpClientResponse
} from "@effect/platform"
import { Cause, Clock, DateTime, Duration, Effect, Option } from "effect"
import type { AmpHttpError } from "../AmpHttpError.js"
import * as RetryPolicy from "../RetryPolicy.js"

/** What the pipeline needs: where the API is, how hard to try, how long one attempt may take. */
export interface Options {
  readonly baseUrl: string
  readonly retry: RetryPolicy.RetryOptions
  readonly requestTimeout: Duration.DurationInput
  /** Whether a transient failure may be retried (`AmpClient`: the method, or the caller's opt-in). */
  readonly retried?: ((error: AmpHttpError) => Effect.Effect<boolean>) | undefined
}

/** A failure the pipeline found, before the caller names where it happened. */
export interface Failure {
  readonly reason: "TransportError" | "RequestTimeout" | "ServerError" | "RateLimited" | "InvalidRequest" | "Redirected"
  readonly status?: number
  readonly detail?: string
  readonly retryAfter?: Duration.Duration
  readonly timeout?: Duration.Duration
}

/**
 * The pipeline over the `HttpClient` in context: the base URL; redirects never followed, and
 * `Authorization` among the redacted header names; the answers every AMP call treats alike (3xx,
 * 408, 429, 5xx) turned into failures; each attempt cut at the timeout; every failure named by
 * `fail` (an `AuthError` naming its endpoint, an `ApiError` naming method and path); transient
 * ones retried under the `RetryPolicy`. Other answers (2xx, 4xx) are the caller's to read.
 */
export const make = <E extends AmpHttpError>(
  options: Options,
  fail: (failure: Failure, request: HttpClientRequest.HttpClientRequest) => E
): Effect.Effect<HttpClient.HttpClient.With<E>, never, HttpClient.HttpClient> =>
  Effect.map(HttpClient.HttpClient, (http) => {
    const timeout = Duration.decode(options.requestTimeout)
    return http.pipe(
      // "/assets/" and "assets/" are both under the base URL.
      HttpClient.mapRequest(HttpClientRequest.prependUrl(`${normalizeBaseUrl(options.baseUrl)}/`)),
      HttpClient.transformResponse(guarded),
      HttpClient.filterStatus((status) => (status >= 200 && status < 300) || isFinal4xx(status)),
      HttpClient.transform((sent, request) =>
        Effect.timeoutFail(sent, {
          duration: timeout,
          onTimeout: () => new HttpClientError.RequestError({ request, reason: "Transport", cause: timedOut })
        })
      ),
      HttpClient.catchAll((error) =>
        Effect.flatMap(failureOf(error, timeout), (failure) => Effect.fail(fail(failure, error.request)))
      ),
      HttpClient.retry(RetryPolicy.schedule<E>(options.retry, options.retried))
    )
  })

/** What marks a `RequestError` as the per-attempt timeout. */
const timedOut = new Cause.TimeoutException("the per-attempt timeout ran out")

/** A 4xx the caller reads: the request itself was refused. 408 and 429 are worth another try. */
const isFinal4xx = (status: number) => status >= 400 && status < 500 && status !== 408 && status !== 429

/**
 * Sends with redirects off and `Authorization` redacted, whatever the application configured.
 * `FetchHttpClient` follows redirects unless told otherwise: its `RequestInit` gets
 * `redirect: "manual"` on top of the application's own, so a 3xx comes back to `filterStatus`
 * (and a browser's opaque redirect, status 0, too). `NodeHttpClient`'s clients (node:http,
 * undici's `Dispatcher.request`) never follow one. The token is in the `Authorization` header
 * of every authenticated request: spans show it as `<redacted>` even where the application set
 * its own list of names.
 */
const guarded = <E, R>(
  sent: Effect.Effect<HttpClientResponse.HttpClientResponse, E, R>
): Effect.Effect<HttpClientResponse.HttpClientResponse, E, R> =>
  Effect.flatMap(Effect.serviceOption(FetchHttpClient.RequestInit), (init) =>
    sent.pipe(
      Effect.provideService(FetchHttpClient.RequestInit, { ...Option.getOrUndefined(init), redirect: "manual" }),
      Effect.locallyWith(Headers.currentRedactedNames, (names) =>
        names.includes("authorization") ? names : [...names, "authorization"])
    ))

/** What a failed attempt means. A refused answer's body is read and dropped (the connection is reused). */
const failureOf = (error: HttpClientError.HttpClientError, timeout: Duration.Duration): Effect.Effect<Failure> => {
  if (error._tag === "RequestError") {
    if (error.cause === timedOut) return Effect.succeed({ reason: "RequestTimeout", timeout })
    const cause = describeCause(error)
    const secrets = secretsOf(error.request)
    return Effect.succeed(
      error.reason === "Transport"
        ? { reason: "TransportError", detail: cleanText(cause || error.message, secrets) }
        : { reason: "InvalidRequest", detail: cleanText(cause ? `${error.reason}: ${cause}` : error.message, secrets) }
    )
  }
  const { headers, status } = error.response
  return Effect.zipRight(
    Effect.ignore(error.response.text),
    status === 429
      ? Effect.map(
        retryAfter(headers["retry-after"]),
        (wait) =>
          wait === undefined ? { reason: "RateLimited", status } : { reason: "RateLimited", status, retryAfter: wait }
      )
      : Effect.succeed<Failure>(
        status < 400
          ? { reason: "Redirected", status, detail: locationOrigin(headers["location"], error.request.url) }
          : { reason: "ServerError", status }
      )
  )
}

/** The secrets a request carries, to remove from what a transport says of it: token and password. */
const secretsOf = (request: HttpClientRequest.HttpClientRequest): ReadonlyArray<string> => {
  const token = request.headers["authorization"]?.replace(/^token /, "")
  const body = request.body._tag === "Uint8Array" ? parseJson(new TextDecoder().decode(request.body.body)) : undefined
  const password = typeof body === "object" && body !== null && "password" in body ? body.password : undefined
  return [token, password].filter((secret): secret is string => typeof secret === "string")
}

/** The origin a `Location` points to (never its path or query: they may carry anything). */
const locationOrigin = (location: string | undefined, base: string): string => {
  if (location === undefined) return "no Location"
  return URL.canParse(location, base) ? new URL(location, base).origin : "an unreadable Location"
}

/**
 * The base URL as every request is built from it: without trailing slashes, so that
 * `https://amp-test.blockstream.com/api/` and `.../api` are the same API.
 */
export const normalizeBaseUrl = (url: string): string => url.replace(/\/+$/, "")

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

/** How much of a server's or a transport's text an error keeps. */
export const maxDetailLength = 200

/**
 * What an error shows of an answer's body: the `detail` of a JSON body (Django REST
 * framework's field for the reason), else the body itself; cleaned by `cleanText`.
 */
export const detailOf = (
  response: HttpClientResponse.HttpClientResponse,
  secrets: ReadonlyArray<string>
): Effect.Effect<string> =>
  Effect.map(Effect.orElseSucceed(response.text, () => ""), (text) => {
    const detail = parseJson(text)
    return cleanText(
      typeof detail === "object" && detail !== null && "detail" in detail && typeof detail.detail === "string"
        ? detail.detail
        : text,
      secrets
    )
  })

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/**
 * Makes server- or transport-supplied text safe to keep in an error: control and format
 * characters (which could rewrite a terminal or a log line) gone, whitespace folded, every
 * secret removed in whatever encoding it came in, and cut to `maxLength` characters.
 */
export const cleanText = (text: string, secrets: ReadonlyArray<string> = [], maxLength = maxDetailLength): string => {
  let safe = text.replace(/[\p{Cc}\p{Cf}\s]+/gu, " ").trim()
  for (const secret of secrets) {
    const words = secret.replace(/\s+/g, " ").trim()
    // A secret of one to three characters would garble every message and protect nothing.
    if (words.length >= 4) safe = safe.replace(anyEncoding(words), "<redacted>")
  }
  const chars = Array.from(safe)
  return chars.length > maxLength ? `${chars.slice(0, maxLength).join("")}…` : safe
}

/**
 * A pattern matching `words` (a secret, whitespace folded) however a server may have echoed it: each character as itself,
 * JSON-escaped (`\"`, `\\`, `\/`, `\u0041`) or percent-encoded (`%22`, either case); its
 * whitespace as any run of whitespace, `+`, `%20` or escaped whitespace. Any mix of these matches,
 * so a form-encoded password inside a JSON string is found too.
 */
const anyEncoding = (words: string): RegExp => {
  const gap = String.raw`(?:\s|\+|%(?:20|09|0[aAdD])|\\[ntr]|\\u00(?:20|09|0[aAdD]))+`
  const parts = Array.from(words, (char) => {
    if (char === " ") return gap
    const forms = [escapeRegExp(char), escapeRegExp(JSON.stringify(char).slice(1, -1)), percentForm(char)]
    const code = char.codePointAt(0)!
    if (code <= 0xffff) forms.push(String.raw`\\u${caseless(code.toString(16).padStart(4, "0"))}`)
    if (char === "/") forms.push(String.raw`\\/`)
    return `(?:${forms.join("|")})`
  })
  return new RegExp(parts.join(""), "g")
}

/** The character's UTF-8 bytes as `%XX`, hex digits in either case. */
const percentForm = (char: string): string =>
  Array.from(new TextEncoder().encode(char), (byte) => `%${caseless(byte.toString(16).padStart(2, "0"))}`).join("")

const caseless = (hex: string): string =>
  Array.from(hex, (digit) => /[a-f]/.test(digit) ? `[${digit}${digit.toUpperCase()}]` : digit).join("")

const escapeRegExp = (text: string): string => text.replace(/[\\^$.*+?()[\]{}|/]/g, "\\$&")
