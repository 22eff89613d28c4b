import { describe, expect, it } from "@effect/vitest"
import { DateTime, Effect, Either, Redacted } from "effect"
import { createCipheriv } from "node:crypto"
import * as EncryptionKey from "../src/EncryptionKey.js"
import * as TokenData from "../src/TokenData.js"
import * as TokenEnvelope from "../src/TokenEnvelope.js"

/**
 * A value sealed by the node:crypto code of `@amp-effect/redis` 0.1 (before the envelope moved
 * to core), with its key and account: what Redis holds today must open with the new code.
 */
const vector = {
  key: "AQgPFh0kKzI5QEdOVVxjanF4f4aNlJuiqbC3vsXM09o=",
  account: "065116818e28a94205a7a2c157e6008c",
  fp: "3c8653549e2464b40dc2a9f71591d62a",
  sealed: "{\"v\":1,\"exp\":1704196800000,\"fp\":\"3c8653549e2464b40dc2a9f71591d62a\",\"kid\":\"22b3be2a74e72620\"," +
    "\"iv\":\"parKKXpbHNQfHezo\",\"data\":\"9yYPuWtlgJDNlc1q0n6XRYx24B96dKCP+b/79VLw/a67BsZErswbqHM00TZeJ14O5BfFEcG8" +
    "vzcWEuTkIQl64+C+3f0hpJ72xqgk/X0BrRtdIWs47bxISKzo4Hy79FiJU2Nij6U+zfj8r26bENq/UmBLOi3+aRSF2P+xzUi4J5AQPdb3ffiE" +
    "W87iYbnoBpzsrzO2TZiC3h4zoamAJ6FJM1apvwknYWf8BEMrWy7clwbRoUf9NGJIsF4tXDVg\"}",
  clear: "{\"v\":1,\"exp\":1704196800000,\"fp\":\"3c8653549e2464b40dc2a9f71591d62a\",\"data\":{\"token\":" +
    "\"eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDQxOTY4MDB9.c2ln\",\"expires_at\":" +
    "\"2024-01-02T12:00:00.000Z\",\"obtained_at\":\"2024-01-01T12:00:00.000Z\"}}"
}

const token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDQxOTY4MDB9.c2ln"
const data = TokenData.TokenData.fromToken(Redacted.make(token), DateTime.unsafeMake("2024-01-01T12:00:00.000Z"))
const vectorKey = Either.getOrThrow(EncryptionKey.fromBase64(vector.key))
const redis = (keys: ReadonlyArray<EncryptionKey.EncryptionKey>, account = vector.account) => ({
  store: "redis" as const,
  account,
  keys
})

/** Seals `text` as the node:crypto code did: ciphertext, then the tag. */
const nodeSeal = (text: string, exp: number) => {
  const cipher = createCipheriv(
    "aes-256-gcm",
    Buffer.from(vector.key, "base64"),
    Buffer.from("parKKXpbHNQfHezo", "base64")
  )
  cipher.setAAD(Buffer.from(`amp-effect/redis v1 ${vector.account} ${exp}`))
  return Buffer.concat([cipher.update(text, "utf8"), cipher.final(), cipher.getAuthTag()]).toString("base64")
}

const plain = (value: TokenData.TokenData) => ({ ...value, token: Redacted.value(value.token) })
const reasonOf = <A>(effect: Effect.Effect<A, TokenEnvelope.Unreadable>) =>
  Effect.map(Effect.flip(effect), (error) => ({ reason: error.reason, detail: error.detail }))

describe("TokenEnvelope", () => {
  it.effect("opens a value sealed by the node:crypto code, and reads its clear value, byte for byte", () =>
    Effect.gen(function*() {
      const opened = yield* TokenEnvelope.decode(vector.sealed, redis([vectorKey]))
      expect(plain(opened)).toEqual(plain(data))
      expect(plain(yield* TokenEnvelope.decode(vector.clear, redis([])))).toEqual(plain(data))
      expect(yield* TokenEnvelope.encode(data, redis([]))).toBe(vector.clear)
      expect(yield* TokenEnvelope.fingerprint(data, "redis")).toBe(vector.fp)
    }))

  it.effect("seals with the first key (AES-GCM, a fresh 12-byte IV, tag appended), opens with any", () =>
    Effect.gen(function*() {
      const [first, second] = [EncryptionKey.generate(), EncryptionKey.generate()]
      const text = yield* TokenEnvelope.encode(data, redis([first, second]))
      const value = JSON.parse(text)
      expect(Object.keys(value)).toEqual(["v", "exp", "fp", "kid", "iv", "data"])
      expect(value).toMatchObject({ v: 1, exp: 1704196800000, fp: vector.fp, kid: yield* EncryptionKey.id(first) })
      expect(Buffer.from(value.iv, "base64")).toHaveLength(12)
      // The token file's JSON plus the 16-byte tag.
      expect(Buffer.from(value.data, "base64")).toHaveLength(TokenData.encodeFile(data).length + 16)
      for (const part of token.split(".")) expect(text).not.toContain(part)
      expect(JSON.parse(yield* TokenEnvelope.encode(data, redis([first]))).iv).not.toBe(value.iv)
      expect(plain(yield* TokenEnvelope.decode(text, redis([second, first])))).toEqual(plain(data))
    }))

  it.effect("names why a value does not open, never quoting it", () =>
    Effect.gen(function*() {
      const stranger = EncryptionKey.generate()
      const strangerId = yield* EncryptionKey.id(stranger)
      expect(yield* reasonOf(TokenEnvelope.decode("{\"token\": \"eyJ.leak\"}", redis([])))).toEqual({
        reason: "unreadable",
        detail: "it is not a token envelope written by @amp-effect/redis"
      })
      // Another version of the format is not read as this one.
      const v2 = JSON.stringify({ ...JSON.parse(vector.clear), v: 2 })
      expect(yield* reasonOf(TokenEnvelope.decode(v2, redis([])))).toMatchObject({ reason: "unreadable" })
      expect(yield* reasonOf(TokenEnvelope.decode("x", { ...redis([]), store: "postgres" }))).toMatchObject({
        detail: "it is not a token envelope written by @amp-effect/postgres"
      })
      expect(yield* reasonOf(TokenEnvelope.decode(vector.sealed, redis([])))).toEqual({
        reason: "no-key",
        detail: "it is encrypted (key id 22b3be2a74e72620) but no encryption key is configured"
      })
      const other = EncryptionKey.generate()
      expect(yield* reasonOf(TokenEnvelope.decode(vector.sealed, redis([stranger, other])))).toEqual({
        reason: "unknown-key",
        detail: "it is encrypted with key id 22b3be2a74e72620, which is not among the configured keys " +
          `(${strangerId}, ${yield* EncryptionKey.id(other)})`
      })
      const undecryptable = { reason: "undecryptable", detail: "it does not decrypt with key id 22b3be2a74e72620" }
      const sealed = JSON.parse(vector.sealed)
      const edited = (change: object) => JSON.stringify({ ...sealed, ...change })
      // The authenticated data binds the value to its exp, its account and its store.
      for (
        const [text, options] of [
          [edited({ exp: sealed.exp + 1 }), redis([vectorKey])],
          [vector.sealed, redis([vectorKey], "another account")],
          [vector.sealed, { ...redis([vectorKey]), store: "postgres" as const }],
          [edited({ data: sealed.data.replace("9yY", "9yZ") }), redis([vectorKey])],
          [edited({ iv: "" }), redis([vectorKey])],
          [edited({ iv: "not base64" }), redis([vectorKey])],
          [edited({ data: "AAAA" }), redis([vectorKey])],
          [edited({ data: "not base64" }), redis([vectorKey])],
          // Authentic, but not a token file inside.
          [edited({ data: nodeSeal("not a token file", sealed.exp) }), redis([vectorKey])]
        ] as const
      ) {
        expect(yield* reasonOf(TokenEnvelope.decode(text, options))).toEqual(undecryptable)
      }
    }))
})
