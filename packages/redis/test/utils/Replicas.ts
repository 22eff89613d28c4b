/**
 * Replicas as real processes (`fixtures/replica.ts`), each with a directory of its own as
 * working directory, HOME and TMPDIR: they share no disk, only Redis and the mock AMP server.
 *
 * The fixture is bundled once per test file with esbuild (minified, over Node's own fetch rather
 * than undici: 1.1 MB instead of 4) and started with plain `node`, not `tsx`, which would
 * transpile on every start: that is what makes 16-process scenarios affordable.
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
  const dir = await Fs.mkdtemp(Path.join(Os.tmpdir(), "amp-redis-replica-"))
  const outfile = Path.join(dir, "replica.mjs")
  await build({
    entryPoints: [fixture],
    outfile,
    bundle: true,
    minify: true,
    platform: "node",
    target: "node20",
    format: "esm",
    // node-redis is CommonJS: give its `require` of Node's modules a real `require`.
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
  readonly token?: string | null
  readonly ms?: number
  readonly error?: string
  readonly metrics?: Readonly<Record<string, number>>
}

export interface LogLine {
  readonly log: string
  readonly message: string
}

export interface Replica {
  readonly pid: number
  readonly process: ChildProcess
  /** Sends a command; resolves with its answer (answers come in order). */
  readonly send: (command: string) => Promise<Answer>
  /** The log lines so far. */
  readonly logs: () => ReadonlyArray<LogLine>
  readonly warnings: () => ReadonlyArray<string>
  /** Everything it printed, for leak checks. */
  readonly output: () => string
  readonly stderr: () => string
  /** SIGKILL, resolved when it has exited. */
  readonly kill: () => Promise<void>
  /** Its own directory: working directory, HOME and TMPDIR. */
  readonly dir: string
}

/** The environment without any AMP_ / API_ variable: each replica gets exactly what it is given. */
const cleanEnv = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => !name.startsWith("AMP_") && !name.startsWith("API_"))
)

/**
 * Starts a replica and waits until it is ready. It is SIGKILLed and its directory removed when
 * the scope closes.
 */
export const start = (bundlePath: string, env: Readonly<Record<string, string>>) =>
  Effect.acquireRelease(
    Effect.promise(async (): Promise<Replica> => {
      const dir = await Fs.mkdtemp(Path.join(Os.tmpdir(), "amp-replica-home-"))
      const child = spawn(process.execPath, [bundlePath], {
        cwd: dir,
        env: { ...cleanEnv, HOME: dir, TMPDIR: dir, ...env },
        stdio: ["pipe", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      let pending = ""
      const logs: Array<LogLine> = []
      const waiting: Array<(answer: Answer) => void> = []
      let onReady: () => void = () => {}
      let onExit: (error: Error) => void = () => {}
      const ready = new Promise<void>((resolve, reject) => {
        onReady = resolve
        onExit = reject
      })
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
      child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
        stdout += chunk
        pending += chunk
        const lines = pending.split("\n")
        pending = lines.pop()!
        for (const line of lines) {
          if (!line.startsWith("{")) continue
          const value = JSON.parse(line)
          if ("log" in value) logs.push(value)
          else if (value.op === "ready") onReady()
          else waiting.shift()?.(value)
        }
      })
      child.stderr!.setEncoding("utf8").on("data", (chunk: string) => stderr += chunk)
      child.once("exit", (code, signal) => {
        const error = new Error(`replica ${child.pid} exited (${code ?? signal}): ${stderr.slice(-1000)}`)
        onExit(error)
      })
      await ready
      const replica: Replica = {
        pid: child.pid!,
        process: child,
        send: (command) =>
          new Promise<Answer>((resolve, reject) => {
            if (child.exitCode !== null || child.signalCode !== null) {
              return reject(new Error(`replica ${child.pid} has exited: ${stderr.slice(-1000)}`))
            }
            waiting.push(resolve)
            child.stdin!.write(`${command}\n`)
          }),
        logs: () => logs,
        warnings: () => logs.filter((line) => line.log === "WARN" || line.log === "ERROR").map((line) => line.message),
        output: () => stdout + stderr,
        stderr: () => stderr,
        kill: async () => {
          child.kill("SIGKILL")
          await exited
        },
        dir
      }
      return replica
    }),
    (replica) =>
      Effect.promise(async () => {
        await replica.kill()
        await Fs.rm(replica.dir, { recursive: true, force: true })
      })
  )

/** Starts `count` replicas in parallel and waits until all are ready. */
export const startMany = (bundlePath: string, count: number, env: Readonly<Record<string, string>>) =>
  Effect.all(Array.from({ length: count }, () => start(bundlePath, env)), { concurrency: "unbounded" })

/** Sends `command` to every replica at once; their answers in order. */
export const all = (replicas: ReadonlyArray<Replica>, command: string) =>
  Effect.promise(() => Promise.all(replicas.map((replica) => replica.send(command))))
