import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Redacted } from "effect"
import * as AmpConfig from "../src/AmpConfig.js"
import * as EncryptionKey from "../src/EncryptionKey.js"

const withEnv = (env: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" }))

const keyText = (key: EncryptionKey.EncryptionKey) => Redacted.value(EncryptionKey.toBase64(key))

/** The key of the test vector (`TokenEnvelope.test.ts`): bytes 1, 8, 15, … */
const vectorBytes = Uint8Array.from({ length: 32 }, (_, i) => i * 7 + 1)

describe("EncryptionKey", () => {
  it.effect("the id is the one the node:crypto code derived: SHA-256 of a label and the key, 8 bytes in hex", () =>
    Effect.gen(function*() {
      const key = Either.getOrThrow(EncryptionKey.fromBase64(Buffer.from(vectorBytes).toString("base64")))
      expect(yield* EncryptionKey.id(key)).toBe("22b3be2a74e72620")
      expect(yield* EncryptionKey.id(EncryptionKey.generate())).toMatch(/^[0-9a-f]{16}$/)
    }))

  it("reads base64 in either alphabet, padded or not, trimmed; refuses other lengths and text", () => {
    const standard = "AQgPFh0kKzI5QEdOVVxjanF4f4aNlJuiqbC3vsXM09o="
    const bytes = (text: string) => Redacted.value(Either.getOrThrow(EncryptionKey.fromBase64(text)).bytes)
    expect(bytes(standard)).toEqual(vectorBytes)
    expect(bytes(` ${standard.replace("=", "")} `)).toEqual(vectorBytes)
    const urlSafe = Buffer.from(vectorBytes.map((b) => 255 - b)).toString("base64url")
    expect(urlSafe).toMatch(/[-_]/)
    expect(bytes(urlSafe)).toEqual(vectorBytes.map((b) => 255 - b))
    expect(bytes(Buffer.from(vectorBytes.map((b) => 255 - b)).toString("base64"))).toEqual(
      vectorBytes.map((b) => 255 - b)
    )
    // Both alphabets' two extra letters: "+/v7…" and "-_v7…".
    const fb = new Uint8Array(32).fill(0xfb)
    expect(bytes(Buffer.from(fb).toString("base64"))).toEqual(fb)
    expect(bytes(Buffer.from(fb).toString("base64url"))).toEqual(fb)
    expect(EncryptionKey.fromBase64(Redacted.make(standard))).toEqual(EncryptionKey.fromBase64(standard))
    expect(EncryptionKey.fromBase64("c2hvcnQ=")).toEqual(Either.left("the key is 5 bytes, expected 32"))
    expect(EncryptionKey.fromBase64("not base64!")).toEqual(Either.left("the key is not base64"))
    const long = Buffer.alloc(33, 1).toString("base64")
    expect(EncryptionKey.fromBase64(long)).toEqual(Either.left("the key is 33 bytes, expected 32"))
  })

  it("keeps the bytes redacted; generate gives a new random key each time", () => {
    const key = Either.getOrThrow(EncryptionKey.fromBase64(Buffer.from(vectorBytes).toString("base64")))
    expect(String(key.bytes)).toBe("<redacted>")
    expect(JSON.stringify(key)).not.toContain("AQgP")
    const [a, b] = [EncryptionKey.generate(), EncryptionKey.generate()]
    expect(Redacted.value(a.bytes)).toHaveLength(32)
    expect(keyText(a)).not.toBe(keyText(b))
    expect(Redacted.value(Either.getOrThrow(EncryptionKey.fromBase64(EncryptionKey.toBase64(a))).bytes)).toEqual(
      Redacted.value(a.bytes)
    )
  })

  it.effect("config: none when unset or blank, keys in order, a bad one named and never quoted", () =>
    Effect.gen(function*() {
      expect(yield* EncryptionKey.config.pipe(withEnv({}))).toEqual([])
      expect(yield* EncryptionKey.config.pipe(withEnv({ AMP_TOKEN_ENCRYPTION_KEY: " " }))).toEqual([])
      const [a, b] = [EncryptionKey.generate(), EncryptionKey.generate()]
      const keys = yield* EncryptionKey.config.pipe(
        withEnv({ AMP_TOKEN_ENCRYPTION_KEY: `${keyText(a)}, ${keyText(b)}` })
      )
      expect(keys.map((key) => keyText(key))).toEqual([keyText(a), keyText(b)])
      const short = Buffer.alloc(16, 7).toString("base64")
      const read = (text: string) =>
        Effect.flip(AmpConfig.read(EncryptionKey.config).pipe(withEnv({ AMP_TOKEN_ENCRYPTION_KEY: text })))
      const one = yield* read(short)
      expect(one.message).toBe(
        "AMP_TOKEN_ENCRYPTION_KEY is invalid: the key is 16 bytes, expected 32 " +
          "(expected the base64 of 32 random bytes, such as the output of openssl rand -base64 32)"
      )
      const second = yield* read(`${keyText(a)},${short},${keyText(b)}`)
      expect(second.message).toContain("AMP_TOKEN_ENCRYPTION_KEY is invalid: in key 2 of 3, the key is 16 bytes")
      const notBase64 = yield* read("not base64!")
      expect(notBase64.message).toContain("the key is not base64")
      for (const error of [one, second, notBase64]) {
        expect(JSON.stringify(error)).not.toContain(short)
        expect(JSON.stringify(error)).not.toContain("not base64!")
        expect(error.message).not.toContain(keyText(a))
      }
    }))
})
