/**
 * `pnpm bench`: every figure of the benchmark, in one run of about ten minutes on two cores.
 *
 * Prints a table and writes the same rows to `bench/results.json` (committed: the figures the
 * targets are judged on; a full run also rewrites the table in `docs/benchmarks.md`), an array of
 * `{"name", "value", "unit", "target", "met"}`, where `target` is a comparison such as
 * `">= 0.5"` or `null` for a figure that is only reported, and `met` is a boolean or `null`.
 * Each comparison runs side by side in one process, so its ratio holds on a noisy machine.
 * Missed targets are listed after the table with what limits them. The exit code is 0 even
 * then: the bench reports, it does not gate.
 *
 *   pnpm bench                      # everything
 *   pnpm bench throughput memory    # some figures (names below)
 */
import { Cause, Effect } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import * as Cli from "./cli.js"
import * as ClientOverhead from "./clientOverhead.js"
import { type Figure, type FigureResult } from "./harness.js"
import * as Memory from "./memory.js"
import * as Processes from "./processes.js"
import * as Redis from "./redis.js"
import * as Stampede from "./stampede.js"
import * as Throughput from "./throughput.js"

/** In running order: the in-process micro-benchmark first, on a quiet process; child processes last. */
const sections: ReadonlyArray<readonly [string, Effect.Effect<FigureResult, unknown>]> = [
  ["throughput", Throughput.run],
  ["memory", Memory.run],
  ["stampede", Stampede.run],
  ["client", ClientOverhead.run],
  ["redis-hot-path", Redis.runHotPath],
  ["warm-start", Processes.runWarmStart],
  ["processes", Processes.runProcesses],
  ["redis-fleet", Redis.runFleet],
  ["cli", Cli.run]
]

const resultsFile = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "results.json")

const formatValue = (value: number) =>
  Math.abs(value) >= 10_000 ? Math.round(value).toLocaleString("en") : String(value)

const printTable = (figures: ReadonlyArray<Figure>) => {
  const rows = figures.map((figure) => [
    figure.name,
    formatValue(figure.value),
    figure.unit,
    figure.target ?? "",
    figure.met === null ? "" : figure.met ? "met" : "NOT MET"
  ])
  const header = ["figure", "value", "unit", "target", "met"]
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, column) => column === 1 ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!)).join(
      "  "
    ).trimEnd()
  console.log(line(header))
  console.log(widths.map((width) => "-".repeat(width)).join("  "))
  for (const row of rows) console.log(line(row))
}

const main = Effect.gen(function*() {
  const only = process.argv.slice(2)
  const chosen = only.length === 0 ? sections : sections.filter(([name]) => only.includes(name))
  const cpus = Os.cpus()
  const machine = `Node ${process.version}, ${cpus.length} × ${cpus[0]?.model.trim() ?? "unknown CPU"}, ` +
    `${Math.round(Os.totalmem() / 2 ** 30)} GiB, load average ${Os.loadavg()[0]!.toFixed(1)} at start`
  console.log(`amp-effect bench: ${machine}`)
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
  console.log("")
  printTable(figures)
  const missed = figures.filter((figure) => figure.met === false)
  console.log(
    `\n${figures.filter((figure) => figure.met === true).length} targets met, ${missed.length} missed; ` +
      `${((performance.now() - started) / 1000).toFixed(0)} s in all`
  )
  for (const note of notes) console.log(`  - ${note}`)
  Fs.writeFileSync(resultsFile, JSON.stringify(figures, null, 2) + "\n")
  console.log(`\nWrote ${Path.relative(process.cwd(), resultsFile)}`)
  if (only.length === 0) {
    writeDocsTable(figures, notes, `${machine}; ${((performance.now() - started) / 1000).toFixed(0)} s in all`)
    console.log(`Wrote the table in ${Path.relative(process.cwd(), docsFile)}`)
  }
})

const docsFile = Path.join(Path.dirname(Path.dirname(resultsFile)), "docs", "benchmarks.md")

/** The run's figures as a Markdown table between the markers of `docs/benchmarks.md`. */
const writeDocsTable = (figures: ReadonlyArray<Figure>, notes: ReadonlyArray<string>, machine: string) => {
  const cell = (text: string) => text.replaceAll("|", "\\|")
  const table = [
    `Last full run: ${new Date().toISOString().slice(0, 10)}, ${machine}.`,
    "",
    "| figure | value | unit | target | met |",
    "| --- | ---: | --- | --- | --- |",
    ...figures.map((figure) =>
      `| ${cell(figure.name)} | ${formatValue(figure.value)} | ${figure.unit} | ${cell(figure.target ?? "")} | ${
        figure.met === null ? "" : figure.met ? "met" : "**not met**"
      } |`
    ),
    ...(notes.length === 0 ? [] : ["", "Notes printed by the run:", "", ...notes.map((note) => `- ${note}`)])
  ].join("\n")
  const text = Fs.readFileSync(docsFile, "utf8")
  const start = "<!-- bench:start -->"
  const end = "<!-- bench:end -->"
  const from = text.indexOf(start)
  const to = text.indexOf(end)
  if (from === -1 || to < from) throw new Error(`${docsFile} has no ${start} ... ${end} markers`)
  Fs.writeFileSync(docsFile, `${text.slice(0, from + start.length)}\n${table}\n${text.slice(to)}`)
}

Effect.runPromise(main).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
