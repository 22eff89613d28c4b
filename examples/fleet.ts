/**
 * One token for a fleet: several replicas of a service, each a process of its own sharing
 * nothing but a Redis, make one login between them instead of one each.
 *
 * It starts the embedded mock AMP server, a throwaway `redis-server` (when one is installed;
 * or it uses `AMP_REDIS_URL`), then the replicas at once, and prints the mock server's counters.
 * Every replica runs the same few lines an application would:
 *
 *   program.pipe(Effect.provide(NodeAmp.layerWithStore(RedisTokenStore.layerConfig())))
 *
 * Run: pnpm tsx examples/fleet.ts                         (5 replicas)
 *      pnpm tsx examples/fleet.ts --replicas 12
 *      AMP_REDIS_URL=redis://localhost:6379 pnpm tsx examples/fleet.ts
 */
import { TokenService } from "@amp-effect/core"
import { NodeAmp } from "@amp-effect/node"
import { MockAmpServer } from "@amp-effect/node/MockAmpServer"
import { RedisTokenStore } from "@amp-effect/redis"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Config, Console, Effect, Option, Redacted } from "effect"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
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
  const baseUrl = yield* Config.string("AMP_API_BASE_URL")
  // Use it, as the application would.
  const response = yield* Effect.promise(() =>
    fetch(`${baseUrl}/assets/`, { headers: { authorization: `token ${Redacted.value(token)}` } })
  )
  const assets = (yield* Effect.promise(() => response.json())) as ReadonlyArray<unknown>
  yield* Console.log(
    `  replica ${process.env.REPLICA} (pid ${process.pid}): token ${fingerprint(token)}, ${assets.length} assets`
  )
}).pipe(Effect.provide(NodeAmp.layerWithStore(RedisTokenStore.layerConfig())))

// -----------------------------------------------------------------------------
// The fleet: a mock AMP server, a Redis, and the replicas
// -----------------------------------------------------------------------------

const hasRedisServer = () => spawnSync("redis-server", ["--version"]).status === 0

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as Net.AddressInfo
      server.close(() => resolve(port))
    })
  })

/** A throwaway redis-server on a free loopback port, persistence off, stopped with the scope. */
const localRedis = Effect.acquireRelease(
  Effect.promise(async () => {
    const port = await freePort()
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "amp-fleet-redis-"))
    const child = spawn("redis-server", [
      ...["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir]
    ], { stdio: ["ignore", "pipe", "ignore"] })
    await new Promise<void>((resolve, reject) => {
      let output = ""
      child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
        output += chunk
        if (output.includes("Ready to accept connections")) resolve()
      })
      child.once("exit", (code) => reject(new Error(`redis-server exited with ${code}`)))
    })
    return { url: `redis://127.0.0.1:${port}`, child, dir }
  }),
  ({ child, dir }) =>
    Effect.sync(() => {
      child.kill("SIGKILL")
      Fs.rmSync(dir, { recursive: true, force: true })
    })
)

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
    // "close", not "exit": a process can exit before its output has all been read.
    child.once("close", (code) =>
      resume(code === 0 ? Effect.succeed(stdout) : Effect.fail(new Error(`replica ${n} failed: ${stderr}`))))
    return Effect.sync(() =>
      child.kill("SIGKILL")
    )
  })

const fleet = Effect.gen(function*() {
  const flag = process.argv.indexOf("--replicas")
  const count = flag === -1 ? 5 : Math.max(1, Number(process.argv[flag + 1]))
  const given = Option.fromNullable(process.env.AMP_REDIS_URL)
  if (Option.isNone(given) && !hasRedisServer()) {
    yield* Console.log(
      "This example needs Redis. Install redis-server (Debian/Ubuntu: sudo apt-get install redis-server; " +
        "macOS: brew install redis), or point AMP_REDIS_URL at one (docker run -p 6379:6379 redis)."
    )
    return yield* Effect.sync(() => {
      process.exitCode = 1
    })
  }
  const server = yield* MockAmpServer.make()
  yield* Console.log(`[embedded mock AMP server at ${server.baseUrl}]`)
  const redisUrl = Option.isSome(given) ? given.value : (yield* localRedis).url
  yield* Console.log(
    Option.isSome(given) ? "[Redis from AMP_REDIS_URL]" : `[throwaway redis-server at ${redisUrl}, persistence off]`
  )
  // A prefix of its own, so that a run never meets a token left by an earlier one.
  const keyPrefix = `amp-effect-fleet-example-${process.pid}`
  const env = {
    AMP_API_BASE_URL: server.baseUrl,
    AMP_USERNAME: MockAmpServer.defaultCredentials.username,
    AMP_PASSWORD: MockAmpServer.defaultCredentials.password,
    AMP_REDIS_URL: redisUrl,
    AMP_REDIS_KEY_PREFIX: keyPrefix
  }

  yield* Console.log(`\nStarting ${count} replicas at once, each a process of its own with nothing stored:`)
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
  const keys = RedisTokenStore.keys({ baseUrl: server.baseUrl, username: env.AMP_USERNAME }, keyPrefix)
  yield* Console.log(`The fleet's token is in Redis under ${keys.token}; its lock was ${keys.lock}`)

  yield* Console.log(`\nOne more replica, started later: it finds the token in Redis and logs in not at all:`)
  yield* Console.log((yield* runReplica(count + 1, env)).trimEnd())
  yield* Console.log(`Logins on the mock server: ${(yield* server.counters).obtain}`)
})

// runMain: Ctrl-C interrupts the program, so the scope closes and the redis-server stops.
const main: Effect.Effect<void, unknown> = process.argv.includes("--replica") ? replica : Effect.scoped(fleet)
NodeRuntime.runMain(main)
