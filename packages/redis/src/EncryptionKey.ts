/**
 * Keys that encrypt the token at rest in Redis, with AES-256-GCM.
 *
 * A key is 32 random bytes, configured as base64 (`openssl rand -base64 32`). Its id is derived
 * from the key itself (the first 8 bytes of a SHA-256 over a fixed label and the key, in hex),
 * so there is nothing to name or number by hand: the id is stored beside every encrypted value,
 * and a reader picks the key with that id. An id reveals nothing usable about the key.
 *
 * Rotation: configure several keys, the new one first. The first key encrypts; every key
 * decrypts. Roll out `old,new` everywhere, then `new,old`, then `new`.
 *
 * @example
 * ```ts
 * import { EncryptionKey } from "@amp-effect/redis"
 * import { Either, Redacted } from "effect"
 *
 * // A new key, as it is configured (`AMP_TOKEN_ENCRYPTION_KEY`), and read back.
 * const key = EncryptionKey.generate()
 * const configured = EncryptionKey.toBase64(key)
 * const read = Either.getOrThrow(EncryptionKey.fromBase64(configured))
 * console.log(read.id === key.id, `${read.bytes}`, Redacted.value(configured).length)
 * // Output: true <redacted> 44
 *
 * console.log(EncryptionKey.fromBase64("c2hvcnQ="))
 * // Output: { _id: 'Either', _tag: 'Left', left: 'the key is 5 bytes, expected 32' }
 * ```
 *
 * @since 0.1.0
 */
import { Either, Redacted } from "effect"
import { createHash, randomBytes } from "node:crypto"

/**
 * An AES-256 key and its id.
 *
 * @since 0.1.0
 * @category models
 */
export interface EncryptionKey {
  /** 16 hex digits derived from the key, stored with each value it encrypts. */
  readonly id: string
  /** The 32 key bytes, redacted in every log line and printed value. */
  readonly bytes: Redacted.Redacted<Uint8Array>
}

/** The key length AES-256 needs, in bytes. */
const keyLength = 32

/** The id of `bytes`: the first 8 bytes of SHA-256("amp-effect/redis key id\0" ‖ key), in hex. */
const idOf = (bytes: Uint8Array): string =>
  createHash("sha256").update("amp-effect/redis key id\0").update(bytes).digest("hex").slice(0, 16)

/**
 * A key from its 32 bytes; `Left` with the reason when there are not exactly 32.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (bytes: Uint8Array): Either.Either<EncryptionKey, string> =>
  bytes.length === keyLength
    ? Either.right({ id: idOf(bytes), bytes: Redacted.make(Uint8Array.from(bytes)) })
    : Either.left(`the key is ${bytes.length} bytes, expected ${keyLength}`)

/**
 * A key from its base64 text (standard or URL-safe alphabet, padding optional); `Left` with a
 * reason that never quotes the text.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromBase64 = (text: Redacted.Redacted<string> | string): Either.Either<EncryptionKey, string> => {
  const value = (typeof text === "string" ? text : Redacted.value(text)).trim()
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(value)) return Either.left("the key is not base64")
  return make(Buffer.from(value, value.includes("-") || value.includes("_") ? "base64url" : "base64"))
}

/**
 * A fresh random key, for tests and for generating one to configure.
 *
 * @since 0.1.0
 * @category constructors
 */
export const generate = (): EncryptionKey => Either.getOrThrow(make(randomBytes(keyLength)))

/**
 * The key as base64, the form `AMP_TOKEN_ENCRYPTION_KEY` takes. Handle the result as a secret.
 *
 * @since 0.1.0
 * @category utils
 */
export const toBase64 = (key: EncryptionKey): Redacted.Redacted<string> =>
  Redacted.make(Buffer.from(Redacted.value(key.bytes)).toString("base64"))
