/**
 * The Redis store's variables: what each accepts, its default, and errors that name the
 * variable and the rule broken, quoting the value only when it is no secret. No Redis needed.
 */
import { AmpConfig, EncryptionKey } from "@amp-effect/core"
import { describe, expect, it } from "@effect/vitest"
import { Config, ConfigProvider, Effect, Redacted } from "effect"
import * as RedisConfig from "../src/RedisConfig.js"

const withEnv = (env: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" }))

/** The `AmpConfigError` of reading `config` from `env`. */
const failure = <A>(config: Config.Config<A>, env: Record<string, string>) =>
  Effect.flip(AmpConfig.read(config).pipe(withEnv(env)))

const keyText = (key: EncryptionKey.EncryptionKey) => Redacted.value(EncryptionKey.toBase64(key))

describe("RedisConfig", () => {
  it.effect("AMP_REDIS_URL: trimmed, redacted, redis:// or rediss:// with a host", () =>
    Effect.gen(function*() {
      const url = yield* RedisConfig.url.pipe(withEnv({ AMP_REDIS_URL: " rediss://:pw@cache:6380/1 " }))
      expect(Redacted.isRedacted(url)).toBe(true)
      expect(Redacted.value(url)).toBe("rediss://:pw@cache:6380/1")
      expect(RedisConfig.isRedisUrl("redis://cache")).toBe(true)
      expect(RedisConfig.isRedisUrl("redis://")).toBe(false)
      expect(RedisConfig.isRedisUrl("not a url")).toBe(false)
    }))

  it.effect("AMP_REDIS_URL unset or blank is not set; a wrong one names the rule, never the value", () =>
    Effect.gen(function*() {
      expect((yield* failure(RedisConfig.url, {})).message).toBe("AMP_REDIS_URL is not set")
      expect((yield* failure(RedisConfig.url, { AMP_REDIS_URL: "  " })).message).toBe("AMP_REDIS_URL is not set")
      const wrong = yield* failure(RedisConfig.url, { AMP_REDIS_URL: "http://user:s3cret@cache" })
      expect(wrong.message).toBe(
        "AMP_REDIS_URL is invalid: not a Redis URL: expected redis://[[user]:password@]host[:port][/db] or rediss://…"
      )
      expect(JSON.stringify(wrong)).not.toContain("s3cret")
      // Under a prefix, the prefixed variable is named.
      const nested = yield* failure(Config.nested(RedisConfig.url, "APP"), { APP_AMP_REDIS_URL: "ftp://x" })
      expect(nested.variable).toBe("APP_AMP_REDIS_URL")
    }))

  it.effect("AMP_REDIS_KEY_PREFIX: trimmed, the default when unset or blank, a bad one quoted with the rule", () =>
    Effect.gen(function*() {
      expect(yield* RedisConfig.keyPrefix.pipe(withEnv({}))).toBe(RedisConfig.defaultKeyPrefix)
      expect(yield* RedisConfig.keyPrefix.pipe(withEnv({ AMP_REDIS_KEY_PREFIX: " " }))).toBe("amp-effect")
      expect(yield* RedisConfig.keyPrefix.pipe(withEnv({ AMP_REDIS_KEY_PREFIX: " prod:a/b_c-d.e " }))).toBe(
        "prod:a/b_c-d.e"
      )
      const error = yield* failure(RedisConfig.keyPrefix, { AMP_REDIS_KEY_PREFIX: "a{b}" })
      expect(error.message).toBe(
        "AMP_REDIS_KEY_PREFIX is invalid: got \"a{b}\", expected 1 to 64 letters, digits or .:_-/ (no braces, no spaces)"
      )
      expect(RedisConfig.isKeyPrefix("x".repeat(64))).toBe(true)
      expect(RedisConfig.isKeyPrefix("x".repeat(65))).toBe(false)
    }))

  it.effect("AMP_TOKEN_ENCRYPTION_KEY: none when unset or blank, keys in order, a bad one named and never quoted", () =>
    Effect.gen(function*() {
      expect(yield* EncryptionKey.config.pipe(withEnv({}))).toEqual([])
      expect(yield* EncryptionKey.config.pipe(withEnv({ AMP_TOKEN_ENCRYPTION_KEY: " " }))).toEqual([])
      const [a, b] = [EncryptionKey.generate(), EncryptionKey.generate()]
      const keys = yield* EncryptionKey.config.pipe(withEnv({ AMP_TOKEN_ENCRYPTION_KEY: ` ${keyText(a)} ` }))
      expect(yield* Effect.forEach(keys, EncryptionKey.id)).toEqual([yield* EncryptionKey.id(a)])
      const short = Buffer.alloc(16, 7).toString("base64")
      const one = yield* failure(EncryptionKey.config, { AMP_TOKEN_ENCRYPTION_KEY: short })
      expect(one.message).toBe(
        "AMP_TOKEN_ENCRYPTION_KEY is invalid: the key is 16 bytes, expected 32 " +
          "(expected the base64 of 32 random bytes, such as the output of openssl rand -base64 32)"
      )
      const second = yield* failure(EncryptionKey.config, {
        AMP_TOKEN_ENCRYPTION_KEY: `${keyText(a)},${short},${keyText(b)}`
      })
      expect(second.message).toContain("AMP_TOKEN_ENCRYPTION_KEY is invalid: in key 2 of 3, the key is 16 bytes")
      for (const error of [one, second]) {
        expect(JSON.stringify(error)).not.toContain(short)
        expect(error.message).not.toContain(keyText(a))
      }
    }))

  it.effect("config and load read every variable", () =>
    Effect.gen(function*() {
      const env = withEnv({ AMP_REDIS_URL: "redis://cache", AMP_REDIS_KEY_PREFIX: "p" })
      const loaded = yield* RedisConfig.load.pipe(env)
      expect([Redacted.value(loaded.url), loaded.keyPrefix, loaded.encryptionKeys]).toEqual(["redis://cache", "p", []])
      expect(yield* RedisConfig.config.pipe(env)).toEqual(loaded)
      expect((yield* Effect.flip(RedisConfig.load.pipe(withEnv({})))).message).toBe("AMP_REDIS_URL is not set")
      expect(RedisConfig.describeUrl("rediss://u:pw@cache:6380/")).toBe("rediss://cache:6380")
      expect(RedisConfig.describeUrl("redis://:pw@cache:6379/2")).toBe("redis://cache:6379/2")
      expect(RedisConfig.describeUrl("::")).toBe("redis (an unparsable URL)")
    }))
})
