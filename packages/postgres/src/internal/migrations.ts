/**
 * The store's own versioned migrations, applied on first use. Not `@effect/sql/Migrator`: its
 * check-then-create of the migrations table races when many processes start on an empty
 * database, and it shares one migrations table with the application. Here one transaction,
 * serialised by an advisory lock of its own, creates the schema if missing, records versions in
 * `<table>_migrations` beside the token table, and applies the missing ones in order. A process
 * that waited for the lock finds the work done.
 *
 * @internal
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import { createHash } from "node:crypto"

/** A schema and a table the store lives in (validated identifiers). */
export interface Names {
  readonly schema: string
  readonly table: string
}

/** Lower-case identifiers that need no quoting in psql, short enough for `<table>_migrations`. */
export const isIdentifier = (name: string, maxLength: number): boolean =>
  name.length <= maxLength && /^[a-z_][a-z0-9_]*$/.test(name)

/** A 64-bit advisory lock key (signed, as text for a `bigint` parameter) derived from `label`. */
export const advisoryKey = (label: string): string =>
  createHash("sha256").update(`amp-effect/postgres ${label}`).digest().readBigInt64BE(0).toString()

/** One step of the schema. Steps are never edited once released: a change is a new version. */
interface Migration {
  readonly version: number
  readonly name: string
  readonly up: (sql: SqlClient.SqlClient, names: Names) => Effect.Effect<unknown, SqlError>
}

export const migrations: ReadonlyArray<Migration> = [{
  version: 1,
  name: "token table",
  up: (sql, { schema, table }) =>
    Effect.zipRight(
      sql`CREATE TABLE ${sql(schema)}.${sql(table)} (
        account text PRIMARY KEY,
        expires_at timestamptz NOT NULL,
        fingerprint text NOT NULL,
        value text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`,
      sql`CREATE INDEX ${sql(`${table}_expires_at`)} ON ${sql(schema)}.${sql(table)} (expires_at)`
    )
}]

/**
 * Brings the schema to the latest version, in one transaction under the migration lock of this
 * schema and table. Versions the database has and this code does not know (a newer release ran)
 * are left alone: migrations only add.
 */
export const migrate = (sql: SqlClient.SqlClient, names: Names): Effect.Effect<void, SqlError> =>
  sql.withTransaction(Effect.gen(function*() {
    const versions = sql(`${names.table}_migrations`)
    yield* sql`SELECT pg_advisory_xact_lock(${advisoryKey(`migrate ${names.schema}.${names.table}`)}::bigint)`
    // Looked up rather than created IF NOT EXISTS, which needs the right to create even when
    // there is nothing to create: once migrated, a user with no more than DML rights will do.
    const [found] = yield* sql<{ readonly schema: boolean; readonly versions: boolean }>`SELECT
      to_regnamespace(${names.schema}) IS NOT NULL AS schema,
      to_regclass(${`${names.schema}.${names.table}_migrations`}) IS NOT NULL AS versions`
    if (found?.schema !== true) yield* sql`CREATE SCHEMA ${sql(names.schema)}`
    if (found?.versions !== true) {
      yield* sql`CREATE TABLE ${sql(names.schema)}.${versions} (
        version integer PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`
    }
    const rows = yield* sql<{ readonly version: number }>`SELECT version FROM ${sql(names.schema)}.${versions}`
    const applied = new Set(rows.map((row) => Number(row.version)))
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue
      yield* migration.up(sql, names)
      yield* sql`INSERT INTO ${
        sql(names.schema)
      }.${versions} (version, name) VALUES (${migration.version}, ${migration.name})`
    }
  }))
