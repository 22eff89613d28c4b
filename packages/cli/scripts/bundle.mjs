/**
 * Bundles the `amp-token` executable into one ESM file, `dist/amp-token.js`, with every
 * dependency inside it.
 *
 * Why a bundle: a CLI called from scripts (`$(amp-token token)`) pays its start-up on every
 * call. One file means one read and one compile instead of resolving and loading some 700
 * modules of effect, @effect/cli and @effect/platform; the package then has no runtime
 * dependencies, so installing it never touches an application's own Effect versions.
 *
 * What keeps the start small (start-up time is mostly compiling and evaluating the code):
 * - the CLI talks to AMP through the runtime's `fetch`, so undici is not bundled;
 * - @effect/cli can read option values from YAML, TOML and INI files, which amp-token never
 *   does: those three parsers are replaced by a module that refuses, with a clear message;
 * - the Redis store and node-redis are a chunk of their own, imported only with `--store redis`;
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
// A clean directory: chunk names carry a content hash, so an earlier build's chunks would stay
// beside the new ones (and be packed).
Fs.rmSync(outdir, { recursive: true, force: true })

/** @type {import("esbuild").Plugin} */
const withoutConfigFileParsers = {
  name: "without-config-file-parsers",
  setup(build) {
    build.onResolve({ filter: /^(yaml|toml|ini)$/ }, (args) => ({ path: args.path, namespace: "unsupported" }))
    build.onLoad({ filter: /.*/, namespace: "unsupported" }, (args) => ({
      loader: "js",
      contents: `export const parse = () => { throw new Error("amp-token does not read ${args.path} files") }`
    }))
  }
}

const result = await build({
  absWorkingDir: root,
  entryPoints: ["src/bin.ts"],
  outdir,
  entryNames: "amp-token",
  // The Redis store (node-redis) is loaded on first use: a chunk of its own that a run with the
  // token file never reads.
  splitting: true,
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  minify: true,
  legalComments: "none",
  metafile: true,
  plugins: [withoutConfigFileParsers],
  // The shebang of src/bin.ts is carried over by esbuild. Some dependencies are CommonJS and
  // call `require` for Node built-ins: give the ESM bundle one.
  banner: {
    js:
      "import { createRequire as __ampCreateRequire } from \"node:module\";const require = __ampCreateRequire(import.meta.url);"
  },
  logLevel: "warning"
})

// The bundle contains other people's code: ship their licences beside it.
const packages = new Map()
for (const input of Object.keys(result.metafile.inputs)) {
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
  `dist/amp-token.js bundles the following packages.\n\n${notices.join("\n" + "-".repeat(72) + "\n\n")}`
)
