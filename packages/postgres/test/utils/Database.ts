/**
 * One PostgreSQL server per test file, started in `beforeAll`, and what tests need around it:
 * fresh table names (tests in a file run concurrently, each in its own table), direct SQL to
 * inspect what the store wrote, and the account the stores are about.
 */
import { PgClient } from "@effect/sql-pg"
import * as SqlClient from "@effect/sql/SqlClient"
import { Context, Effect, Layer, Redacted } from "effect"
import { afterAll, beforeAll, describe } from "vitest"
import { PostgresServer } from "../../src/testing/index.js"

let server: PostgresServer.PostgresServer | undefined

/** Starts the file's server (once), stopped after its tests; returns the `describe` to use. */
export const setup = (): typeof describe | typeof describe.skip => {
  if (PostgresServer.unavailable !== undefined) {
    console.warn(`Postgres tests skipped: ${PostgresServer.unavailable}`)
    return describe.skip
  }
  beforeAll(async () => {
    server = await PostgresServer.start()
  }, 120_000)
  afterAll(async () => {
    await server?.stop()
  })
  return describe
}

/** The file's server (inside tests). */
export const current = (): PostgresServer.PostgresServer => server!

let tables = 0

/** A table name no other test of this process uses. */
export const freshTable = () => `t_${process.pid}_${tables++}`

export const account = { baseUrl: "https://amp.example/api", username: "svc-issuer" }

/** A `PgClient` of the test's own on the file's server, for the scope. */
export const client = (url = current().url) =>
  Effect.map(
    Layer.build(PgClient.layer({ url: Redacted.make(url), maxConnections: 4 })),
    (context): SqlClient.SqlClient => Context.get(context, PgClient.PgClient)
  )

/** The test's own pool as the application's `SqlClient`. */
export const layerClient = Layer.suspend(() => PgClient.layer({ url: Redacted.make(current().url), maxConnections: 4 }))
  .pipe(Layer.map((context) => Context.make(SqlClient.SqlClient, Context.get(context, PgClient.PgClient))))
