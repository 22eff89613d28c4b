/**
 * What every figure of `pnpm bench` shares: the result row, interleaved tinybench runs,
 * percentiles, child processes and the layers that point the library at a mock server.
 */
import type { RetryPolicy } from "@amp-effect/core"
import { AuthApi, TokenService, TokenStore } from "@amp-effect/core"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Duration, Effect, Layer, Redacted } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { Bench, type Task } from "tinybench"

/** One row of the table and of `bench/results.json`. */
export interface Figure {
  readonly name: string
  readonly value: number
  readonly unit: string
  /** The target as a comparison (`">= 0.5"`, `"== 1"`), or `null` for a figure that is only reported. */
  readonly target: string | null
  /** Whether `value` meets `target`; `null` when there is no target. */
  readonly met: boolean | null
}

/** What a figure module hands back: its rows, and a line for each target it missed (and why). */
export interface FigureResult {
  readonly figures: ReadonlyArray<Figure>
  readonly notes: ReadonlyArray<string>
}

type Comparison = ">=" | "<=" | "<" | "=="

/** A figure with a target; `met` is computed from the comparison. */
export const target = (name: string, value: number, unit: string, op: Comparison, bound: number): Figure => ({
  name,
  value,
  unit,
  target: `${op} ${bound}`,
  met: op === ">=" ? value >= bound : op === "<=" ? value <= bound : op === "<" ? value < bound : value === bound
})

/** A figure that is only reported. */
export const report = (name: string, value: number, unit: string): Figure => ({
  name,
  value,
  unit,
  target: null,
  met: null
})

/** Rounds for display and JSON: 3 significant digits, integers kept whole. */
export const round = (value: number): number =>
  Number.isInteger(value) || !Number.isFinite(value) ? value : Number(value.toPrecision(3))

export const median = (values: ReadonlyArray<number>): number => percentile(values, 50)

/** Nearest-rank percentile (`p` in 0..100) of unsorted values. */
export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[Math.min(sorted.length, rank) - 1]!
}

/**
 * Runs `tasks` side by side: `rounds` tinybench runs in one process, the order of the tasks
 * rotated each round so none always goes first. Returns, per round, each task's mean latency
 * (ms per call of its function): ratios are taken within a round, then their median, so that a
 * noisy neighbour slows both sides of a comparison alike.
 */
export const interleaved = async (
  tasks: ReadonlyArray<readonly [name: string, fn: () => unknown | Promise<unknown>]>,
  options: {
    readonly rounds: number
    /** Per task and round: run at least this long and at least `iterations` times. */
    readonly time: number
    readonly iterations: number
    /** Per task and round, before measuring: at least this long and `warmupIterations` times. */
    readonly warmupTime: number
    readonly warmupIterations: number
  }
): Promise<ReadonlyArray<Readonly<Record<string, number>>>> => {
  const rounds: Array<Record<string, number>> = []
  for (let round = 0; round < options.rounds; round++) {
    const bench = new Bench({
      time: options.time,
      iterations: options.iterations,
      warmup: options.warmupIterations > 0,
      warmupTime: options.warmupTime,
      warmupIterations: options.warmupIterations,
      throws: true
    })
    for (let i = 0; i < tasks.length; i++) {
      const [name, fn] = tasks[(i + round) % tasks.length]!
      bench.add(name, fn)
    }
    await bench.run()
    rounds.push(Object.fromEntries(bench.tasks.map((task) => [task.name, meanLatency(task)])))
  }
  return rounds
}

const meanLatency = (task: Task): number => {
  const result = task.result
  if (result.state !== "completed") throw new Error(`bench task ${task.name} ended ${result.state}`)
  return result.latency.mean
}

/** The median over rounds of `f(round)`: a ratio taken within each round. */
export const medianOver = (
  rounds: ReadonlyArray<Readonly<Record<string, number>>>,
  f: (round: Readonly<Record<string, number>>) => number
): number => median(rounds.map(f))

// -----------------------------------------------------------------------------
// The library against a mock server
// -----------------------------------------------------------------------------

/** The mock server's credentials (`MockAmpServer.defaultCredentials`). */
export const mockCredentials = { username: "mock_user", password: "mock_pass" } as const

/** What points a child at the mock server at `baseUrl`. */
export const mockEnv = (server: { readonly baseUrl: string }) => ({
  AMP_API_BASE_URL: server.baseUrl,
  AMP_USERNAME: mockCredentials.username,
  AMP_PASSWORD: mockCredentials.password
})

/** A temporary directory named `<prefix>…`, removed with the scope. */
export const tempDir = (prefix: string) =>
  Effect.acquireRelease(
    Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), prefix))),
    (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
  )

/** Retries off: a figure must count exactly the calls the library decided to make. */
export const noRetry: RetryPolicy.RetryOptions = {
  maxAttempts: 1,
  baseDelay: Duration.millis(100),
  maxDelay: Duration.millis(100)
}

/**
 * `TokenService` and `AuthApi` over Node's HTTP client (undici), against `baseUrl`, with the
 * given store. The `AuthApi` is exposed too, for the `cachedInvalidateWithTTL` comparison.
 */
export const serviceLayer = (
  baseUrl: string,
  store: Layer.Layer<TokenStore.TokenStore> = TokenStore.layerMemory
): Layer.Layer<TokenService.TokenService | AuthApi.AuthApi> =>
  TokenService.layer().pipe(
    Layer.provideMerge(
      AuthApi.layer({
        baseUrl,
        username: mockCredentials.username,
        password: Redacted.make(mockCredentials.password),
        retry: noRetry,
        requestTimeout: Duration.seconds(30)
      })
    ),
    Layer.provide(Layer.merge(NodeHttpClient.layerUndici, store))
  )

// -----------------------------------------------------------------------------
// Child processes
// -----------------------------------------------------------------------------

const benchDir = Path.dirname(fileURLToPath(import.meta.url))
const rootDir = Path.dirname(benchDir)

/** What a child wrote to stdout, as one JSON object per line, and how long it ran. */
export interface ChildRun {
  readonly lines: ReadonlyArray<Record<string, unknown>>
  /** From spawn to exit, in ms. */
  readonly wallMs: number
}

/** The Node arguments that run `bench/<script>` from its TypeScript source, through tsx. */
export const tsxScript = (script: string): ReadonlyArray<string> => ["--import", "tsx", Path.join(benchDir, script)]

/**
 * Runs `node [nodeFlags] <command>` in a fresh process of this Node — `command` a script built
 * to JavaScript (`BuiltApp`) or `tsxScript(...)` — with extra `env`. Fails when it exits
 * non-zero or outlives `timeoutMs`.
 */
export const runChild = (
  command: ReadonlyArray<string>,
  options: {
    readonly env?: Readonly<Record<string, string>>
    readonly nodeFlags?: ReadonlyArray<string>
    readonly timeoutMs?: number
  } = {}
): Promise<ChildRun> =>
  new Promise((resolve, reject) => {
    const started = performance.now()
    const child = ChildProcess.spawn(
      process.execPath,
      [...(options.nodeFlags ?? []), ...command],
      { cwd: rootDir, env: { ...process.env, ...options.env }, stdio: ["ignore", "pipe", "pipe"] }
    )
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000)
    child.on("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      const wallMs = performance.now() - started
      if (code !== 0) {
        const script = Path.basename(command.at(-1) ?? "")
        return reject(new Error(`${script} exited with ${code ?? signal}: ${stderr.trim().slice(-2000)}`))
      }
      const lines = stdout.split("\n").filter((line) => line.startsWith("{")).map(
        (line) => JSON.parse(line) as Record<string, unknown>
      )
      resolve({ lines, wallMs })
    })
  })

/**
 * Runs `bench/childServer.ts` (the mock server in a process of its own) for the scope, and
 * answers its base URL. Closing the scope closes the child's stdin, which stops it.
 */
export const serverProcess = Effect.acquireRelease(
  Effect.async<{ readonly child: ChildProcess.ChildProcess; readonly baseUrl: string }, Error>((resume) => {
    const child = ChildProcess.spawn(process.execPath, tsxScript("childServer.ts"), {
      cwd: rootDir,
      stdio: ["pipe", "pipe", "inherit"]
    })
    let stdout = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
      const line = stdout.split("\n").find((line) => line.startsWith("{"))
      if (line !== undefined) resume(Effect.succeed({ child, baseUrl: String(JSON.parse(line).baseUrl) }))
    })
    child.on("exit", (code) => resume(Effect.fail(new Error(`bench/childServer.ts exited early with ${code}`))))
  }),
  ({ child }) =>
    Effect.async<void>((resume) => {
      if (child.exitCode !== null) return resume(Effect.void)
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000)
      child.once("exit", () => {
        clearTimeout(timer)
        resume(Effect.void)
      })
      child.stdin?.end()
    })
).pipe(Effect.map(({ baseUrl }) => baseUrl), Effect.orDie)
