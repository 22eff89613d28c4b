/**
 * One token for a fleet on the database it already runs: several replicas of a service, each a
 * process of its own sharing nothing but a PostgreSQL, make one login between them.
 *
 * It starts the embedded mock AMP server, a throwaway PostgreSQL (`@amp-effect/postgres/testing`,
 * when the server is installed; or it uses `AMP_POSTGRES_URL`), then the replicas at once, and
 * prints the mock server's counters and the table's row. Every replica runs the same few lines
 * an application would:
 *
 *   program.pipe(Effect.provide(NodeAmp.layerWithStore(PostgresTokenStore.layerConfig())))
 *
 * Run: pnpm tsx examples/postgres-fleet.ts                  (5 replicas)
 *      pnpm tsx examples/postgres-fleet.ts --replicas 12
 *      AMP_POSTGRES_URL=postgres://user:pw@localhost/app pnpm tsx examples/postgres-fleet.ts
 */
import { TokenService } from "@amp-effect/core"
import { NodeAmp } from "@amp-effect/node"
import { MockAmpServer } from "@amp-effect/node/MockAmpServer"
import { PostgresTokenStore } from "@amp-effect/postgres"
import { PostgresServer } from "@amp-effect/postgres/testing"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { PgClient } from "@effect/sql-pg"
import { Console, Effect, Option, Redacted } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { fileURLToPath } from "node:url"

const self = fileURLToPath(import.meta.url)

/** Eight hex digits that tell tokens apart without showing any of them. */
const fingerprint = (token: Redacted.Redacted<string>) =>
  createHash("sha256").update(Redacted.value(token)).digest("hex").slice(0, 8)

// -----------------------------------------------------------------------------
// A replica: what each process of the fleet runs
// -----------------------------------------------------------------------------

const replica = Effect.gen(function*() {
  const tokens = yield* TokenService.TokenService
  const token = yield* tokens.getToken
  yield* Console.log(`  replica ${process.env.REPLICA} (pid ${process.pid}): token ${fingerprint(token)}`)
}).pipe(Effect.provide(NodeAmp.layerWithStore(PostgresTokenStore.layerConfig())))

// -----------------------------------------------------------------------------
// The fleet: a mock AMP server, a PostgreSQL, and the replicas
// -----------------------------------------------------------------------------

/** Runs one replica process; resolves with what it printed. */
const runReplica = (n: number, env: Record<string, string>) =>
  Effect.async<string, Error>((resume) => {
    const child: ChildProcess = spawn(process.execPath, [...process.execArgv, self, "--replica"], {
      env: { ...process.env, ...env, REPLICA: String(n) },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => stdout += chunk)
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => stderr += chunk)
    child.once("close", (code) =>
      resume(code === 0 ? Effect.succeed(stdout) : Effect.fail(new Error(`replica ${n} failed: ${stderr}`))))
    return Effect.sync(() =>
      child.kill("SIGKILL")
    )
  })

/** The table's rows, as an operator would look at them in psql. */
const showTable = (url: string, table: string) =>
  Effect.gen(function*() {
    const sql = yield* PgClient.PgClient
    const rows = yield* sql.unsafe<{ account: string; expires_at: Date }>(
      `SELECT account, expires_at FROM public.${table}`
    )
    for (const row of rows) {
      yield* Console.log(`  public.${table}: account ${row.account}, expires ${row.expires_at.toISOString()}`)
    }
  }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(url) })))

const fleet = Effect.gen(function*() {
  const flag = process.argv.indexOf("--replicas")
  const count = flag === -1 ? 5 : Math.max(1, Number(process.argv[flag + 1]))
  const given = Option.fromNullable(process.env.AMP_POSTGRES_URL)
  if (Option.isNone(given) && PostgresServer.unavailable !== undefined) {
    yield* Console.log(
      "This example needs PostgreSQL. Install it (Debian/Ubuntu: sudo apt-get install postgresql; macOS: " +
        "brew install postgresql), or point AMP_POSTGRES_URL at one (docker run -p 5432:5432 " +
        "-e POSTGRES_PASSWORD=pw postgres)."
    )
    return yield* Effect.sync(() => {
      process.exitCode = 1
    })
  }
  const server = yield* MockAmpServer.make()
  yield* Console.log(`[embedded mock AMP server at ${server.baseUrl}]`)
  const url = Option.isSome(given) ? given.value : (yield* PostgresServer.scoped()).url
  yield* Console.log(Option.isSome(given) ? "[PostgreSQL from AMP_POSTGRES_URL]" : "[throwaway PostgreSQL]")
  // A table of its own, so that a run never meets a token left by an earlier one.
  const table = `amp_effect_fleet_example_${process.pid}`
  const env = {
    AMP_API_BASE_URL: server.baseUrl,
    AMP_USERNAME: MockAmpServer.defaultCredentials.username,
    AMP_PASSWORD: MockAmpServer.defaultCredentials.password,
    AMP_POSTGRES_URL: url,
    AMP_POSTGRES_TABLE: table
  }

  yield* Console.log(`\nStarting ${count} replicas at once, each a process of its own, on an empty database:`)
  const started = Date.now()
  const outputs = yield* Effect.all(Array.from({ length: count }, (_, i) => runReplica(i + 1, env)), {
    concurrency: "unbounded"
  })
  for (const output of outputs) yield* Console.log(output.trimEnd())
  const counters = yield* server.counters
  const distinct = new Set(outputs.map((output) => /token ([0-9a-f]{8})/.exec(output)?.[1])).size
  yield* Console.log(
    `\nAll ${count} replicas done in ${Date.now() - started} ms, holding ${distinct} distinct token(s)`
  )
  yield* Console.log(`Logins on the mock server: ${counters.obtain}; refreshes: ${counters.refresh}`)
  yield* showTable(url, table)

  yield* Console.log(`\nOne more replica, started later: it finds the token in the table and logs in not at all:`)
  yield* Console.log((yield* runReplica(count + 1, env)).trimEnd())
  yield* Console.log(`Logins on the mock server: ${(yield* server.counters).obtain}`)
})

// runMain: Ctrl-C interrupts the program, so the scope closes and the throwaway server stops.
const main: Effect.Effect<void, unknown> = process.argv.includes("--replica") ? replica : Effect.scoped(fleet)
NodeRuntime.runMain(main)
