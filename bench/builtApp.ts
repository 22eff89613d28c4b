/**
 * The packages as an application has them once installed from npm, for the children whose
 * start-up is measured (warm start, processes, redis-fleet): the built JavaScript a user runs,
 * loaded by Node itself, with no TypeScript loader. In a temporary directory, each of
 * `@amp-effect/core`, `node` and `redis` is its `dist/` (from `pnpm build`) with the manifest it
 * is published with (`publishConfig.exports`), beside links to the dependencies it names; the
 * child scripts are compiled to plain ES modules (`bench/childClient.ts` -> `childClient.mjs`).
 */
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const benchDir = Path.dirname(fileURLToPath(import.meta.url))
const packagesDir = Path.join(Path.dirname(benchDir), "packages")

/** Installs `packages/<name>` into `modules` as npm would from its tarball. */
const installPackage = (modules: string, name: string) => {
  const source = Path.join(packagesDir, name)
  const manifest = JSON.parse(Fs.readFileSync(Path.join(source, "package.json"), "utf8"))
  if (!Fs.existsSync(Path.join(source, "dist"))) throw new Error(`packages/${name}/dist is missing: run pnpm build`)
  const target = Path.join(modules, manifest.name)
  Fs.mkdirSync(target, { recursive: true })
  const { exports } = manifest.publishConfig
  Fs.writeFileSync(Path.join(target, "package.json"), JSON.stringify({ ...manifest, exports }))
  // A copy, not a link: a module's own imports resolve from where it really is.
  Fs.cpSync(Path.join(source, "dist"), Path.join(target, "dist"), { recursive: true })
  const dependencies = { ...manifest.dependencies, ...manifest.peerDependencies }
  for (const dependency of Object.keys(dependencies).filter((name) => !name.startsWith("@amp-effect/"))) {
    const link = Path.join(modules, dependency)
    if (Fs.existsSync(link)) continue
    Fs.mkdirSync(Path.dirname(link), { recursive: true })
    Fs.symlinkSync(Fs.realpathSync(Path.join(source, "node_modules", dependency)), link)
  }
}

/**
 * A temporary application for the scope with the built packages installed and `scripts`
 * (files of `bench/`) compiled into it; answers the path of a compiled script.
 */
export const make = (scripts: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "amp-bench-app-"))),
    (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
  ).pipe(
    Effect.tap((dir) =>
      Effect.sync(() => {
        for (const name of ["core", "node", "redis", "postgres"]) installPackage(Path.join(dir, "node_modules"), name)
        for (const script of scripts) {
          const { outputText } = ts.transpileModule(Fs.readFileSync(Path.join(benchDir, script), "utf8"), {
            compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 }
          })
          Fs.writeFileSync(Path.join(dir, script.replace(/\.ts$/, ".mjs")), outputText)
        }
      })
    ),
    Effect.map((dir) => (script: string) => Path.join(dir, script.replace(/\.ts$/, ".mjs")))
  )
