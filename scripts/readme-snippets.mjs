/**
 * Writes every TypeScript block of the READMEs (```ts) to `examples/readme/<readme>-<n>.ts`, so
 * that `pnpm check` type-checks them with the examples: a README that shows code which does not
 * compile fails CI. Each block is a module of its own, so each must hold its own imports —
 * which is what a reader copying it needs anyway.
 *
 * The files are generated (and ignored by git): edit the READMEs, not them.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const out = Path.join(root, "examples", "readme")

const readmes = [
  "README.md",
  ...Fs.readdirSync(Path.join(root, "packages")).map((name) => Path.join("packages", name, "README.md"))
].filter((file) => Fs.existsSync(Path.join(root, file)))

Fs.rmSync(out, { recursive: true, force: true })
Fs.mkdirSync(out, { recursive: true })

let count = 0
for (const readme of readmes) {
  const text = Fs.readFileSync(Path.join(root, readme), "utf8")
  const name = readme === "README.md" ? "root" : Path.basename(Path.dirname(readme))
  const blocks = [...text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)]
  blocks.forEach((match, index) => {
    const line = text.slice(0, match.index).split("\n").length
    Fs.writeFileSync(
      Path.join(out, `${name}-${index + 1}.ts`),
      `// Generated from ${readme}, line ${line}, by scripts/readme-snippets.mjs: edit the README.\n${match[1]}`
    )
    count++
  })
}
console.log(`readme-snippets: ${count} TypeScript blocks from ${readmes.length} READMEs in examples/readme/`)
