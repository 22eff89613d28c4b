/**
 * Every way obtaining, refreshing or persisting an AMP token can fail, as typed values whose
 * messages name the cause and never carry a secret.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import type { AuthError } from "./AmpHttpError.js"

export {
  /**
   * A call to an AMP authentication endpoint failed; its `reason` says how (see `AmpHttpError`).
   *
   * @since 0.1.0
   * @category errors
   */
  AuthError
} from "./AmpHttpError.js"

/**
 * The token store could not read, write, remove or lock the token. `store` says which kind of
 * store failed and `path` where: the token file's path, or the server and key
 * (`redis://cache:6379 (key amp-effect:{…}:token)`, never a password).
 *
 * @since 0.1.0
 * @category errors
 */
export class TokenStoreError extends Schema.TaggedError<TokenStoreError>()("TokenStoreError", {
  store: Schema.Literal("file", "redis", "postgres"),
  operation: Schema.Literal("load", "save", "remove", "lock"),
  path: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    if (this.store === "file") return `Could not ${this.operation} the token file ${this.path}: ${this.reason}`
    const server = this.store === "redis" ? "Redis" : "Postgres"
    return `Could not ${this.operation} the token ${
      this.operation === "save" ? "to" : this.operation === "lock" ? "in" : "from"
    } ${server} at ${this.path}: ${this.reason}`
  }
}

/**
 * `refreshToken` was asked to refresh, but there is no unexpired token to refresh.
 *
 * @since 0.1.0
 * @category errors
 */
export class NoTokenToRefresh extends Schema.TaggedError<NoTokenToRefresh>()("NoTokenToRefresh", {
  reason: Schema.Literal("no token", "expired")
}) {
  override get message() {
    return this.reason === "expired"
      ? "The current AMP token has expired and cannot be refreshed: obtain a new one"
      : "There is no AMP token to refresh: obtain one first"
  }
}

/**
 * Everything `TokenService` operations can fail with.
 *
 * @since 0.1.0
 * @category errors
 */
export type TokenError = AuthError | TokenStoreError | NoTokenToRefresh
