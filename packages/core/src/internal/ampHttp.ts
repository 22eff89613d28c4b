/**
 * The one HTTP pipeline to the AMP API, under both `AuthApi` and `AmpClient`, and what an error
 * may show of a server's or a transport's text.
 *
 * @internal
 */
import {
  FetchHttpClient,
  Headers,
  HttpClient,
  type HttpClientError,
  HttpClientRequest,
  HttpClientResponse
} from "@effect/platform"
import { Clock, Duration, Effect, Option, ParseResult, Schema } from "effect"
import type { AmpHttpError, ApiReason, AuthError, AuthReason } from "../AmpHttpError.js"
import * as RetryPolicy from "../RetryPolicy.js"

export interface Options {
  readonly baseUrl: string
  readonly retry: RetryPolicy.RetryOptions
  readonly requestTimeout: Duration.DurationInput
  /** Whether a transient failure may be retried (`AmpClient`: by method). Default: always. */
  readonly retried?: ((error: AmpHttpError) => Effect.Effect<boolean>) | undefined
}

/** A failure the pipeline found, before the caller names where it happened. */
export type Failure = Omit<ConstructorParameters<typeof AuthError>[0], "endpoint" | "reason"> & {
  readonly reason: AuthReason & ApiReason
}

/**
 * The pipeline over the `HttpClient` in context: the base URL; redirects never followed and
 * `Authorization` redacted; 3xx, 408, 429 and 5xx turned into failures named by `fail`; each
 * attempt cut at the timeout; transient failures retried. Other answers (2xx, 4xx) are the
 * caller's to read.
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
      HttpClient.catchAll((error) =>
        Effect.flatMap(failureOf(error), (failure) => Effect.fail(fail(failure, error.request)))
      ),
      HttpClient.transform((sent, request) =>
        Effect.timeoutFail(sent, {
          duration: timeout,
          onTimeout: () => fail({ reason: "RequestTimeout", timeout }, request)
        })
      ),
      HttpClient.retry(RetryPolicy.schedule<E>(options.retry, options.retried))
    )
  })

/** A 4xx the caller reads: the request itself was refused. 408 and 429 are worth another try. */
const isFinal4xx = (status: number) => status >= 400 && status < 500 && status !== 408 && status !== 429

/**
 * Sends with redirects off and `Authorization` redacted, whatever the application configured:
 * `FetchHttpClient` follows redirects unless told `redirect: "manual"` (`NodeHttpClient`'s
 * clients never do), and spans show the token unless the header is among the redacted names.
 */
const guarded = <E, R>(
  sent: Effect.Effect<HttpClientResponse.HttpClientResponse, E, R>
): Effect.Effect<HttpClientResponse.HttpClientResponse, E, R> =>
  Effect.flatMap(Effect.serviceOption(FetchHttpClient.RequestInit), (init) =>
    sent.pipe(
      Effect.provideService(FetchHttpClient.RequestInit, { ...Option.getOrUndefined(init), redirect: "manual" }),
      Effect.locallyWith(Headers.currentRedactedNames, (names) => [...names, "authorization"])
    ))

/** What a failed attempt means. A refused answer's body is read and dropped (the connection is reused). */
const failureOf = (error: HttpClientError.HttpClientError): Effect.Effect<Failure> =>
  Effect.gen(function*() {
    if (error._tag === "RequestError") {
      const cause = describeCause(error)
      const secrets = secretsOf(error.request)
      return error.reason === "Transport"
        ? { reason: "TransportError", detail: cleanText(cause || error.message, secrets) }
        : { reason: "InvalidRequest", detail: cleanText(cause ? `${error.reason}: ${cause}` : error.message, secrets) }
    }
    const { headers, status } = error.response
    yield* Effect.ignore(error.response.text)
    if (status === 429) return { reason: "RateLimited", status, retryAfter: yield* retryAfter(headers["retry-after"]) }
    if (status >= 500 || status === 408) return { reason: "ServerError", status }
    return { reason: "Redirected", status, detail: locationOrigin(headers["location"], error.request.url) }
  })

const decodePassword = Schema.decodeOption(Schema.parseJson(Schema.Struct({ password: Schema.String })))

/** The secrets a request carries, to remove from what a transport says of it: token and password. */
const secretsOf = (request: HttpClientRequest.HttpClientRequest): ReadonlyArray<string> => {
  const token = request.headers["authorization"]?.slice("token ".length)
  const body = request.body._tag === "Uint8Array" ? new TextDecoder().decode(request.body.body) : ""
  const password = Option.map(decodePassword(body), (body) => body.password)
  return [token, Option.getOrUndefined(password)].filter((secret) => secret !== undefined)
}

/** The origin a `Location` points to (never its path or query: they may carry anything). */
const locationOrigin = (location: string | undefined, base: string): string => {
  if (location === undefined) return "no Location"
  return URL.canParse(location, base) ? new URL(location, base).origin : "an unreadable Location"
}

/** The base URL without trailing slashes, so that `.../api/` and `.../api` are the same API. */
export const normalizeBaseUrl = (url: string): string => url.replace(/\/+$/, "")

/** `Retry-After` as delay-seconds or an HTTP date (relative to `Clock`); `undefined` when unreadable. */
const retryAfter = (header: string | undefined): Effect.Effect<Duration.Duration | undefined> =>
  Effect.map(Clock.currentTimeMillis, (now) => {
    if (header === undefined) return undefined
    const text = header.trim()
    if (/^\d+$/.test(text)) return Duration.seconds(Number(text))
    // `Date.parse` reads IMF-fixdate ("Wed, 21 Oct 2015 07:28:00 GMT"), the format HTTP uses.
    const date = Date.parse(text)
    return Number.isNaN(date) ? undefined : Duration.millis(Math.max(0, date - now))
  })

/** What a transport failure really was: its cause's message and that cause's own, or "". */
export const describeCause = (error: { readonly cause?: unknown }): string => {
  const cause = error.cause instanceof Error ? error.cause : undefined
  if (cause === undefined) return ""
  return cause.cause instanceof Error ? `${cause.message}: ${cause.cause.message}` : cause.message
}

const decodeDetail = Schema.decodeOption(Schema.parseJson(Schema.Struct({ detail: Schema.String })))

/**
 * What an error shows of an answer's body: the `detail` of a JSON body (Django REST
 * framework's field for the reason), else the body itself; cleaned by `cleanText`.
 */
export const detailOf = (
  response: HttpClientResponse.HttpClientResponse,
  secrets: ReadonlyArray<string>
): Effect.Effect<string> =>
  Effect.map(Effect.orElseSucceed(response.text, () => ""), (text) =>
    cleanText(
      Option.match(decodeDetail(text), { onNone: () => text, onSome: ({ detail }) => detail }),
      secrets
    ))

/**
 * Decodes an answer's JSON body with `schema`. The failure says what is wrong in the schema's
 * words, never the body itself: a half-right answer may still contain a token.
 */
export const decodeBody = <A, I>(
  response: HttpClientResponse.HttpClientResponse,
  schema: Schema.Schema<A, I>
): Effect.Effect<A, string> =>
  Effect.mapError(
    HttpClientResponse.schemaBodyJson(schema)(response),
    (error) => ParseResult.isParseError(error) ? cleanText(problem(error)) : "the body is not JSON"
  )

/** The first issue (the only one: decoding stops there), with its path. */
const problem = (error: ParseResult.ParseError): string => {
  const { message, path } = ParseResult.ArrayFormatter.formatErrorSync(error)[0]!
  return path.length === 0 ? message : `${path.join(".")}: ${message}`
}

/**
 * Makes server- or transport-supplied text safe to keep in an error: control and format
 * characters (which could rewrite a terminal or a log line) gone, whitespace folded, every
 * secret removed in whatever encoding it came in, and cut to 200 characters.
 */
export const cleanText = (text: string, secrets: ReadonlyArray<string> = []): string => {
  let safe = text.replace(/[\p{Cc}\p{Cf}\s]+/gu, " ").trim()
  for (const secret of secrets) {
    const words = secret.replace(/\s+/g, " ").trim()
    // A secret of one to three characters would garble every message and protect nothing.
    if (words.length >= 4) safe = safe.replace(anyEncoding(words), "<redacted>")
  }
  const chars = Array.from(safe)
  return chars.length > 200 ? `${chars.slice(0, 200).join("")}…` : safe
}

/**
 * A pattern matching `words` (a secret, whitespace folded) however a server echoed it, in any
 * mix: each character as itself, JSON-escaped or percent-encoded (either case); its whitespace
 * as any run of whitespace, `+`, `%20` or escaped whitespace.
 */
const anyEncoding = (words: string): RegExp => {
  const gap = String.raw`(?:\s|\+|%(?:20|09|0[aAdD])|\\[ntr]|\\u00(?:20|09|0[aAdD]))+`
  const parts = Array.from(words, (char) => {
    if (char === " ") return gap
    const unicode = String.raw`\\u${caseless(char.codePointAt(0)!.toString(16).padStart(4, "0"))}`
    const forms = [escapeRegExp(char), escapeRegExp(JSON.stringify(char).slice(1, -1)), percentForm(char), unicode]
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
