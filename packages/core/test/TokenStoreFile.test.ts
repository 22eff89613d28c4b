/**
 * `TokenStore.makeFile` over an in-memory file system (`utils/MemoryFileSystem.ts`): how it
 * writes, reads, moves aside, sweeps and locks, call by call and file by file, with the
 * `TestClock` for the lock's lease and waits and the disk's own clock for file ages. The same
 * store runs on a real disk, with real processes, in `packages/node/test/TokenFile.test.ts`.
 */
import { Path } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Metric, Option, Random, Redacted, TestClock, type Tracer } from "effect"
import * as LogCapture from "../src/testing/LogCapture.js"
import { withSpans } from "../src/testing/SpanCapture.js"
import { plain, sampleToken, storeContract } from "../src/testing/TokenStoreContract.js"
import * as TokenData from "../src/TokenData.js"
import * as TokenMetrics from "../src/TokenMetrics.js"
import type { FileStoreOptions } from "../src/TokenStore.js"
import * as Store from "../src/TokenStore.js"
import * as Memory from "./utils/MemoryFileSystem.js"
import { adjustUntilDone } from "./utils/TestTime.js"

const dir = "/data/amp"
const target = `${dir}/token.json`
const lockPath = `${target}.lock`
/** The disk's clock and the `TestClock` start at the same instant, as a host's clocks do. */
const t0 = Date.UTC(2024, 0, 1)

/** FNV-1a of the host names used below (checked against the implementation in a test). */
const hostA = "host-a"
const hashA = "41b6a685"
const hashB = "3eb6a1cc"

/** This process: pid 100 on host-a, where processes 100 and 200 are running. */
const local = (alive: ReadonlyArray<number> = [100, 200]) => ({
  pid: 100,
  hostname: hostA,
  isAlive: (pid: number) => Effect.succeed(alive.includes(pid))
})

/** A LocalProcess whose liveness checks are recorded: it is never asked about itself. */
const recordingLocal = (alive: ReadonlyArray<number>) => {
  const asked: Array<number> = []
  return {
    asked,
    local: {
      pid: 100,
      hostname: hostA,
      isAlive: (pid: number) => Effect.sync(() => (asked.push(pid), alive.includes(pid)))
    }
  }
}

/** Debug lines included: what `LogCapture` keeps at every level, as text. */
const debugLines = (logs: ReturnType<typeof LogCapture.make>) =>
  logs.lines.filter((line) => line.level === "DEBUG").map((line) => line.text)

const storeOn = (mem: Memory.MemoryFileSystem, options?: FileStoreOptions) =>
  Store.makeFile(target, options).pipe(Effect.provide(Layer.merge(mem.layer, Path.layer)))

/** A fresh memory disk and a store on it, the `TestClock` set to `t0`, warnings captured. */
const setup = (options?: FileStoreOptions) =>
  Effect.gen(function*() {
    yield* TestClock.setTime(t0)
    const mem = Memory.make({ startMillis: t0 })
    const store = yield* storeOn(mem, options)
    return { mem, store }
  })

const lockRecord = (fields: {
  pid: number | null
  host: string | null
  nonce?: string
  leaseUntil: number
}) =>
  JSON.stringify({
    pid: fields.pid,
    host: fields.host,
    nonce: fields.nonce ?? "n0nce",
    acquired_at: new Date(fields.leaseUntil - 60_000).toISOString(),
    lease_until: new Date(fields.leaseUntil).toISOString()
  }) + "\n"

const tokenText = (token: string) => TokenData.encodeFile(sampleToken(token))

storeContract(
  "layerFile over a memory file system",
  Layer.unwrapEffect(Effect.sync(() =>
    Store.layerFile(target, { localProcess: local() }).pipe(
      Layer.provide(Layer.merge(Memory.make({ startMillis: t0 }).layer, Path.layer))
    )
  ))
)

describe("TokenStore.makeFile: save", () => {
  it.effect("writes the token with mode 0600 through one temp file renamed over it, file and directory flushed", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup({ localProcess: local() })
      const data = sampleToken("saved")
      yield* store.save(data)
      expect(mem.text(target)).toBe(TokenData.encodeFile(data))
      expect(mem.mode(target)).toBe(0o600)
      expect(mem.list(dir)).toEqual(["token.json"])
      expect(mem.calls("rename")).toBe(1)
      expect(mem.calls("handle.sync")).toBe(2)
      expect(store.description).toBe(`file ${target}`)
    }))

  it.effect("creates a missing directory with mode 0700", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup()
      yield* store.save(sampleToken("first"))
      expect(mem.mode(dir)).toBe(0o700)
      expect(mem.calls("makeDirectory")).toBe(1)
      // Once it exists, no more directories are made.
      yield* store.save(sampleToken("second"))
      expect(mem.calls("makeDirectory")).toBe(1)
    }))

  it.effect("names its temp file after the target and its owner", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup({ localProcess: local() })
      let temp = ""
      mem.before("rename", () => true, () => {
        temp = mem.list(dir).find((name) => name.startsWith("token.json.tmp-")) ?? ""
      })
      yield* store.save(sampleToken("named"))
      expect(temp).toMatch(new RegExp(`^token\\.json\\.tmp-h${hashA}-p100-[0-9a-z]{14}$`))
    }))

  it.effect("names its temp file with owner x without a LocalProcess", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup()
      let temp = ""
      mem.before("rename", () => true, () => {
        temp = mem.list(dir).find((name) => name.startsWith("token.json.tmp-")) ?? ""
      })
      yield* store.save(sampleToken("named"))
      expect(temp).toMatch(/^token\.json\.tmp-x-[0-9a-z]{14}$/)
    }))

  it.effect("a failed write removes the half-written temp file, keeps the old token and fails naming the cause", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup()
      yield* store.save(sampleToken("old"))
      mem.failWith("handle.writeAll", "WriteZero", () => true)
      const error = yield* Effect.flip(store.save(sampleToken("new")))
      expect(error._tag).toBe("TokenStoreError")
      expect(error.operation).toBe("save")
      expect(error.path).toBe(target)
      expect(error.reason).toBe("WriteZero")
      expect(mem.list(dir)).toEqual(["token.json"])
      expect(mem.text(target)).toBe(tokenText("old"))
    }))

  it.effect("a failed rename removes the temp file and fails", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup()
      yield* store.save(sampleToken("old"))
      mem.failWith("rename", "PermissionDenied", (path) => path.includes(".tmp-"))
      const error = yield* Effect.flip(store.save(sampleToken("new")))
      expect([error.operation, error.reason]).toEqual(["save", "PermissionDenied"])
      expect(mem.list(dir)).toEqual(["token.json"])
      expect(mem.text(target)).toBe(tokenText("old"))
    }))

  it.effect("a failure without a system reason (BadArgument) is described by its message", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup()
      mem.failWith("rename", "BadArgument", () => true)
      const error = yield* Effect.flip(store.save(sampleToken("new")))
      expect(error.reason).toMatch(/^FileSystem\.rename: bad argument \/data\/amp\/token\.json\.tmp-/)
    }))

  it.effect("temp names carry 64 random bits as two zero-padded base-36 halves", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup()
      let temp = ""
      mem.before("rename", () => true, () => {
        temp = mem.list(dir).find((name) => name.startsWith("token.json.tmp-")) ?? ""
      })
      yield* store.save(sampleToken("named")).pipe(Effect.withRandom(Random.fixed([35, 36])))
      expect(temp).toBe("token.json.tmp-x-000000z0000010")
    }))

  it.effect("records spans for load and save, attributed to the file store", () =>
    Effect.gen(function*() {
      const { store } = yield* setup()
      const { spans } = yield* withSpans(Effect.zipRight(store.save(sampleToken("traced")), store.load))
      const names = spans.map((span) => span.name)
      expect(names).toEqual(expect.arrayContaining(["TokenStore.save", "TokenStore.load"]))
      for (const span of spans.filter((span) => span.name === "TokenStore.save" || span.name === "TokenStore.load")) {
        expect(span.attributes.get("store")).toBe("file")
      }
    }))

  it.effect("a directory that cannot be opened for flushing does not fail the save", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup()
      mem.putDirectory("/data")
      mem.putDirectory(dir)
      mem.failWith("open", "BadResource", (path) => path === dir)
      yield* store.save(sampleToken("saved"))
      expect(mem.text(target)).toBe(tokenText("saved"))
      expect(mem.calls("handle.sync")).toBe(1)
    }))
})

describe("TokenStore.makeFile: leftovers swept by save", () => {
  const tmp = (owner: string) => `${target}.tmp-${owner}-abc123`

  it.effect("removes what dead processes of this host left at once, and others' only after 60 s", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup({ localProcess: local() })
      const old = t0 - 60_001
      const notOld = t0 - 60_000
      mem.put(tmp(`h${hashA}-p300`), "dead here") // removed: process 300 is not running
      mem.put(tmp(`h${hashA}-p200`), "alive here") // kept: process 200 runs
      mem.put(tmp(`h${hashA}-p100`), "ours") // kept: this process
      mem.put(tmp(`h${hashA}-p200`).replace("abc123", "old"), "alive but old", 0o600, old) // removed by age
      mem.put(tmp(`h${hashB}-p300`), "other host") // kept: cannot be checked, young
      mem.put(tmp(`h${hashB}-p301`), "other host, 60 s", 0o600, notOld) // kept: not older than 60 s
      mem.put(tmp(`h${hashB}-p302`), "other host, old", 0o600, old) // removed
      mem.put(tmp("x"), "no owner") // kept: young
      mem.put(tmp("x").replace("abc123", "old"), "no owner, old", 0o600, old) // removed
      mem.put(`${target}.tmp-mine`, "not a name we make", 0o600, old) // kept
      mem.put(`${dir}/other.json.tmp-x-abc123`, "another file's", 0o600, old) // kept
      mem.put(`${target}.lock.stale-h${hashA}-p300-abc123`, "released lock") // removed: dead owner
      mem.put(`${target}.lock.stale-x-abc123`, "released lock, young") // kept
      mem.put(`${target}.lock.claim-n0nce`, "claim, old", 0o600, old) // removed by age
      mem.put(`${target}.lock.claim-young`, "claim, young") // kept
      yield* store.save(sampleToken("saved"))
      expect(mem.list(dir)).toEqual([
        "other.json.tmp-x-abc123",
        "token.json",
        "token.json.lock.claim-young",
        "token.json.lock.stale-x-abc123",
        `token.json.tmp-h${hashB}-p300-abc123`,
        `token.json.tmp-h${hashB}-p301-abc123`,
        `token.json.tmp-h${hashA}-p100-abc123`,
        `token.json.tmp-h${hashA}-p200-abc123`,
        "token.json.tmp-mine",
        "token.json.tmp-x-abc123"
      ].sort())
    }))

  it.effect("never asks whether this very process is alive: its own leftovers are mid-operation", () =>
    Effect.gen(function*() {
      const { asked, local: self } = recordingLocal([])
      const { mem, store } = yield* setup({ localProcess: self })
      mem.put(tmp(`h${hashA}-p100`), "ours")
      mem.put(tmp(`h${hashA}-p300`), "dead")
      yield* store.save(sampleToken("saved"))
      expect(asked).toEqual([300])
      expect(mem.list(dir)).toEqual(["token.json", `token.json.tmp-h${hashA}-p100-abc123`])
    }))

  it.effect("on a platform without modification times, keeps what it cannot date", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(t0)
      const mem = Memory.make({ startMillis: t0, noMtimes: true })
      const store = yield* storeOn(mem, { localProcess: local() })
      mem.put(tmp("x"), "no owner", 0o600, t0 - 3_600_000)
      mem.put(tmp(`h${hashA}-p300`), "dead here")
      yield* store.save(sampleToken("saved"))
      expect(mem.list(dir)).toEqual(["token.json", "token.json.tmp-x-abc123"])
    }))

  it.effect("without a LocalProcess, judges every leftover by its age", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup()
      mem.put(tmp(`h${hashA}-p300`), "young")
      mem.put(tmp(`h${hashA}-p301`), "old", 0o600, t0 - 60_001)
      yield* store.save(sampleToken("saved"))
      expect(mem.list(dir)).toEqual(["token.json", `token.json.tmp-h${hashA}-p300-abc123`])
    }))

  it.effect("a sweep that cannot list the directory or remove a file does not fail the save", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup({ localProcess: local() })
      mem.put(tmp(`h${hashA}-p300`), "dead here")
      mem.put(tmp(`h${hashA}-p301`), "dead here too")
      mem.failWith("remove", "PermissionDenied", (path) => path.endsWith("p300-abc123"))
      yield* store.save(sampleToken("saved"))
      // One removal failed; the sweep went on with the next.
      expect(mem.list(dir)).toEqual(["token.json", `token.json.tmp-h${hashA}-p300-abc123`])
      mem.failWith("readDirectory", "PermissionDenied", () => true)
      const logs = LogCapture.make()
      yield* logs.provide(store.save(sampleToken("again")))
      expect(mem.text(target)).toBe(tokenText("again"))
      expect(debugLines(logs)).toEqual([
        expect.stringContaining(`Could not clean up beside ${target}: PermissionDenied`)
      ])
    }))
})

describe("TokenStore.makeFile: load", () => {
  let mem0 = Memory.make()

  it.effect("a missing file is None, without a warning", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { mem, store } = yield* setup()
      expect(Option.isNone(yield* logs.provide(store.load))).toBe(true)
      expect(logs.warnings()).toEqual([])
      expect([mem.calls("rename"), mem.calls("readFileString")]).toEqual([0, 0])
    }))

  it.effect("reads what save wrote, milliseconds included", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup()
      const data = sampleToken("round")
      mem.put(target, TokenData.encodeFile(data))
      expect(Option.map(yield* store.load, plain)).toEqual(Option.some(plain(data)))
      expect(mem.calls("chmod")).toBe(0)
    }))

  it.effect("a corrupt file is moved aside (mode 0600) with a warning naming what is wrong, never the content", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { mem, store } = yield* setup()
      mem.put(target, "{ \"token\": \"s3cr3t-value\" }", 0o644)
      expect(Option.isNone(yield* logs.provide(store.load))).toBe(true)
      const names = mem.list(dir)
      expect(names).toHaveLength(1)
      expect(names[0]).toMatch(/^token\.json\.corrupt-20240101T000000000Z-[0-9a-z]{14}$/)
      expect(mem.mode(`${dir}/${names[0]}`)).toBe(0o600)
      const warnings = logs.warnings().filter((line) => line.includes("not a valid token file"))
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toContain("(missing field at expires_at)")
      expect(warnings[0]).toContain(`moved it to ${dir}/${names[0]} and will obtain a new token`)
      expect(logs.lines.some((line) => line.text.includes("s3cr3t"))).toBe(false)
    }))

  it.effect("a file that is not JSON is invalid content", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { store, mem } = yield* setup()
      mem.put(target, "not json at all")
      expect(Option.isNone(yield* logs.provide(store.load))).toBe(true)
      expect(logs.warnings().some((line) => line.includes("(invalid content)"))).toBe(true)
    }))

  it.effect("a field of the wrong type is invalid content at that field", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { store, mem } = yield* setup()
      mem.put(target, JSON.stringify({ token: "t", expires_at: 5, obtained_at: "2024-01-01T00:00:00Z" }))
      expect(Option.isNone(yield* logs.provide(store.load))).toBe(true)
      expect(logs.warnings().some((line) => line.includes("(invalid content at expires_at)"))).toBe(true)
    }))

  it.effect("keeps the newest 3 corrupt files by default, keepCorrupt otherwise (never fewer than 0)", () =>
    Effect.gen(function*() {
      const corruptAfter = (options: FileStoreOptions | undefined, loads: number) =>
        Effect.gen(function*() {
          const { mem, store } = yield* setup(options)
          for (let i = 0; i < loads; i++) {
            mem.put(target, `corrupt ${i}`)
            yield* store.load
            yield* TestClock.adjust("1 second")
          }
          return mem.list(dir).map((name) => mem.text(`${dir}/${name}`))
        })
      expect(yield* corruptAfter(undefined, 5)).toEqual(["corrupt 2", "corrupt 3", "corrupt 4"])
      expect(yield* corruptAfter({ keepCorrupt: 1 }, 3)).toEqual(["corrupt 2"])
      expect(yield* corruptAfter({ keepCorrupt: 0 }, 2)).toEqual([])
      expect(yield* corruptAfter({ keepCorrupt: -2 }, 2)).toEqual([])
    }))

  it.effect("a file that cannot be pruned still loads as None", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { mem, store } = yield* setup({ keepCorrupt: 0 })
      mem.put(target, "corrupt")
      mem.failWith("remove", "PermissionDenied", (path) => path.includes(".corrupt-"))
      expect(Option.isNone(yield* logs.provide(store.load))).toBe(true)
      expect(mem.list(dir)).toHaveLength(1)
      expect(debugLines(logs)).toEqual([
        expect.stringContaining("Could not prune old corrupt token files: PermissionDenied")
      ])
    }))

  it.effect("pruning only ever removes files moved aside, never the target's other siblings", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup({ keepCorrupt: 0 })
      mem.put(`${target}.lock`, "a lock")
      mem.put(`${dir}/notes.txt`, "the user's")
      mem.put(target, "corrupt")
      yield* store.load
      expect(mem.list(dir)).toEqual(["notes.txt", "token.json.lock"])
    }))

  it.effect("a corrupt file is moved aside with mode 0600 even where modes are not checked on load", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup({ checkPermissions: false })
      mem.put(target, "corrupt", 0o644)
      yield* store.load
      const [aside] = mem.list(dir)
      expect(aside).toMatch(/^token\.json\.corrupt-/)
      expect(mem.mode(`${dir}/${aside}`)).toBe(0o600)
    }))

  it.effect("on a platform without modification times, a corrupt file is still moved aside", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(t0)
      const mem = Memory.make({ startMillis: t0, noMtimes: true })
      const store = yield* storeOn(mem)
      mem.put(target, "corrupt")
      expect(Option.isNone(yield* store.load)).toBe(true)
      expect(mem.list(dir)).toEqual([expect.stringMatching(/^token\.json\.corrupt-/)])
    }))

  it.effect("a file larger than 64 KiB is not read but moved aside; 64 KiB exactly is read", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { mem, store } = yield* setup()
      const text = tokenText("padded")
      mem.put(target, text + " ".repeat(64 * 1024 - text.length))
      expect(Option.isSome(yield* store.load)).toBe(true)
      mem.put(target, text + " ".repeat(64 * 1024 + 1 - text.length))
      const reads = mem.calls("readFileString")
      expect(Option.isNone(yield* logs.provide(store.load))).toBe(true)
      expect(mem.calls("readFileString")).toBe(reads)
      expect(logs.warnings().some((line) => line.includes("(65537 bytes, far larger than a token file)"))).toBe(true)
    }))

  it.effect("a file readable by group or others is tightened to 0600, with a warning", () =>
    Effect.gen(function*() {
      for (const mode of [0o644, 0o640, 0o604, 0o601, 0o610]) {
        const logs = LogCapture.make()
        const { mem, store } = yield* setup()
        mem.put(target, tokenText("loose"), mode)
        expect(Option.isSome(yield* logs.provide(store.load))).toBe(true)
        expect(mem.mode(target)).toBe(0o600)
        expect(logs.warnings()).toEqual([
          expect.stringContaining(`was readable by others (mode ${mode.toString(8)}); changed it to 600`)
        ])
      }
    }))

  it.effect("a file of mode 0600 or 0400 is left as it is; checkPermissions false never changes a mode", () =>
    Effect.gen(function*() {
      for (const mode of [0o600, 0o400, 0o700]) {
        const { mem, store } = yield* setup()
        mem.put(target, tokenText("tight"), mode)
        expect(Option.isSome(yield* store.load)).toBe(true)
        expect(mem.calls("chmod")).toBe(0)
        expect(mem.mode(target)).toBe(mode)
      }
      const logs = LogCapture.make()
      const { mem, store } = yield* setup({ checkPermissions: false })
      mem.put(target, tokenText("loose"), 0o644)
      expect(Option.isSome(yield* logs.provide(store.load))).toBe(true)
      expect(mem.mode(target)).toBe(0o644)
      expect(logs.warnings()).toEqual([])
    }))

  it.effect("a mode that cannot be tightened is warned about, and the token still loads", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { mem, store } = yield* setup()
      mem.put(target, tokenText("loose"), 0o644)
      mem.failWith("chmod", "PermissionDenied", () => true)
      expect(Option.isSome(yield* logs.provide(store.load))).toBe(true)
      expect(logs.warnings()).toEqual([
        expect.stringContaining("is readable by others (mode 644) and could not be changed to 600: PermissionDenied")
      ])
    }))

  it.effect("a symbolic link is read through, with a warning, and never changed through", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { mem, store } = yield* setup()
      mem.put("/elsewhere/token.json", tokenText("linked"), 0o644)
      mem.symlink(target, "/elsewhere/token.json")
      const loaded = yield* logs.provide(store.load)
      expect(Option.map(loaded, (data) => Redacted.value(data.token))).toEqual(Option.some("linked"))
      expect(mem.mode("/elsewhere/token.json")).toBe(0o644)
      expect(logs.warnings()).toEqual([
        expect.stringContaining(`${target} is a symbolic link to /elsewhere/token.json; it is read`)
      ])
    }))

  it.effect("a symbolic link to a corrupt file is moved aside as a link: the file it points to keeps its mode", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup()
      mem.put("/elsewhere/token.json", "corrupt", 0o644)
      mem.symlink(target, "/elsewhere/token.json")
      expect(Option.isNone(yield* store.load)).toBe(true)
      const [aside] = mem.list(dir)
      expect(aside).toMatch(/^token\.json\.corrupt-/)
      expect(mem.kind(`${dir}/${aside}`)).toBe("SymbolicLink")
      expect(mem.mode("/elsewhere/token.json")).toBe(0o644)
      expect(mem.calls("chmod")).toBe(0)
    }))

  it.effect("anything but a regular file fails the load, naming what it is", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup()
      mem.putDirectory("/data")
      mem.putDirectory(dir)
      mem.putDirectory(target)
      const error = yield* Effect.flip(store.load)
      expect([error._tag, error.operation, error.path]).toEqual(["TokenStoreError", "load", target])
      expect(error.reason).toBe("BadResource: not a regular file (Directory)")
    }))

  it.effect("a corrupt file replaced by a writer while being moved aside is read again, and the new token kept", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { mem, store } = yield* setup()
      mem.put(target, "corrupt")
      // Between the look and the move, a writer renames a good token over the corrupt file.
      mem.before("rename", (path) => path === target, () => mem.put(target, tokenText("fresh")))
      const loaded = yield* logs.provide(store.load)
      expect(Option.map(loaded, (data) => Redacted.value(data.token))).toEqual(Option.some("fresh"))
      expect(mem.list(dir)).toEqual(["token.json"])
      expect(mem.text(target)).toBe(tokenText("fresh"))
      expect(logs.warnings()).toEqual([])
    }))

  it.effect("a corrupt file rewritten in place meanwhile (same inode) is put back and read again", () =>
    Effect.gen(function*() {
      for (
        const [label, rewrite] of [
          // Same size, later modification time.
          ["time", () => (mem0.advance(1_000), mem0.rewrite(target, "c0rrupt"))],
          // Same modification time, another size.
          ["size", () => mem0.rewrite(target, "corrupt!")]
        ] as const
      ) {
        mem0 = Memory.make({ startMillis: t0 })
        const store = yield* storeOn(mem0)
        mem0.put(target, "corrupt")
        mem0.before("rename", (path) => path === target, rewrite)
        expect(Option.isNone(yield* store.load), label).toBe(true)
        // The first move was undone (link back), the second look moved the rewritten file.
        expect(mem0.calls("link"), label).toBe(1)
        expect(mem0.calls("rename"), label).toBe(2)
      }
    }))

  it.effect("a moved file that cannot be put back (a newer one took its place) is left, and the newer one read", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { mem, store } = yield* setup()
      mem.put(target, "corrupt")
      mem.before("rename", (path) => path === target, () => mem.put(target, "corrupt, replaced"))
      mem.before("link", () => true, () => mem.put(target, tokenText("newest")))
      const loaded = yield* logs.provide(store.load)
      expect(Option.map(loaded, (data) => Redacted.value(data.token))).toEqual(Option.some("newest"))
      expect(debugLines(logs)).toEqual([
        expect.stringMatching(
          /Could not put \/data\/amp\/token\.json back \(AlreadyExists\); a newer one took its place/
        )
      ])
    }))

  it.effect("a file that keeps being replaced is given up on after two looks: None", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup()
      mem.put(target, "corrupt 1")
      mem.before("rename", (path) => path === target, () => mem.put(target, "corrupt 2"))
      mem.before("link", () =>
        true, () =>
        mem.before("rename", (path) => path === target, () => mem.put(target, "corrupt 3")))
      expect(Option.isNone(yield* store.load)).toBe(true)
      expect(mem.calls("rename")).toBe(2)
      expect(mem.text(target)).toBe("corrupt 3")
    }))

  it.effect("a failure other than a missing file fails the load with its reason", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup()
      mem.put(target, tokenText("unreadable"))
      mem.failWith("readFileString", "PermissionDenied", () => true)
      const error = yield* Effect.flip(store.load)
      expect([error.operation, error.reason]).toEqual(["load", "PermissionDenied"])
    }))
})

describe("TokenStore.makeFile: remove", () => {
  it.effect("removes the file; a missing file is no error; another failure is a TokenStoreError", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup()
      mem.put(target, tokenText("doomed"))
      yield* store.remove
      expect(mem.list(dir)).toEqual([])
      yield* store.remove
      mem.put(target, tokenText("stuck"))
      mem.failWith("remove", "PermissionDenied", () => true)
      const error = yield* Effect.flip(store.remove)
      expect([error._tag, error.operation, error.path, error.reason]).toEqual([
        "TokenStoreError",
        "remove",
        target,
        "PermissionDenied"
      ])
    }))
})

describe("TokenStore.makeFile: withLock", () => {
  it.effect("holds token.json.lock (mode 0600, owner and lease recorded) while the effect runs, then removes it", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup({ localProcess: local(), lockLease: "30 seconds" })
      const seen = yield* store.withLock(Effect.sync(() => ({ text: mem.text(lockPath), mode: mem.mode(lockPath) })))
      expect(seen.mode).toBe(0o600)
      // One JSON line, readable with `cat`.
      expect(seen.text).toMatch(/^\{[^\n]*\}\n$/)
      const record = JSON.parse(seen.text ?? "{}")
      expect(record).toEqual({
        pid: 100,
        host: hostA,
        nonce: expect.stringMatching(/^[0-9a-z]{14}$/),
        acquired_at: "2024-01-01T00:00:00.000Z",
        lease_until: "2024-01-01T00:00:30.000Z"
      })
      expect(mem.list(dir)).toEqual([])
    }))

  it.effect("without a LocalProcess the record names no owner; the default lease is 60 s", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup()
      const text = yield* store.withLock(Effect.sync(() => mem.text(lockPath)))
      expect(JSON.parse(text ?? "{}")).toMatchObject({
        pid: null,
        host: null,
        lease_until: "2024-01-01T00:01:00.000Z"
      })
    }))

  it.effect("waits for a lock held by a live process, and fails after lockTimeout naming its holder", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup({ localProcess: local(), lockTimeout: "5 seconds" })
      mem.put(lockPath, lockRecord({ pid: 200, host: hostA, leaseUntil: t0 + 60_000 }))
      let ran = false
      const fiber = yield* Effect.fork(store.withLock(Effect.sync(() => (ran = true))))
      const error = yield* Effect.flip(adjustUntilDone(fiber, "100 millis"))
      expect(ran).toBe(false)
      expect(error._tag).toBe("TokenStoreError")
      expect(error).toMatchObject({
        operation: "lock",
        path: lockPath,
        reason: "still held by process 200 on host-a, lease until 2024-01-01T00:01:00.000Z after waiting 5s"
      })
      // It gave up at the timeout, not before and not much after.
      const waited = (yield* TestClock.currentTimeMillis) - t0
      expect(waited).toBeGreaterThanOrEqual(5_000)
      expect(waited).toBeLessThan(5_400)
      expect(mem.text(lockPath)).toBe(lockRecord({ pid: 200, host: hostA, leaseUntil: t0 + 60_000 }))
    }))

  it.effect("polls with backoff while waiting, and takes the lock once its holder releases it", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup({ localProcess: local() })
      mem.put(lockPath, lockRecord({ pid: 200, host: hostA, leaseUntil: t0 + 60_000 }))
      const fiber = yield* Effect.fork(store.withLock(Effect.succeed("ran")))
      yield* TestClock.adjust("2 seconds")
      const polls = mem.calls("readFileString")
      // Backoff from 10 ms, at most every 250 ms (jittered): a handful of polls in 2 s, not hundreds.
      expect(polls).toBeGreaterThanOrEqual(5)
      expect(polls).toBeLessThan(40)
      mem.drop(lockPath)
      expect(yield* adjustUntilDone(fiber, "100 millis")).toBe("ran")
      expect(mem.list(dir)).toEqual([])
    }))

  it.effect("counts a wait for another process in lockWaits and on the span, not a lock taken at once", () =>
    Effect.gen(function*() {
      const waits = Effect.map(Metric.value(TokenMetrics.lockWaits), (state) => state.count)
      const { mem, store } = yield* setup({ localProcess: local() })
      const before = yield* waits
      const first = yield* withSpans(store.withLock(Effect.void))
      expect(yield* waits).toBe(before)
      const lockWait = (spans: Array<Tracer.Span>) => spans.find((span) => span.name === "TokenStore.lockWait")
      expect(lockWait(first.spans)?.attributes.get("attempts")).toBe(1)
      expect(lockWait(first.spans)?.attributes.get("waited")).toBe(false)
      expect(lockWait(first.spans)?.attributes.get("lock")).toBe(lockPath)
      expect(first.spans.map((span) => span.name)).toContain("TokenStore.withLock")
      mem.put(lockPath, lockRecord({ pid: 200, host: hostA, leaseUntil: t0 + 60_000 }))
      mem.before("readFileString", (path) => path === lockPath, () => mem.drop(lockPath))
      const fiber = yield* Effect.fork(withSpans(store.withLock(Effect.void)))
      const second = yield* adjustUntilDone(fiber, "100 millis")
      expect(yield* waits).toBe(before + 1)
      expect(lockWait(second.spans)?.attributes.get("attempts")).toBe(2)
      expect(lockWait(second.spans)?.attributes.get("waited")).toBe(true)
    }))

  it.effect("a lock released between two looks is taken on the next attempt, without a warning", () =>
    Effect.gen(function*() {
      for (const operation of ["readFileString", "stat"]) {
        const logs = LogCapture.make()
        const { mem, store } = yield* setup({ localProcess: local() })
        // Unreadable and young: its age is looked at (stat) after it was read.
        mem.put(lockPath, "garbage")
        mem.before(operation, (path) => path === lockPath, () => mem.drop(lockPath))
        const fiber = yield* Effect.fork(logs.provide(store.withLock(Effect.sync(() => mem.text(lockPath)))))
        const text = yield* adjustUntilDone(fiber, "100 millis")
        expect(JSON.parse(text ?? "{}"), operation).toMatchObject({ pid: 100 })
        expect(logs.warnings(), operation).toEqual([])
      }
    }))

  it.effect("a lock that cannot be read runs the effect unlocked, with a warning", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { mem, store } = yield* setup({ localProcess: local(), lockTimeout: 0 })
      mem.put(lockPath, lockRecord({ pid: 200, host: hostA, leaseUntil: t0 + 60_000 }))
      mem.failWith("readFileString", "PermissionDenied", (path) => path === lockPath)
      expect(yield* logs.provide(store.withLock(Effect.succeed("ran")))).toBe("ran")
      expect(logs.warnings()).toEqual([
        expect.stringContaining(`Could not take the token lock ${lockPath} (PermissionDenied)`)
      ])
    }))

  it.effect("fibers of one process queue: one holds the lock at a time", () =>
    Effect.gen(function*() {
      // No time to wait for the file: only the queue in front of it can keep the fibers apart.
      const { store } = yield* setup({ localProcess: local(), lockTimeout: 0 })
      let inside = 0
      let most = 0
      const work = store.withLock(Effect.gen(function*() {
        inside++
        most = Math.max(most, inside)
        yield* Effect.yieldNow()
        inside--
      }))
      yield* Effect.all([work, work, work], { concurrency: "unbounded" })
      expect(most).toBe(1)
    }))

  /** With no time to wait, the first attempt must take the lock over (no clock moves). */
  const takeOver = (record: string, expected: string, mtime = t0) =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { mem, store } = yield* setup({ localProcess: local(), lockTimeout: 0 })
      mem.put(lockPath, record, 0o600, mtime)
      const result = yield* logs.provide(store.withLock(Effect.sync(() => mem.text(lockPath))))
      expect(JSON.parse(result ?? "{}")).toMatchObject({ pid: 100 })
      expect(logs.warnings()).toEqual([expect.stringContaining(`Took over the token lock ${lockPath}: ${expected}`)])
      expect(mem.list(dir)).toEqual([])
    })

  it.effect("takes over at once a lock whose lease ran out", () =>
    takeOver(
      lockRecord({ pid: 200, host: "host-b", leaseUntil: t0 }),
      "its lease ran out (process 200 on host-b, lease until 2024-01-01T00:00:00.000Z)"
    ))

  it.effect("takes over a lock whose lease ran out with no owner recorded", () =>
    takeOver(
      lockRecord({ pid: null, host: null, leaseUntil: t0 - 1 }),
      "its lease ran out (process ? on an unknown host, lease until 2023-12-31T23:59:59.999Z)"
    ))

  it.effect("takes over at once a lock whose owner on this host is no longer running", () =>
    takeOver(
      lockRecord({ pid: 300, host: hostA, leaseUntil: t0 + 60_000 }),
      "its owner, process 300, is no longer running"
    ))

  it.effect("takes over an unreadable lock older than the lease", () =>
    takeOver("garbage", "it is unreadable and older than the lease", t0 - 60_001))

  /** With no time to wait, one attempt that finds the lock held fails at once. */
  const stillBusy = (record: string, holder: string, mtime = t0) =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup({ localProcess: local(), lockTimeout: 0 })
      mem.put(lockPath, record, 0o600, mtime)
      const error = yield* Effect.flip(store.withLock(Effect.void))
      expect(error.reason).toBe(`still held by ${holder} after waiting 0`)
      expect(mem.text(lockPath)).toBe(record)
    })

  it.effect("leaves alone a live lock of another host, even if a process of that pid is not running here", () =>
    stillBusy(
      lockRecord({ pid: 300, host: "host-b", leaseUntil: t0 + 60_000 }),
      "process 300 on host-b, lease until 2024-01-01T00:01:00.000Z"
    ))

  it.effect("leaves alone a live lock that names this very process (another store of it), without asking", () =>
    Effect.gen(function*() {
      const { asked, local: self } = recordingLocal([])
      const { mem, store } = yield* setup({ localProcess: self, lockTimeout: 0 })
      mem.put(lockPath, lockRecord({ pid: 100, host: hostA, leaseUntil: t0 + 60_000 }))
      const error = yield* Effect.flip(store.withLock(Effect.void))
      expect(error.reason).toBe(
        "still held by process 100 on host-a, lease until 2024-01-01T00:01:00.000Z after waiting 0"
      )
      expect(asked).toEqual([])
    }))

  it.effect("leaves alone a live lock with no pid", () =>
    stillBusy(
      lockRecord({ pid: null, host: hostA, leaseUntil: t0 + 60_000 }),
      "process ? on host-a, lease until 2024-01-01T00:01:00.000Z"
    ))

  it.effect("leaves alone an unreadable lock not older than the lease", () =>
    stillBusy("garbage", "an unreadable lock file", t0 - 60_000))

  it.effect("on a platform without modification times, an unreadable lock cannot be dated: it is left alone", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(t0)
      const mem = Memory.make({ startMillis: t0, noMtimes: true })
      const store = yield* storeOn(mem, { localProcess: local(), lockTimeout: 0 })
      mem.put(lockPath, "garbage", 0o600, t0 - 3_600_000)
      const error = yield* Effect.flip(store.withLock(Effect.void))
      expect(error.reason).toBe("still held by an unreadable lock file after waiting 0")
    }))

  it.effect("a live lock cannot be taken over without a LocalProcess to check its owner", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup({ lockTimeout: "1 second" })
      const record = lockRecord({ pid: 300, host: hostA, leaseUntil: t0 + 60_000 })
      mem.put(lockPath, record)
      const fiber = yield* Effect.fork(store.withLock(Effect.void))
      const error = yield* Effect.flip(adjustUntilDone(fiber, "100 millis"))
      expect(error.operation).toBe("lock")
      expect(mem.text(lockPath)).toBe(record)
    }))

  it.effect("a stale lock claimed by another live waiter is left to it; a dead waiter's claim is removed", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup({ localProcess: local(), lockTimeout: "1 second" })
      const stale = lockRecord({ pid: 300, host: hostA, nonce: "abc", leaseUntil: t0 + 60_000 })
      mem.put(lockPath, stale)
      const claim = `${target}.lock.claim-abc`
      mem.put(claim, lockRecord({ pid: 200, host: hostA, leaseUntil: t0 + 60_000 }))
      const fiber = yield* Effect.fork(store.withLock(Effect.void))
      const error = yield* Effect.flip(adjustUntilDone(fiber, "100 millis"))
      expect(error.operation).toBe("lock")
      expect(mem.text(lockPath)).toBe(stale)
      expect(mem.kind(claim)).toBe("File")
      // The claim's owner dies: the next waiter removes its claim, then takes the lock over.
      mem.put(claim, lockRecord({ pid: 301, host: hostA, leaseUntil: t0 + 60_000 }))
      const logs = LogCapture.make()
      const next = yield* Effect.fork(logs.provide(store.withLock(Effect.succeed("ran"))))
      expect(yield* adjustUntilDone(next, "100 millis")).toBe("ran")
      expect(logs.warnings()).toEqual([expect.stringContaining("its owner, process 300, is no longer running")])
      expect(mem.list(dir)).toEqual([])
    }))

  it.effect("an unreadable stale lock is claimed under a hash of its content", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup({ localProcess: local() })
      mem.put(lockPath, "garbage", 0o600, t0 - 60_001)
      const claims: Array<string> = []
      mem.before("remove", (path) => path === lockPath, () => {
        claims.push(...mem.list(dir).filter((name) => name.includes(".lock.claim-")))
      })
      yield* store.withLock(Effect.void)
      expect(claims).toEqual([expect.stringMatching(/^token\.json\.lock\.claim-u[0-9a-f]{8}$/)])
    }))

  it.effect("a nonce that is not a plain word never names a path: the claim is named by a hash", () =>
    Effect.gen(function*() {
      for (const nonce of ["../../etc", "abc/../../etc", ""]) {
        const { mem, store } = yield* setup({ localProcess: local(), lockTimeout: 0 })
        mem.put(lockPath, lockRecord({ pid: 300, host: hostA, nonce, leaseUntil: t0 + 60_000 }))
        const claims: Array<string> = []
        mem.before("remove", (path) => path === lockPath, () => {
          claims.push(...mem.list(dir).filter((name) => name.includes(".lock.claim-")))
        })
        yield* store.withLock(Effect.void)
        expect(claims, nonce).toEqual([expect.stringMatching(/^token\.json\.lock\.claim-u[0-9a-f]{8}$/)])
      }
    }))

  it.effect("a lock replaced after the claim is not removed: the claim holder goes on waiting", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup({ localProcess: local(), lockTimeout: "1 second" })
      const stale = lockRecord({ pid: 300, host: hostA, leaseUntil: t0 + 60_000 })
      const fresh = lockRecord({ pid: 200, host: hostA, leaseUntil: t0 + 60_000 })
      mem.put(lockPath, stale)
      // Right after our claim is created, another waiter has already replaced the stale lock.
      mem.before("handle.stat", (path) => path.includes(".lock.claim-"), () => mem.put(lockPath, fresh))
      const fiber = yield* Effect.fork(store.withLock(Effect.void))
      const error = yield* Effect.flip(adjustUntilDone(fiber, "100 millis"))
      expect(error.reason).toContain("still held by process 200 on host-a")
      expect(mem.text(lockPath)).toBe(fresh)
      expect(mem.list(dir)).toEqual(["token.json.lock"])
    }))

  it.effect("a lock that cannot be created (read-only file system) runs the effect unlocked, with a warning", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { mem, store } = yield* setup()
      mem.failWith("open", "PermissionDenied", (path) => path === lockPath)
      expect(yield* logs.provide(store.withLock(Effect.succeed("ran")))).toBe("ran")
      expect(logs.warnings()).toEqual([
        expect.stringContaining(
          `Could not take the token lock ${lockPath} (PermissionDenied); renewing without it, so other processes may log in too`
        )
      ])
    }))

  it.effect("a lock taken over by another process while held is left to it, with a warning", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { mem, store } = yield* setup({ localProcess: local() })
      const theirs = lockRecord({ pid: 200, host: hostA, leaseUntil: t0 + 60_000 })
      yield* logs.provide(store.withLock(Effect.sync(() => mem.put(lockPath, theirs))))
      expect(mem.text(lockPath)).toBe(theirs)
      expect(mem.list(dir)).toEqual(["token.json.lock"])
      expect(logs.warnings()).toEqual([
        expect.stringContaining(`The token lock ${lockPath} was taken over by another process while held`)
      ])
    }))

  it.effect("a lock gone when released (taken over and released by others) is warned about", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { mem, store } = yield* setup({ localProcess: local() })
      yield* logs.provide(store.withLock(Effect.sync(() => mem.drop(lockPath))))
      expect(mem.list(dir)).toEqual([])
      expect(logs.warnings()).toEqual([expect.stringContaining("was taken over by another process while held")])
    }))

  it.effect("a released lock that cannot be deleted once moved aside is warned about", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { mem, store } = yield* setup({ localProcess: local() })
      mem.failWith("remove", "PermissionDenied", (path) => path.includes(".lock.stale-"))
      expect(yield* logs.provide(store.withLock(Effect.succeed(7)))).toBe(7)
      expect(logs.warnings()).toEqual([
        expect.stringContaining(`Could not release the token lock ${lockPath} (PermissionDenied)`)
      ])
    }))

  it.effect("a lock that cannot be released is warned about; the effect's result stands", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { mem, store } = yield* setup({ localProcess: local() })
      mem.failWith("rename", "PermissionDenied", (path) => path === lockPath)
      expect(yield* logs.provide(store.withLock(Effect.succeed(7)))).toBe(7)
      expect(logs.warnings()).toEqual([
        expect.stringContaining(
          `Could not release the token lock ${lockPath} (PermissionDenied); others take it over when its lease runs out`
        )
      ])
      expect(mem.kind(lockPath)).toBe("File")
    }))

  it.effect("the lock is released when the effect fails or is interrupted", () =>
    Effect.gen(function*() {
      const { mem, store } = yield* setup({ localProcess: local() })
      expect(yield* Effect.flip(store.withLock(Effect.fail("boom")))).toBe("boom")
      expect(mem.list(dir)).toEqual([])
      const started = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(
        store.withLock(Effect.zipRight(Deferred.succeed(started, undefined), Effect.never))
      )
      yield* Deferred.await(started)
      expect(mem.list(dir)).toEqual(["token.json.lock"])
      yield* Fiber.interrupt(fiber)
      expect(mem.list(dir)).toEqual([])
    }))
})

describe("file names", () => {
  it("FNV-1a of the host names used above", async () => {
    const { fnv1a } = await import("../src/internal/atomicFile.js")
    expect(fnv1a("")).toBe("811c9dc5")
    expect(fnv1a("a")).toBe("e40c292c")
    expect([fnv1a(hostA), fnv1a("host-b")]).toEqual([hashA, hashB])
    // Always 8 hex digits: a hash below 0x10000000 is padded with zeros.
    expect(fnv1a("host-120")).toBe("0df602af")
  })
})
