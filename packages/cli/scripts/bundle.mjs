/**
 * Builds the installed `amp-token` into `dist/`:
 * - `cli.cjs`: the CLI (`src/bin.ts`) with every dependency inside it, one CommonJS file;
 * - `redis.cjs`: node-redis, which the CLI loads only with `--store redis`;
 * - `amp-token.cjs`: the executable, `src/launcher.ts`, which runs `cli.cjs` from V8's code
 *   cache (see there).
 *
 * Why a bundle: a CLI called from scripts (`$(amp-token token)`) pays its start-up on every
 * call. One file means one read and one compile instead of resolving and loading some 700
 * modules of effect, @effect/cli and @effect/platform; the package then has no runtime
 * dependencies, so installing it never touches an application's own Effect versions. CommonJS
 * because Node 20 can hand V8 a code cache only for a script (`vm.Script`), not for a module.
 *
 * What keeps the start small (start-up time is mostly compiling and evaluating the code):
 * - the CLI talks to AMP through the runtime's `fetch`, so undici is not bundled;
 * - what the code imports but never runs (@effect/cli's YAML, TOML and INI parsers, and
 *   fast-check, for Schema's arbitraries) is replaced by modules that refuse, with a message;
 * - the platform layers the CLI uses, not `NodeContext.layer` (workers, child processes);
 * - node-redis (almost half of all the code) is a file of its own, required only when the
 *   Redis store is built: it uses no Effect, so nothing is loaded twice;
 * - no `keepNames`: it wraps every function in a call at start-up.
 */
import { build } from "esbuild"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
// `--outdir DIR` builds elsewhere (the tests bundle into a temp dir); `dist` by default.
const outdirFlag = process.argv.indexOf("--outdir")
const outdir = outdirFlag === -1 ? Path.join(root, "dist") : Path.resolve(process.argv[outdirFlag + 1])
// A clean directory: nothing of an earlier build is packed.
Fs.rmSync(outdir, { recursive: true, force: true })

/**
 * Packages the CLI's code imports but never runs, replaced by modules that refuse: @effect/cli's
 * YAML, TOML and INI parsers (option values from files, which amp-token never reads), and
 * fast-check, which effect's Schema imports for property-test arbitraries.
 * @type {import("esbuild").Plugin}
 */
const withoutUnusedPackages = {
  name: "without-unused-packages",
  setup(build) {
    build.onResolve({ filter: /^(yaml|toml|ini|fast-check)$/ }, (args) => ({ path: args.path, namespace: "unused" }))
    build.onLoad({ filter: /.*/, namespace: "unused" }, (args) => ({
      loader: "js",
      contents: args.path === "fast-check"
        ? `export const array = () => { throw new Error("amp-token does not generate arbitraries") }`
        : `export const parse = () => { throw new Error("amp-token does not read ${args.path} files") }`
    }))
  }
}

/** The Postgres driver's packages (no Effect in them), which `@effect/sql-pg` imports. */
const pgPackages = ["pg", "pg-connection-string", "pg-cursor"]

/**
 * The database drivers, in files of their own beside `cli.cjs`: `redis` is `./redis.cjs`, and
 * each of `pgPackages` is its part of `./pg.cjs`.
 * @type {import("esbuild").Plugin}
 */
const driversBeside = {
  name: "drivers-beside",
  setup(build) {
    build.onResolve({ filter: /^redis$/ }, () => ({ path: "./redis.cjs", external: true }))
    build.onResolve({ filter: /^\.\/pg\.cjs$/ }, (args) => ({ path: args.path, external: true }))
    build.onResolve({ filter: /^pg(-connection-string|-cursor)?$/ }, (args) => ({ path: args.path, namespace: "pg" }))
    build.onLoad({ filter: /.*/, namespace: "pg" }, (args) => ({
      loader: "js",
      contents: `module.exports = require("./pg.cjs")[${JSON.stringify(args.path)}]`
    }))
  }
}

/** @type {import("esbuild").BuildOptions} */
const common = {
  absWorkingDir: root,
  bundle: true,
  platform: "node",
  target: "node20",
  legalComments: "none",
  metafile: true,
  logLevel: "warning"
}

const builds = await Promise.all([
  build({
    ...common,
    entryPoints: ["src/bin.ts"],
    outfile: Path.join(outdir, "cli.cjs"),
    format: "cjs",
    // `import("redis")` becomes `require("./redis.cjs")`: a script run by `vm` has no `import()`.
    supported: { "dynamic-import": false },
    minify: true,
    plugins: [withoutUnusedPackages, driversBeside]
  }),
  build({
    ...common,
    stdin: { contents: "module.exports = require(\"redis\")", resolveDir: root, sourcefile: "redis.cjs" },
    outfile: Path.join(outdir, "redis.cjs"),
    format: "cjs",
    minify: true
  }),
  build({
    ...common,
    stdin: {
      contents: `module.exports = { ${pgPackages.map((name) => `"${name}": require("${name}")`).join(", ")} }`,
      // Where @effect/sql-pg finds them.
      resolveDir: Fs.realpathSync(Path.join(root, "node_modules/@effect/sql-pg")),
      sourcefile: "pg.cjs"
    },
    outfile: Path.join(outdir, "pg.cjs"),
    format: "cjs",
    // pg's optional native binding (`pg.native`), never used.
    external: ["pg-native"],
    minify: true
  }),
  // CommonJS too: an ES module entry would start Node's module loader for nothing.
  build({ ...common, entryPoints: ["src/launcher.ts"], outfile: Path.join(outdir, "amp-token.cjs"), format: "cjs" })
])

// The launcher runs cli.cjs as a script: no shebang line, and no `import()`, which a script run
// by `vm` cannot do.
const cli = Path.join(outdir, "cli.cjs")
const code = Fs.readFileSync(cli, "utf8").replace(/^#!.*\n/, "")
if (/\bimport\(/.test(code)) throw new Error("cli.cjs contains an import(), which vm.Script cannot run")
Fs.writeFileSync(cli, code)

// The bundle contains other people's code: ship their licences beside it.
const packages = new Map()
for (const input of new Set(builds.flatMap(({ metafile }) => Object.keys(metafile.inputs)))) {
  const match = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input)
  if (match === null) continue
  const dir = Path.resolve(root, match[1])
  if (packages.has(dir)) continue
  const manifest = JSON.parse(Fs.readFileSync(Path.join(dir, "package.json"), "utf8"))
  const licenseFile = Fs.readdirSync(dir).find((name) => /^(licen[cs]e|copying)(\.|$)/i.test(name))
  packages.set(dir, {
    name: manifest.name,
    version: manifest.version,
    license: manifest.license ?? "see the package",
    text: licenseFile === undefined ? undefined : Fs.readFileSync(Path.join(dir, licenseFile), "utf8").trim()
  })
}
const notices = [...packages.values()]
  .sort((a, b) => a.name.localeCompare(b.name))
  .map(({ license, name, text, version }) =>
    `${name}@${version} (${license})\n\n${text ?? `No licence file; the package declares ${license}.`}\n`
  )
Fs.writeFileSync(
  Path.join(outdir, "THIRD-PARTY-LICENSES.txt"),
  `dist/cli.cjs, dist/redis.cjs and dist/pg.cjs bundle the following packages.\n\n${
    notices.join("\n" + "-".repeat(72) + "\n\n")
  }`
)
