/**
 * The sections of `pnpm bench`, and running some of them on the Node this process runs on
 * (`bench/line.ts`, which `bench/index.ts` starts once per Node line).
 */
import { Cause, Effect } from "effect"
import * as Os from "node:os"
import * as Cli from "./cli.js"
import * as ClientOverhead from "./clientOverhead.js"
import type { Figure, FigureResult } from "./harness.js"
import * as Memory from "./memory.js"
import * as Postgres from "./postgres.js"
import * as Processes from "./processes.js"
import * as Redis from "./redis.js"
import * as Stampede from "./stampede.js"
import * as Throughput from "./throughput.js"

/** In running order: the in-process micro-benchmark first, on a quiet process; child processes last. */
export const sections: ReadonlyArray<readonly [string, Effect.Effect<FigureResult, unknown>]> = [
  ["throughput", Throughput.run],
  ["memory", Memory.run],
  ["stampede", Stampede.run],
  ["client", ClientOverhead.run],
  ["redis-hot-path", Redis.runHotPath],
  ["postgres-hot-path", Postgres.runHotPath],
  ["warm-start", Processes.runWarmStart],
  ["processes", Processes.runProcesses],
  ["redis-fleet", Redis.runFleet],
  ["postgres-fleet", Postgres.runFleet],
  ["cli", Cli.run]
]

/** What one Node line's run hands back to `bench/index.ts`. */
export interface LineResult {
  /** `process.version` of the Node the sections ran on. */
  readonly node: string
  readonly loadAverage: number
  readonly seconds: number
  readonly figures: ReadonlyArray<Figure>
  readonly notes: ReadonlyArray<string>
}

/** Runs the named sections (all of them for none) in order, printing each one's time. */
export const run = (names: ReadonlyArray<string>): Effect.Effect<LineResult> =>
  Effect.gen(function*() {
    const chosen = names.length === 0 ? sections : sections.filter(([name]) => names.includes(name))
    const loadAverage = Os.loadavg()[0]!
    const started = performance.now()
    const figures: Array<Figure> = []
    const notes: Array<string> = []
    for (const [name, section] of chosen) {
      const sectionStarted = performance.now()
      process.stdout.write(`  ${name} ...`)
      const result = yield* Effect.exit(section)
      const seconds = ((performance.now() - sectionStarted) / 1000).toFixed(1)
      if (result._tag === "Success") {
        figures.push(...result.value.figures)
        notes.push(...result.value.notes)
        console.log(` ${seconds} s`)
      } else {
        notes.push(`${name}: the figure could not be taken: ${Cause.pretty(result.cause).split("\n")[0]}`)
        console.log(` failed after ${seconds} s`)
      }
    }
    const seconds = Math.round((performance.now() - started) / 1000)
    return { node: process.version, loadAverage, seconds, figures, notes }
  })
