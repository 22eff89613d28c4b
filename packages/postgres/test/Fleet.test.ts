/**
 * Fleets of real processes sharing one token through a real PostgreSQL, and nothing else: each
 * replica has its own directory, so any sharing goes through the database. The mock AMP server's
 * counters are the proof of how many logins and refreshes the fleet made.
 */
import { MockAmpServer, MockFault } from "@amp-effect/node/MockAmpServer"
import { FleetReplicas } from "@amp-effect/node/test/fleet"
import { expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, type Scope } from "effect"
import { build } from "esbuild"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll } from "vitest"
import * as PostgresTokenStore from "../src/PostgresTokenStore.js"
import * as Database from "./utils/Database.js"

const describe = Database.setup()

let bundle = ""
beforeAll(async () => {
  const fixture = fileURLToPath(new URL("fixtures/replica.ts", import.meta.url))
  // pg loads its optional native binding only when asked for.
  bundle = await FleetReplicas.bundle(build, fixture, ["pg-native"])
}, 120_000)
afterAll(async () => {
  if (bundle !== "") await Fs.rm(Path.dirname(bundle), { recursive: true, force: true })
})

/** What a replica needs to find AMP (the mock server) and Postgres. */
const envFor = (server: MockAmpServer.Service, table: string, extra: Record<string, string> = {}) => ({
  AMP_API_BASE_URL: server.baseUrl,
  AMP_USERNAME: MockAmpServer.defaultCredentials.username,
  AMP_PASSWORD: MockAmpServer.defaultCredentials.password,
  AMP_POSTGRES_URL: Database.current().url,
  AMP_POSTGRES_TABLE: table,
  ...extra
})

/** The token the table holds for the mock account (stored in clear), or null. */
const storedToken = (server: MockAmpServer.Service, table: string) =>
  Effect.scoped(Effect.gen(function*() {
    const sql = yield* Database.client()
    const key = PostgresTokenStore.accountKey({
      baseUrl: server.baseUrl,
      username: MockAmpServer.defaultCredentials.username
    })
    const rows = yield* sql.unsafe<{ readonly value: string }>(`SELECT value FROM public.${table} WHERE account = $1`, [
      key
    ])
    return rows[0] === undefined ? null : (JSON.parse(rows[0].value).data.token as string)
  }))

/** How many advisory locks are held on the server. */
const advisoryLocks = Effect.scoped(Effect.gen(function*() {
  const sql = yield* Database.client()
  const [row] = yield* sql<{ readonly count: number }>`SELECT count(*)::int AS count FROM pg_locks
    WHERE locktype = 'advisory' AND granted`
  return row!.count
}))

/** No replica printed a token the server issued anywhere but in its answers, nor the database password. */
const expectNoSecretInLogs = (replicas: ReadonlyArray<FleetReplicas.Replica>, server: MockAmpServer.Service) =>
  Effect.gen(function*() {
    expect(yield* FleetReplicas.printedTokens(replicas, server)).toEqual([])
    for (const replica of replicas) expect(replica.output()).not.toContain(Database.current().password)
  })

const fleetTest = <E>(name: string, body: () => Effect.Effect<void, E, Scope.Scope>) =>
  it.scopedLive(name, body, 120_000)

describe("fleet: one token for many processes through Postgres", () => {
  fleetTest(
    "16 processes: nothing stored → one login; all inside the refresh margin → one refresh",
    () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        const table = Database.freshTable()
        const replicas = yield* FleetReplicas.startMany(bundle, 16, envFor(server, table))
        let started = Date.now()
        const tokens = yield* FleetReplicas.tokens(replicas, "get")
        const cold = yield* server.counters
        console.log(
          `postgres fleet 1: 16 processes, nothing stored: ${JSON.stringify(cold)} in ${Date.now() - started} ms`
        )
        expect(cold.obtain).toBe(1)
        expect(cold.refresh).toBe(0)
        expect(new Set(tokens).size).toBe(1)
        expect(yield* storedToken(server, table)).toBe(tokens[0])
        expect(yield* advisoryLocks).toBe(0)

        // A day later, as a fleet that ran all along sees it: three minutes from expiry, inside
        // the five-minute margin. The refreshed token lives 48 hours.
        yield* server.setTokenLifetime(Duration.hours(48))
        yield* FleetReplicas.all(replicas, `clock ${24 * 3600_000 - 3 * 60_000}`)
        started = Date.now()
        const refreshed = yield* FleetReplicas.tokens(replicas, "get")
        const warm = yield* server.counters
        console.log(
          `postgres fleet 2: 16 processes, token in margin: ${JSON.stringify(warm)} in ${Date.now() - started} ms`
        )
        expect(warm.refresh).toBe(1)
        expect(warm.obtain).toBe(1)
        expect(new Set(refreshed).size).toBe(1)
        expect(refreshed[0]).not.toBe(tokens[0])
        expect(yield* storedToken(server, table)).toBe(refreshed[0])
        expect(yield* advisoryLocks).toBe(0)
        for (const replica of replicas) expect(replica.warnings()).toEqual([])
        yield* expectNoSecretInLogs(replicas, server)
      })
  )

  fleetTest(
    "the lock holder is SIGKILLed mid-login: its lock goes with its session; 2 logins; no lock left",
    () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        const table = Database.freshTable()
        // A long lease: only the session's end can free the lock in time.
        const env = envFor(server, table, { LOCK_LEASE_MS: "60000" })
        yield* server.script("obtain", MockFault.hang)
        const holder = yield* FleetReplicas.start(bundle, env)
        yield* Effect.fork(holder.send("get"))
        yield* FleetReplicas.pollUntil(server.counters, (counters) => counters.obtain === 1)
        expect(yield* advisoryLocks).toBe(1)
        yield* holder.kill
        const killedAt = Date.now()
        const replicas = yield* FleetReplicas.startMany(bundle, 3, env)
        const tokens = yield* FleetReplicas.tokens(replicas, "get")
        const waited = Date.now() - killedAt
        console.log(
          `postgres fleet 3: holder killed mid-login: ${JSON.stringify(yield* server.counters)}, ${waited} ms`
        )
        expect(waited).toBeLessThan(45_000)
        expect((yield* server.counters).obtain).toBe(2)
        expect(new Set(tokens).size).toBe(1)
        expect(yield* storedToken(server, table)).toBe(tokens[0])
        expect(yield* advisoryLocks).toBe(0)
      })
  )

  fleetTest(
    "a holder paused (SIGSTOP) past its lease loses the lock; its late save cannot overwrite the newer token",
    () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        const table = Database.freshTable()
        const env = envFor(server, table, { LOCK_LEASE_MS: "1000", API_REQUEST_TIMEOUT_SECONDS: "120" })
        yield* server.script("obtain", MockFault.delay(Duration.seconds(3)))
        const slow = yield* FleetReplicas.start(bundle, env)
        const slowAnswer = yield* Effect.fork(slow.send("get"))
        yield* FleetReplicas.pollUntil(server.counters, (counters) => counters.obtain === 1)
        // Paused mid-login: its extensions stop, and its lock session ends after the lease.
        slow.process.kill("SIGSTOP")
        yield* Effect.addFinalizer(() => Effect.sync(() => slow.process.kill("SIGCONT")))
        // Its lock is gone with its session, and its login answered (its token issued first).
        yield* FleetReplicas.pollUntil(
          Effect.all([server.issuedTokens, advisoryLocks]),
          ([issued, locks]) => issued.length === 1 && locks === 0
        )
        const [slowToken] = yield* server.issuedTokens

        const taker = yield* FleetReplicas.start(bundle, env)
        const [takerToken] = yield* FleetReplicas.tokens([taker], "get")
        expect(takerToken).not.toBe(slowToken)
        expect(yield* storedToken(server, table)).toBe(takerToken)

        slow.process.kill("SIGCONT")
        const late = yield* Fiber.join(slowAnswer)
        // Its save refused, it serves the token the fleet holds, not its own.
        expect(late.token).toBe(takerToken)
        const metrics = yield* FleetReplicas.metrics(slow)
        console.log(
          `postgres fleet 4: ${JSON.stringify(yield* server.counters)}; late holder: ${JSON.stringify(metrics)}`
        )
        expect(metrics["amp_token_postgres_save_rejections_total"]).toBe(1)
        expect(metrics["amp_token_postgres_lock_lost_total"]).toBe(1)
        expect(yield* storedToken(server, table)).toBe(takerToken)
        expect(slow.warnings().some((line) => line.includes("Kept the token already in Postgres"))).toBe(true)
        yield* expectNoSecretInLogs([slow, taker], server)
      })
  )
})
