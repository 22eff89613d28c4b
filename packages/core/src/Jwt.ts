/**
 * Reads the expiry a JWT announces. The payload is read, not verified: the client has no key,
 * and it only uses the claim to know when to renew; the server stays the judge of validity.
 *
 * @since 0.1.0
 */
import { DateTime, Option, Schema } from "effect"

const decodePayload = Schema.decodeOption(Schema.compose(
  Schema.StringFromBase64Url,
  Schema.parseJson(Schema.Struct({ exp: Schema.Number.pipe(Schema.finite(), Schema.positive()) }))
))

/**
 * The `exp` claim (seconds since the epoch) of a JWT's payload, or `None` without a usable one.
 *
 * @example
 * ```ts
 * import { Jwt, MockAmp } from "@amp-effect/core"
 * import { DateTime, Option } from "effect"
 *
 * const token = MockAmp.jwt({ sub: "me", exp: 1704196800 })
 * console.log(Option.map(Jwt.expiry(token), DateTime.formatIso))
 * // Output: { _id: 'Option', _tag: 'Some', value: '2024-01-02T12:00:00.000Z' }
 *
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const expiry = (token: string): Option.Option<DateTime.Utc> => {
  const parts = token.split(".")
  if (parts.length !== 3) return Option.none()
  return Option.flatMap(decodePayload(parts[1]!), ({ exp }) => DateTime.make(Math.floor(exp * 1000)))
}
