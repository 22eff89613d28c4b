/**
 * The JSON envelope a shared store (Redis, Postgres) keeps a token in. `exp` (the expiry, epoch
 * ms) and `fp` (a fingerprint) stay in clear for the store's compare-and-set; the token is in
 * clear (`data`: the token file's object) or sealed with an `EncryptionKey` (`kid`, `iv`, and
 * `data`: base64 of the AES-256-GCM ciphertext and tag over the token file's JSON):
 *
 *   {"v":1,"exp":1704196800000,"fp":"…","data":{"token":"eyJ…","expires_at":"…","obtained_at":"…"}}
 *   {"v":1,"exp":1704196800000,"fp":"…","kid":"9f86d081884c7d65","iv":"…","data":"…"}
 *
 * The authenticated data `amp-effect/<store> v1 <account> <exp>` binds a sealed value to its
 * store, account and `exp`. Values in clear still load once keys are configured, so turning
 * encryption on costs no login. On WebCrypto, so every operation is an `Effect`.
 *
 * @since 0.1.0
 */
import { Data, DateTime, Effect, Either, Encoding, Redacted, Schema } from "effect"
import * as EncryptionKey from "./EncryptionKey.js"
import * as TokenData from "./TokenData.js"

/**
 * The store, the account (a hash, never a user name) and the keys: the first seals, all open;
 * none stores the token in clear.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The store that writes the envelope, named in its fingerprint and authenticated data. */
  readonly store: "redis" | "postgres"
  readonly account: string
  readonly keys: ReadonlyArray<EncryptionKey.EncryptionKey>
}

/**
 * A stored value that is not a token: `reason` is a metric label, `detail` a phrase for a
 * warning, never quoting the value.
 *
 * @since 0.1.0
 * @category errors
 */
export class Unreadable extends Data.TaggedError("Unreadable")<{
  readonly reason: "unreadable" | "unknown-key" | "undecryptable" | "no-key"
  readonly detail: string
}> {}

const Clear = Schema.Struct({ v: Schema.Literal(1), exp: Schema.Number, data: TokenData.TokenData })
const Sealed = Schema.Struct({ ...Clear.fields, kid: Schema.String, iv: Schema.String, data: Schema.String })
const decodeEnvelope = Schema.decodeEither(Schema.parseJson(Schema.Union(Clear, Sealed)))

const utf8 = (text: string) => new TextEncoder().encode(text)

/**
 * Names a token without revealing it (128 bits of SHA-256 over a label and the token, in hex),
 * so that a store recognises the token a save replaces.
 *
 * @since 0.1.0
 * @category utils
 */
export const fingerprint = (data: TokenData.TokenData, store: Options["store"]): Effect.Effect<string> =>
  Effect.map(
    Effect.promise(() =>
      globalThis.crypto.subtle.digest("SHA-256", utf8(`amp-effect/${store} fp ${Redacted.value(data.token)}`))
    ),
    (digest) => Encoding.encodeHex(new Uint8Array(digest, 0, 16))
  )

const aesKey = (key: EncryptionKey.EncryptionKey, usage: "encrypt" | "decrypt") =>
  Effect.promise(() => globalThis.crypto.subtle.importKey("raw", Redacted.value(key.bytes), "AES-GCM", false, [usage]))

const gcm = (options: Options, exp: number, iv: Uint8Array) => ({
  name: "AES-GCM",
  iv,
  additionalData: utf8(`amp-effect/${options.store} v1 ${options.account} ${exp}`)
})

/**
 * The envelope of `data`, sealed with the first of `options.keys` when there is one.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = Effect.fnUntraced(function*(data: TokenData.TokenData, options: Options) {
  const exp = DateTime.toEpochMillis(data.expiresAt)
  const fp = yield* fingerprint(data, options.store)
  const key = options.keys[0]
  if (key === undefined) {
    return JSON.stringify({ v: 1, exp, fp, data: Schema.encodeSync(TokenData.TokenData)(data) })
  }
  const kid = yield* EncryptionKey.id(key)
  const iv = globalThis.crypto.getRandomValues(new Uint8Array(12))
  const cryptoKey = yield* aesKey(key, "encrypt")
  const sealed = yield* Effect.promise(() =>
    globalThis.crypto.subtle.encrypt(gcm(options, exp, iv), cryptoKey, utf8(TokenData.encodeFile(data)))
  )
  const data64 = Encoding.encodeBase64(new Uint8Array(sealed))
  return JSON.stringify({ v: 1, exp, fp, kid, iv: Encoding.encodeBase64(iv), data: data64 })
})

/**
 * The token in a stored value, opened with the key its `kid` names, or why it cannot be read.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = Effect.fnUntraced(function*(text: string, options: Options) {
  const envelope = decodeEnvelope(text)
  if (Either.isLeft(envelope)) {
    return yield* new Unreadable({
      reason: "unreadable",
      detail: `it is not a token envelope written by @amp-effect/${options.store}`
    })
  }
  const value = envelope.right
  if (!("kid" in value)) return value.data
  if (options.keys.length === 0) {
    return yield* new Unreadable({
      reason: "no-key",
      detail: `it is encrypted (key id ${value.kid}) but no encryption key is configured`
    })
  }
  const ids = yield* Effect.forEach(options.keys, EncryptionKey.id)
  const index = ids.indexOf(value.kid)
  if (index === -1) {
    return yield* new Unreadable({
      reason: "unknown-key",
      detail: `it is encrypted with key id ${value.kid}, which is not among the configured keys (${ids.join(", ")})`
    })
  }
  const undecryptable = new Unreadable({
    reason: "undecryptable",
    detail: `it does not decrypt with key id ${value.kid}`
  })
  const cryptoKey = yield* aesKey(options.keys[index]!, "decrypt")
  const json = yield* Either.all([Encoding.decodeBase64(value.iv), Encoding.decodeBase64(value.data)]).pipe(
    Effect.flatMap(([iv, sealed]) =>
      Effect.tryPromise(() => globalThis.crypto.subtle.decrypt(gcm(options, value.exp, iv), cryptoKey, sealed))
    ),
    Effect.mapError(() => undecryptable)
  )
  return yield* Either.mapLeft(TokenData.decodeFile(new TextDecoder().decode(json)), () => undecryptable)
})
