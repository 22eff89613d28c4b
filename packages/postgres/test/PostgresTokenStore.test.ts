import type { TokenData } from "@amp-effect/core"
import { AmpConfig, EncryptionKey, TokenMetrics, TokenStore } from "@amp-effect/core"
import { LogCapture, SpanCapture, TokenStoreContract } from "@amp-effect/core/testing"
import type * as SqlClient from "@effect/sql/SqlClient"
import { expect, it } from "@effect/vitest"
import {
  ConfigProvider,
  Context,
  DateTime,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Metric,
  Option,
  Redacted,
  Schedule,
  TestClock
} from "effect"
import * as Os from "node:os"
import * as PostgresConfig from "../src/PostgresConfig.js"
import * as PostgresMetrics from "../src/PostgresMetrics.js"
import * as PostgresTokenStore from "../src/PostgresTokenStore.js"
import { PostgresServer } from "../src/testing/index.js"
import * as Database from "./utils/Database.js"

const describe = Database.setup()
const { plain, sampleToken } = TokenStoreContract

const options = (extra: Partial<PostgresTokenStore.UrlOptions> = {}): PostgresTokenStore.UrlOptions => ({
  url: Redacted.make(Database.current().url),
  account: Database.account,
  table: Database.freshTable(),
  ...extra
})

const tokenOf = (loaded: Option.Option<TokenData.TokenData>) => Option.map(loaded, (data) => Redacted.value(data.token))

/** How much `counter` (tagged with `tag`, if given) grew while `effect` ran. */
const growth = <A, E, R>(
  counter: Metric.Metric.Counter<number>,
  tag: readonly [string, string] | undefined,
  effect: Effect.Effect<A, E, R>
) =>
  Effect.gen(function*() {
    const metric = tag === undefined ? counter : Metric.tagged(counter, tag[0], tag[1])
    const before = (yield* Metric.value(metric)).count
    const result = yield* effect
    return { result, grew: (yield* Metric.value(metric)).count - before }
  })

/** The rows of a table, as the database holds them. */
const rows = (sql: SqlClient.SqlClient, qualified: string) =>
  sql.unsafe<Record<string, unknown>>(`SELECT * FROM ${qualified}`)

/** The sessions holding an advisory lock, with their application_name. */
const advisoryHolders = (sql: SqlClient.SqlClient) =>
  sql<{ readonly pid: number; readonly name: string }>`SELECT l.pid, a.application_name AS name FROM pg_locks l
    JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted`

describe("PostgresTokenStore", () => {
  // Each test its own table, created by the store itself on first use.
  TokenStoreContract.storeContract(
    "postgres (a pool of its own)",
    Layer.suspend(() => PostgresTokenStore.layerUrl(options()))
  )
  TokenStoreContract.storeContract(
    "postgres (the application's SqlClient)",
    Layer.suspend(() =>
      PostgresTokenStore.layer({ account: Database.account, table: Database.freshTable() }).pipe(
        Layer.provide(Database.layerClient)
      )
    )
  )

  it.scoped("the row is keyed by the account hash (no username), its expiry in a column; version 1 recorded", () =>
    Effect.gen(function*() {
      const sql = yield* Database.client()
      const table = Database.freshTable()
      const store = yield* PostgresTokenStore.makeUrl(options({ table }))
      const data = sampleToken("row-token")
      expect(yield* store.save(data)).toBe(data)
      const [row, ...more] = yield* rows(sql, `public.${table}`)
      expect(more).toEqual([])
      expect(row!.account).toBe(PostgresTokenStore.accountKey(Database.account))
      expect(PostgresTokenStore.accountKey(Database.account)).toMatch(/^[0-9a-f]{32}$/)
      expect(JSON.stringify(row)).not.toContain(Database.account.username)
      expect((row!.expires_at as Date).getTime()).toBe(DateTime.toEpochMillis(data.expiresAt))
      expect(store.description).toBe(
        `postgres postgres://127.0.0.1:${Database.current().port}/postgres (table public.${table})`
      )
      const versions = yield* rows(sql, `public.${table}_migrations`)
      expect(versions.map((v) => [v.version, v.name])).toEqual([[1, "token table"]])
    }))

  it.scoped("an older token never replaces a newer one: the save answers the stored token, counted and warned", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const store = yield* PostgresTokenStore.makeUrl(options())
      const newer = sampleToken("newer", Date.UTC(2024, 5, 1))
      const older = sampleToken("older", Date.UTC(2024, 0, 1))
      yield* store.save(newer)
      const refused = yield* growth(PostgresMetrics.saveRejections, undefined, logs.provide(store.save(older)))
      expect(plain(refused.result)).toEqual(plain(newer))
      expect(refused.grew).toBe(1)
      expect(logs.warnings().some((line) => line.includes("Kept the token already in Postgres"))).toBe(true)
      expect(tokenOf(yield* store.load)).toEqual(Option.some("newer"))
      // As late is refused too: another process's token of the same second stays.
      const same = sampleToken("same-second", Date.UTC(2024, 5, 1))
      expect(Redacted.value((yield* store.save(same)).token)).toBe("newer")
    }))

  it.scoped("the token a save replaces is replaced even by one that expires no later", () =>
    Effect.gen(function*() {
      const store = yield* PostgresTokenStore.makeUrl(options())
      const current = sampleToken("current", Date.UTC(2024, 5, 1))
      const successor = sampleToken("successor", Date.UTC(2024, 5, 1))
      yield* store.save(current)
      expect(Redacted.value((yield* store.save(successor, current)).token)).toBe("successor")
      expect(tokenOf(yield* store.load)).toEqual(Option.some("successor"))
      // Naming another token than the stored one changes nothing.
      const stale = sampleToken("stale", Date.UTC(2024, 0, 1))
      expect(Redacted.value((yield* store.save(stale, current)).token)).toBe("successor")
    }))

  it.scoped("expired rows are never served, are replaced by any token, and go with the next save", () =>
    Effect.gen(function*() {
      const sql = yield* Database.client()
      const table = Database.freshTable()
      const store = yield* PostgresTokenStore.makeUrl(options({ table }))
      const other = yield* PostgresTokenStore.makeUrl(options({
        table,
        account: { ...Database.account, username: "someone-else" }
      }))
      const first = sampleToken("first", Date.UTC(2024, 5, 1))
      yield* store.save(first)
      yield* other.save(sampleToken("other-account", Date.UTC(2024, 0, 1)))
      yield* TestClock.setTime(DateTime.toEpochMillis(first.expiresAt))
      expect(Option.isNone(yield* store.load)).toBe(true)
      // Not saved at all: already expired.
      const expired = sampleToken("expired", Date.UTC(2024, 0, 1))
      expect(yield* store.save(expired)).toBe(expired)
      expect((yield* rows(sql, `public.${table}`)).length).toBe(2)
      // Earlier than the stored (expired) one, yet written; the other account's expired row goes.
      const later = sampleToken("later", Date.UTC(2024, 5, 2, 12))
      const fresh = sampleToken("fresh", DateTime.toEpochMillis(first.expiresAt) - 3600_000)
      expect(Redacted.value((yield* store.save(fresh)).token)).toBe("fresh")
      expect(tokenOf(yield* store.load)).toEqual(Option.some("fresh"))
      expect((yield* rows(sql, `public.${table}`)).map((row) => row.account)).toEqual([
        PostgresTokenStore.accountKey(Database.account)
      ])
      expect(Redacted.value((yield* store.save(later)).token)).toBe("later")
    }))

  it.scopedLive("its own pool is opened once, whatever the number of operations", () =>
    Effect.gen(function*() {
      const sql = yield* Database.client()
      // A user of its own, so that its sessions are told apart from the other tests'.
      const role = `r_${Database.freshTable()}`
      yield* sql.unsafe(`CREATE ROLE ${role} LOGIN SUPERUSER PASSWORD 'pool-pw'`)
      const url = `postgres://${role}:pool-pw@127.0.0.1:${Database.current().port}/postgres`
      const store = yield* PostgresTokenStore.makeUrl({ ...options(), url: Redacted.make(url) })
      for (let i = 0; i < 8; i++) yield* store.load
      const [row] = yield* sql<{ readonly count: number }>`SELECT count(*)::int AS count FROM pg_stat_activity
        WHERE usename = ${role}`
      expect(row!.count).toBe(1)
    }))

  it.scoped("a refused save whose kept token this process cannot read is an error that says so", () =>
    Effect.gen(function*() {
      const table = Database.freshTable()
      const writer = yield* PostgresTokenStore.makeUrl(options({ table, encryptionKey: EncryptionKey.generate() }))
      const stranger = EncryptionKey.generate()
      const reader = yield* PostgresTokenStore.makeUrl(options({ table, encryptionKey: stranger }))
      yield* writer.save(sampleToken("newer", Date.UTC(2024, 5, 1)))
      const error = yield* Effect.flip(
        LogCapture.make().provide(reader.save(sampleToken("older", Date.UTC(2024, 0, 1))))
      )
      expect(error.store).toBe("postgres")
      expect(error.operation).toBe("save")
      expect(error.message).toContain("it keeps a token that expires later, which this process cannot read: ")
      expect(error.message).toContain(`which is not among the configured keys (${yield* EncryptionKey.id(stranger)})`)
    }))

  it.scoped("load, save and remove are spans of the store, naming its table", () =>
    Effect.gen(function*() {
      const table = Database.freshTable()
      const store = yield* PostgresTokenStore.makeUrl(options({ table }))
      const { spans } = yield* SpanCapture.withSpans(
        Effect.all([store.save(sampleToken("spanned")), store.load, store.remove])
      )
      const ours = spans.filter((span) => span.name.startsWith("TokenStore."))
      expect(ours.map((span) => span.name)).toEqual(["TokenStore.save", "TokenStore.load", "TokenStore.remove"])
      for (const span of ours) {
        expect(span.attributes.get("store")).toBe("postgres")
        expect(span.attributes.get("table")).toBe(`public.${table}`)
      }
    }))

  it("the documented defaults", () => {
    expect(PostgresTokenStore.defaultLockLease).toEqual(Duration.seconds(10))
    expect(PostgresTokenStore.defaultLockTimeout).toEqual(Duration.seconds(90))
    expect(PostgresTokenStore.defaultStatementTimeout).toEqual(Duration.seconds(2))
    expect(PostgresConfig.defaultSchema).toBe("public")
    expect(PostgresConfig.defaultTable).toBe("amp_effect_tokens")
  })

  it.scoped("a custom schema and table: created on first use, the migrations table beside the token table", () =>
    Effect.gen(function*() {
      const sql = yield* Database.client()
      const schema = `s_${Database.freshTable()}`
      const store = yield* PostgresTokenStore.makeUrl(options({ schema, table: "tokens" }))
      yield* store.save(sampleToken("in-schema"))
      const tables = yield* sql<{ readonly name: string }>`SELECT table_name AS name FROM information_schema.tables
        WHERE table_schema = ${schema} ORDER BY table_name`
      expect(tables.map((t) => t.name)).toEqual(["tokens", "tokens_migrations"])
      expect((yield* rows(sql, `${schema}.tokens`)).length).toBe(1)
      expect(store.description).toContain(`(table ${schema}.tokens)`)
    }))

  it.live("invalid names and durations are defects that say why", () =>
    Effect.gen(function*() {
      for (const bad of [{ table: "Tokens" }, { schema: "a-b" }, { table: "x".repeat(53) }, { table: "1t" }]) {
        const exit = yield* Effect.exit(Effect.scoped(PostgresTokenStore.makeUrl(options(bad))))
        expect(Exit.isFailure(exit) && String(exit.cause)).toContain("must be lower-case letters, digits or _")
      }
      const zero = yield* Effect.exit(Effect.scoped(PostgresTokenStore.makeUrl(options({ statementTimeout: 0 }))))
      expect(String(Exit.isFailure(zero) && zero.cause)).toContain("statementTimeout must be a positive")
      const endless = yield* Effect.exit(Effect.scoped(PostgresTokenStore.makeUrl(options({ lockLease: Infinity }))))
      expect(String(Exit.isFailure(endless) && endless.cause)).toContain(
        "lockLease must be a positive, finite duration"
      )
      const url = yield* Effect.exit(
        Effect.scoped(PostgresTokenStore.makeUrl(options({ url: Redacted.make("mysql://x") })))
      )
      expect(String(Exit.isFailure(url) && url.cause)).toContain("url must be a postgres:// or postgresql:// URL")
      expect(PostgresConfig.isTableName("x".repeat(52))).toBe(true)
      expect(PostgresConfig.isSchemaName("x".repeat(63))).toBe(true)
      expect(PostgresConfig.isSchemaName("x".repeat(64))).toBe(false)
    }))

  it.scopedLive("many stores starting at once on an empty database migrate it once, without an error", () =>
    Effect.gen(function*() {
      const sql = yield* Database.client()
      const schema = `s_${Database.freshTable()}`
      const now = Date.now()
      const results = yield* Effect.all(
        Array.from({ length: 12 }, (_, i) =>
          Effect.scoped(Effect.gen(function*() {
            // Each its own pool: separate sessions, as separate processes would have.
            const store = yield* PostgresTokenStore.makeUrl(options({ schema, table: "tokens" }))
            // Quiet: all but one are fenced out, each with a warning.
            return yield* LogCapture.make().provide(Effect.either(store.save(sampleToken(`t${i}`, now + i * 60_000))))
          }))),
        { concurrency: "unbounded" }
      )
      expect(results.filter(Either.isLeft)).toEqual([])
      const versions = yield* rows(sql, `${schema}.tokens_migrations`)
      expect(versions.map((v) => v.version)).toEqual([1])
      // The fence kept the latest of them.
      const [row] = yield* rows(sql, `${schema}.tokens`)
      expect(String(row!.value)).toContain("t11")
    }))

  it.scopedLive("a table dropped under a running store is created again by its next operation", () =>
    Effect.gen(function*() {
      const sql = yield* Database.client()
      const table = Database.freshTable()
      const store = yield* PostgresTokenStore.makeUrl(options({ table }))
      yield* store.save(sampleToken("first", Date.now()))
      yield* sql.unsafe(`DROP TABLE public.${table}, public.${table}_migrations`)
      const error = yield* Effect.flip(store.load)
      expect(error.message).toContain(`relation "public.${table}" does not exist`)
      yield* store.save(sampleToken("second", Date.now()))
      expect(tokenOf(yield* store.load)).toEqual(Option.some("second"))
    }))

  it.scopedLive("a schema dropped under a running store is created again by its next operation", () =>
    Effect.gen(function*() {
      const sql = yield* Database.client()
      const schema = `s_${Database.freshTable()}`
      const store = yield* PostgresTokenStore.makeUrl(options({ schema, table: "tokens" }))
      yield* store.save(sampleToken("first", Date.now()))
      yield* sql.unsafe(`DROP SCHEMA ${schema} CASCADE`)
      const error = yield* Effect.flip(store.save(sampleToken("lost", Date.now())))
      expect(error.message).toContain(`relation "${schema}.tokens" does not exist`)
      yield* store.save(sampleToken("second", Date.now()))
      expect(tokenOf(yield* store.load)).toEqual(Option.some("second"))
    }))

  it.scopedLive("once migrated, a user with no right to create anything uses the store", () =>
    Effect.gen(function*() {
      const sql = yield* Database.client()
      const schema = `s_${Database.freshTable()}`
      const role = `r_${Database.freshTable()}`
      yield* Effect.scoped(
        Effect.flatMap(PostgresTokenStore.makeUrl(options({ schema, table: "tokens" })), (s) => s.load)
      )
      yield* sql.unsafe(`CREATE ROLE ${role} LOGIN PASSWORD 'app-pw'`)
      yield* sql.unsafe(`GRANT USAGE ON SCHEMA ${schema} TO ${role}`)
      yield* sql.unsafe(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${schema} TO ${role}`)
      const url = `postgres://${role}:app-pw@127.0.0.1:${Database.current().port}/postgres`
      const store = yield* PostgresTokenStore.makeUrl({
        ...options({ schema, table: "tokens" }),
        url: Redacted.make(url)
      })
      yield* store.save(sampleToken("least-privilege", Date.now()))
      expect(tokenOf(yield* store.load)).toEqual(Option.some("least-privilege"))
      expect(yield* store.withLock(Effect.succeed("locked"))).toBe("locked")
    }))

  it.scopedLive("a database with a version this release does not know is used as it is", () =>
    Effect.gen(function*() {
      const sql = yield* Database.client()
      const table = Database.freshTable()
      const first = yield* Effect.scoped(Effect.flatMap(PostgresTokenStore.makeUrl(options({ table })), (s) => s.load))
      expect(Option.isNone(first)).toBe(true)
      yield* sql.unsafe(`ALTER TABLE public.${table} ADD COLUMN note text`)
      yield* sql.unsafe(`INSERT INTO public.${table}_migrations (version, name) VALUES (2, 'from the future')`)
      const store = yield* PostgresTokenStore.makeUrl(options({ table }))
      yield* store.save(sampleToken("still-works", Date.now()))
      expect(tokenOf(yield* store.load)).toEqual(Option.some("still-works"))
      expect((yield* rows(sql, `public.${table}_migrations`)).map((v) => v.version)).toEqual([1, 2])
    }))

  it.scoped("the value column holds the envelope, in clear without a key; what it cannot read counts as none", () =>
    Effect.gen(function*() {
      const sql = yield* Database.client()
      const table = Database.freshTable()
      const logs = LogCapture.make()
      const store = yield* PostgresTokenStore.makeUrl(options({ table }))
      const data = sampleToken("clear-token")
      yield* store.save(data)
      const [row] = yield* rows(sql, `public.${table}`)
      const envelope = JSON.parse(String(row!.value))
      expect(Object.keys(envelope).sort()).toEqual(["data", "exp", "fp", "v"])
      expect(envelope.data.token).toBe("clear-token")
      expect(envelope.exp).toBe(DateTime.toEpochMillis(data.expiresAt))
      expect(row!.fingerprint).toBe(envelope.fp)
      yield* sql.unsafe(`UPDATE public.${table} SET value = 'garbage'`)
      const corrupt = yield* growth(PostgresMetrics.corrupt, ["reason", "unreadable"], logs.provide(store.load))
      expect(Option.isNone(corrupt.result)).toBe(true)
      expect(corrupt.grew).toBe(1)
      expect(
        logs.warnings().some((line) =>
          line.includes(
            "cannot be used: it is not a token envelope written by @amp-effect/postgres; treating it as missing, " +
              "so a new token will be obtained"
          )
        )
      ).toBe(true)
    }))
  it.scoped("a token that expires this very instant is not saved: the stored one stays, a debug line says so", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const store = yield* PostgresTokenStore.makeUrl(options())
      yield* store.save(sampleToken("stored", Date.UTC(2024, 5, 1)))
      const instant = sampleToken("instant", Date.UTC(2024, 0, 1))
      yield* TestClock.setTime(DateTime.toEpochMillis(instant.expiresAt))
      const saved = yield* growth(PostgresMetrics.saveRejections, undefined, logs.provide(store.save(instant)))
      expect(saved.result).toBe(instant)
      expect(saved.grew).toBe(0)
      expect(tokenOf(yield* store.load)).toEqual(Option.some("stored"))
      const where = store.description.slice("postgres ".length)
      const debug = logs.lines.filter((line) => line.level === "DEBUG").map((line) => line.text)
      expect(debug.some((text) => text.startsWith(`Not saving an already expired token to Postgres (${where})`)))
        .toBe(true)
    }))

  it.scoped("nothing stored: load answers none quietly, nothing counted as corrupt", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const store = yield* PostgresTokenStore.makeUrl(options())
      const loaded = yield* growth(PostgresMetrics.corrupt, ["reason", "unreadable"], logs.provide(store.load))
      expect(Option.isNone(loaded.result)).toBe(true)
      expect(loaded.grew).toBe(0)
      expect(logs.warnings()).toEqual([])
    }))

  it.scopedLive("a refused save that then cannot read the kept token fails as a save, counted so", () =>
    Effect.gen(function*() {
      const sql = yield* Database.client()
      const table = Database.freshTable()
      const role = `r_${Database.freshTable()}`
      const owner = yield* PostgresTokenStore.makeUrl(options({ table }))
      yield* owner.save(sampleToken("newer", Date.now()))
      // A user whose right to read the table is withdrawn by the save's write itself (its last
      // statement, the removal of expired rows): the fenced write succeeds, the reading after it fails.
      yield* sql.unsafe(`CREATE ROLE ${role} LOGIN PASSWORD 'fence-pw'`)
      yield* sql.unsafe(`GRANT SELECT ON public.${table}_migrations TO ${role}`)
      yield* sql.unsafe(`GRANT SELECT, INSERT, UPDATE, DELETE ON public.${table} TO ${role}`)
      yield* sql.unsafe(`CREATE FUNCTION public.${table}_deny() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
        AS $$ BEGIN REVOKE SELECT ON public.${table} FROM ${role}; RETURN NULL; END $$`)
      yield* sql.unsafe(`CREATE TRIGGER deny AFTER DELETE ON public.${table}
        FOR EACH STATEMENT EXECUTE FUNCTION public.${table}_deny()`)
      const url = `postgres://${role}:fence-pw@127.0.0.1:${Database.current().port}/postgres`
      const store = yield* PostgresTokenStore.makeUrl({ ...options({ table }), url: Redacted.make(url) })
      const older = store.save(sampleToken("older", Date.now() - 3600_000))
      const fenced = yield* growth(
        PostgresMetrics.saveRejections,
        undefined,
        growth(PostgresMetrics.unavailable, ["operation", "save"], Effect.flip(older))
      )
      const counted = fenced.result
      expect(fenced.grew).toBe(1)
      expect(counted.grew).toBe(1)
      expect(counted.result.operation).toBe("save")
      expect(counted.result.message).toContain(`permission denied for table ${table}`)
    }))

  it.scoped("a refused save whose kept token was removed meanwhile is an error that says so", () =>
    Effect.gen(function*() {
      const sql = yield* Database.client()
      const table = Database.freshTable()
      const store = yield* PostgresTokenStore.makeUrl(options({ table }))
      yield* store.save(sampleToken("newer", Date.UTC(2024, 5, 1)))
      // Another process's remove, between this save's fenced write and its reading of the kept token.
      yield* sql.unsafe(`CREATE FUNCTION public.${table}_gone() RETURNS trigger LANGUAGE plpgsql
        AS $$ BEGIN DELETE FROM public.${table}; RETURN NULL; END $$`)
      yield* sql.unsafe(`CREATE TRIGGER gone AFTER INSERT ON public.${table}
        FOR EACH STATEMENT EXECUTE FUNCTION public.${table}_gone()`)
      const error = yield* Effect.flip(store.save(sampleToken("older", Date.UTC(2024, 0, 1))))
      expect(error.operation).toBe("save")
      expect(error.message).toContain(
        "it keeps a token that expires later, which this process cannot read: it was removed meanwhile"
      )
    }))
})

describe("PostgresTokenStore: encryption at rest", () => {
  const token = "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJzZWNyZXQifQ.c2lnbmF0dXJl"

  it.scoped("with a key, the stored bytes hold no part of the token; it round-trips", () =>
    Effect.gen(function*() {
      const sql = yield* Database.client()
      const table = Database.freshTable()
      const key = EncryptionKey.generate()
      const store = yield* PostgresTokenStore.makeUrl(options({ table, encryptionKey: key }))
      const data = sampleToken(token)
      yield* store.save(data)
      const [row] = yield* rows(sql, `public.${table}`)
      const raw = JSON.stringify(row)
      for (const part of token.split(".")) expect(raw).not.toContain(part)
      expect(raw).not.toContain(Database.account.username)
      const envelope = JSON.parse(String(row!.value))
      expect(Object.keys(envelope).sort()).toEqual(["data", "exp", "fp", "iv", "kid", "v"])
      expect(envelope.kid).toBe(yield* EncryptionKey.id(key))
      expect(Option.map(yield* store.load, plain)).toEqual(Option.some(plain(data)))
    }))

  it.scoped("an unknown key id, no key, another account's row or an edited exp: none, counted and warned", () =>
    Effect.gen(function*() {
      const sql = yield* Database.client()
      const table = Database.freshTable()
      const logs = LogCapture.make()
      const key = EncryptionKey.generate()
      const writer = yield* PostgresTokenStore.makeUrl(options({ table, encryptionKey: key }))
      yield* writer.save(sampleToken(token))
      const stranger = EncryptionKey.generate()
      const wrongKey = yield* PostgresTokenStore.makeUrl(options({ table, encryptionKey: stranger }))
      const unknown = yield* growth(PostgresMetrics.corrupt, ["reason", "unknown-key"], logs.provide(wrongKey.load))
      expect(Option.isNone(unknown.result)).toBe(true)
      expect(unknown.grew).toBe(1)
      const strangerId = yield* EncryptionKey.id(stranger)
      expect(logs.warnings().some((line) => line.includes(`not among the configured keys (${strangerId})`))).toBe(true)
      const noKey = yield* PostgresTokenStore.makeUrl(options({ table }))
      const none = yield* growth(PostgresMetrics.corrupt, ["reason", "no-key"], logs.provide(noKey.load))
      expect(Option.isNone(none.result)).toBe(true)
      expect(none.grew).toBe(1)
      expect(logs.warnings().some((line) => line.includes("but no encryption key is configured"))).toBe(true)
      // The sealed value is bound to its account: copied to another account's row, it does not open.
      const other = { ...Database.account, username: "someone-else" }
      const otherStore = yield* PostgresTokenStore.makeUrl(options({ table, account: other, encryptionKey: key }))
      yield* sql.unsafe(`INSERT INTO public.${table} SELECT $1, expires_at, fingerprint, value FROM public.${table}`, [
        PostgresTokenStore.accountKey(other)
      ])
      const copied = yield* growth(PostgresMetrics.corrupt, ["reason", "undecryptable"], logs.provide(otherStore.load))
      expect(Option.isNone(copied.result)).toBe(true)
      expect(copied.grew).toBe(1)
      // And to its exp.
      const mine = PostgresTokenStore.accountKey(Database.account)
      const [row] = yield* sql.unsafe<{ readonly value: string }>(
        `SELECT value FROM public.${table} WHERE account = $1`,
        [
          mine
        ]
      )
      const envelope = JSON.parse(String(row!.value))
      yield* sql.unsafe(`UPDATE public.${table} SET value = $1`, [
        JSON.stringify({ ...envelope, exp: envelope.exp + 1 })
      ])
      const edited = yield* growth(PostgresMetrics.corrupt, ["reason", "undecryptable"], logs.provide(writer.load))
      expect(Option.isNone(edited.result)).toBe(true)
      expect(edited.grew).toBe(1)
      const keyId = yield* EncryptionKey.id(key)
      expect(logs.warnings().some((line) => line.includes(`it does not decrypt with key id ${keyId}`))).toBe(true)
      for (const line of logs.lines) expect(line.text).not.toContain(token.split(".")[1]!)
    }))

  it.scoped("rotation: a clear value still reads; the first key seals, every key opens", () =>
    Effect.gen(function*() {
      const sql = yield* Database.client()
      const table = Database.freshTable()
      const [oldKey, newKey] = [EncryptionKey.generate(), EncryptionKey.generate()]
      const clear = yield* PostgresTokenStore.makeUrl(options({ table }))
      const first = sampleToken(token, Date.UTC(2024, 5, 1))
      yield* clear.save(first)
      const before = yield* PostgresTokenStore.makeUrl(options({ table, encryptionKey: oldKey }))
      expect(Option.map(yield* before.load, plain)).toEqual(Option.some(plain(first)))
      const second = sampleToken(token, Date.UTC(2024, 5, 2))
      yield* before.save(second)
      const rotated = yield* PostgresTokenStore.makeUrl(options({ table, encryptionKey: [newKey, oldKey] }))
      expect(Option.map(yield* rotated.load, plain)).toEqual(Option.some(plain(second)))
      const third = sampleToken(token, Date.UTC(2024, 5, 3))
      yield* rotated.save(third)
      const [row] = yield* rows(sql, `public.${table}`)
      expect(JSON.parse(String(row!.value)).kid).toBe(yield* EncryptionKey.id(newKey))
      const after = yield* PostgresTokenStore.makeUrl(options({ table, encryptionKey: newKey }))
      expect(Option.map(yield* after.load, plain)).toEqual(Option.some(plain(third)))
    }))
})

describe("PostgresTokenStore: the advisory lock", () => {
  it.scopedLive("held by one session, named in pg_stat_activity, released after; nothing left behind", () =>
    Effect.gen(function*() {
      const sql = yield* Database.client()
      const store = yield* PostgresTokenStore.makeUrl(options())
      const inside = yield* store.withLock(advisoryHolders(sql))
      expect(inside.length).toBe(1)
      expect(inside[0]!.name).toBe(`amp-effect lock: process ${process.pid} on ${Os.hostname()}`)
      expect(yield* advisoryHolders(sql)).toEqual([])
      // The lock's session went back to the pool as it was.
      const names = yield* sql<{ readonly name: string; readonly timeout: string }>`SELECT application_name AS name,
        backend_type AS timeout FROM pg_stat_activity WHERE application_name LIKE 'amp-effect%'`
      expect(names.length).toBeGreaterThan(0)
      expect(names.every((row) => row.name === "amp-effect")).toBe(true)
    }))

  it.scopedLive("another store waits for it (counted), and fails after lockTimeout naming the holder", () =>
    Effect.gen(function*() {
      const table = Database.freshTable()
      const first = yield* PostgresTokenStore.makeUrl(options({ table }))
      const second = yield* PostgresTokenStore.makeUrl(options({ table, lockTimeout: Duration.millis(500) }))
      const held = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(
        first.withLock(Effect.zipRight(Deferred.succeed(held, undefined), Deferred.await(release)))
      )
      yield* Deferred.await(held)
      const error = yield* Effect.flip(second.withLock(Effect.succeed("never")))
      expect(error._tag).toBe("TokenStoreError")
      expect(error.store).toBe("postgres")
      expect(error.operation).toBe("lock")
      expect(error.message).toContain(`still held by process ${process.pid} on ${Os.hostname()} after waiting`)
      expect(error.message).toContain("Could not lock the token in Postgres at postgres://127.0.0.1:")
      const waiting = yield* Effect.fork(
        growth(TokenMetrics.lockWaits, undefined, second.withLock(Effect.succeed("mine")))
      )
      yield* Effect.sleep(Duration.millis(100))
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
      const waited = yield* Fiber.join(waiting)
      expect(waited.result).toBe("mine")
      expect(waited.grew).toBe(1)
    }))

  it.scopedLive("a lock held by another kind of client is named as such when the wait times out", () =>
    Effect.gen(function*() {
      const sql = yield* Database.client()
      const table = Database.freshTable()
      const store = yield* PostgresTokenStore.makeUrl(options({ table, lockTimeout: Duration.millis(300) }))
      // The store's key, as pg_locks shows it while the store holds it.
      const [key] = yield* store.withLock(sql<{ readonly key: string }>`SELECT
        ((classid::bigint << 32) | objid::bigint)::text AS key FROM pg_locks WHERE locktype = 'advisory' AND granted`)
      const error = yield* Effect.scoped(Effect.gen(function*() {
        const connection = yield* sql.reserve
        yield* connection.execute("SELECT pg_advisory_lock($1::bigint)", [key!.key], undefined)
        const error = yield* Effect.flip(store.withLock(Effect.void))
        yield* connection.execute("SELECT pg_advisory_unlock($1::bigint)", [key!.key], undefined)
        return error
      }))
      expect(error.message).toContain("still held by another session after waiting")
    }))

  it.scopedLive("a holder whose session ends (killed, cut off) loses the lock at once: another takes it", () =>
    Effect.gen(function*() {
      const sql = yield* Database.client()
      const logs = LogCapture.make()
      const table = Database.freshTable()
      const first = yield* PostgresTokenStore.makeUrl(options({ table, lockLease: Duration.seconds(30) }))
      const second = yield* PostgresTokenStore.makeUrl(options({ table, lockTimeout: Duration.seconds(20) }))
      const held = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(
        logs.provide(first.withLock(Effect.zipRight(Deferred.succeed(held, undefined), Deferred.await(release))))
      )
      yield* Deferred.await(held)
      const [session] = yield* advisoryHolders(sql)
      yield* sql`SELECT pg_terminate_backend(${session!.pid})`
      // Within its 20 s timeout, though the first holder's lease is 30 s and it never released.
      expect(yield* second.withLock(advisoryHolders(sql))).toHaveLength(1)
      yield* Deferred.succeed(release, undefined)
      // Its release finds the lock gone with its session: lost, counted and warned once.
      const lost = yield* growth(PostgresMetrics.lockLost, undefined, Fiber.join(holder))
      expect(lost.grew).toBe(1)
      expect(logs.warnings().filter((line) => line.includes("advisory lock"))).toHaveLength(1)
      expect(logs.warnings().some((line) => line.includes("was taken over by another process while held"))).toBe(true)
      expect(yield* advisoryHolders(sql)).toEqual([])
    }))

  it.scopedLive("the lease is extended while held: a renewal longer than the lease keeps its session", () =>
    Effect.gen(function*() {
      const sql = yield* Database.client()
      const logs = LogCapture.make()
      const store = yield* PostgresTokenStore.makeUrl(options({ lockLease: Duration.millis(600) }))
      const lost = yield* growth(
        PostgresMetrics.lockLost,
        undefined,
        logs.provide(store.withLock(Effect.zipRight(Effect.sleep(Duration.millis(2000)), advisoryHolders(sql))))
      )
      expect(lost.result).toHaveLength(1)
      expect(lost.grew).toBe(0)
      expect(logs.warnings()).toEqual([])
    }))

  it.scopedLive("the lock is the account's in its schema and table: other stores take their own at once", () =>
    Effect.gen(function*() {
      const table = Database.freshTable()
      const first = yield* PostgresTokenStore.makeUrl(options({ table }))
      const quick = { lockTimeout: Duration.seconds(5) }
      const others = [
        yield* PostgresTokenStore.makeUrl(options({ ...quick, table: Database.freshTable() })),
        yield* PostgresTokenStore.makeUrl(options({ ...quick, table, schema: `s_${Database.freshTable()}` })),
        yield* PostgresTokenStore.makeUrl(options({
          ...quick,
          table,
          account: { ...Database.account, username: "someone-else" }
        }))
      ]
      const held = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(
        first.withLock(Effect.zipRight(Deferred.succeed(held, undefined), Deferred.await(release)))
      )
      yield* Deferred.await(held)
      for (const other of others) {
        const taken = yield* growth(TokenMetrics.lockWaits, undefined, other.withLock(Effect.succeed("own lock")))
        expect(taken).toEqual({ result: "own lock", grew: 0 })
      }
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
    }))

  it.scopedLive("fibers of one process queue for the lock: never two at once", () =>
    Effect.gen(function*() {
      const store = yield* PostgresTokenStore.makeUrl(options())
      let inside = 0
      let most = 0
      const critical = Effect.gen(function*() {
        inside++
        most = Math.max(most, inside)
        yield* Effect.sleep(Duration.millis(5))
        inside--
      })
      yield* Effect.all(Array.from({ length: 8 }, () => store.withLock(critical)), { concurrency: "unbounded" })
      expect(most).toBe(1)
    }))
})

describe("PostgresTokenStore: Postgres down, slow, restarted", () => {
  it.scopedLive("down: the store is built; operations fail fast naming Postgres; the lock proceeds or fails", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const port = yield* Effect.promise(() => PostgresServer.unusedPort())
      const url = Redacted.make(`postgres://app:hunter2-password@127.0.0.1:${port}/app`)
      const started = Date.now()
      const store = yield* logs.provide(PostgresTokenStore.makeUrl({ url, account: Database.account }))
      const loadError = yield* Effect.flip(store.load)
      expect(loadError.store).toBe("postgres")
      expect(loadError.operation).toBe("load")
      expect(loadError.message).toContain("Could not load the token from Postgres at postgres://127.0.0.1:")
      expect(loadError.message).toContain("ECONNREFUSED")
      const saveError = yield* Effect.flip(store.save(sampleToken("x", Date.now())))
      expect(saveError.operation).toBe("save")
      const proceeded = yield* growth(
        PostgresMetrics.unavailable,
        ["operation", "lock"],
        logs.provide(store.withLock(Effect.succeed("renewed")))
      )
      expect(proceeded.result).toBe("renewed")
      expect(proceeded.grew).toBe(1)
      expect(logs.warnings().some((line) => line.includes("renewing without it"))).toBe(true)
      expect(Date.now() - started).toBeLessThan(10_000)
      for (const text of [store.description, loadError.message, saveError.message, ...logs.lines.map((l) => l.text)]) {
        expect(text).not.toContain("hunter2")
      }
      const strict = yield* PostgresTokenStore.makeUrl({ url, account: Database.account, whenUnavailable: "fail" })
      const lockError = yield* Effect.flip(strict.withLock(Effect.succeed("never")))
      expect(lockError.operation).toBe("lock")
      expect(lockError.message).toContain("Postgres")
      expect(lockError.message).not.toContain("hunter2")
    }))

  it.scopedLive("down, a URL without a password: the reason is quoted as it is", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(() => PostgresServer.unusedPort())
      const url = Redacted.make(`postgres://app@127.0.0.1:${port}/app`)
      const store = yield* PostgresTokenStore.makeUrl({ url, account: Database.account })
      const load = yield* growth(PostgresMetrics.unavailable, ["operation", "load"], Effect.flip(store.load))
      expect(load.result.message).toMatch(/ECONNREFUSED 127\.0\.0\.1:\d+$/)
      expect(load.grew).toBe(1)
      const save = yield* growth(
        PostgresMetrics.unavailable,
        ["operation", "save"],
        Effect.flip(store.save(sampleToken("x", Date.now())))
      )
      expect(save.grew).toBe(1)
      const remove = yield* growth(PostgresMetrics.unavailable, ["operation", "remove"], Effect.flip(store.remove))
      expect(remove.result.operation).toBe("remove")
      expect(remove.grew).toBe(1)
    }))

  it.scopedLive("a lock session that stops answering at release: a failed release, warned and counted, not a loss", () =>
    Effect.gen(function*() {
      const sql = yield* Database.client()
      const logs = LogCapture.make()
      const store = yield* PostgresTokenStore.makeUrl(
        options({ statementTimeout: Duration.seconds(2), whenUnavailable: "fail" })
      )
      // The lock's server process, stopped (as a frozen host would be) until the store let go of it.
      let stopped: number | undefined
      const resume = Effect.sync(() => {
        if (stopped !== undefined) process.kill(stopped, "SIGCONT")
        stopped = undefined
      })
      yield* Effect.addFinalizer(() => resume)
      const stop = Effect.map(advisoryHolders(sql), ([session]) => {
        stopped = session!.pid
        process.kill(stopped, "SIGSTOP")
      })
      const released = yield* growth(
        PostgresMetrics.lockLost,
        undefined,
        growth(PostgresMetrics.unavailable, ["operation", "release"], logs.provide(store.withLock(stop)))
      )
      yield* resume
      expect(released.grew).toBe(0)
      expect(released.result.grew).toBe(1)
      expect(
        logs.warnings().some((line) =>
          line.startsWith("Could not release the Postgres advisory lock") &&
          line.includes("(Postgres did not answer within 2s)")
        )
      ).toBe(true)
    }))

  it.scopedLive("maxConnections is the pool's size: a pool of one cannot read while it holds the lock", () =>
    Effect.gen(function*() {
      // Generous enough that a busy machine still takes the lock in time (a lock not taken would
      // proceed without it, freeing the connection); "fail" makes that case an error, not a pass.
      const store = yield* PostgresTokenStore.makeUrl(
        options({ maxConnections: 1, statementTimeout: Duration.seconds(5), whenUnavailable: "fail" })
      )
      const error = yield* store.withLock(Effect.flip(store.load))
      expect(error.message).toContain("Postgres did not answer within 5s")
      const roomy = yield* PostgresTokenStore.makeUrl(options({ maxConnections: 2 }))
      expect(Option.isNone(yield* roomy.withLock(roomy.load))).toBe(true)
    }))

  it.scopedLive("a wrong password: the error says so, and never prints it", () =>
    Effect.gen(function*() {
      const url = Database.current().url.replace(Database.current().password, "wr0ng%2Fpass-word")
      const store = yield* PostgresTokenStore.makeUrl({ url: Redacted.make(url), account: Database.account })
      const error = yield* Effect.flip(store.load)
      expect(error.message).toContain("password authentication failed")
      expect(error.message).not.toContain("wr0ng")
      expect(error.message).not.toContain(Database.current().password)
    }))

  it.scopedLive("a server message quoting the URL's password (here the user's name too) has it redacted", () =>
    Effect.gen(function*() {
      // Percent-encoded in the URL; the server sees, and quotes, the decoded name.
      const url = `postgres://pw%2Fshown:pw%2Fshown@127.0.0.1:${Database.current().port}/postgres`
      const store = yield* PostgresTokenStore.makeUrl({ url: Redacted.make(url), account: Database.account })
      const error = yield* Effect.flip(store.load)
      expect(error.message).toContain(`password authentication failed for user "<redacted>"`)
      expect(error.message).not.toContain("pw/shown")
      expect(error.message).not.toContain("pw%2Fshown")
    }))

  it.scopedLive("a statement that does not answer in time fails after statementTimeout, then all is well", () =>
    Effect.gen(function*() {
      const sql = yield* Database.client()
      const table = Database.freshTable()
      const store = yield* PostgresTokenStore.makeUrl(options({ table, statementTimeout: Duration.millis(500) }))
      yield* store.save(sampleToken("before", Date.now()))
      const locked = yield* Deferred.make<void>()
      const unlock = yield* Deferred.make<void>()
      const blocker = yield* Effect.fork(sql.withTransaction(Effect.gen(function*() {
        yield* sql.unsafe(`LOCK TABLE public.${table} IN ACCESS EXCLUSIVE MODE`)
        yield* Deferred.succeed(locked, undefined)
        yield* Deferred.await(unlock)
      })))
      yield* Deferred.await(locked)
      const started = Date.now()
      const error = yield* Effect.flip(store.load)
      expect(error.message).toContain("Postgres did not answer within 500ms")
      expect(Date.now() - started).toBeLessThan(5_000)
      yield* Deferred.succeed(unlock, undefined)
      yield* Fiber.join(blocker)
      expect(tokenOf(yield* store.load)).toEqual(Option.some("before"))
    }))

  it.scopedLive("a restart while the lock is held: the renewal finishes, the lock counts as lost, all works after", () =>
    Effect.gen(function*() {
      const server = yield* Effect.acquireRelease(
        Effect.promise(() => PostgresServer.start()),
        (server) => Effect.promise(() => server.stop())
      )
      const logs = LogCapture.make()
      const store = yield* PostgresTokenStore.makeUrl({ url: Redacted.make(server.url), account: Database.account })
      yield* store.save(sampleToken("before", Date.now()))
      const renewal = store.withLock(Effect.as(Effect.promise(() => server.restart()), "renewed"))
      const lost = yield* growth(PostgresMetrics.lockLost, undefined, logs.provide(renewal))
      expect(lost.result).toBe("renewed")
      expect(lost.grew).toBe(1)
      // The test server does not sync its writes: the crash may have lost the table itself. The
      // store notices and migrates again.
      yield* Effect.retry(store.save(sampleToken("after", Date.now())), {
        times: 20,
        schedule: Schedule.spaced(Duration.millis(100))
      })
      expect(tokenOf(yield* store.load)).toEqual(Option.some("after"))
      expect(yield* store.withLock(Effect.succeed("again"))).toBe("again")
      for (const line of logs.lines) expect(line.text).not.toContain(server.password)
    }))
})

describe("PostgresTokenStore.layerConfig", () => {
  const provider = (map: Record<string, string>) =>
    Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(map))))
  const env = () => ({
    AMP_POSTGRES_URL: Database.current().url,
    AMP_API_BASE_URL: Database.account.baseUrl,
    AMP_USERNAME: Database.account.username
  })

  it.scopedLive("reads the URL, schema and table; the store works", () =>
    Effect.gen(function*() {
      const table = Database.freshTable()
      const context = yield* Layer.build(
        PostgresTokenStore.layerConfig().pipe(
          Layer.provide(provider({ ...env(), AMP_POSTGRES_SCHEMA: "configured", AMP_POSTGRES_TABLE: table }))
        )
      )
      const store = Context.get(context, TokenStore.TokenStore)
      expect(store.description).toContain(`(table configured.${table})`)
      yield* store.save(sampleToken("configured", Date.now()))
      expect(tokenOf(yield* store.load)).toEqual(Option.some("configured"))
    }))

  it.scopedLive("AMP_TOKEN_ENCRYPTION_KEY seals the row; a bad key fails naming the variable, never quoting it", () =>
    Effect.gen(function*() {
      const sql = yield* Database.client()
      const table = Database.freshTable()
      const key = EncryptionKey.generate()
      const configured = { ...env(), AMP_POSTGRES_TABLE: table }
      const build = (map: Record<string, string>) =>
        Layer.build(PostgresTokenStore.layerConfig().pipe(Layer.provide(provider(map))))
      const context = yield* build({
        ...configured,
        AMP_TOKEN_ENCRYPTION_KEY: Redacted.value(EncryptionKey.toBase64(key))
      })
      const store = Context.get(context, TokenStore.TokenStore)
      yield* store.save(sampleToken("sealed-by-config", Date.now()))
      const [row] = yield* rows(sql, `public.${table}`)
      expect(String(row!.value)).not.toContain("sealed-by-config")
      expect(JSON.parse(String(row!.value)).kid).toBe(yield* EncryptionKey.id(key))
      expect(tokenOf(yield* store.load)).toEqual(Option.some("sealed-by-config"))
      const bad = yield* Effect.flip(
        Effect.scoped(build({ ...configured, AMP_TOKEN_ENCRYPTION_KEY: "c2hvcnQtc2VjcmV0" }))
      )
      expect(bad).toBeInstanceOf(AmpConfig.AmpConfigError)
      expect(bad.variable).toBe("AMP_TOKEN_ENCRYPTION_KEY")
      expect(bad.message).not.toContain("c2hvcnQtc2VjcmV0")
    }))

  it.effect("a bad or missing variable is an AmpConfigError naming it, never quoting the URL", () =>
    Effect.gen(function*() {
      const fail = (map: Record<string, string>) =>
        Effect.flip(Effect.scoped(Layer.build(PostgresTokenStore.layerConfig().pipe(Layer.provide(provider(map))))))
      const table = yield* fail({ ...env(), AMP_POSTGRES_TABLE: "Bad-Name" })
      expect(table).toBeInstanceOf(AmpConfig.AmpConfigError)
      expect(table.variable).toBe("AMP_POSTGRES_TABLE")
      expect(table.message).toContain("lower-case letters")
      const schema = yield* fail({ ...env(), AMP_POSTGRES_SCHEMA: "x".repeat(64) })
      expect(schema.variable).toBe("AMP_POSTGRES_SCHEMA")
      const url = yield* fail({ ...env(), AMP_POSTGRES_URL: "mysql://u:s3cret-pw@db/x" })
      expect(url.variable).toBe("AMP_POSTGRES_URL")
      expect(url.message).toContain("AMP_POSTGRES_URL is invalid: not a Postgres URL")
      expect(url.message).not.toContain("s3cret")
      const { AMP_POSTGRES_URL: _, ...noUrl } = env()
      expect((yield* fail(noUrl)).variable).toBe("AMP_POSTGRES_URL")
      expect((yield* fail({ ...env(), AMP_POSTGRES_URL: "  " })).variable).toBe("AMP_POSTGRES_URL")
      const { AMP_USERNAME: __, ...noUser } = env()
      const user = yield* fail(noUser)
      expect(user.variable).toBe("AMP_USERNAME")
      expect(user.message).toBe("AMP_USERNAME is not set")
    }))
})
