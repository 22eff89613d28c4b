import { AmpConfig } from "@amp-effect/core"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Redacted } from "effect"
import * as PostgresConfig from "../src/PostgresConfig.js"

const read = <A>(config: Parameters<typeof AmpConfig.read<A>>[0], map: Record<string, string>) =>
  AmpConfig.read(config).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(map)))))

describe("PostgresConfig", () => {
  it("names: lower-case letters, digits and _, not starting with a digit; 63 for a schema, 52 for a table", () => {
    for (const good of ["public", "_x", "a1_b2", "amp_effect_tokens"]) {
      expect(PostgresConfig.isSchemaName(good)).toBe(true)
      expect(PostgresConfig.isTableName(good)).toBe(true)
    }
    for (const bad of ["", "Public", "1a", "a-b", "a.b", "a b", "\"a\"", "é"]) {
      expect(PostgresConfig.isSchemaName(bad)).toBe(false)
      expect(PostgresConfig.isTableName(bad)).toBe(false)
    }
    expect(PostgresConfig.isSchemaName("s".repeat(63))).toBe(true)
    expect(PostgresConfig.isSchemaName("s".repeat(64))).toBe(false)
    expect(PostgresConfig.isTableName("t".repeat(52))).toBe(true)
    expect(PostgresConfig.isTableName("t".repeat(53))).toBe(false)
  })

  it("URLs: postgres: or postgresql: with a host; described without credentials or parameters", () => {
    expect(PostgresConfig.isPostgresUrl("postgres://u:p@db:5432/app")).toBe(true)
    expect(PostgresConfig.isPostgresUrl("postgresql://db/app")).toBe(true)
    expect(PostgresConfig.isPostgresUrl("mysql://db/app")).toBe(false)
    expect(PostgresConfig.isPostgresUrl("postgres:///app")).toBe(false)
    expect(PostgresConfig.isPostgresUrl("not a url")).toBe(false)
    expect(PostgresConfig.describeUrl("postgres://app:s3cret@db:5432/app?sslmode=require")).toBe(
      "postgres://db:5432/app"
    )
    expect(PostgresConfig.describeUrl("postgresql://db")).toBe("postgresql://db")
    expect(PostgresConfig.describeUrl("postgres://db:5432/")).toBe("postgres://db:5432")
    expect(PostgresConfig.describeUrl("::")).toBe("postgres (an unparsable URL)")
  })

  it.effect("AMP_POSTGRES_URL: required, trimmed, redacted; a bad one is named, never quoted", () =>
    Effect.gen(function*() {
      const url = yield* read(PostgresConfig.url, { AMP_POSTGRES_URL: "  postgres://u:pw@db/app " })
      expect(Redacted.value(url)).toBe("postgres://u:pw@db/app")
      expect(String(url)).toBe("<redacted>")
      const missing = yield* Effect.flip(read(PostgresConfig.url, {}))
      expect(missing.variable).toBe("AMP_POSTGRES_URL")
      expect(missing.message).toBe("AMP_POSTGRES_URL is not set")
      const blank = yield* Effect.flip(read(PostgresConfig.url, { AMP_POSTGRES_URL: " " }))
      expect(blank.message).toContain("is not set")
      const bad = yield* Effect.flip(read(PostgresConfig.url, { AMP_POSTGRES_URL: "redis://u:s3cret@db" }))
      expect(bad.message).toContain("AMP_POSTGRES_URL is invalid: not a Postgres URL")
      expect(bad.message).not.toContain("s3cret")
      expect(bad.value).toBeUndefined()
    }))

  it.effect("AMP_POSTGRES_SCHEMA and AMP_POSTGRES_TABLE: defaults, blank as unset, trimmed, a bad one quoted", () =>
    Effect.gen(function*() {
      expect(yield* read(PostgresConfig.schema, {})).toBe("public")
      expect(yield* read(PostgresConfig.table, {})).toBe("amp_effect_tokens")
      expect(yield* read(PostgresConfig.schema, { AMP_POSTGRES_SCHEMA: "  " })).toBe("public")
      expect(yield* read(PostgresConfig.table, { AMP_POSTGRES_TABLE: " tokens " })).toBe("tokens")
      const schema = yield* Effect.flip(read(PostgresConfig.schema, { AMP_POSTGRES_SCHEMA: "My-Schema" }))
      expect(schema.variable).toBe("AMP_POSTGRES_SCHEMA")
      expect(schema.reason).toContain("got \"My-Schema\"")
      expect(schema.reason).toContain("expected 1 to 63 lower-case letters, digits or _")
      const table = yield* Effect.flip(read(PostgresConfig.table, { AMP_POSTGRES_TABLE: "t".repeat(53) }))
      expect(table.reason).toContain("expected 1 to 52 lower-case letters")
    }))
})
