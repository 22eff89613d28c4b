#!/usr/bin/env node
/**
 * The installed `amp-token` executable, built to CommonJS as `dist/amp-token.cjs`: it runs the
 * bundled CLI, `dist/cli.cjs` beside it, from the code V8 compiled for it on an earlier run.
 *
 * Why: a CLI called from scripts (`$(amp-token token)`) pays its start-up on every call, and a
 * third of that start-up was V8 compiling the 700 KB bundle (effect, @effect/cli, the
 * platform). Node 20 has no compile cache for modules (`module.enableCompileCache` came with
 * 22.1), so the launcher keeps one itself: it compiles the bundle with `vm.Script`, handing V8
 * the code cache of an earlier run, and when there was none (or V8 rejected it) it writes one
 * as the process exits — after the run, so that it holds the functions the run compiled too.
 * The same mechanism on every Node version, tested on each line CI runs (20, 22 and 24).
 *
 * The cache, and what keeps it safe:
 * - one file per bundle content and runtime, in `$XDG_CACHE_HOME/amp-token` (else
 *   `~/.cache/amp-token`; `%LOCALAPPDATA%\amp-token` on Windows), about 1.7 MB; none when
 *   there is no such place. Its name holds a hash of the bundle's bytes: V8 itself compares
 *   only the source's length, so an edited bundle must never meet an older cache. It holds
 *   too what else V8 checks a cache against — the Node and V8 versions, the architecture, and
 *   the options the process was started with (`node --jitless ...`, `NODE_OPTIONS`), which set
 *   V8's flags — so that each Node a user switches between keeps a cache of its own instead of
 *   rejecting and rewriting the other's; a cache V8 rejects all the same costs one slower start.
 *   Writing a cache removes those of other bundles (an upgrade leaves no litter);
 * - the directory is created `0700` and the file `0600`; on POSIX a directory or file that is
 *   not the user's own, or that others can write to, is not read (a code cache is code);
 * - written to a temporary file and renamed: a concurrent run reads a whole file or none;
 * - `NODE_DISABLE_COMPILE_CACHE=1` (Node's own switch) turns it off. Failing to read or write
 *   it only means compiling as without it: the launcher never fails because of its cache.
 *
 * Plain Node, not Effect, on purpose: it runs before anything is loaded, and must stay small.
 *
 * @since 0.1.0
 */
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Vm from "node:vm"

/** The bundle this launcher runs: `cli.cjs`, beside the built launcher. */
const bundle = Path.join(__dirname, "cli.cjs")

/** Where the code caches go, or `undefined` when caching is off or there is no place for it. */
const cacheDirectory = (): string | undefined => {
  const env = process.env
  if ((env["NODE_DISABLE_COMPILE_CACHE"] ?? "") !== "") return undefined
  // A relative XDG_CACHE_HOME is invalid, and ignored, as the XDG specification says.
  const xdg = env["XDG_CACHE_HOME"] ?? ""
  const base = process.platform === "win32"
    ? env["LOCALAPPDATA"] ?? ""
    : Path.isAbsolute(xdg)
    ? xdg
    : Path.join(Os.homedir(), ".cache")
  return Path.isAbsolute(base) ? Path.join(base, "amp-token") : undefined
}

/** On POSIX: the user's own, and nobody else can write to it. */
const isPrivate = (stats: Fs.Stats): boolean =>
  process.platform === "win32" || (stats.uid === process.getuid?.() && (stats.mode & 0o022) === 0)

/** Creates the directory if missing; whether it is safe to use. */
const openDirectory = (directory: string): boolean => {
  Fs.mkdirSync(directory, { recursive: true, mode: 0o700 })
  const stats = Fs.statSync(directory)
  return stats.isDirectory() && isPrivate(stats)
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

/** Writes `data` as `name` in `directory` (whole or not at all); removes other bundles' caches. */
const writeCache = (directory: string, name: string, data: Buffer): void => {
  const file = Path.join(directory, name)
  const temporary = `${file}.${process.pid}.tmp`
  Fs.writeFileSync(temporary, data, { mode: 0o600, flag: "wx" })
  Fs.renameSync(temporary, file)
  const bundlePart = name.slice(0, name.indexOf("-", "cli-".length) + 1)
  for (const other of Fs.readdirSync(directory)) {
    if (other.startsWith("cli-") && !other.startsWith(bundlePart)) {
      Fs.rmSync(Path.join(directory, other), { force: true })
    }
  }
}

/** `f()`, or `undefined` when it throws: the cache is only ever an optimisation. */
const attempt = <A>(f: () => A): A | undefined => {
  try {
    return f()
  } catch {
    return undefined
  }
}

const source = Fs.readFileSync(bundle)
const directory = cacheDirectory()
const usable = directory !== undefined && attempt(() => openDirectory(directory)) === true
const hash = (data: string | Buffer, length: number) => createHash("sha256").update(data).digest("hex").slice(0, length)
// The options that can change V8's flags, hence its code: `-<hash>`, or nothing without any.
const options = [...process.execArgv, process.env["NODE_OPTIONS"] ?? ""].join("\0")
// `cli-<bundle hash>-<Node version>-<V8 version>-<arch>[-<options hash>].cache`
const name = `cli-${hash(source, 32)}-${process.version}-${process.versions.v8}-${process.arch}${
  options === "" ? "" : `-${hash(options, 12)}`
}.cache`
const cachedData = usable ? attempt(() => readCache(Path.join(directory, name))) : undefined

// The bundle is CommonJS: run it as Node's loader would, in a function of the module's names.
const script = new Vm.Script(
  `(function (exports, require, module, __filename, __dirname) {${source.toString("utf8")}\n})`,
  cachedData === undefined ? { filename: bundle } : { filename: bundle, cachedData }
)
if (usable && (cachedData === undefined || script.cachedDataRejected === true)) {
  // Whatever the exit: the CLI ends with `process.exit(code)`.
  process.once("exit", () => attempt(() => writeCache(directory, name, script.createCachedData())))
}
const module_ = { exports: {} }
script.runInThisContext()(module_.exports, createRequire(bundle), module_, bundle, Path.dirname(bundle))
