// The source rules `pnpm check` enforces over every package's `src/` (issue 16):
// - no import cycles between modules, type-only imports included (a public module imports its
//   `internal/` one, never the other way round);
// - no function longer than 80 lines (a longer one is plumbing that wants a part of its own).
// Prints each offence and exits 1 when there is one; `--lines` also prints the line counts.
import * as Fs from "node:fs"
import * as Path from "node:path"
import ts from "typescript"

const root = Path.resolve(import.meta.dirname, "..")
const maxFunctionLines = 80

const sourceFiles = (dir) =>
  Fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = Path.join(dir, entry.name)
    if (entry.isDirectory()) return sourceFiles(path)
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [path] : []
  })

const packages = Fs.readdirSync(Path.join(root, "packages")).filter((name) =>
  Fs.existsSync(Path.join(root, "packages", name, "src"))
)
const files = packages.flatMap((name) => sourceFiles(Path.join(root, "packages", name, "src")))
const relative = (file) => Path.relative(root, file)

const offences = []
const imports = new Map()
let total = 0

for (const file of files) {
  const text = Fs.readFileSync(file, "utf8")
  total += text.split("\n").length - (text.endsWith("\n") ? 1 : 0)
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true)
  const targets = []
  const visit = (node) => {
    const specifier = (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) ? node.moduleSpecifier : undefined
    if (specifier !== undefined && ts.isStringLiteral(specifier) && specifier.text.startsWith(".")) {
      targets.push(Path.resolve(Path.dirname(file), specifier.text.replace(/\.js$/, ".ts")))
    }
    if (ts.isFunctionLike(node) && "body" in node && node.body !== undefined) {
      const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line
      if (end - start + 1 > maxFunctionLines) {
        offences.push(
          `${relative(file)}:${start + 1}: a function of ${end - start + 1} lines (at most ${maxFunctionLines})`
        )
      }
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  imports.set(file, targets)
}

// Depth-first search for back edges: each cycle reported once, from its first module.
const state = new Map()
const stack = []
const seen = new Set()
const search = (file) => {
  state.set(file, "open")
  stack.push(file)
  for (const target of imports.get(file) ?? []) {
    if (state.get(target) === "open") {
      const cycle = stack.slice(stack.indexOf(target)).map(relative)
      const key = [...cycle].sort().join(" ")
      if (!seen.has(key)) {
        seen.add(key)
        offences.push(`import cycle: ${[...cycle, relative(target)].join(" -> ")}`)
      }
    } else if (!state.has(target) && imports.has(target)) {
      search(target)
    }
  }
  stack.pop()
  state.set(file, "done")
}
for (const file of files) if (!state.has(file)) search(file)

if (process.argv.includes("--lines")) {
  for (const name of packages) {
    const lines = files.filter((file) => file.startsWith(Path.join(root, "packages", name, "src")))
      .reduce((sum, file) => sum + Fs.readFileSync(file, "utf8").split("\n").length - 1, 0)
    console.log(`${name}: ${lines} lines`)
  }
  console.log(`src in all: ${total} lines`)
}
for (const offence of offences) console.error(offence)
process.exit(offences.length === 0 ? 0 : 1)
