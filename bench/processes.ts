/**
 * Figures across processes, each child a real `node childClient.mjs` — `bench/childClient.ts`
 * built, run on the built packages as an application installs them (`BuiltApp`), no TypeScript
 * loader — against the mock server in this process:
 *
 * - processes: 16 children start at once sharing one token file that does not exist yet; the
 *   file lock should let exactly one of them log in.
 * - warm start: from a child's start to its first authenticated call with a valid token file
 *   (warm) against none (cold), login latency 200 ms, cold and warm runs alternating.
 */
import { MockAmpServer } from "@amp-effect/node/MockAmpServer"
import { Duration, Effect } from "effect"
import * as Path from "node:path"
import * as BuiltApp from "./builtApp.js"
import {
  type ChildRun,
  type Figure,
  type FigureResult,
  median,
  mockEnv,
  report,
  round,
  runChild,
  target,
  tempDir
} from "./harness.js"

const processCount = 16
const startRuns = 5

/** The compiled `bench/childClient.ts` in a built application, for the scope. */
const childScript = Effect.map(BuiltApp.make(["childClient.ts"]), (script) => script("childClient.ts"))

/** One child (`script`) against `server`, sharing `file`. */
const child = (script: string, server: MockAmpServer.Service, file: string) =>
  Effect.tryPromise({
    try: () =>
      runChild([script], {
        env: {
          ...mockEnv(server),
          BENCH_TOKEN_FILE: file
        },
        // 16 process starts at once on a busy 2-core machine can take minutes: a bound against a hang only.
        timeoutMs: 300_000
      }),
    // The child's own words (exit code, stderr), not "an unknown error".
    catch: (error) => error
  }).pipe(Effect.orDie)

const timing = (run: ChildRun, key: "fromMainMs" | "fromProcessStartMs"): number => {
  const value = run.lines[0]?.[key]
  if (typeof value !== "number") throw new Error(`the child printed no ${key}`)
  return value
}

export const runProcesses = Effect.gen(function*() {
  const server = yield* MockAmpServer.make({ latency: Duration.millis(50) })
  const file = Path.join(yield* tempDir("amp-bench-"), "token.json")
  const script = yield* childScript
  const started = performance.now()
  const runs = yield* Effect.forEach(Array.from({ length: processCount }), () => child(script, server, file), {
    concurrency: "unbounded"
  })
  const wallMs = performance.now() - started
  const counters = yield* server.counters
  const figures: Array<Figure> = [
    target(`processes: logins (${processCount} at once, one file)`, counters.obtain, "calls", "==", 1),
    report(`processes: wall time (${processCount} at once)`, round(wallMs), "ms"),
    report(
      "processes: slowest child, from main to its first authenticated call",
      round(Math.max(...runs.map((run) => timing(run, "fromMainMs")))),
      "ms"
    )
  ]
  const notes = counters.obtain === 1 ? [] : [
    `processes: ${counters.obtain} of ${processCount} processes logged in: the token file's lock did not ` +
    "serialise their first renewal (TokenStore.withLock)"
  ]
  return { figures, notes } satisfies FigureResult
}).pipe(Effect.scoped)

export const runWarmStart = Effect.gen(function*() {
  const server = yield* MockAmpServer.make({ latency: Duration.millis(200) })
  const dir = yield* tempDir("amp-bench-")
  const script = yield* childScript
  const cold: Array<ChildRun> = []
  const warm: Array<ChildRun> = []
  let warmLogins = 0
  for (let i = 0; i < startRuns; i++) {
    const file = Path.join(dir, `token-${i}.json`)
    cold.push(yield* child(script, server, file)) // no file: logs in and saves it
    const before = (yield* server.counters).obtain
    warm.push(yield* child(script, server, file)) // the file just saved: no login
    warmLogins += (yield* server.counters).obtain - before
  }
  const medianOf = (runs: ReadonlyArray<ChildRun>, key: "fromMainMs" | "fromProcessStartMs") =>
    median(runs.map((run) => timing(run, key)))
  const fromMain = medianOf(warm, "fromMainMs") / medianOf(cold, "fromMainMs")
  const fromStart = medianOf(warm, "fromProcessStartMs") / medianOf(cold, "fromProcessStartMs")
  // Node's boot and the loading of the built modules: the same in both, and not the library's doing.
  const boot = median([...cold, ...warm].map((run) => timing(run, "fromProcessStartMs") - timing(run, "fromMainMs")))
  const figures: Array<Figure> = [
    report("cold start (median, from main)", round(medianOf(cold, "fromMainMs")), "ms"),
    report("warm start (median, from main)", round(medianOf(warm, "fromMainMs")), "ms"),
    target("warm start vs cold (from main)", round(fromMain), "x", "<=", 0.25),
    target("warm start: logins", warmLogins, "calls", "==", 0),
    report("process boot before main (Node + the built modules, median)", round(boot), "ms"),
    target("warm start vs cold (from process start, boot included)", round(fromStart), "x", "<=", 0.25)
  ]
  const notes: Array<string> = []
  if (fromMain > 0.25) {
    notes.push("warm start: from main, a warm start took more than a quarter of a cold one")
  }
  if (fromStart > 0.25) {
    notes.push(
      `warm start: counted from the process's start the ratio is ${round(fromStart)}, limited by the ` +
        `${round(boot)} ms Node and the built modules take to load before the program's first line, the same ` +
        "cold or warm; the library's own part (from main) is the figure above"
    )
  }
  if (warmLogins > 0) notes.push(`warm start: ${warmLogins} logins with a valid token file`)
  return { figures, notes } satisfies FigureResult
}).pipe(Effect.scoped)
