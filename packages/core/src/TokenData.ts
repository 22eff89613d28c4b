/**
 * A token and its lifetime: what the service keeps in memory and what `token.json` holds, in
 * the Rust AMP client's format, so files move freely between the two:
 *
 * ```json
 * { "token": "eyJ0eXAi...", "expires_at": "2024-01-02T12:00:00.123456789Z", "obtained_at": "2024-01-01T12:00:00Z" }
 * ```
 *
 * @since 0.1.0
 */
import { DateTime, Duration, Option, ParseResult, Redacted, Schema } from "effect"
import * as Jwt from "./Jwt.js"

const rfc3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/

/**
 * An RFC 3339 timestamp (up to nine fractional digits, as chrono writes, and any offset)
 * decoded to a UTC `DateTime` to the millisecond; written in UTC with milliseconds.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Rfc3339 = Schema.transformOrFail(Schema.String, Schema.DateTimeUtcFromSelf, {
  strict: true,
  decode: (text, _, ast) =>
    Option.match(rfc3339.test(text) ? DateTime.make(text.replace(" ", "T").toUpperCase()) : Option.none(), {
      onNone: () => ParseResult.fail(new ParseResult.Type(ast, text, "expected an RFC 3339 timestamp")),
      onSome: ParseResult.succeed
    }),
  encode: (dateTime) => ParseResult.succeed(DateTime.formatIso(dateTime))
}).annotations({ identifier: "Rfc3339" })

/**
 * The largest token accepted, in bytes: a real AMP token is a few hundred bytes, and servers
 * commonly cap one header line near 8 KiB, so a token within it can always be sent back.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxTokenBytes = 8192

/**
 * A token as it may travel in an `Authorization` header: printable ASCII, no whitespace, at most
 * `maxTokenBytes`. The one rule for what a server issues, a store loads and the CLI prints, so
 * a hostile server or file cannot inject headers or flood memory. Messages never quote it.
 *
 * @since 0.1.0
 * @category schemas
 */
export const TokenString = Schema.String.annotations({ message: () => "expected a string" }).pipe(
  Schema.filter((token) => token.length <= maxTokenBytes, {
    message: (issue) =>
      `token of ${new TextEncoder().encode(String(issue.actual)).length} bytes, over the ${maxTokenBytes}-byte limit`
  }),
  Schema.filter((token) => /^[\x21-\x7e]+$/.test(token), {
    message: () => "expected printable ASCII without whitespace"
  }),
  Schema.annotations({ identifier: "TokenString" })
)

/**
 * A token with the times the service needs. The token is `Redacted` as soon as it is decoded.
 *
 * @since 0.1.0
 * @category models
 */
export class TokenData extends Schema.Class<TokenData>("TokenData")({
  token: Schema.Redacted(TokenString),
  expiresAt: Schema.propertySignature(Rfc3339).pipe(Schema.fromKey("expires_at")),
  obtainedAt: Schema.propertySignature(Rfc3339).pipe(Schema.fromKey("obtained_at"))
}) {
  /**
   * Builds the data for a token just received from the server: its expiry is the JWT's `exp`
   * when the payload has one, otherwise 24 hours after `obtainedAt` (the Rust client's rule).
   *
   * @example
   * ```ts
   * import { MockAmp, TokenData } from "@amp-effect/core"
   * import { DateTime, Redacted } from "effect"
   *
   * const obtainedAt = DateTime.unsafeMake("2024-01-01T12:00:00Z")
   * const expiry = (token: string) =>
   *   DateTime.formatIso(TokenData.TokenData.fromToken(Redacted.make(token), obtainedAt).expiresAt)
   *
   * console.log(expiry(MockAmp.jwt({ exp: DateTime.toEpochMillis(obtainedAt) / 1000 + 3600 })))
   * // Output: 2024-01-01T13:00:00.000Z (a JWT's `exp` wins)
   * console.log(expiry("opaque"))
   * // Output: 2024-01-02T12:00:00.000Z (24 hours)
   * ```
   *
   * @since 0.1.0
   */
  static fromToken(token: Redacted.Redacted<string>, obtainedAt: DateTime.Utc): TokenData {
    return new TokenData({
      token,
      obtainedAt,
      expiresAt: Option.getOrElse(
        Jwt.expiry(Redacted.value(token)),
        () => DateTime.addDuration(obtainedAt, Duration.hours(24))
      )
    })
  }

  /**
   * The same data with the JWT's own `exp` as expiry where it has one: for files written by
   * other clients, which may have assumed 24 hours.
   *
   * @since 0.1.0
   */
  withJwtExpiry(): TokenData {
    return Option.match(Jwt.expiry(Redacted.value(this.token)), {
      onNone: () => this,
      onSome: (expiresAt) =>
        DateTime.Equivalence(expiresAt, this.expiresAt) ? this : new TokenData({ ...this, expiresAt })
    })
  }
}

/**
 * Decodes the token file's text; the error never contains the token. Other fields are ignored.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeFile = Schema.decodeEither(Schema.parseJson(TokenData), { onExcessProperty: "ignore" })

/**
 * Encodes `TokenData` as the token file's text (pretty-printed, newline-terminated), in the
 * format the Rust client reads.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encodeFile = (data: TokenData): string =>
  JSON.stringify(Schema.encodeSync(TokenData)(data), null, 2) + "\n"
