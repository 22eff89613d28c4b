#!/usr/bin/env node
/**
 * The installed `amp-token` (`dist/amp-token.cjs`): runs the bundle `cli.cjs` beside it from the
 * code V8 compiled on an earlier run (compiling was a third of every start, and Node 20 has no
 * compile cache for modules); writes that cache at exit, with what the run compiled, when there
 * was none or V8 rejected it. Its name holds what V8 does not check: the bundle's hash, Node and
 * V8 versions, the architecture, a hash of the V8-flag options. A code cache is code: `0700`
 * and `0600`, renamed into place, read only if the user's own and writable by nobody else. A
 * failure only means compiling without it. Plain Node: it runs before anything is loaded.
 *
 * @since 0.1.0
 */
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Vm from "node:vm"

const bundle = Path.join(__dirname, "cli.cjs")

/** On POSIX: the user's own, and nobody else can write to it. */
const isPrivate = (stats: Fs.Stats): boolean =>
  process.platform === "win32" || (stats.uid === process.getuid?.() && (stats.mode & 0o022) === 0)

/** The caches' directory, created private if missing; `undefined` if off or not safe to use. */
const cacheDirectory = (): string | undefined => {
  const env = process.env
  if ((env["NODE_DISABLE_COMPILE_CACHE"] ?? "") !== "") return undefined
  // A relative XDG_CACHE_HOME is ignored, as the XDG specification says.
  const xdg = env["XDG_CACHE_HOME"] ?? ""
  const base = process.platform === "win32"
    ? env["LOCALAPPDATA"] ?? ""
    : Path.isAbsolute(xdg)
    ? xdg
    : Path.join(Os.homedir(), ".cache")
  if (!Path.isAbsolute(base)) return undefined
  const directory = Path.join(base, "amp-token")
  Fs.mkdirSync(directory, { recursive: true, mode: 0o700 })
  const stats = Fs.statSync(directory)
  return stats.isDirectory() && isPrivate(stats) ? directory : undefined
}

/** The cache file's bytes, when it exists and is safe to use. */
const readCache = (file: string): Buffer | undefined => {
  const fd = Fs.openSync(file, "r")
  try {
    const stats = Fs.fstatSync(fd)
    return stats.isFile() && isPrivate(stats) ? Fs.readFileSync(fd) : undefined
  } finally {
    Fs.closeSync(fd)
  }
}

/** Writes `data` as `name` in `directory`, whole; removes other bundles' caches (no litter). */
const writeCache = (directory: string, name: string, data: Buffer): void => {
  const file = Path.join(directory, name)
  const temporary = `${file}.${process.pid}.tmp`
  Fs.writeFileSync(temporary, data, { mode: 0o600, flag: "wx" })
  Fs.renameSync(temporary, file)
  const bundlePart = name.slice(0, name.indexOf("-", "cli-".length) + 1)
  const others = Fs.readdirSync(directory).filter((other) => other.startsWith("cli-") && !other.startsWith(bundlePart))
  for (const other of others) Fs.rmSync(Path.join(directory, other), { force: true })
}

/** `f()`, or `undefined` when it throws: the cache is only an optimisation. */
const attempt = <A>(f: () => A): A | undefined => {
  try {
    return f()
  } catch {
    return undefined
  }
}

const source = Fs.readFileSync(bundle)
const directory = attempt(cacheDirectory)
const hash = (data: string | Buffer, length: number) => createHash("sha256").update(data).digest("hex").slice(0, length)
// The options that can change V8's flags, hence its code: `-<hash>`, or nothing without any.
const options = [...process.execArgv, process.env["NODE_OPTIONS"] ?? ""].join("\0")
const name = `cli-${hash(source, 32)}-${process.version}-${process.versions.v8}-${process.arch}${
  options === "" ? "" : `-${hash(options, 12)}`
}.cache`
const cachedData = directory === undefined ? undefined : attempt(() => readCache(Path.join(directory, name)))

// The bundle is CommonJS: run it as Node's loader would, in a function of the module's names.
const script = new Vm.Script(
  `(function (exports, require, module, __filename, __dirname) {${source.toString("utf8")}\n})`,
  cachedData === undefined ? { filename: bundle } : { filename: bundle, cachedData }
)
if (directory !== undefined && (cachedData === undefined || script.cachedDataRejected === true)) {
  // Whatever the exit: the CLI ends with `process.exit(code)`.
  process.once("exit", () => attempt(() => writeCache(directory, name, script.createCachedData())))
}
const module_ = { exports: {} }
script.runInThisContext()(module_.exports, createRequire(bundle), module_, bundle, Path.dirname(bundle))
