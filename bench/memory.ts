/**
 * Memory: heap growth over 1,000,000 cached `getToken` calls, measured in a child process run
 * with `--expose-gc` (`bench/childMemory.ts`) so that full collections can be forced.
 */
import { Effect } from "effect"
import { type FigureResult, round, runChild, target, tsxScript } from "./harness.js"

export const run = Effect.gen(function*() {
  const child = yield* Effect.tryPromise(() => runChild(tsxScript("childMemory.ts"), { nodeFlags: ["--expose-gc"] }))
    .pipe(
      Effect.orDie
    )
  const line = child.lines[0] ?? {}
  const growth = (Number(line["afterBytes"]) - Number(line["beforeBytes"])) / 1024
  const figures = [
    target(
      `memory: heap growth over ${Number(line["calls"]).toLocaleString("en")} cached getToken`,
      round(growth),
      "KiB",
      "<",
      1024
    )
  ]
  const notes: Array<string> = []
  if (growth >= 1024) notes.push(`memory: the heap grew by ${round(growth)} KiB over the cached calls`)
  if (line["logins"] !== 1) notes.push(`memory: ${String(line["logins"])} logins, not 1: the calls were not all cached`)
  return { figures, notes } satisfies FigureResult
})
