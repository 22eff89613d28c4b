/**
 * Bundles the `amp-token` executable into one ESM file, `dist/amp-token.js`, with every
 * dependency inside it.
 *
 * Why a bundle: a CLI called from scripts (`$(amp-token token)`) pays its start-up on every
 * call. One file means one read and one parse instead of resolving and loading some 700 modules
 * of effect, @effect/cli and @effect/platform; the package then has no runtime dependencies, so
 * installing it never touches an application's own Effect versions.
 */
import { build } from "esbuild"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))

await build({
  absWorkingDir: root,
  entryPoints: ["src/bin.ts"],
  outfile: "dist/amp-token.js",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  minify: true,
  // Names stay readable in the rare internal-error line.
  keepNames: true,
  sourcemap: false,
  legalComments: "linked",
  // The shebang of src/bin.ts is carried over by esbuild. Some dependencies are CommonJS and
  // call `require` for Node built-ins: give the ESM bundle one.
  banner: {
    js:
      "import { createRequire as __ampCreateRequire } from \"node:module\";const require = __ampCreateRequire(import.meta.url);"
  },
  logLevel: "warning"
})
