/**
 * The file store on a real disk: bytes and modes of what it writes, what it does with bad,
 * loose and hostile files, its lock, failing file systems, and real processes killed mid-write
 * or racing for one login against the mock server.
 */
import { AuthApi, TokenData, TokenMetrics, TokenService, TokenStore } from "@amp-effect/core"
import { SpanCapture, TokenStoreContract } from "@amp-effect/core/testing"
import { FileSystem } from "@effect/platform"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { type PlatformError, SystemError, type SystemErrorReason } from "@effect/platform/Error"
import { describe, expect, it } from "@effect/vitest"
import {
  DateTime,
  Deferred,
  Duration,
  Effect,
  Fiber,
  Layer,
  Logger,
  LogLevel,
  Metric,
  Option,
  Redacted,
  TestClock
} from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs/promises"
import { createRequire } from "node:module"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll } from "vitest"
import { MockAmpServer } from "../src/MockAmpServer.js"
import * as NodeTokenStore from "../src/NodeTokenStore.js"
import { writerToken } from "./fixtures/shared.js"
import type { Command as ClientCommand } from "./fixtures/tokenClient.js"

const { plain, sampleToken, storeContract } = TokenStoreContract
const { withSpans } = SpanCapture

// -----------------------------------------------------------------------------
// Helpers
// -----------------------------------------------------------------------------

/** A fresh directory for one test, removed with its scope. */
const tempDir = Effect.acquireRelease(
  Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "amp-token-file-"))),
  (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))
)

const tokenPathIn = (dir: string) => Path.join(dir, "token.json")

/** Log lines at warning level and above, captured instead of printed. */
const captureWarnings = () => {
  const warnings: Array<string> = []
  const logger = Logger.make(({ logLevel, message }) => {
    if (LogLevel.greaterThanEqual(logLevel, LogLevel.Warning)) {
      warnings.push((Array.isArray(message) ? message : [message]).map(String).join(" "))
    }
  })
  return { warnings, layer: Logger.replace(Logger.defaultLogger, logger) }
}

const nodeFs = Layer.merge(NodeFileSystem.layer, NodePath.layer)

/** Runs `body` with the Node file store at `path`. */
const withStore = <A, E>(
  path: string,
  body: (store: TokenStore.TokenStore["Type"]) => Effect.Effect<A, E>,
  options?: TokenStore.FileStoreOptions
) => Effect.flatMap(TokenStore.TokenStore, body).pipe(Effect.provide(NodeTokenStore.layer(path, options)))

const systemError = (method: string, path: string, reason: SystemErrorReason, description: string): PlatformError =>
  new SystemError({ reason, module: "FileSystem", method, pathOrDescriptor: path, description })

type Overrides = (fs: FileSystem.FileSystem) => Partial<FileSystem.FileSystem>

/** Node's file system with some methods replaced: failing the way a real one would, or recording calls. */
const wrappedFs = (overrides: Overrides) =>
  Layer.effect(FileSystem.FileSystem, Effect.map(FileSystem.FileSystem, (fs) => ({ ...fs, ...overrides(fs) }))).pipe(
    Layer.provide(NodeFileSystem.layer)
  )

/** An open file with some of its members replaced (`sync` and others are getters: no `Object.assign`). */
const wrappedFile = (file: FileSystem.File, members: Partial<FileSystem.File>): FileSystem.File =>
  Object.create(file, Object.fromEntries(Object.entries(members).map(([key, value]) => [key, { value }])))

/** The file store at `path` over `wrappedFs(overrides)`, with Node's options. */
const storeOver = (path: string, overrides: Overrides, options?: TokenStore.FileStoreOptions) =>
  TokenStore.layerFile(path, { ...NodeTokenStore.defaultOptions, ...options }).pipe(
    Layer.provide(Layer.merge(wrappedFs(overrides), NodePath.layer))
  )

const modeOf = (path: string) => Effect.promise(() => Fs.lstat(path).then((info) => info.mode & 0o777))
const readText = (path: string) => Effect.promise(() => Fs.readFile(path, "utf8"))
const exists = (path: string) => Effect.promise(() => Fs.lstat(path).then(() => true, () => false))
const listDir = (dir: string) => Effect.promise(() => Fs.readdir(dir))
const writeRaw = (path: string, text: string, mode = 0o600) =>
  Effect.promise(async () => {
    await Fs.writeFile(path, text, { mode })
    await Fs.chmod(path, mode) // writeFile's mode is filtered by the umask
  })

/** The id of a process that has just exited: nobody runs under it. */
const deadPid = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" })
    child.on("exit", () => resolve(child.pid!))
  })
)

const rustFile = JSON.stringify(
  {
    token: "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJydXN0In0.c2ln",
    expires_at: "2024-01-02T12:00:00.123456789Z",
    obtained_at: "2024-01-01T12:00:00.123456789Z"
  },
  null,
  2
)

// -----------------------------------------------------------------------------
// The contract, on a real disk
// -----------------------------------------------------------------------------

storeContract(
  "layerFile (Node file system, a temp dir per test)",
  Layer.unwrapScoped(Effect.map(tempDir, (dir) => NodeTokenStore.layer(tokenPathIn(dir))))
)

// -----------------------------------------------------------------------------
// The file itself
// -----------------------------------------------------------------------------

describe("TokenStore.layerFile: the file", () => {
  it.scoped("writes the Rust client's JSON (token, expires_at, obtained_at and nothing else), mode 0600", () =>
    Effect.gen(function*() {
      const path = tokenPathIn(yield* tempDir)
      yield* withStore(path, (store) => store.save(sampleToken("eyJ.abc.def")))
      const json = JSON.parse(yield* readText(path))
      expect(Object.keys(json).sort()).toEqual(["expires_at", "obtained_at", "token"])
      expect(json).toEqual({
        token: "eyJ.abc.def",
        expires_at: "2024-01-02T12:00:00.123Z",
        obtained_at: "2024-01-01T12:00:00.123Z"
      })
      expect(yield* modeOf(path)).toBe(0o600)
      expect(yield* listDir(Path.dirname(path))).toEqual(["token.json"])
    }))

  it.scoped("loads a file written by the Rust client (nine fractional digits)", () =>
    Effect.gen(function*() {
      const path = tokenPathIn(yield* tempDir)
      yield* writeRaw(path, rustFile)
      const loaded = yield* withStore(path, (store) => store.load)
      expect(Option.map(loaded, plain)).toEqual(Option.some({
        token: "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJydXN0In0.c2ln",
        expiresAt: Date.UTC(2024, 0, 2, 12, 0, 0, 123),
        obtainedAt: Date.UTC(2024, 0, 1, 12, 0, 0, 123)
      }))
    }))

  const badFiles = [
    { name: "a corrupt file (cut off mid-write)", text: "{\"token\": \"eyJ0eXAi", reason: "invalid content" },
    { name: "a foreign JSON file", text: JSON.stringify({ access_token: "x", expires_in: 3600 }), reason: "missing" },
    { name: "a token that would inject a header", text: rustFile.replace("c2ln", "c2ln\\r\\nX-Evil: 1"), reason: "" }
  ]
  for (const bad of badFiles) {
    it.scoped(`${bad.name} loads as None, is moved aside (0600, not deleted) with a warning; the next save is good`, () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const path = tokenPathIn(dir)
        yield* writeRaw(path, bad.text, 0o644)
        const { warnings, layer } = captureWarnings()
        const loaded = yield* withStore(path, (store) => store.load).pipe(Effect.provide(layer))
        expect(Option.isNone(loaded)).toBe(true)

        const aside = (yield* listDir(dir)).filter((name) => name.startsWith("token.json.corrupt-"))
        expect(aside).toHaveLength(1)
        expect(aside[0]).toMatch(/^token\.json\.corrupt-\d{8}T\d{9}Z-[0-9a-z]+$/)
        expect(yield* readText(Path.join(dir, aside[0]!))).toBe(bad.text)
        expect(yield* modeOf(Path.join(dir, aside[0]!))).toBe(0o600)
        expect(yield* exists(path)).toBe(false)
        expect(warnings.some((line) => line.includes("not a valid token file") && line.includes(aside[0]!))).toBe(true)
        expect(warnings.some((line) => line.includes(bad.reason))).toBe(true)
        // The warning never quotes the file's content.
        expect(warnings.some((line) => line.includes("eyJ0eXAi") || line.includes("access_token"))).toBe(false)

        yield* withStore(path, (store) => store.save(sampleToken("fresh")))
        const reloaded = yield* withStore(path, (store) => store.load)
        expect(Option.map(reloaded, (data) => Redacted.value(data.token))).toEqual(Option.some("fresh"))
      }))
  }

  it.scoped("keeps only the newest keepCorrupt files moved aside", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = tokenPathIn(dir)
      for (let i = 0; i < 5; i++) {
        yield* writeRaw(path, `not json ${i}`)
        yield* TestClock.setTime(Date.UTC(2024, 0, 1) + i * 1000) // the time in the names
        yield* withStore(path, (store) => store.load, { keepCorrupt: 2 })
      }
      const aside = (yield* listDir(dir)).filter((name) => name.startsWith("token.json.corrupt-")).sort()
      expect(aside).toHaveLength(2)
      expect(yield* readText(Path.join(dir, aside[0]!))).toBe("not json 3")
      expect(yield* readText(Path.join(dir, aside[1]!))).toBe("not json 4")
    }))

  it.scoped("a file far too large to be a token file is moved aside unread", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = tokenPathIn(dir)
      yield* writeRaw(path, "x".repeat(200_000))
      const { warnings, layer } = captureWarnings()
      expect(Option.isNone(yield* withStore(path, (store) => store.load).pipe(Effect.provide(layer)))).toBe(true)
      expect((yield* listDir(dir)).filter((name) => name.startsWith("token.json.corrupt-"))).toHaveLength(1)
      expect(warnings.some((line) => line.includes("larger than a token file"))).toBe(true)
    }))

  it.scoped("a file readable by others (0644) is tightened to 0600 with a warning, and loads", () =>
    Effect.gen(function*() {
      const path = tokenPathIn(yield* tempDir)
      yield* writeRaw(path, rustFile, 0o644)
      const { warnings, layer } = captureWarnings()
      const loaded = yield* withStore(path, (store) => store.load).pipe(Effect.provide(layer))
      expect(Option.isSome(loaded)).toBe(true)
      expect(yield* modeOf(path)).toBe(0o600)
      expect(warnings.some((line) => line.includes("mode 644") && line.includes("changed it to 600"))).toBe(true)
    }))

  it.scoped("checkPermissions defaults to true in the core store, and Node sets it off only on Windows", () =>
    Effect.gen(function*() {
      const path = tokenPathIn(yield* tempDir)
      yield* writeRaw(path, rustFile, 0o640)
      const { warnings, layer } = captureWarnings()
      yield* Effect.flatMap(TokenStore.TokenStore, (store) => store.load).pipe(
        Effect.provide(TokenStore.layerFile(path)),
        Effect.provide(nodeFs),
        Effect.provide(layer)
      )
      expect(yield* modeOf(path)).toBe(0o600)
      expect(warnings.some((line) => line.includes("mode 640") && line.includes("changed it to 600"))).toBe(true)
      expect(NodeTokenStore.defaultOptions.checkPermissions).toBe(process.platform !== "win32")
    }))

  it.scoped("checkPermissions: false (Windows, where modes mean nothing): no mode check, no warning, the file loads", () =>
    Effect.gen(function*() {
      const path = tokenPathIn(yield* tempDir)
      yield* writeRaw(path, rustFile, 0o666)
      const { warnings, layer } = captureWarnings()
      for (let load = 0; load < 2; load++) {
        const loaded = yield* withStore(path, (store) => store.load, { checkPermissions: false }).pipe(
          Effect.provide(layer)
        )
        expect(Option.isSome(loaded)).toBe(true)
      }
      expect(yield* modeOf(path)).toBe(0o666)
      expect(warnings).toEqual([])
    }))

  it.scoped("save into a missing directory creates it (and its missing parents) with mode 0700", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = Path.join(dir, "a", "b", "token.json")
      yield* withStore(path, (store) => store.save(sampleToken("deep")))
      expect(yield* modeOf(Path.join(dir, "a"))).toBe(0o700)
      expect(yield* modeOf(Path.join(dir, "a", "b"))).toBe(0o700)
      expect(yield* modeOf(path)).toBe(0o600)
    }))

  /** `token.json` in `dir` as a symbolic link to `victim.txt`, a file of the user's (0644). */
  const linkToVictim = (dir: string) =>
    Effect.gen(function*() {
      const path = tokenPathIn(dir)
      const victim = Path.join(dir, "victim.txt")
      yield* writeRaw(victim, "precious\n", 0o644)
      yield* Effect.promise(() => Fs.symlink(victim, path))
      return { path, victim }
    })

  const expectUntouched = (victim: string) =>
    Effect.gen(function*() {
      expect(yield* readText(victim)).toBe("precious\n")
      expect(yield* modeOf(victim)).toBe(0o644)
    })

  it.scoped("save replaces a symbolic link at the token path, never writes through it", () =>
    Effect.gen(function*() {
      const { path, victim } = yield* linkToVictim(yield* tempDir)
      // No load first: save itself meets the link.
      yield* withStore(path, (store) => store.save(sampleToken("mine")))
      yield* expectUntouched(victim)
      const info = yield* Effect.promise(() => Fs.lstat(path))
      expect(info.isFile() && !info.isSymbolicLink()).toBe(true)
      expect(yield* modeOf(path)).toBe(0o600)
      expect(JSON.parse(yield* readText(path)).token).toBe("mine")
    }))

  it.scoped("load reads through a symbolic link, changes nothing there, and says the next save replaces it", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = tokenPathIn(dir)
      const elsewhere = Path.join(dir, "elsewhere.json")
      yield* writeRaw(elsewhere, rustFile, 0o644)
      yield* Effect.promise(() => Fs.symlink(elsewhere, path))
      const { warnings, layer } = captureWarnings()
      const loaded = yield* withStore(path, (store) => store.load).pipe(Effect.provide(layer))
      expect(Option.map(loaded, (data) => Redacted.value(data.token))).toEqual(Option.some(JSON.parse(rustFile).token))
      // No chmod through the link, although the file it points to is readable by others.
      expect(yield* modeOf(elsewhere)).toBe(0o644)
      expect((yield* Effect.promise(() => Fs.lstat(path))).isSymbolicLink()).toBe(true)
      expect(warnings).toEqual([
        `The token file ${path} is a symbolic link to ${elsewhere}; it is read, but never written through: the next save replaces the link with a regular file`
      ])
    }))

  it.scoped("a symbolic link to a file that is not a token file is moved aside as a link; its target is untouched", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const { path, victim } = yield* linkToVictim(dir)
      const { warnings, layer } = captureWarnings()
      expect(Option.isNone(yield* withStore(path, (store) => store.load).pipe(Effect.provide(layer)))).toBe(true)
      const aside = (yield* listDir(dir)).filter((name) => name.startsWith("token.json.corrupt-"))
      expect(aside).toHaveLength(1)
      expect(yield* Effect.promise(() => Fs.readlink(Path.join(dir, aside[0]!)))).toBe(victim)
      yield* expectUntouched(victim)
      expect(warnings.some((line) => line.includes("not a valid token file") && line.includes(aside[0]!))).toBe(true)
    }))

  it.scoped("save flushes the temp file before renaming it over the target, and the directory after", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = tokenPathIn(dir)
      const events: Array<string> = []
      // Names as events: the temp file is `tmp` whatever its random suffix.
      const name = (file: string) => file === dir ? "dir" : Path.basename(file).replace(/^token\.json\.tmp-.*$/, "tmp")
      const recording: Overrides = (fs) => ({
        open: (file, options) =>
          Effect.map(fs.open(file, options), (handle) => {
            events.push(`open ${name(file)} ${options?.flag}`)
            return wrappedFile(handle, {
              sync: Effect.zipRight(Effect.sync(() => events.push(`sync ${name(file)}`)), handle.sync)
            })
          }),
        rename: (from, to) =>
          Effect.zipRight(Effect.sync(() => events.push(`rename ${name(from)} ${name(to)}`)), fs.rename(from, to))
      })
      yield* Effect.flatMap(TokenStore.TokenStore, (store) => store.save(sampleToken("durable"))).pipe(
        Effect.provide(storeOver(path, recording))
      )
      expect(events).toEqual([
        "open tmp wx",
        "sync tmp",
        "rename tmp token.json",
        "open dir r",
        "sync dir"
      ])
      expect(JSON.parse(yield* readText(path)).token).toBe("durable")
    }))

  it.scoped("a dangling symbolic link is not followed when saving", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = tokenPathIn(dir)
      const target = Path.join(dir, "would-be-created.json")
      yield* Effect.promise(() => Fs.symlink(target, path))
      expect(Option.isNone(yield* withStore(path, (store) => store.load))).toBe(true)
      yield* withStore(path, (store) => store.save(sampleToken("mine")))
      expect(yield* exists(target)).toBe(false)
      expect((yield* Effect.promise(() => Fs.lstat(path))).isSymbolicLink()).toBe(false)
    }))

  it.scoped("a directory at the token path fails load with a TokenStoreError instead of hanging or deleting", () =>
    Effect.gen(function*() {
      const path = tokenPathIn(yield* tempDir)
      yield* Effect.promise(() => Fs.mkdir(path))
      const error = yield* Effect.flip(withStore(path, (store) => store.load))
      expect(error._tag).toBe("TokenStoreError")
      expect(error.operation).toBe("load")
      expect(error.message).toContain("not a regular file")
      expect(yield* exists(path)).toBe(true)
    }))

  it.scoped("the next save removes temp files of dead writers, keeps those of live ones and foreign names", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = tokenPathIn(dir)
      const dead = yield* deadPid
      // Names as a writer on this host would make them (same host hash, see tokenFile.ts).
      const tagged = (pid: number, kind = "tmp") =>
        Path.join(dir, `token.json.${kind}-${ownerTagFor(Os.hostname(), pid)}-abc123`)
      const deadTemp = tagged(dead)
      const deadLockAside = tagged(dead, "lock.stale")
      const liveTemp = tagged(process.ppid)
      const oldAnonymous = Path.join(dir, "token.json.tmp-x-old0001")
      const newAnonymous = Path.join(dir, "token.json.tmp-x-new0001")
      const foreign = Path.join(dir, "token.json.tmp-my-notes")
      const oldClaim = Path.join(dir, "token.json.lock.claim-abc123")
      const newClaim = Path.join(dir, "token.json.lock.claim-def456")
      for (const file of [deadTemp, deadLockAside, liveTemp, oldAnonymous, newAnonymous, foreign, oldClaim, newClaim]) {
        yield* writeRaw(file, "{\"token\":")
      }
      const twoHoursAgo = new Date(Date.now() - 2 * 3600_000)
      yield* Effect.promise(() => Fs.utimes(oldAnonymous, twoHoursAgo, twoHoursAgo))
      yield* Effect.promise(() => Fs.utimes(oldClaim, twoHoursAgo, twoHoursAgo))

      yield* withStore(path, (store) => store.save(sampleToken("after")))
      const left = (yield* listDir(dir)).sort()
      expect(left).toEqual(
        [path, liveTemp, newAnonymous, foreign, newClaim].map((file) => Path.basename(file)).sort()
      )
    }))
})

/** The owner tag of leftovers, as `tokenFile.ts` writes it (FNV-1a of the host name). */
const ownerTagFor = (host: string, pid: number) => {
  let hash = 0x811c9dc5
  for (let i = 0; i < host.length; i++) {
    hash ^= host.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return `h${hash.toString(16).padStart(8, "0")}-p${pid}`
}

// -----------------------------------------------------------------------------
// The lock, within one process
// -----------------------------------------------------------------------------

const lockRecord = (fields: { pid: number | null; host: string | null; leaseMillisFromNow: number }) =>
  JSON.stringify({
    pid: fields.pid,
    host: fields.host,
    nonce: "someoneelse0001",
    acquired_at: new Date(Date.now() - 1000).toISOString(),
    lease_until: new Date(Date.now() + fields.leaseMillisFromNow).toISOString()
  }) + "\n"

describe("TokenStore.layerFile: the lock", () => {
  it.scopedLive("withLock holds token.json.lock (0600, owner record) and removes it afterwards", () =>
    Effect.gen(function*() {
      const path = tokenPathIn(yield* tempDir)
      const lockPath = `${path}.lock`
      const seen = yield* withStore(path, (store) =>
        store.withLock(Effect.all({
          text: readText(lockPath),
          mode: modeOf(lockPath),
          at: Effect.sync(() => Date.now())
        })), { lockLease: Duration.seconds(5) })
      const record = JSON.parse(seen.text)
      expect(seen.mode).toBe(0o600)
      expect(Object.keys(record).sort()).toEqual(["acquired_at", "host", "lease_until", "nonce", "pid"])
      expect(record.pid).toBe(process.pid)
      expect(record.host).toBe(Os.hostname())
      expect(record.nonce).toMatch(/^[0-9a-z]{10,}$/)
      // Taken before it was looked at, for exactly one lease.
      expect(Date.parse(record.acquired_at)).toBeLessThanOrEqual(seen.at)
      expect(Date.parse(record.lease_until) - Date.parse(record.acquired_at)).toBe(5000)
      expect(yield* exists(lockPath)).toBe(false)
    }))

  it.scopedLive("waiting for a lock held by a live process ends in a TokenStoreError \"lock\", never a hang", () =>
    Effect.gen(function*() {
      const path = tokenPathIn(yield* tempDir)
      const held = lockRecord({ pid: process.ppid, host: Os.hostname(), leaseMillisFromNow: 3600_000 })
      yield* writeRaw(`${path}.lock`, held)
      let ran = false
      const started = Date.now()
      const error = yield* Effect.flip(withStore(
        path,
        (store) => store.withLock(Effect.sync(() => ran = true)),
        { lockTimeout: Duration.millis(400) }
      ))
      const waited = Date.now() - started
      expect(error._tag).toBe("TokenStoreError")
      expect(error.operation).toBe("lock")
      expect(error.message).toContain(`process ${process.ppid}`)
      expect(ran).toBe(false)
      expect(waited).toBeGreaterThanOrEqual(350)
      expect(waited).toBeLessThan(20_000) // no hang (the bound is loose: the machine may be busy)
      expect(yield* readText(`${path}.lock`)).toBe(held)
    }))

  it.scopedLive("a wait for another holder is one TokenStore.lockWait span and one lock_waits count", () =>
    Effect.gen(function*() {
      const path = tokenPathIn(yield* tempDir)
      const before = (yield* Metric.value(TokenMetrics.lockWaits)).count
      // The first store holds the lock until the second has found it taken at least once.
      const locked = yield* Deferred.make<void>()
      const refused = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(withStore(
        path,
        (store) => store.withLock(Effect.zipRight(Deferred.succeed(locked, undefined), Deferred.await(refused))),
        { lockLease: Duration.seconds(60) }
      ))
      yield* Deferred.await(locked)
      const lockPath = `${path}.lock`
      const signalRefusal: Overrides = (fs) => ({
        open: (file, options) =>
          fs.open(file, options).pipe(
            Effect.tapError((error) =>
              file === lockPath && error._tag === "SystemError" && error.reason === "AlreadyExists"
                ? Deferred.succeed(refused, undefined)
                : Effect.void
            )
          )
      })
      const { spans } = yield* withSpans(
        Effect.flatMap(TokenStore.TokenStore, (store) => store.withLock(Effect.void)).pipe(
          Effect.provide(storeOver(path, signalRefusal))
        )
      )
      yield* Fiber.join(holder)
      const waits = spans.filter((span) => span.name === "TokenStore.lockWait")
      expect(waits).toHaveLength(1)
      expect(waits[0]!.attributes.get("waited")).toBe(true)
      expect(waits[0]!.attributes.get("attempts")).toBeGreaterThan(1)
      expect((yield* Metric.value(TokenMetrics.lockWaits)).count - before).toBe(1)
    }))

  it.scopedLive("a lock whose owner (same host) is dead is taken over at once, with a warning", () =>
    Effect.gen(function*() {
      const path = tokenPathIn(yield* tempDir)
      yield* writeRaw(
        `${path}.lock`,
        lockRecord({ pid: yield* deadPid, host: Os.hostname(), leaseMillisFromNow: 3600_000 })
      )
      const { warnings, layer } = captureWarnings()
      // Its lease runs an hour more: only the liveness check can free it within the wait.
      expect(
        yield* withStore(path, (store) => store.withLock(Effect.succeed("ran")), { lockTimeout: "20 seconds" }).pipe(
          Effect.provide(layer)
        )
      ).toBe("ran")
      expect(warnings.some((line) => line.includes("Took over") && line.includes("no longer running"))).toBe(true)
      expect(yield* listDir(Path.dirname(path))).toEqual([])
    }))

  it.scopedLive("a lock whose lease ran out is taken over, whatever its host", () =>
    Effect.gen(function*() {
      const path = tokenPathIn(yield* tempDir)
      yield* writeRaw(`${path}.lock`, lockRecord({ pid: 4242, host: "elsewhere.example", leaseMillisFromNow: -1 }))
      const { warnings, layer } = captureWarnings()
      expect(yield* withStore(path, (store) => store.withLock(Effect.succeed("ran"))).pipe(Effect.provide(layer)))
        .toBe("ran")
      expect(warnings.some((line) => line.includes("lease ran out"))).toBe(true)
    }))

  it.scoped("a lock is taken over when its lease runs out, not a millisecond before (TestClock)", () =>
    Effect.gen(function*() {
      const path = tokenPathIn(yield* tempDir)
      const leaseUntil = Date.UTC(2024, 0, 1, 12)
      // Another host: no liveness check there, only the lease can free it.
      const held = JSON.stringify({
        pid: 4242,
        host: "elsewhere.example",
        nonce: "someoneelse0001",
        acquired_at: new Date(leaseUntil - 60_000).toISOString(),
        lease_until: new Date(leaseUntil).toISOString()
      }) + "\n"
      yield* writeRaw(`${path}.lock`, held)
      // A zero timeout: one attempt, no wait, so the test clock never has to move by itself.
      const lockOnce = withStore(path, (store) => store.withLock(Effect.succeed("ran")), { lockTimeout: 0 })
      yield* TestClock.setTime(leaseUntil - 1)
      expect((yield* Effect.flip(lockOnce)).operation).toBe("lock")
      expect(yield* readText(`${path}.lock`)).toBe(held)
      yield* TestClock.setTime(leaseUntil)
      const { warnings, layer } = captureWarnings()
      expect(yield* lockOnce.pipe(Effect.provide(layer))).toBe("ran")
      expect(warnings.some((line) => line.includes("Took over") && line.includes("its lease ran out"))).toBe(true)
    }))

  it.scopedLive("a lock of another host within its lease is not taken over (no liveness check there)", () =>
    Effect.gen(function*() {
      const path = tokenPathIn(yield* tempDir)
      const held = lockRecord({ pid: yield* deadPid, host: "elsewhere.example", leaseMillisFromNow: 3600_000 })
      yield* writeRaw(`${path}.lock`, held)
      const error = yield* Effect.flip(
        withStore(path, (store) => store.withLock(Effect.void), { lockTimeout: Duration.millis(300) })
      )
      expect(error.operation).toBe("lock")
      expect(yield* readText(`${path}.lock`)).toBe(held)
    }))

  it.scopedLive("without a liveness check, a dead owner's lock is freed only by its lease", () =>
    Effect.gen(function*() {
      const path = tokenPathIn(yield* tempDir)
      yield* writeRaw(
        `${path}.lock`,
        lockRecord({ pid: yield* deadPid, host: Os.hostname(), leaseMillisFromNow: 3600_000 })
      )
      const error = yield* Effect.flip(
        Effect.flatMap(TokenStore.TokenStore, (store) => store.withLock(Effect.void)).pipe(
          Effect.provide(TokenStore.layerFile(path, { lockTimeout: Duration.millis(300) })),
          Effect.provide(nodeFs)
        )
      )
      expect(error.operation).toBe("lock")
    }))

  it.scopedLive("an unreadable lock file is taken over only once it is older than the lease", () =>
    Effect.gen(function*() {
      const path = tokenPathIn(yield* tempDir)
      const lockPath = `${path}.lock`
      yield* writeRaw(lockPath, "")
      const fresh = yield* Effect.flip(withStore(
        path,
        (store) => store.withLock(Effect.void),
        { lockLease: Duration.seconds(10), lockTimeout: Duration.millis(300) }
      ))
      expect(fresh.message).toContain("unreadable lock file")
      const old = new Date(Date.now() - 60_000)
      yield* Effect.promise(() => Fs.utimes(lockPath, old, old))
      expect(
        yield* withStore(path, (store) => store.withLock(Effect.succeed("ran")), { lockLease: Duration.seconds(10) })
      ).toBe("ran")
    }))

  it.scopedLive("a process releases only the lock it owns", () =>
    Effect.gen(function*() {
      const path = tokenPathIn(yield* tempDir)
      const lockPath = `${path}.lock`
      const other = lockRecord({ pid: process.ppid, host: Os.hostname(), leaseMillisFromNow: 3600_000 })
      const { warnings, layer } = captureWarnings()
      yield* withStore(path, (store) =>
        // Someone took the lock over while we held it (as after our lease ran out).
        store.withLock(Effect.promise(async () => {
          await Fs.writeFile(`${lockPath}.new`, other, { mode: 0o600 })
          await Fs.rename(`${lockPath}.new`, lockPath)
        }))).pipe(Effect.provide(layer))
      expect(yield* readText(lockPath)).toBe(other)
      expect(warnings.some((line) => line.includes("taken over by another process"))).toBe(true)
    }))

  it.scopedLive("16 stores racing for a dead owner's lock: one takeover, one holder at a time", () =>
    Effect.gen(function*() {
      const path = tokenPathIn(yield* tempDir)
      yield* writeRaw(
        `${path}.lock`,
        lockRecord({ pid: yield* deadPid, host: Os.hostname(), leaseMillisFromNow: 3600_000 })
      )
      const { warnings, layer } = captureWarnings()
      let active = 0
      let maxActive = 0
      let done = 0
      const critical = Effect.gen(function*() {
        active++
        maxActive = Math.max(maxActive, active)
        yield* Effect.sleep(Duration.millis(2))
        active--
        done++
      })
      // Separate layers: separate stores, as in separate processes (no shared semaphore).
      yield* Effect.all(
        Array.from({ length: 16 }, () => withStore(path, (store) => store.withLock(critical))),
        { concurrency: "unbounded" }
      ).pipe(Effect.provide(layer))
      expect(done).toBe(16)
      expect(maxActive).toBe(1)
      expect(warnings.filter((line) => line.includes("Took over"))).toHaveLength(1)
      expect(yield* listDir(Path.dirname(path))).toEqual([])
    }))
})

// -----------------------------------------------------------------------------
// Failing file systems: the token is served from memory, a warning is logged, nothing is lost
// -----------------------------------------------------------------------------

const writes = (flag: string | undefined) => flag !== undefined && flag !== "r"

const readOnly: Overrides = (fs) => {
  const erofs = (method: string) => (path: string) =>
    Effect.fail(systemError(method, path, "Unknown", `EROFS: read-only file system, ${method} '${path}'`))
  return {
    open: (path, options) => writes(options?.flag) ? erofs("open")(path) : fs.open(path, options),
    makeDirectory: erofs("makeDirectory"),
    rename: erofs("rename"),
    chmod: erofs("chmod"),
    remove: erofs("remove"),
    link: erofs("link")
  }
}

const fullDisk: Overrides = (fs) => ({
  open: (path, options) =>
    Effect.map(fs.open(path, options), (file) =>
      writes(options?.flag)
        ? wrappedFile(file, {
          writeAll: () =>
            Effect.fail(systemError("writeAll", path, "Unknown", "ENOSPC: no space left on device, write"))
        })
        : file)
})

const unreadable: Overrides = (fs) => ({
  readFileString: (path) =>
    path.endsWith("token.json")
      ? Effect.fail(systemError("readFile", path, "PermissionDenied", `EACCES: permission denied, open '${path}'`))
      : fs.readFileString(path)
})

const noDirectory: Overrides = () => ({
  makeDirectory: (path) =>
    Effect.fail(systemError("makeDirectory", path, "PermissionDenied", `EACCES: permission denied, mkdir '${path}'`))
})

/** A scripted AMP: counts calls, answers `obtained-n` / `refreshed-n` (no JWT: 24 h lifetime). */
const scriptedApi = () => {
  const calls = { obtain: 0, refresh: 0 }
  const layer = Layer.succeed(
    AuthApi.AuthApi,
    AuthApi.AuthApi.of({
      obtain: Effect.sync(() => Redacted.make(`obtained-${++calls.obtain}`)),
      refresh: () => Effect.sync(() => Redacted.make(`refreshed-${++calls.refresh}`))
    })
  )
  return { calls, layer }
}

const serviceOver = (path: string, overrides: Overrides) => {
  const api = scriptedApi()
  const logs = captureWarnings()
  const store = storeOver(path, overrides)
  const service = TokenService.layer().pipe(Layer.provide(Layer.merge(api.layer, store)))
  // The logger must reach the effects that use the service, not only the layer's construction.
  const provide = <A, E>(effect: Effect.Effect<A, E, TokenService.TokenService>) =>
    effect.pipe(Effect.provide(service), Effect.provide(logs.layer))
  return { calls: api.calls, warnings: logs.warnings, provide }
}

/** A valid token file as of TestClock's 0: obtained at 0, expires 24 h later. */
const onDiskToken = TokenData.encodeFile(
  new TokenData.TokenData({
    token: Redacted.make("on-disk"),
    obtainedAt: DateTime.unsafeMake(0),
    expiresAt: DateTime.unsafeMake(24 * 3600_000)
  })
)

describe("TokenStore.layerFile: failing file systems", () => {
  it.scoped("read-only: a renewed token is served from memory, the old file stays intact", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = tokenPathIn(dir)
      yield* writeRaw(path, onDiskToken)
      const { calls, provide, warnings } = serviceOver(path, readOnly)
      yield* Effect.gen(function*() {
        const service = yield* TokenService.TokenService
        expect(Redacted.value(yield* service.getToken)).toBe("on-disk")
        expect(Redacted.value(yield* service.forceRefresh)).toBe("refreshed-1")
        expect(Redacted.value(yield* service.getToken)).toBe("refreshed-1")
      }).pipe(provide)
      expect(calls).toEqual({ obtain: 0, refresh: 1 })
      expect(warnings.some((line) => line.includes("kept in memory only") && line.includes("EROFS"))).toBe(true)
      expect(warnings.some((line) => line.includes("renewing without it"))).toBe(true)
      expect(yield* readText(path)).toBe(onDiskToken)
      expect(yield* listDir(dir)).toEqual(["token.json"])
    }))

  it.scoped("full disk: the new token is served from memory, no half-written file or temp file remains", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = tokenPathIn(dir)
      yield* writeRaw(path, onDiskToken)
      const { calls, provide, warnings } = serviceOver(path, fullDisk)
      yield* Effect.gen(function*() {
        const service = yield* TokenService.TokenService
        expect(Redacted.value(yield* service.obtainToken)).toBe("obtained-1")
        expect(Redacted.value(yield* service.getToken)).toBe("obtained-1")
      }).pipe(provide)
      expect(calls).toEqual({ obtain: 1, refresh: 0 })
      expect(warnings.some((line) => line.includes("kept in memory only") && line.includes("ENOSPC"))).toBe(true)
      expect(yield* readText(path)).toBe(onDiskToken)
      expect(yield* listDir(dir)).toEqual(["token.json"])
    }))

  it.scoped("missing directory that cannot be created: one login, served from memory", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = Path.join(dir, "gone", "token.json")
      const { calls, provide, warnings } = serviceOver(path, noDirectory)
      yield* Effect.gen(function*() {
        const service = yield* TokenService.TokenService
        expect(Redacted.value(yield* service.getToken)).toBe("obtained-1")
        expect(Redacted.value(yield* service.getToken)).toBe("obtained-1")
      }).pipe(provide)
      expect(calls).toEqual({ obtain: 1, refresh: 0 })
      expect(warnings.some((line) => line.includes("kept in memory only") && line.includes("EACCES"))).toBe(true)
      expect(yield* listDir(dir)).toEqual([])
    }))

  it.scoped("unreadable file: the service starts without it, logs in once, and the file is not lost", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = tokenPathIn(dir)
      yield* writeRaw(path, onDiskToken)
      const { calls, provide, warnings } = serviceOver(path, unreadable)
      yield* Effect.gen(function*() {
        const service = yield* TokenService.TokenService
        expect(Redacted.value(yield* service.getToken)).toBe("obtained-1")
        expect(Redacted.value(yield* service.getToken)).toBe("obtained-1")
      }).pipe(provide)
      expect(calls).toEqual({ obtain: 1, refresh: 0 })
      expect(warnings.some((line) => line.includes("Could not load") && line.includes("EACCES"))).toBe(true)
      // Writing still works here, so the new token replaced the old one: nothing was moved aside.
      expect(JSON.parse(yield* readText(path)).token).toBe("obtained-1")
      expect(yield* listDir(dir)).toEqual(["token.json"])
    }))
})

// -----------------------------------------------------------------------------
// Real processes
// -----------------------------------------------------------------------------

const here = Path.dirname(fileURLToPath(import.meta.url))
let bundleDir = ""

// One esbuild bundle per fixture for the whole file: `node bundle.cjs` starts in a fraction of
// the time `tsx` takes, which is what makes hundreds of kill trials affordable. (esbuild is
// reached through tsx, the package that brings it into this workspace.)
beforeAll(async () => {
  const require = createRequire(import.meta.url)
  const esbuild = createRequire(require.resolve("tsx/package.json"))("esbuild") as {
    readonly build: (options: Record<string, unknown>) => Promise<unknown>
  }
  bundleDir = await Fs.mkdtemp(Path.join(Os.tmpdir(), "amp-token-fixtures-"))
  await esbuild.build({
    entryPoints: [Path.join(here, "fixtures", "tokenWriter.ts"), Path.join(here, "fixtures", "tokenClient.ts")],
    bundle: true,
    minify: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    outExtension: { ".js": ".cjs" },
    outdir: bundleDir,
    logLevel: "error"
  })
}, 120_000)

afterAll(async () => {
  if (bundleDir !== "") await Fs.rm(bundleDir, { recursive: true, force: true })
})

interface Child {
  readonly process: ChildProcess
  /** Resolves with the first whole line of stdout that `accept` takes, once it is printed. */
  readonly line: (accept: (line: string) => boolean) => Promise<string>
  /** What the child wrote to stderr so far. */
  readonly stderr: () => string
  readonly exit: Promise<{ readonly code: number | null; readonly stdout: string; readonly stderr: string }>
}

const spawnChild = (fixture: "tokenWriter" | "tokenClient", env: Record<string, string>): Child => {
  const child = spawn(process.execPath, [Path.join(bundleDir, `${fixture}.cjs`)], {
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  let closed = false // exited, and all its output read
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => stdout += chunk)
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => stderr += chunk)
  child.on("close", () => closed = true)
  const exit = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on("close", (code) => resolve({ code, stdout, stderr })) // "close": exited, and all its output read
  )
  const line = (accept: (line: string) => boolean) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const found = stdout.split("\n").slice(0, -1).find(accept)
        if (found !== undefined) {
          stop()
          resolve(found)
        } else if (closed) {
          stop()
          reject(
            new Error(`${fixture} exited (${child.exitCode ?? child.signalCode}) before the line awaited: ${stderr}`)
          )
        }
      }
      const stop = () => {
        child.stdout!.off("data", check)
        child.off("close", check)
      }
      child.stdout!.on("data", check)
      child.on("close", check)
      check()
    })
  return { process: child, line, stderr: () => stderr, exit }
}

/** Starts a fixture; the child is SIGKILLed when the scope closes if it is still running. */
const startChild = (fixture: "tokenWriter" | "tokenClient", env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync(() => spawnChild(fixture, env)),
    (child) =>
      Effect.sync(() =>
        child.process.exitCode === null && child.process.signalCode === null && child.process.kill("SIGKILL")
      )
  )

const ready = (child: Child) => Effect.promise(() => child.line((line) => line === "ready"))

const killAndWait = (child: Child) =>
  Effect.promise(() => {
    child.process.kill("SIGKILL")
    return child.exit
  })

describe("TokenStore.layerFile: writers killed with SIGKILL", () => {
  const lanes = 2
  const trialsPerLane = 25
  // Each writer saves this many files at once, each in a directory of its own, so that one kill
  // cuts that many saves, each at its own point: starting Node is what costs, not the saves.
  const filesPerWriter = 8
  const killedSaves = lanes * trialsPerLane * filesPerWriter

  it.scopedLive(
    `${killedSaves} saves cut by SIGKILL: every file is the old or a newer valid token, never a mix`,
    () =>
      Effect.gen(function*() {
        const stats = { kills: 0, files: 0, valid: 0, withLeftover: 0, pastFirstSave: 0 }
        const lane = Effect.gen(function*() {
          const paths = yield* Effect.all(
            Array.from({ length: filesPerWriter }, () => Effect.map(tempDir, tokenPathIn))
          )
          const last = paths.map(() => -1) // the token number last seen in each file
          for (let trial = 0; trial < trialsPerLane; trial++) {
            const first = last.map((n) => n + 1)
            const writer = yield* startChild("tokenWriter", {
              TOKEN_FILES: JSON.stringify(paths),
              FIRST_TOKENS: JSON.stringify(first),
              UV_THREADPOOL_SIZE: String(filesPerWriter) // one thread per file: no save queues behind another
            })
            yield* ready(writer) // every file has had its first save: it holds token `first[i]`
            // A random point of the save loops that follow (not an ordering: any point will do).
            yield* Effect.sleep(Duration.millis(Math.random() * 15))
            yield* killAndWait(writer)
            stats.kills++

            for (const [i, path] of paths.entries()) {
              stats.files++
              const text = yield* readText(path) // never absent: each file had a complete save
              const n = Number(/^tok-(\d+)-/.exec(JSON.parse(text).token)?.[1])
              expect(text).toBe(TokenData.encodeFile(writerToken(n))) // byte for byte: never a mix
              expect(n).toBeGreaterThanOrEqual(first[i]!) // the writer's first token or a newer one
              if (n > first[i]!) stats.pastFirstSave++
              last[i] = n
              stats.valid++
              expect(yield* modeOf(path)).toBe(0o600)
              const dir = Path.dirname(path)
              const temps = (yield* listDir(dir)).filter((name) => name.includes(".tmp-"))
              if (temps.length > 0) stats.withLeftover++
              for (const temp of temps) expect(yield* modeOf(Path.join(dir, temp))).toBe(0o600)
            }
          }
          // The next save cleans up what the last killed writer left.
          for (const [i, path] of paths.entries()) {
            yield* withStore(path, (store) => store.save(writerToken(last[i]! + 1)))
            expect(yield* listDir(Path.dirname(path))).toEqual(["token.json"])
          }
        }).pipe(Effect.scoped)

        const started = Date.now()
        yield* Effect.all(Array.from({ length: lanes }, () => lane), { concurrency: "unbounded" })
        console.log(`kill trials: ${JSON.stringify(stats)} in ${Date.now() - started} ms`)
        expect(stats.kills).toBe(lanes * trialsPerLane)
        expect(stats.valid).toBe(killedSaves)
        // Kills landed in the save loops, not only before them: some files had been saved again
        // after their first token, and some saves were cut off midway (their temp file left
        // behind). How many depends on the machine's load, so only "some" is asserted; each is
        // about half of the files on an idle machine.
        expect(stats.pastFirstSave).toBeGreaterThan(0)
        expect(stats.withLeftover).toBeGreaterThan(0)
      }),
    600_000 // no-hang limit
  )
})

describe("TokenStore.layerFile: many processes, one login (mock AMP server)", () => {
  const processes = 16
  const credentials = {
    AMP_USERNAME: MockAmpServer.defaultCredentials.username,
    AMP_PASSWORD: MockAmpServer.defaultCredentials.password
  }

  // The 16 processes start once for the races below: each command builds its layers afresh (a
  // fresh application with nothing in memory), so every race is still 16 applications in 16
  // processes; only the cost of starting Node and loading the bundle is shared.
  let pool: ReadonlyArray<Child> = []
  let round = 0
  beforeAll(async () => {
    pool = Array.from({ length: processes }, () => spawnChild("tokenClient", credentials))
    await Promise.all(pool.map((client) => client.line((line) => line === "ready")))
  }, 120_000)
  afterAll(() => {
    for (const client of pool) client.process.kill("SIGKILL")
  })

  interface Answer {
    readonly round: number
    readonly token?: string
    readonly warnings?: ReadonlyArray<{ readonly at: number; readonly message: string }>
    readonly locked?: boolean
    readonly error?: string
  }

  const answerOf = (child: Child, round: number) =>
    child.line((line) => line.startsWith("{") && (JSON.parse(line) as Answer).round === round).then((line) =>
      JSON.parse(line) as Answer
    )

  type Command = Omit<ClientCommand, "round" | "mode">

  /** Sends `command` to all processes at once; their tokens and warnings, and how long it took. */
  const race = (command: Command) =>
    Effect.gen(function*() {
      const current = ++round
      const line = JSON.stringify({ ...command, round: current, mode: "get" }) + "\n"
      const started = Date.now()
      for (const client of pool) client.process.stdin!.write(line)
      const answers = yield* Effect.promise(() => Promise.all(pool.map((client) => answerOf(client, current))))
      const elapsed = Date.now() - started
      for (const client of pool) expect(client.stderr()).toBe("")
      expect(answers.map((answer) => answer.error)).toEqual(answers.map(() => undefined))
      return {
        tokens: answers.map((answer) => answer.token!),
        /** The takeovers of a lock, logged by one of them at `at`. */
        takeovers: answers.flatMap((answer) => answer.warnings!).filter(({ message }) => message.includes("Took over")),
        elapsed
      }
    })

  const fileToken = (path: string) => Effect.map(readText(path), (text) => JSON.parse(text).token as string)

  it.scopedLive(
    `${processes} processes, no token file: exactly one login, all end with the same valid token`,
    () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        const path = tokenPathIn(yield* tempDir)
        const { elapsed, tokens } = yield* race({ file: path, baseUrl: server.baseUrl, liveness: true })
        const counters = yield* server.counters
        console.log(`${processes} processes, no file: ${JSON.stringify(counters)} in ${elapsed} ms`)
        expect(counters.obtain).toBe(1)
        expect(counters.refresh).toBe(0)
        expect(new Set(tokens).size).toBe(1)
        expect(yield* server.issuedTokens).toEqual([tokens[0]])
        expect(yield* fileToken(path)).toBe(tokens[0])
        expect(yield* listDir(Path.dirname(path))).toEqual(["token.json"])
      }),
    120_000
  )

  it.scopedLive(
    `${processes} processes, token inside the refresh margin: exactly one refresh`,
    () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make({ tokenLifetime: Duration.minutes(2) })
        const path = tokenPathIn(yield* tempDir)
        const old = yield* Effect.promise(() =>
          fetch(`${server.baseUrl}/user/obtain_token`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(MockAmpServer.defaultCredentials)
          }).then((response) => response.json() as Promise<{ token: string }>)
        )
        // Two minutes left: inside the default five-minute margin, still refreshable.
        yield* withStore(
          path,
          (store) =>
            store.save(TokenData.TokenData.fromToken(Redacted.make(old.token), DateTime.unsafeMake(Date.now())))
        )
        yield* server.setTokenLifetime(Duration.hours(24))
        yield* server.resetCounters
        const { elapsed, tokens } = yield* race({ file: path, baseUrl: server.baseUrl, liveness: true })
        const counters = yield* server.counters
        console.log(`${processes} processes, token in margin: ${JSON.stringify(counters)} in ${elapsed} ms`)
        expect(counters.refresh).toBe(1)
        expect(counters.obtain).toBe(0)
        expect(new Set(tokens).size).toBe(1)
        expect(tokens[0]).not.toBe(old.token)
        expect(yield* fileToken(path)).toBe(tokens[0])
      }),
    120_000
  )

  /**
   * Starts a client that takes the lock, SIGKILLs it once it says it holds it, and returns the
   * lock record it left behind.
   */
  const killedHolder = (command: Command) =>
    Effect.gen(function*() {
      const holder = yield* startChild("tokenClient", credentials)
      yield* ready(holder)
      holder.process.stdin!.write(JSON.stringify({ ...command, round: 0, mode: "hold" }) + "\n")
      expect(yield* Effect.promise(() => answerOf(holder, 0))).toEqual({ round: 0, locked: true })
      yield* killAndWait(holder)
      // The dead holder's lock is still there, for the others to deal with.
      const record = JSON.parse(yield* readText(`${command.file}.lock`))
      expect(record.pid).toBe(command.liveness ? holder.process.pid : null)
      return { leaseUntil: Date.parse(record.lease_until) }
    })

  it.scopedLive(
    `the lock holder is SIGKILLed: ${processes} processes take over at once (same host), one login`,
    () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        const path = tokenPathIn(yield* tempDir)
        const command = { file: path, baseUrl: server.baseUrl, liveness: true }
        const { leaseUntil } = yield* killedHolder(command) // the default lease: 60 s
        const { elapsed, takeovers, tokens } = yield* race(command)
        const counters = yield* server.counters
        console.log(`${processes} processes after a killed holder: ${JSON.stringify(counters)} in ${elapsed} ms`)
        expect(counters.obtain).toBe(1)
        expect(new Set(tokens).size).toBe(1)
        // The dead owner was recognised by one of them, not waited out.
        expect(takeovers).toHaveLength(1)
        expect(takeovers[0]!.message).toContain("is no longer running")
        expect(takeovers[0]!.at).toBeLessThan(leaseUntil)
        expect(yield* listDir(Path.dirname(path))).toEqual(["token.json"])
      }),
    120_000
  )

  it.scopedLive(
    `the lock holder is SIGKILLed, no liveness check: ${processes} processes wait out its lease, one login`,
    () =>
      Effect.gen(function*() {
        const server = yield* MockAmpServer.make()
        const path = tokenPathIn(yield* tempDir)
        const command = { file: path, baseUrl: server.baseUrl, liveness: false }
        // A short lease for the lock left behind; the others keep the default (60 s) for theirs,
        // so that a renewal slowed down by a busy machine does not outlive its own lease.
        const { leaseUntil } = yield* killedHolder({ ...command, leaseMillis: 1500 })
        const { elapsed, takeovers, tokens } = yield* race(command)
        const counters = yield* server.counters
        console.log(
          `${processes} processes after a killed holder, lease only: ${JSON.stringify(counters)} in ${elapsed} ms`
        )
        expect(counters.obtain).toBe(1)
        expect(new Set(tokens).size).toBe(1)
        // Freed by its lease, by one of them, and not before it ran out.
        expect(takeovers).toHaveLength(1)
        expect(takeovers[0]!.message).toContain("its lease ran out")
        expect(takeovers[0]!.at).toBeGreaterThanOrEqual(leaseUntil)
      }),
    120_000
  )
})
