/**
 * Every way obtaining, refreshing or persisting an AMP token can fail, as typed values.
 *
 * Messages name the cause and never carry a secret: server text that is quoted back is cut
 * short and scrubbed of the password and token before it is stored in an error.
 *
 * @since 0.1.0
 */
import { Duration, Schema } from "effect"

/** The AMP endpoint a request was made to, as named in errors and logs. */
export const Endpoint = Schema.Literal("obtain_token", "refresh-token")
export type Endpoint = typeof Endpoint.Type

/**
 * The server rejected the username or password (a 4xx from `obtain_token` other than 408/429).
 * Never retried: retrying a wrong password only risks locking the account.
 */
export class InvalidCredentials extends Schema.TaggedError<InvalidCredentials>()("InvalidCredentials", {
  status: Schema.Number,
  detail: Schema.String
}) {
  override get message() {
    return `AMP rejected the username or password (HTTP ${this.status})${detailSuffix(this.detail)}`
  }
}

/** The server refused to refresh the current token (a 4xx from `refresh-token`). */
export class RefreshRejected extends Schema.TaggedError<RefreshRejected>()("RefreshRejected", {
  status: Schema.Number,
  detail: Schema.String
}) {
  override get message() {
    return `AMP refused to refresh the token (HTTP ${this.status})${detailSuffix(this.detail)}`
  }
}

/**
 * The server answered 429. `retryAfter` is what its `Retry-After` header asked for, when it
 * sent one. Seen as the final error when the wait asked for is longer than the retry policy's
 * maximum delay, or when the attempts ran out.
 */
export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", {
  endpoint: Endpoint,
  retryAfter: Schema.optional(Schema.DurationFromSelf)
}) {
  override get message() {
    return this.retryAfter === undefined
      ? `AMP rate limited ${this.endpoint} (HTTP 429, no Retry-After)`
      : `AMP rate limited ${this.endpoint} (HTTP 429): the server asks to wait ${Duration.format(this.retryAfter)}`
  }
}

/** A request got no complete answer within `API_REQUEST_TIMEOUT_SECONDS`. */
export class RequestTimeout extends Schema.TaggedError<RequestTimeout>()("RequestTimeout", {
  endpoint: Endpoint,
  timeout: Schema.DurationFromSelf
}) {
  override get message() {
    return `AMP ${this.endpoint} did not answer within ${Duration.format(this.timeout)}`
  }
}

/** The server answered 5xx or 408: a transient failure on its side. */
export class ServerError extends Schema.TaggedError<ServerError>()("ServerError", {
  endpoint: Endpoint,
  status: Schema.Number
}) {
  override get message() {
    return `AMP ${this.endpoint} failed on the server side (HTTP ${this.status})`
  }
}

/** The request never got an HTTP answer: connection refused or reset, DNS failure, ... */
export class TransportError extends Schema.TaggedError<TransportError>()("TransportError", {
  endpoint: Endpoint,
  reason: Schema.String
}) {
  override get message() {
    return `AMP ${this.endpoint} is unreachable: ${this.reason}`
  }
}

/** The server answered, but not with what the API promises (`{"token": "<jwt>"}` on 200). */
export class MalformedResponse extends Schema.TaggedError<MalformedResponse>()("MalformedResponse", {
  endpoint: Endpoint,
  status: Schema.Number,
  reason: Schema.String
}) {
  override get message() {
    return `AMP ${this.endpoint} answered HTTP ${this.status} with an unexpected body: ${this.reason}`
  }
}

/** Any failure of a call to the AMP authentication endpoints. */
export type AuthError =
  | InvalidCredentials
  | RefreshRejected
  | RateLimited
  | RequestTimeout
  | ServerError
  | TransportError
  | MalformedResponse

/**
 * The token store could not do what was asked: the file could not be read, written, removed
 * or locked. The token service logs these for `load` and `save` and carries on from memory.
 */
export class TokenStoreError extends Schema.TaggedError<TokenStoreError>()("TokenStoreError", {
  operation: Schema.Literal("load", "save", "remove", "lock"),
  path: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `Could not ${this.operation} the token file ${this.path}: ${this.reason}`
  }
}

/** `refreshToken` was asked to refresh, but there is no unexpired token to refresh. */
export class NoTokenToRefresh extends Schema.TaggedError<NoTokenToRefresh>()("NoTokenToRefresh", {
  reason: Schema.Literal("no token", "expired")
}) {
  override get message() {
    return this.reason === "expired"
      ? "The current AMP token has expired and cannot be refreshed: obtain a new one"
      : "There is no AMP token to refresh: obtain one first"
  }
}

/** Everything `TokenService` operations can fail with. */
export type TokenError = AuthError | TokenStoreError | NoTokenToRefresh

/**
 * True for failures worth another attempt: 5xx/408, transport errors, timeouts and 429.
 * Wrong credentials, refused refreshes and malformed answers are final.
 */
export const isTransient = (error: AuthError): boolean => {
  switch (error._tag) {
    case "ServerError":
    case "TransportError":
    case "RequestTimeout":
    case "RateLimited":
      return true
    default:
      return false
  }
}

const detailSuffix = (detail: string) => detail.length === 0 ? "" : `: ${detail}`

/**
 * The messages of an error's cause and of that cause's own cause ("fetch failed: connect
 * ECONNREFUSED 127.0.0.1:9"), or "" when it has none: what a transport failure really was.
 *
 * @internal
 */
export const describeCause = (error: { readonly cause?: unknown }): string => {
  const cause = error.cause instanceof Error ? error.cause : undefined
  if (cause === undefined) return ""
  return cause.cause instanceof Error ? `${cause.message}: ${cause.cause.message}` : cause.message
}

/**
 * Makes server-supplied text safe to keep in an error: whitespace folded, every occurrence of
 * a secret replaced, and cut to `maxLength` characters.
 *
 * @internal
 */
export const scrub = (text: string, secrets: ReadonlyArray<string>, maxLength = 200): string => {
  let safe = text.replace(/\s+/g, " ").trim()
  for (const secret of secrets) {
    // A secret of one to three characters would garble every message and protect nothing.
    if (secret.length >= 4) safe = safe.split(secret).join("<redacted>")
  }
  return safe.length > maxLength ? `${safe.slice(0, maxLength)}…` : safe
}
