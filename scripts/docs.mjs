/**
 * Builds the API reference of every published package into `docs/api/<package>/` (generated,
 * ignored by git) and fails when the reference would be wrong:
 *
 * 1. every export of a public module (what `docgen.json` does not exclude: `src/internal/*` is
 *    never public) has a doc comment with `@since` and `@category`, and every module a first
 *    comment with `@since`. `@effect/docgen` enforces `@since` but not `@category`: this step
 *    checks both, for all packages at once, so one run lists every missing tag;
 * 2. `@effect/docgen` runs in each package: it parses the modules, type-checks every ```ts
 *    example of the doc comments with `tsc` (each example is a module of its own: it needs its
 *    own imports) and then runs them all with `tsx`, so an example must also run to completion
 *    without a network or a Redis;
 * 3. the Markdown it wrote (`packages/<package>/docs/modules`) is gathered into `docs/api/`,
 *    with an index.
 *
 * Usage: `pnpm docgen` (all packages) or `pnpm docgen core redis` (some). The script is named as
 * in Effect's repository (`pnpm docs` is pnpm's own command: it opens a package's web page).
 */
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const root = fileURLToPath(new URL("..", import.meta.url))
const allPackages = ["core", "node", "redis", "postgres", "cli"]
const packages = process.argv.length > 2 ? process.argv.slice(2) : allPackages
const out = Path.join(root, "docs", "api")

for (const name of packages) {
  if (!allPackages.includes(name)) {
    console.error(`docs: unknown package "${name}" (one of ${allPackages.join(", ")})`)
    process.exit(2)
  }
}

// -----------------------------------------------------------------------------
// 1. Tags
// -----------------------------------------------------------------------------

/** The package's public modules: `src/**\/*.ts` less what its `docgen.json` excludes. */
const publicModules = (pkg) => {
  const dir = Path.join(root, "packages", pkg)
  const config = JSON.parse(Fs.readFileSync(Path.join(dir, "docgen.json"), "utf8"))
  // The patterns used here are files (`src/bin.ts`) and folders (`src/internal/**/*.ts`).
  const excluded = (file) =>
    (config.exclude ?? []).some((pattern) =>
      pattern.endsWith("/**/*.ts") ? file.startsWith(pattern.slice(0, -"**/*.ts".length)) : file === pattern
    )
  const walk = (rel) =>
    Fs.readdirSync(Path.join(dir, rel), { withFileTypes: true }).flatMap((entry) => {
      const file = `${rel}/${entry.name}`
      if (entry.isDirectory()) return walk(file)
      return entry.name.endsWith(".ts") && !excluded(file) ? [file] : []
    })
  return { dir, files: walk("src").sort() }
}

/** The last `/** ... *\/` comment before `node`, as docgen reads it; `undefined` when there is none. */
const docComment = (text, node) => {
  const ranges = ts.getLeadingCommentRanges(text, node.pos) ?? []
  const docs = ranges.filter((range) => text.startsWith("/**", range.pos))
  return docs.length === 0 ? undefined : text.slice(docs.at(-1).pos, docs.at(-1).end)
}

const hasTag = (comment, tag) => new RegExp(`@${tag}[ \\t]+\\S`).test(comment)
const isIgnored = (comment) => comment !== undefined && /@(internal|ignore)\b/.test(comment)
const isExported = (node) => (ts.getModifiers(node) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword)

const nameOf = (node) => {
  if (ts.isVariableStatement(node)) return node.declarationList.declarations.map((d) => d.name.getText()).join(", ")
  return node.name?.getText() ?? "<anonymous>"
}

/** Every problem of one module, as `file#name: what is missing`, and how many exports it has. */
const checkModule = (file, text) => {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true)
  const problems = []
  let exports = 0
  // The module comment and the re-exported modules of an index are not counted as exports.
  const requireExport = (where, comment, tags) => {
    exports++
    require(where, comment, tags)
  }
  const require = (where, comment, tags) => {
    if (comment === undefined) return problems.push(`${where}: no doc comment (needs ${tags.join(", ")})`)
    const missing = tags.filter((tag) => !hasTag(comment, tag.slice(1)))
    if (missing.length > 0) problems.push(`${where}: missing ${missing.join(", ")}`)
  }
  const first = source.statements[0]
  require(`${file} (module comment)`, first && docComment(text, first), ["@since"])
  // docgen type-checks and runs the blocks of `@example` tags only: a TypeScript block anywhere
  // else in a doc comment would be shown to readers unchecked.
  for (const comment of text.match(/\/\*\*[\s\S]*?\*\//g) ?? []) {
    const [description, ...tags] = comment.split(/^\s*\*\s*@(?=\w)/m)
    const unchecked = [description, ...tags.filter((tag) => !tag.startsWith("example"))]
    if (unchecked.some((part) => /```ts\b/.test(part))) {
      const line = text.slice(0, text.indexOf(comment)).split("\n").length
      problems.push(`${file}:${line}: a \`\`\`ts block outside an @example tag is not checked: put it under @example`)
    }
  }

  const declarations = (statements, prefix) => {
    for (const node of statements) {
      if (ts.isExportDeclaration(node)) {
        const clause = node.exportClause
        if (clause === undefined || ts.isNamespaceExport(clause)) {
          // `export * as X from "./X.js"`: a module, described by its own page.
          const name = clause === undefined ? node.moduleSpecifier.getText() : clause.name.getText()
          require(`${file}#${name}`, docComment(text, node), ["@since"])
        } else {
          // docgen reads the comment of each name, inside the braces.
          for (const specifier of clause.elements) {
            requireExport(`${file}#${specifier.name.getText()}`, docComment(text, specifier), ["@since", "@category"])
          }
        }
        continue
      }
      if (!isExported(node) || ts.isImportEqualsDeclaration(node)) continue
      // Overloads: the first signature carries the comment.
      if (ts.isFunctionDeclaration(node) && node.body !== undefined && node.name !== undefined) {
        const overloads = statements.filter((s) =>
          ts.isFunctionDeclaration(s) && s.name?.getText() === node.name.getText() && s !== node
        )
        if (overloads.length > 0) continue
      }
      const comment = docComment(text, node)
      if (isIgnored(comment)) continue
      const where = `${file}#${prefix}${nameOf(node)}`
      requireExport(where, comment, ["@since", "@category"])
      if (ts.isModuleDeclaration(node) && node.body !== undefined && ts.isModuleBlock(node.body)) {
        declarations(node.body.statements, `${prefix}${nameOf(node)}.`)
      }
    }
  }
  declarations(source.statements, "")
  return { problems, exports }
}

const tagProblems = []
const exportCounts = []
for (const pkg of packages) {
  const { dir, files } = publicModules(pkg)
  let exports = 0
  for (const file of files) {
    const checked = checkModule(`packages/${pkg}/${file}`, Fs.readFileSync(Path.join(dir, file), "utf8"))
    tagProblems.push(...checked.problems)
    exports += checked.exports
  }
  exportCounts.push(`${pkg} ${exports}`)
}
if (tagProblems.length > 0) {
  console.error(`docs: ${tagProblems.length} doc comment(s) to complete:\n  ${tagProblems.join("\n  ")}`)
  process.exit(1)
}
console.log(`docs: every export has @since and @category (${exportCounts.join(", ")})`)

// -----------------------------------------------------------------------------
// 2. docgen, package by package
// -----------------------------------------------------------------------------

const bin = Path.join(root, "node_modules", ".bin")
// docgen runs `tsc` and `tsx` from the PATH: the workspace's own.
const env = { ...process.env, PATH: `${bin}${Path.delimiter}${process.env.PATH}` }
const failed = []
for (const pkg of packages) {
  const dir = Path.join(root, "packages", pkg)
  const docs = Path.join(dir, "docs")
  Fs.rmSync(docs, { recursive: true, force: true })
  const started = Date.now()
  const run = spawnSync(Path.join(bin, "docgen"), [], {
    cwd: dir,
    env,
    encoding: "utf8",
    shell: process.platform === "win32"
  })
  const output = `${run.stdout}${run.stderr}`
  // On a failure docgen leaves the examples behind: they are not sources (eslint would read them).
  Fs.rmSync(Path.join(docs, "examples"), { recursive: true, force: true })
  const count = (pattern) => output.match(pattern)?.[1] ?? "0"
  const seconds = ((Date.now() - started) / 1000).toFixed(1)
  if (run.status === 0 && output.includes("Docs generation succeeded")) {
    console.log(
      `docs: ${pkg}: ${count(/(\d+) module\(s\) found/)} modules, ` +
        `${count(/(\d+) example\(s\) found/)} examples type-checked and run (${seconds}s)`
    )
  } else {
    failed.push(pkg)
    // Frames inside docgen's bundle or Node say nothing; an example's own frames name its file.
    const message = output.split("\n").filter((line) => !/^\s+at .*(@effect\/docgen|node:internal)/.test(line))
      .join("\n")
    console.error(`docs: ${pkg}: docgen failed (${seconds}s):\n${message}`)
  }
}
if (failed.length > 0) {
  console.error(`docs: docgen failed for ${failed.join(", ")}`)
  process.exit(1)
}

// -----------------------------------------------------------------------------
// 3. One tree: docs/api/<package>/<Module>.md and an index
// -----------------------------------------------------------------------------

/**
 * docgen shows a class as `export declare class X`, without what it extends: for this library's
 * classes (`Context.Tag(...)<X, { ...the service... }>()`, `Schema.Class<X>(...)({ ...fields })`,
 * `Schema.TaggedError`) that is the whole API. Each such signature gets its `extends` clause back,
 * as written in the source (the service members' own doc comments included).
 */
const withHeritage = (markdown, sourceFile) => {
  const text = Fs.readFileSync(sourceFile, "utf8")
  const source = ts.createSourceFile(sourceFile, text, ts.ScriptTarget.Latest, true)
  let result = markdown
  for (const node of source.statements) {
    if (!ts.isClassDeclaration(node) || !isExported(node) || node.name === undefined) continue
    const heritage = node.heritageClauses?.find((clause) => clause.token === ts.SyntaxKind.ExtendsKeyword)
    if (heritage === undefined) continue
    const bare = "```ts\nexport declare class " + node.name.text + "\n```"
    const full = "```ts\nexport declare class " + node.name.text + " extends " + heritage.types[0].getText() + "\n```"
    result = result.replace(bare, () => full)
  }
  return result
}

const packageJson = (pkg) => JSON.parse(Fs.readFileSync(Path.join(root, "packages", pkg, "package.json"), "utf8"))
const packageName = (pkg) => packageJson(pkg).name

/** How a module is imported; a package without `exports` (the CLI) is not imported at all. */
const moduleTitle = (pkg, module) =>
  packageJson(pkg).exports === undefined
    ? `${packageName(pkg)}: src/${module}.ts`
    : module === "index"
    ? packageName(pkg)
    : `${packageName(pkg)}/${module}`

for (const pkg of packages) {
  const modules = Path.join(root, "packages", pkg, "docs", "modules")
  const target = Path.join(out, pkg)
  Fs.rmSync(target, { recursive: true, force: true })
  Fs.mkdirSync(target, { recursive: true })
  for (const file of Fs.readdirSync(modules).filter((f) => f.endsWith(".ts.md"))) {
    const module = file.slice(0, -".ts.md".length)
    const text = Fs.readFileSync(Path.join(modules, file), "utf8")
    // docgen writes Jekyll front matter for a GitHub Pages site; this tree is read as plain
    // Markdown, so the page starts at the module's overview, under a title of its own.
    const body = withHeritage(text.slice(text.search(/^## /m)), Path.join(root, "packages", pkg, "src", `${module}.ts`))
    Fs.writeFileSync(
      Path.join(target, `${module}.md`),
      `# ${moduleTitle(pkg, module)}\n\n[API reference](../README.md)\n\n${body}`
    )
  }
  Fs.rmSync(Path.join(root, "packages", pkg, "docs"), { recursive: true, force: true })
}

// The index covers every package built so far (`pnpm docgen core` keeps the others' pages).
const index = [
  "# API reference",
  "",
  "Generated by `pnpm docgen` (`scripts/docs.mjs`, `@effect/docgen`) from the doc comments of each",
  "package's public modules: edit the sources, not these files.",
  ""
]
for (const pkg of allPackages.filter((pkg) => Fs.existsSync(Path.join(out, pkg)))) {
  index.push(`## ${packageName(pkg)}`, "")
  if (Fs.existsSync(Path.join(out, pkg, "index.md"))) {
    index.push(`- [${moduleTitle(pkg, "index")}](${pkg}/index.md): the modules, as namespaces`)
  }
  for (const file of Fs.readdirSync(Path.join(out, pkg)).filter((f) => f !== "index.md").sort()) {
    const page = Fs.readFileSync(Path.join(out, pkg, file), "utf8")
    // The first sentence of the module's description.
    const overview = page.slice(page.search(/^## .* overview$/m)).split("\n\n")[1] ?? ""
    const summary = overview.startsWith("Added in") ? "" : `: ${overview.replace(/\s+/g, " ").replace(/\.\s.*$/, ".")}`
    index.push(`- [${moduleTitle(pkg, file.slice(0, -".md".length))}](${pkg}/${file})${summary}`)
  }
  index.push("")
}
Fs.writeFileSync(Path.join(out, "README.md"), index.join("\n"))
console.log(`docs: API reference written to ${Path.relative(root, out)}/README.md`)
