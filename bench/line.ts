/**
 * One Node line's part of `pnpm bench`: `node --import tsx bench/line.ts <out.json> [sections]`
 * runs the sections on the Node it is started with and writes their `LineResult` to `out.json`.
 * `bench/index.ts` starts it once per line, with that line's Node first on PATH.
 */
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Sections from "./sections.js"

const [out, ...names] = process.argv.slice(2)
if (out === undefined) throw new Error("usage: bench/line.ts <out.json> [sections...]")

Effect.runPromise(Sections.run(names)).then(
  (result) => Fs.writeFileSync(out, JSON.stringify(result)),
  (error) => {
    console.error(error)
    process.exitCode = 1
  }
)
