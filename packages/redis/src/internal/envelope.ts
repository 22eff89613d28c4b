/**
 * The value stored under the token key: a JSON envelope whose `exp` (the token's expiry, epoch
 * milliseconds) is in clear for the compare-and-set script, and whose token is either in clear
 * (`data`: the token file's object) or encrypted (`kid`, `iv`, `data`: base64 of AES-256-GCM
 * ciphertext and tag over the token file's JSON).
 *
 *   {"v":1,"exp":1704196800000,"fp":"…","data":{"token":"eyJ…","expires_at":"…","obtained_at":"…"}}
 *   {"v":1,"exp":1704196800000,"fp":"…","kid":"9f86d081884c7d65","iv":"…","data":"…"}
 *
 * `fp`, in clear too, is a fingerprint of the token (see `fingerprint`): the script recognises
 * the token a save replaces by it, encrypted or not. Values without one (older) still load.
 *
 * The additional authenticated data binds a ciphertext to its account and its `exp`: a value
 * copied to another account's key, or with `exp` edited, no longer decrypts.
 *
 * @internal
 */
import { TokenData } from "@amp-effect/core"
import { DateTime, Either, Redacted, Schema } from "effect"
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto"
import type { EncryptionKey } from "../EncryptionKey.js"

const Plain = Schema.Struct({ v: Schema.Literal(1), exp: Schema.Number, data: TokenData.TokenData })
const Sealed = Schema.Struct({
  v: Schema.Literal(1),
  exp: Schema.Number,
  kid: Schema.String,
  iv: Schema.String,
  data: Schema.String
})
const Envelope = Schema.parseJson(Schema.Union(Plain, Sealed))
const decodeEnvelope = Schema.decodeEither(Envelope, { onExcessProperty: "ignore" })

/** Why a stored value was not read as a token; `reason` is a metric label. */
export interface Unreadable {
  readonly reason: "unreadable" | "unknown-key" | "undecryptable" | "no-key"
  /** For the warning: never quotes the value. */
  readonly detail: string
}

const aad = (account: string, exp: number) => Buffer.from(`amp-effect/redis v1 ${account} ${exp}`)

/**
 * Names a token without revealing it: 128 bits of SHA-256 over a label and the token, whose
 * `jti` and signature leave nothing to guess from it.
 */
export const fingerprint = (data: TokenData.TokenData): string =>
  createHash("sha256").update(`amp-effect/redis fp ${Redacted.value(data.token)}`).digest("hex").slice(0, 32)

/** The envelope of `data`, encrypted with `key` when there is one. */
export const encode = (data: TokenData.TokenData, account: string, key: EncryptionKey | undefined): string => {
  const exp = DateTime.toEpochMillis(data.expiresAt)
  const fp = fingerprint(data)
  if (key === undefined) {
    return JSON.stringify({ v: 1, exp, fp, data: Schema.encodeSync(TokenData.TokenData)(data) })
  }
  const iv = randomBytes(12)
  const cipher = createCipheriv("aes-256-gcm", Redacted.value(key.bytes), iv)
  cipher.setAAD(aad(account, exp))
  const sealed = Buffer.concat([cipher.update(TokenData.encodeFile(data), "utf8"), cipher.final(), cipher.getAuthTag()])
  return JSON.stringify({ v: 1, exp, fp, kid: key.id, iv: iv.toString("base64"), data: sealed.toString("base64") })
}

/** The token in a stored value, decrypting with the key its `kid` names. */
export const decode = (
  text: string,
  account: string,
  keys: ReadonlyArray<EncryptionKey>
): Either.Either<TokenData.TokenData, Unreadable> => {
  const envelope = decodeEnvelope(text)
  if (Either.isLeft(envelope)) {
    return Either.left({ reason: "unreadable", detail: "it is not a token envelope written by @amp-effect/redis" })
  }
  const value = envelope.right
  if (!("kid" in value)) return Either.right(value.data)
  if (keys.length === 0) {
    return Either.left({
      reason: "no-key",
      detail: `it is encrypted (key id ${value.kid}) but no encryption key is configured`
    })
  }
  const key = keys.find((candidate) => candidate.id === value.kid)
  if (key === undefined) {
    return Either.left({
      reason: "unknown-key",
      detail: `it is encrypted with key id ${value.kid}, which is not among the configured keys (${
        keys.map((k) => k.id).join(", ")
      })`
    })
  }
  const undecryptable: Unreadable = { reason: "undecryptable", detail: `it does not decrypt with key id ${key.id}` }
  try {
    const sealed = Buffer.from(value.data, "base64")
    const iv = Buffer.from(value.iv, "base64")
    if (sealed.length <= 16 || iv.length !== 12) return Either.left(undecryptable)
    const decipher = createDecipheriv("aes-256-gcm", Redacted.value(key.bytes), iv)
    decipher.setAAD(aad(account, value.exp))
    decipher.setAuthTag(sealed.subarray(sealed.length - 16))
    const json = Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - 16)), decipher.final()])
    return Either.mapLeft(TokenData.decodeFile(json.toString("utf8")), () => undecryptable)
  } catch {
    return Either.left(undecryptable)
  }
}
