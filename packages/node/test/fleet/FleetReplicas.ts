/**
 * Fleets of replicas (`FleetReplica.run`) as real processes, each with a directory of its own as
 * working directory, HOME and TMPDIR: they share no disk, only the store and the AMP server. A
 * replica is a bundled script started with plain `node`, not a transpiler that would work again at
 * every start: that is what makes 16-process scenarios affordable.
 */
import { Duration, Effect, type Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import type { MockAmpServer } from "../../src/MockAmpServer.js"

/**
 * What a replica answers to a command (see `FleetReplica`).
 */
export interface Answer {
  readonly op: string
  readonly token?: string | null
  readonly ms?: number
  readonly error?: string
  readonly metrics?: Readonly<Record<string, number>>
}

/**
 * A running replica, SIGKILLed when the scope that started it closes.
 */
export interface Replica {
  /** For signals (`SIGSTOP`, `SIGCONT`). */
  readonly process: ChildProcess
  /** Sends a command; succeeds with its answer (answers come in order); dies once the replica has exited. */
  readonly send: (command: string) => Effect.Effect<Answer>
  /** The messages of the warnings and errors it logged so far. */
  readonly warnings: () => ReadonlyArray<string>
  /** Everything it printed (stdout and stderr). */
  readonly output: () => string
  /** SIGKILL, done when it has exited. */
  readonly kill: Effect.Effect<void>
}

/**
 * Bundles a replica script (`entry`, a module calling `FleetReplica.run`) into a temporary
 * `.mjs` with the `build` of esbuild, which stays the caller's (development) dependency; answers
 * its path. Remove its directory afterwards. `external` lists modules to leave out (optional
 * native bindings).
 */
export const bundle = async (
  build: (options: {
    entryPoints: Array<string>
    outfile: string
    bundle: true
    minify: true
    platform: "node"
    target: string
    format: "esm"
    external: Array<string>
    banner: { js: string }
    logLevel: "error"
  }) => Promise<unknown>,
  entry: string,
  external: Array<string> = []
): Promise<string> => {
  const outfile = Path.join(await Fs.mkdtemp(Path.join(Os.tmpdir(), "amp-replica-")), "replica.mjs")
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    minify: true,
    platform: "node",
    target: "node20",
    format: "esm",
    external,
    // CommonJS drivers (node-redis, pg) `require` Node's modules: give them a real `require`.
    banner: {
      js:
        "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);"
    },
    logLevel: "error"
  })
  return outfile
}

const spawnReplica = (script: string, env: Readonly<Record<string, string>>, dir: string) =>
  new Promise<Replica>((resolve, reject) => {
    // Each replica gets exactly the AMP_ and API_ variables it is given.
    const inherited = Object.entries(process.env).filter(([name]) => !/^(AMP|API)_/.test(name))
    const child = spawn(process.execPath, [script], {
      cwd: dir,
      env: { ...Object.fromEntries(inherited), HOME: dir, TMPDIR: dir, ...env },
      stdio: "pipe"
    })
    let stdout = ""
    let stderr = ""
    let pending = ""
    const warnings: Array<string> = []
    const waiting: Array<(answer: Effect.Effect<Answer>) => void> = []
    const exited = new Promise<void>((resolveExit) => child.once("exit", () => resolveExit()))
    const gone = () => new Error(`replica ${child.pid} exited: ${stderr.slice(-1000)}`)
    const replica: Replica = {
      process: child,
      send: (command) =>
        Effect.async((resume) => {
          if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.die(gone()))
          waiting.push(resume)
          child.stdin.write(`${command}\n`)
        }),
      warnings: () => warnings,
      output: () => stdout + stderr,
      kill: Effect.promise(() => {
        child.kill("SIGKILL")
        return exited
      })
    }
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
      const lines = (pending + chunk).split("\n")
      pending = lines.pop()!
      for (const value of lines.filter((line) => line.startsWith("{")).map((line) => JSON.parse(line))) {
        if ("log" in value) {
          if (value.log === "WARN" || value.log === "ERROR") warnings.push(value.message)
        } else if (value.op === "ready") resolve(replica)
        else waiting.shift()?.(Effect.succeed(value))
      }
    })
    // A write to a replica that is exiting fails with EPIPE: its pending commands die on its exit.
    child.stdin.on("error", () => {})
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => stderr += chunk)
    child.once("exit", () => {
      reject(gone())
      for (const resume of waiting.splice(0)) resume(Effect.die(gone()))
    })
  })

/**
 * Starts a replica of `script` (see `bundle`) with `env` added to the parent's environment less its
 * `AMP_` and `API_` variables, and waits until it is ready. It is SIGKILLed and its directory
 * removed when the scope closes.
 */
export const start = (
  script: string,
  env: Readonly<Record<string, string>>
): Effect.Effect<Replica, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const dir = await Fs.mkdtemp(Path.join(Os.tmpdir(), "amp-replica-home-"))
      return { dir, replica: await spawnReplica(script, env, dir) }
    }),
    ({ dir, replica }) =>
      Effect.zipRight(replica.kill, Effect.promise(() => Fs.rm(dir, { recursive: true, force: true })))
  ).pipe(Effect.map(({ replica }) => replica))

/**
 * Starts `count` replicas in parallel and waits until all are ready.
 */
export const startMany = (
  script: string,
  count: number,
  env: Readonly<Record<string, string>>
): Effect.Effect<Array<Replica>, never, Scope.Scope> =>
  Effect.all(Array.from({ length: count }, () => start(script, env)), { concurrency: "unbounded" })

/**
 * Sends `command` to every replica at once; their answers in order.
 */
export const all = (replicas: ReadonlyArray<Replica>, command: string): Effect.Effect<Array<Answer>> =>
  Effect.forEach(replicas, (replica) => replica.send(command), { concurrency: "unbounded" })

/**
 * Sends `command` (`get` or `refresh`) to every replica at once; the tokens they answer, in order.
 * Dies if one answers an error.
 */
export const tokens = (replicas: ReadonlyArray<Replica>, command: string): Effect.Effect<Array<string>> =>
  Effect.flatMap(
    all(replicas, command),
    Effect.forEach((answer) =>
      answer.error === undefined ? Effect.succeed(answer.token!) : Effect.dieMessage(answer.error)
    )
  )

/**
 * Every counter of the replica's metrics, by `name{label=value,...}`.
 */
export const metrics = (replica: Replica): Effect.Effect<Readonly<Record<string, number>>> =>
  Effect.map(replica.send("metrics"), (answer) => answer.metrics!)

/**
 * The tokens the server issued that some replica printed anywhere but in its answers (in a log
 * line, on stderr): a leak check that should find none.
 */
export const printedTokens = (
  replicas: ReadonlyArray<Replica>,
  server: Pick<MockAmpServer.Service, "issuedTokens">
): Effect.Effect<Array<string>> =>
  Effect.map(server.issuedTokens, (issued) => {
    const printed = replicas.map((replica) =>
      replica.output().split("\n").filter((line) => !line.startsWith("{\"op\"")).join("\n")
    )
    return issued.filter((token) => printed.some((text) => text.includes(token.split(".")[1]!)))
  })

/**
 * Repeats `effect` every 20 ms until `done` holds for its result: how a scenario waits for what
 * another process does (bounded by the test's timeout).
 */
export const pollUntil = <A, E, R>(effect: Effect.Effect<A, E, R>, done: (a: A) => boolean): Effect.Effect<A, E, R> =>
  Effect.repeat(Effect.delay(effect, Duration.millis(20)), { until: done })
