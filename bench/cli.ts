/**
 * The CLI as scripts use it: start to exit of `amp-token status --json` and `amp-token token`
 * with a valid token in the file (no network, no credentials), as the bundled executable that
 * the package installs, side by side with `node -e 0` (the floor: Node's own start) and with
 * the tsx path the CLI had before it was bundled (`node --import tsx packages/cli/src/bin.ts`,
 * which is kinder than the old `npx tsx` shebang: no npx).
 *
 * The executable runs from its code cache (kept in this run's temporary directory), as every
 * run after a user's first does; `amp-token token` without it (`NODE_DISABLE_COMPILE_CACHE=1`,
 * which is also what a first run costs, plus writing the cache) is reported beside it.
 *
 * Each round runs every command once, in a rotated order, one process at a time; the figures
 * are medians over the rounds, and the ratios are those of the medians.
 */
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { type Figure, type FigureResult, median, report, round, target } from "./harness.js"

const rounds = 15
const rootDir = Path.dirname(Path.dirname(fileURLToPath(import.meta.url)))
const cliDir = Path.join(rootDir, "packages", "cli")

/** Runs `node args` with `env` to its exit; the wall time in ms. Fails on a non-zero exit. */
const time = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv) =>
  new Promise<number>((resolve, reject) => {
    const started = performance.now()
    const child = ChildProcess.spawn(process.execPath, args, { cwd: rootDir, env, stdio: ["ignore", "pipe", "pipe"] })
    let stderr = ""
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.stdout.resume()
    child.on("error", reject)
    child.on("close", (code) => {
      const elapsed = performance.now() - started
      if (code === 0) resolve(elapsed)
      else reject(new Error(`node ${args.join(" ")} exited ${code}: ${stderr.trim().slice(-500)}`))
    })
  })

/** A JWT-shaped token valid for a day, in a token file as the library writes it. */
const writeTokenFile = (file: string) => {
  const now = Date.now()
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")
  const exp = Math.floor(now / 1000) + 86_400
  const token = `${part({ typ: "JWT", alg: "HS256" })}.${part({ sub: "bench", exp })}.c2ln`
  Fs.writeFileSync(
    file,
    JSON.stringify({ token, expires_at: new Date(exp * 1000).toISOString(), obtained_at: new Date(now).toISOString() }),
    { mode: 0o600 }
  )
}

export const run: Effect.Effect<FigureResult, unknown> = Effect.acquireUseRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "amp-bench-cli-"))),
  (dir) =>
    Effect.tryPromise(async () => {
      // The executable as the package ships it, built from the current sources.
      await new Promise<void>((resolve, reject) =>
        ChildProcess.execFile(
          process.execPath,
          ["scripts/bundle.mjs", "--outdir", dir],
          { cwd: cliDir },
          (error) => error === null ? resolve() : reject(error)
        )
      )
      const bundle = Path.join(dir, "amp-token.cjs")
      const file = Path.join(dir, "token.json")
      writeTokenFile(file)
      const tsxBin = ["--import", "tsx", Path.join(cliDir, "src", "bin.ts")]
      const env = { ...process.env, XDG_CACHE_HOME: Path.join(dir, "cache") }
      const noCache = { ...env, NODE_DISABLE_COMPILE_CACHE: "1" }
      const commands: ReadonlyArray<readonly [string, ReadonlyArray<string>, NodeJS.ProcessEnv]> = [
        ["node -e 0", ["-e", "0"], env],
        ["status bundle", [bundle, "status", "--json", "--token-file", file], env],
        ["token bundle", [bundle, "token", "--token-file", file], env],
        ["token bundle, no code cache", [bundle, "token", "--token-file", file], noCache],
        ["status tsx", [...tsxBin, "status", "--json", "--token-file", file], env],
        ["token tsx", [...tsxBin, "token", "--token-file", file], env]
      ]
      // One unmeasured pass: file caches warm, the executable's code cache written, tsx's
      // compile cache as a returning user has it.
      for (const [, args, env] of commands) await time(args, env)
      const samples = new Map(commands.map(([name]) => [name, [] as Array<number>]))
      for (let r = 0; r < rounds; r++) {
        for (let i = 0; i < commands.length; i++) {
          const [name, args, env] = commands[(i + r) % commands.length]!
          samples.get(name)!.push(await time(args, env))
        }
      }
      const med = (name: string) => median(samples.get(name)!)
      const floor = med("node -e 0")
      const figures: Array<Figure> = [report("CLI: node -e 0 (the floor), median", round(floor), "ms")]
      const notes: Array<string> = []
      for (const command of ["status", "token"] as const) {
        const bundled = med(`${command} bundle`)
        const tsx = med(`${command} tsx`)
        const label = command === "status" ? "amp-token status --json" : "amp-token token (valid token in the file)"
        figures.push(
          report(`CLI: ${label}, median of ${rounds}`, round(bundled), "ms"),
          target(`… vs node -e 0`, round(bundled / floor), "×", "<=", 5),
          report(`… through the tsx path, median`, round(tsx), "ms"),
          target(`… vs the tsx path`, round(bundled / tsx), "×", "<=", 0.15)
        )
        if (bundled / floor > 5) {
          notes.push(`${label}: ${round(bundled)} ms is ${round(bundled / floor)}× Node's own start`)
        }
        if (bundled / tsx > 0.15) notes.push(`${label}: ${round(bundled / tsx)}× the tsx path`)
      }
      const uncached = med("token bundle, no code cache")
      figures.push(
        report(`CLI: amp-token token without the code cache (a first run), median of ${rounds}`, round(uncached), "ms"),
        report(`… vs the tsx path`, round(uncached / med("token tsx")), "×")
      )
      return { figures, notes }
    }),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)
