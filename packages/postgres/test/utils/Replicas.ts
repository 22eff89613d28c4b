/**
 * Replicas as real processes (`fixtures/replica.ts`), each with a directory of its own as
 * working directory, HOME and TMPDIR: they share no disk, only Postgres and the mock AMP server.
 * The fixture is bundled once per test file with esbuild and started with plain `node`, so that
 * 16 processes start in affordable time.
 */
import { Effect } from "effect"
import { build } from "esbuild"
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const fixture = fileURLToPath(new URL("../fixtures/replica.ts", import.meta.url))

/** Bundles the fixture into a temp `.mjs`; answers its path. Remove its directory afterwards. */
export const bundle = async (): Promise<string> => {
  const dir = await Fs.mkdtemp(Path.join(Os.tmpdir(), "amp-postgres-replica-"))
  const outfile = Path.join(dir, "replica.mjs")
  await build({
    entryPoints: [fixture],
    outfile,
    bundle: true,
    minify: true,
    platform: "node",
    target: "node20",
    format: "esm",
    // pg loads its optional native binding only when asked for.
    external: ["pg-native"],
    // pg is CommonJS: give its `require` of Node's modules a real `require`.
    banner: {
      js:
        "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);"
    },
    logLevel: "error"
  })
  return outfile
}

/** What a replica answers to a command (see the fixture). */
export interface Answer {
  readonly op: string
  readonly token?: string
  readonly error?: string
  readonly metrics?: Readonly<Record<string, number>>
}

export interface Replica {
  readonly process: ChildProcess
  /** Sends a command; resolves with its answer (answers come in order). */
  readonly send: (command: string) => Promise<Answer>
  /** Warnings and errors it logged so far. */
  readonly warnings: () => ReadonlyArray<string>
  /** Everything it printed, for leak checks. */
  readonly output: () => string
  /** SIGKILL, resolved when it has exited. */
  readonly kill: () => Promise<void>
}

/** The environment without any AMP_ / API_ variable: each replica gets exactly what it is given. */
const cleanEnv = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => !name.startsWith("AMP_") && !name.startsWith("API_"))
)

const spawnReplica = async (bundlePath: string, env: Readonly<Record<string, string>>, dir: string) => {
  const child = spawn(process.execPath, [bundlePath], {
    cwd: dir,
    env: { ...cleanEnv, HOME: dir, TMPDIR: dir, ...env },
    stdio: ["pipe", "pipe", "pipe"]
  })
  let output = ""
  let pending = ""
  const warnings: Array<string> = []
  const waiting: Array<(answer: Answer) => void> = []
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk
      pending += chunk
      const lines = pending.split("\n")
      pending = lines.pop()!
      for (const line of lines.filter((line) => line.startsWith("{"))) {
        const value = JSON.parse(line)
        if ("log" in value) {
          if (value.log === "WARN" || value.log === "ERROR") warnings.push(value.message)
        } else if (value.op === "ready") resolve()
        else waiting.shift()?.(value)
      }
    })
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => output += chunk)
    child.once(
      "exit",
      (code, signal) => reject(new Error(`replica exited (${code ?? signal}): ${output.slice(-1000)}`))
    )
  })
  await ready
  const replica: Replica = {
    process: child,
    send: (command) =>
      new Promise<Answer>((resolve, reject) => {
        if (child.exitCode !== null || child.signalCode !== null) {
          return reject(new Error(`replica has exited: ${output.slice(-1000)}`))
        }
        waiting.push(resolve)
        child.stdin!.write(`${command}\n`)
      }),
    warnings: () => warnings,
    output: () => output,
    kill: async () => {
      child.kill("SIGKILL")
      await exited
    }
  }
  return replica
}

/** Starts a replica and waits until it is ready; SIGKILLed and its directory removed with the scope. */
export const start = (bundlePath: string, env: Readonly<Record<string, string>>) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const dir = await Fs.mkdtemp(Path.join(Os.tmpdir(), "amp-replica-home-"))
      return { dir, replica: await spawnReplica(bundlePath, env, dir) }
    }),
    ({ dir, replica }) =>
      Effect.promise(async () => {
        await replica.kill()
        await Fs.rm(dir, { recursive: true, force: true })
      })
  ).pipe(Effect.map(({ replica }) => replica))

/** Starts `count` replicas in parallel and waits until all are ready. */
export const startMany = (bundlePath: string, count: number, env: Readonly<Record<string, string>>) =>
  Effect.all(Array.from({ length: count }, () => start(bundlePath, env)), { concurrency: "unbounded" })

/** Sends `command` to every replica at once; their answers in order. */
export const all = (replicas: ReadonlyArray<Replica>, command: string) =>
  Effect.promise(() => Promise.all(replicas.map((replica) => replica.send(command))))
