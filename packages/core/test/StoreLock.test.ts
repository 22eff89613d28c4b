/**
 * The lock kit over a scripted storage: waiting and its timeout, the lease renewal, the release,
 * a lost lease, and a storage that cannot be reached, with the kit's metrics and warnings.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Metric, Option, TestClock } from "effect"
import { staleness } from "../src/internal/storeLock.js"
import * as StoreLock from "../src/StoreLock.js"
import * as LogCapture from "../src/testing/LogCapture.js"
import { withSpans } from "../src/testing/SpanCapture.js"
import * as TokenMetrics from "../src/TokenMetrics.js"

/** A storage whose answers the test scripts, recording every call and the owner it was for. */
const scripted = () => {
  const calls: Array<string> = []
  const owners = new Set<string>()
  const script = {
    takes: [] as Array<StoreLock.Attempt | string>,
    extends: [] as Array<boolean | string>,
    release: true as boolean | string
  }
  const answer = <A>(value: A | string) => typeof value === "string" ? Effect.fail(value) : Effect.succeed(value)
  const record = (call: string, owner: StoreLock.Owner) => {
    calls.push(call)
    owners.add(owner.nonce)
  }
  const storage: StoreLock.Storage = {
    take: (owner) =>
      Effect.suspend(() => {
        record("take", owner)
        return answer(script.takes.shift() ?? { _tag: "Taken" as const })
      }),
    extend: (owner) =>
      Effect.suspend(() => {
        record("extend", owner)
        return answer(script.extends.shift() ?? true)
      }),
    release: (owner) =>
      Effect.suspend(() => {
        record("release", owner)
        return answer(script.release)
      })
  }
  return { calls, owners, script, storage }
}

const lost = Metric.counter("test_lock_lost_total", { incremental: true })
const unavailable = Metric.counter("test_lock_unavailable_total", { incremental: true })
const count = (metric: Metric.Metric.Counter<number>, operation?: string) =>
  Effect.map(
    Metric.value(operation === undefined ? metric : Metric.tagged(metric, "operation", operation)),
    (state) => state.count
  )

const options = (overrides?: Partial<StoreLock.Options>): StoreLock.Options => ({
  store: "redis",
  name: "test lock",
  where: "here",
  lease: Duration.seconds(3),
  timeout: Duration.seconds(5),
  whenUnavailable: "proceed",
  lost,
  unavailable,
  ...overrides
})

const busy = (holder: string): StoreLock.Attempt => ({ _tag: "Busy", holder })

describe("StoreLock.make", () => {
  it.effect("takes the lock, runs the effect, releases it for the same owner; a wait is counted", () =>
    Effect.gen(function*() {
      const { calls, owners, script, storage } = scripted()
      const withLock = yield* StoreLock.make(storage, options())
      const waits = yield* Metric.value(TokenMetrics.lockWaits)
      const first = yield* withSpans(withLock(Effect.sync(() => calls.push("effect"))))
      expect(calls).toEqual(["take", "effect", "release"])
      expect(owners.size).toBe(1)
      const span = first.spans.find((s) => s.name === "TokenStore.lockWait")
      expect(span?.attributes.get("attempts")).toBe(1)
      expect(span?.attributes.get("waited")).toBe(false)
      expect(span?.attributes.get("lock")).toBe("here")
      expect(span?.attributes.get("store")).toBe("redis")
      expect(first.spans.find((s) => s.name === "TokenStore.withLock")?.attributes.get("store")).toBe("redis")
      expect((yield* Metric.value(TokenMetrics.lockWaits)).count).toBe(waits.count)

      calls.length = 0
      script.takes.push(busy("someone"), busy("someone"))
      const fiber = yield* Effect.fork(withSpans(withLock(Effect.sync(() => calls.push("effect")))))
      yield* TestClock.adjust("1 second")
      const second = yield* Fiber.join(fiber)
      expect(calls).toEqual(["take", "take", "take", "effect", "release"])
      const waited = second.spans.find((s) => s.name === "TokenStore.lockWait")
      expect(waited?.attributes.get("attempts")).toBe(3)
      expect(waited?.attributes.get("waited")).toBe(true)
      expect((yield* Metric.value(TokenMetrics.lockWaits)).count).toBe(waits.count + 1)
    }))

  it.effect("gives up after the timeout with a TokenStoreError naming the holder; nothing to release", () =>
    Effect.gen(function*() {
      const { calls, script, storage } = scripted()
      script.takes.push(...Array.from({ length: 1000 }, () => busy("process 7 on elsewhere")))
      const withLock = yield* StoreLock.make(storage, options({ store: "file", where: "/x/token.json.lock" }))
      const fiber = yield* Effect.fork(Effect.flip(withLock(Effect.sync(() => calls.push("effect")))))
      yield* TestClock.adjust("4900 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(fiber)
      expect(error).toMatchObject({
        _tag: "TokenStoreError",
        store: "file",
        operation: "lock",
        path: "/x/token.json.lock",
        reason: "still held by process 7 on elsewhere after waiting 5s"
      })
      expect(calls).not.toContain("effect")
      expect(calls).not.toContain("release")
      // Polled with backoff, at most every 100 ms (jittered): tens of attempts, not thousands.
      expect(calls.length).toBeGreaterThan(20)
      expect(calls.length).toBeLessThan(120)
    }))

  it.effect("a storage that can say who holds the lock is asked once, when the wait times out", () =>
    Effect.gen(function*() {
      const { script, storage } = scripted()
      script.takes.push(...Array.from({ length: 1000 }, () => busy("another process")))
      let asked = 0
      const withHolder = { ...storage, holder: Effect.sync(() => `process ${++asked} on host-b`) }
      const withLock = yield* StoreLock.make(withHolder, options({ timeout: Duration.millis(500) }))
      const fiber = yield* Effect.fork(Effect.flip(withLock(Effect.void)))
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.join(fiber)).reason).toBe("still held by process 1 on host-b after waiting 500ms")
      expect(asked).toBe(1)
    }))

  it.effect("storage unreachable, proceed: runs unlocked with a warning and the metric; nothing released", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { calls, script, storage } = scripted()
      script.takes.push("Redis is unreachable")
      const withLock = yield* StoreLock.make(storage, options())
      const before = yield* count(unavailable, "lock")
      expect(yield* logs.provide(withLock(Effect.succeed(42)))).toBe(42)
      expect(calls).toEqual(["take"])
      expect(yield* count(unavailable, "lock")).toBe(before + 1)
      expect(logs.warnings()).toEqual([
        expect.stringContaining(
          "Could not take the test lock (Redis is unreachable); renewing without it, so other processes may log in too"
        )
      ])
    }))

  it.effect("storage unreachable, fail: a TokenStoreError with the reason; the effect does not run", () =>
    Effect.gen(function*() {
      const { calls, script, storage } = scripted()
      script.takes.push("Redis is unreachable")
      const withLock = yield* StoreLock.make(storage, options({ whenUnavailable: "fail" }))
      const before = yield* count(unavailable, "lock")
      const error = yield* Effect.flip(withLock(Effect.sync(() => calls.push("effect"))))
      expect(error).toMatchObject({ store: "redis", operation: "lock", path: "here", reason: "Redis is unreachable" })
      expect(error.message).toBe("Could not lock the token in Redis at here: Redis is unreachable")
      expect(calls).toEqual(["take"])
      expect(yield* count(unavailable, "lock")).toBe(before + 1)
    }))

  it.effect("works without metrics: an unreachable storage is only warned about", () =>
    Effect.gen(function*() {
      const { script, storage } = scripted()
      script.takes.push("down")
      const withLock = yield* StoreLock.make(storage, options({ lost: undefined, unavailable: undefined }))
      expect(yield* withLock(Effect.succeed("ran"))).toBe("ran")
    }))

  it.effect("extends the lease every third of it while held, and stops when released", () =>
    Effect.gen(function*() {
      const { calls, storage } = scripted()
      const withLock = yield* StoreLock.make(storage, options())
      const fiber = yield* Effect.fork(withLock(Effect.sleep("2500 millis")))
      yield* TestClock.adjust("999 millis")
      expect(calls).toEqual(["take"])
      yield* TestClock.adjust("1 millis")
      expect(calls).toEqual(["take", "extend"])
      yield* TestClock.adjust("1500 millis")
      yield* Fiber.join(fiber)
      expect(calls).toEqual(["take", "extend", "extend", "release"])
      yield* TestClock.adjust("10 seconds")
      expect(calls).toEqual(["take", "extend", "extend", "release"])
    }))

  it.effect("a storage without extend keeps no renewal running", () =>
    Effect.gen(function*() {
      const { calls, storage } = scripted()
      const withLock = yield* StoreLock.make({ ...storage, extend: undefined }, options())
      const fiber = yield* Effect.fork(withLock(Effect.sleep("5 seconds")))
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(fiber)
      expect(calls).toEqual(["take", "release"])
    }))

  it.effect("a lease found lost is reported once (warning and metric), and extending stops", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { calls, script, storage } = scripted()
      script.extends.push(false)
      script.release = false
      const withLock = yield* StoreLock.make(storage, options())
      const before = yield* count(lost)
      const fiber = yield* Effect.fork(logs.provide(withLock(Effect.sleep("5 seconds"))))
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(fiber)
      expect(calls).toEqual(["take", "extend", "release"])
      expect(yield* count(lost)).toBe(before + 1)
      expect(logs.warnings()).toEqual([
        expect.stringContaining(
          "The test lock was taken over by another process while held (its lease of 3s ran out)"
        )
      ])
    }))

  it.effect("a lock found gone at release is reported as lost", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { script, storage } = scripted()
      script.release = false
      const withLock = yield* StoreLock.make(storage, options())
      const before = yield* count(lost)
      expect(yield* logs.provide(withLock(Effect.succeed(1)))).toBe(1)
      expect(yield* count(lost)).toBe(before + 1)
      expect(logs.warnings()).toEqual([expect.stringContaining("The test lock was taken over")])
    }))

  it.effect("a missed extension is no loss: counted, and the next one is tried", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { calls, script, storage } = scripted()
      script.extends.push("timed out")
      const withLock = yield* StoreLock.make(storage, options())
      const before = yield* count(unavailable, "extend")
      const fiber = yield* Effect.fork(logs.provide(withLock(Effect.sleep("2500 millis"))))
      yield* TestClock.adjust("2500 millis")
      yield* Fiber.join(fiber)
      expect(calls).toEqual(["take", "extend", "extend", "release"])
      expect(yield* count(unavailable, "extend")).toBe(before + 1)
      expect(logs.warnings()).toEqual([])
      expect(logs.lines.some((line) => line.level === "DEBUG" && line.text.includes("timed out"))).toBe(true)
    }))

  it.effect("a release that fails is warned about and counted; the effect's result stands", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { script, storage } = scripted()
      script.release = "no answer"
      const withLock = yield* StoreLock.make(storage, options())
      const before = yield* count(unavailable, "release")
      expect(yield* logs.provide(withLock(Effect.succeed(7)))).toBe(7)
      expect(yield* count(unavailable, "release")).toBe(before + 1)
      expect(logs.warnings()).toEqual([
        expect.stringContaining(
          "Could not release the test lock (no answer); others take it over when its lease runs out"
        )
      ])
    }))

  it.effect("fibers of one process queue before polling: one holds, the other has not even tried", () =>
    Effect.gen(function*() {
      const { calls, storage } = scripted()
      const withLock = yield* StoreLock.make(storage, options({ lease: Duration.hours(1) }))
      const first = yield* Effect.fork(withLock(Effect.sleep("1 second")))
      const second = yield* Effect.fork(withLock(Effect.void))
      yield* TestClock.adjust("500 millis")
      expect(calls).toEqual(["take"])
      yield* TestClock.adjust("500 millis")
      yield* Fiber.join(first)
      yield* Fiber.join(second)
      expect(calls).toEqual(["take", "release", "take", "release"])
    }))

  it.effect("every acquisition has an owner of its own: this process, and a fresh nonce", () =>
    Effect.gen(function*() {
      const seen: Array<StoreLock.Owner> = []
      const { storage } = scripted()
      const recording = {
        ...storage,
        take: (owner: StoreLock.Owner) => Effect.zipRight(Effect.sync(() => seen.push(owner)), storage.take(owner))
      }
      const local = { pid: 12, hostname: "host-a", isAlive: () => Effect.succeed(true) }
      const withLock = yield* StoreLock.make(recording, options({ localProcess: local }))
      yield* withLock(Effect.void)
      yield* withLock(Effect.void)
      const anonymous = yield* StoreLock.make(recording, options())
      yield* anonymous(Effect.void)
      expect(seen.map(({ host, pid }) => ({ host, pid }))).toEqual([
        { host: "host-a", pid: 12 },
        { host: "host-a", pid: 12 },
        { host: null, pid: null }
      ])
      expect(seen.every(({ nonce }) => /^[0-9a-z]{14}$/.test(nonce))).toBe(true)
      expect(new Set(seen.map(({ nonce }) => nonce)).size).toBe(3)
    }))
})

describe("staleness (the file lock's stale-lock rules)", () => {
  const local = (alive: boolean) => {
    const asked: Array<number> = []
    return {
      asked,
      local: { pid: 1, hostname: "host-a", isAlive: (pid: number) => Effect.sync(() => (asked.push(pid), alive)) }
    }
  }

  it.effect("a lease that ran out, naming its owner and lease", () =>
    Effect.gen(function*() {
      const stale = yield* staleness({ pid: 5, host: "host-b" }, 1_000, 1_000, undefined)
      expect(stale).toEqual(
        Option.some("its lease ran out (process 5 on host-b, lease until 1970-01-01T00:00:01.000Z)")
      )
      expect(yield* staleness({ pid: 5, host: "host-b" }, 1_001, 1_000, undefined)).toEqual(Option.none())
    }))

  it.effect("an owner of this host that is no longer running; only such owners are asked about", () =>
    Effect.gen(function*() {
      const dead = local(false)
      expect(yield* staleness({ pid: 5, host: "host-a" }, 9_000, 0, dead.local)).toEqual(
        Option.some("its owner, process 5, is no longer running")
      )
      const alive = local(true)
      expect(yield* staleness({ pid: 5, host: "host-a" }, 9_000, 0, alive.local)).toEqual(Option.none())
      expect(alive.asked).toEqual([5])
      // Another host, no pid, or this very process: nothing to ask.
      for (const owner of [{ pid: 5, host: "host-b" }, { pid: null, host: "host-a" }, { pid: 1, host: "host-a" }]) {
        expect(yield* staleness(owner, 9_000, 0, dead.local)).toEqual(Option.none())
      }
      expect(dead.asked).toEqual([5])
    }))

  it("describes owners for messages", () => {
    expect(StoreLock.describeOwner({ pid: 5, host: "host-b" })).toBe("process 5 on host-b")
    expect(StoreLock.describeOwner({ pid: null, host: null })).toBe("process ? on an unknown host")
  })
})
