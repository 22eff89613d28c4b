/**
 * AES-256 keys that seal a stored token (`TokenEnvelope`). A key is 32 random bytes, configured
 * as base64 (`openssl rand -base64 32`) in `AMP_TOKEN_ENCRYPTION_KEY`. Its `id`, derived from
 * the key, is stored beside each value it seals, so a reader finds the key. To rotate, configure
 * several, the new one first (the first seals, all open): `old,new` everywhere, then `new,old`,
 * then `new`.
 *
 * @example
 * ```ts
 * import { EncryptionKey } from "@amp-effect/core"
 * import { Either, Redacted } from "effect"
 *
 * // A new key, as it is configured, and read back.
 * const key = EncryptionKey.generate()
 * const configured = EncryptionKey.toBase64(key)
 * const read = Either.getOrThrow(EncryptionKey.fromBase64(configured))
 * console.log(`${read.bytes}`, Redacted.value(configured).length)
 * // Output: <redacted> 44
 *
 * console.log(EncryptionKey.fromBase64("c2hvcnQ="))
 * // Output: { _id: 'Either', _tag: 'Left', left: 'the key is 5 bytes, expected 32' }
 * ```
 *
 * @since 0.1.0
 */
import { Config, ConfigError, Effect, Either, Encoding, Redacted } from "effect"
import * as AmpConfig from "./AmpConfig.js"

/**
 * An AES-256 key: 32 bytes, redacted in every log line and printed value.
 *
 * @since 0.1.0
 * @category models
 */
export interface EncryptionKey {
  readonly bytes: Redacted.Redacted<Uint8Array>
}

const keyLength = 32

/**
 * A key from its base64 text (standard or URL-safe alphabet, padding optional); `Left` with a
 * reason that never quotes the text.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromBase64 = (text: Redacted.Redacted<string> | string): Either.Either<EncryptionKey, string> => {
  const value = (typeof text === "string" ? text : Redacted.value(text)).trim()
  return Encoding.decodeBase64Url(value.replace(/\+/g, "-").replace(/\//g, "_")).pipe(
    Either.mapLeft(() => "the key is not base64"),
    Either.filterOrLeft(
      (bytes) => bytes.length === keyLength,
      (bytes) => `the key is ${bytes.length} bytes, expected 32`
    ),
    Either.map((bytes) => ({ bytes: Redacted.make(bytes) }))
  )
}

/**
 * A fresh random key.
 *
 * @since 0.1.0
 * @category constructors
 */
export const generate = (): EncryptionKey => ({
  bytes: Redacted.make(globalThis.crypto.getRandomValues(new Uint8Array(keyLength)))
})

/**
 * The key as base64, the form `AMP_TOKEN_ENCRYPTION_KEY` takes. Handle the result as a secret.
 *
 * @since 0.1.0
 * @category utils
 */
export const toBase64 = (key: EncryptionKey): Redacted.Redacted<string> =>
  Redacted.make(Encoding.encodeBase64(Redacted.value(key.bytes)))

/**
 * The key's id, stored with each value it seals: the first 8 bytes of SHA-256 over a label and
 * the key, in hex. It reveals nothing usable about the key. (The label names Redis, the first
 * store to seal tokens: ids already stored stay valid.)
 *
 * @since 0.1.0
 * @category utils
 */
export const id = (key: EncryptionKey): Effect.Effect<string> =>
  Effect.promise(() => {
    const label = new TextEncoder().encode("amp-effect/redis key id\0")
    const input = new Uint8Array([...label, ...Redacted.value(key.bytes)])
    return globalThis.crypto.subtle.digest("SHA-256", input)
  }).pipe(Effect.map((digest) => Encoding.encodeHex(new Uint8Array(digest, 0, 8))))

/**
 * `AMP_TOKEN_ENCRYPTION_KEY`: none (tokens in clear) when unset or blank, else base64 keys,
 * comma-separated. Redacted as read: a bad key's message says which one and why, never its text.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<ReadonlyArray<EncryptionKey>> = Config.redacted().pipe(
  Config.mapOrFail((value) => {
    const text = Redacted.value(value).trim()
    if (text === "") return Either.left(AmpConfig.notSet())
    const parts = text.split(",")
    return Either.all(parts.map((part, index) =>
      Either.mapLeft(fromBase64(part), (reason) =>
        ConfigError.InvalidData(
          [],
          `${parts.length > 1 ? `in key ${index + 1} of ${parts.length}, ` : ""}${reason} ` +
            "(expected the base64 of 32 random bytes, such as the output of openssl rand -base64 32)"
        ))
    ))
  }),
  Config.nested("AMP_TOKEN_ENCRYPTION_KEY"),
  Config.withDefault([])
)
