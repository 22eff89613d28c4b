import { describe, expect, it } from "@effect/vitest"
import { Cause, DateTime, Duration, Effect, Exit, Fiber, Layer, Metric, Option, Redacted, TestClock } from "effect"
import * as LogCapture from "../src/testing/LogCapture.js"
import { withSpans } from "../src/testing/SpanCapture.js"
import { TokenData } from "../src/TokenData.js"
import { AuthError, TokenStoreError } from "../src/TokenError.js"
import * as TokenMetrics from "../src/TokenMetrics.js"
import * as TokenService from "../src/TokenService.js"
import * as TokenStore from "../src/TokenStore.js"
import * as ScriptedAuthApi from "./utils/ScriptedAuthApi.js"

/** A token service over a scripted API and an in-memory store, both exposed to the test. */
const setup = (options?: { readonly stored?: TokenData; readonly store?: TokenStore.TokenStore["Type"] }) =>
  Effect.gen(function*() {
    const api = ScriptedAuthApi.make()
    const store = options?.store ?? (yield* TokenStore.makeMemory)
    if (options?.stored) yield* store.save(options.stored)
    const service = yield* TokenService.make().pipe(
      Effect.provide(Layer.merge(api.layer, Layer.succeed(TokenStore.TokenStore, store)))
    )
    return { api: api.script, store, service }
  })

const tokenData = (payload: Record<string, unknown>, obtainedAtMillis: number) =>
  TokenData.fromToken(Redacted.make(ScriptedAuthApi.jwt(payload)), DateTime.unsafeMake(obtainedAtMillis))

const value = Redacted.value<string>

describe("TokenService", () => {
  it.effect("obtains once, saves, then answers from memory without calls", () =>
    Effect.gen(function*() {
      const { api, service, store } = yield* setup()
      const first = yield* service.getToken
      const second = yield* service.getToken
      expect(api.obtainCalls).toBe(1)
      expect(api.refreshCalls).toBe(0)
      expect(value(second)).toBe(value(first))
      const saved = yield* store.load
      expect(Option.map(saved, (data) => value(data.token))).toEqual(Option.some(value(first)))
    }))

  it.effect("1,000 concurrent callers cause exactly one login", () =>
    Effect.gen(function*() {
      const { api, service } = yield* setup()
      api.latency = Duration.millis(50)
      const fiber = yield* Effect.fork(Effect.all(Array.from({ length: 1000 }, () => service.getToken), {
        concurrency: "unbounded"
      }))
      yield* TestClock.adjust("50 millis")
      expect(api.obtainCalls).toBe(1)
      const tokens = yield* Fiber.join(fiber)
      expect(new Set(tokens.map(value)).size).toBe(1)
    }))

  it.effect("1,000 concurrent callers share one failed login instead of each trying", () =>
    Effect.gen(function*() {
      const { api, service } = yield* setup()
      api.latency = Duration.millis(50)
      api.obtainFailures.push(new AuthError({ endpoint: "obtain_token", reason: "InvalidCredentials", status: 400 }))
      const fiber = yield* Effect.fork(Effect.all(Array.from({ length: 1000 }, () => Effect.exit(service.getToken)), {
        concurrency: "unbounded"
      }))
      yield* TestClock.adjust("50 millis")
      expect(api.obtainCalls).toBe(1) // counted before joining: a second attempt would still be running
      const exits = yield* Fiber.join(fiber)
      expect(exits.every((exit) => Exit.isFailure(exit))).toBe(true)
      const errors = exits.map((exit) => Exit.isFailure(exit) ? exit.cause : undefined)
      expect(errors.every((cause) => cause?._tag === "Fail" && cause.error.reason === "InvalidCredentials")).toBe(true)
      // The failure is not sticky: the next caller tries again.
      yield* Effect.fork(service.getToken)
      yield* TestClock.adjust("50 millis")
      expect(api.obtainCalls).toBe(2)
    }))

  it.effect("a caller interrupted during the login does not strand the callers waiting for it", () =>
    Effect.gen(function*() {
      const { api, service } = yield* setup()
      api.latency = Duration.millis(50)
      const first = yield* Effect.fork(service.getToken)
      yield* TestClock.adjust("10 millis")
      const second = yield* Effect.fork(service.getToken)
      yield* TestClock.adjust("10 millis")
      expect(api.obtainCalls).toBe(1)
      yield* Fiber.interrupt(first)
      // The waiter starts a login of its own, and gets its token.
      yield* TestClock.adjust("50 millis")
      const token = yield* Fiber.join(second)
      expect(api.obtainCalls).toBe(2)
      expect(value(token)).toBe(api.issued.at(-1))
    }))

  it.effect("refreshes only once inside the 5 minute margin, then serves the new token", () =>
    Effect.gen(function*() {
      const { api, service } = yield* setup()
      const first = yield* service.getToken // exp = 1 h
      yield* TestClock.adjust(Duration.subtract(Duration.minutes(55), Duration.millis(1)))
      expect(value(yield* service.getToken)).toBe(value(first))
      expect(api.refreshCalls).toBe(0)
      yield* TestClock.adjust("1 millis") // exactly 5 minutes before expiry
      const refreshed = yield* Effect.all(Array.from({ length: 100 }, () => service.getToken), {
        concurrency: "unbounded"
      })
      expect(api.refreshCalls).toBe(1)
      expect(api.obtainCalls).toBe(1)
      expect(api.refreshedFrom).toEqual([value(first)])
      expect(new Set(refreshed.map(value))).toEqual(new Set([api.issued[1]]))
    }))

  it.effect("an expired token is replaced by a login, never refreshed", () =>
    Effect.gen(function*() {
      const { api, service } = yield* setup()
      yield* service.getToken
      yield* TestClock.adjust("1 hours")
      yield* service.getToken
      expect(api.refreshCalls).toBe(0)
      expect(api.obtainCalls).toBe(2)
    }))

  it.effect("a failed refresh falls back to a login", () =>
    Effect.gen(function*() {
      const { api, service, store } = yield* setup()
      yield* service.getToken
      yield* TestClock.adjust("56 minutes")
      api.refreshFailures.push(new AuthError({ endpoint: "refresh-token", reason: "RefreshRejected", status: 401 }))
      const token = yield* service.getToken
      expect(api.refreshCalls).toBe(1)
      expect(api.obtainCalls).toBe(2)
      expect(value(token)).toBe(api.issued[1])
      const saved = yield* store.load
      expect(Option.map(saved, (data) => value(data.token))).toEqual(Option.some(api.issued[1]))
    }))

  it.effect("loads a valid stored token when built: no call at all", () =>
    Effect.gen(function*() {
      const stored = tokenData({ exp: 7200 }, 0)
      const { api, service } = yield* setup({ stored })
      expect(value(yield* service.getToken)).toBe(value(stored.token))
      expect(api.obtainCalls + api.refreshCalls).toBe(0)
    }))

  it.effect("ignores an expired stored token when built, and removes it at the next renewal (under the lock)", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust("3 hours")
      const stored = tokenData({ exp: 3600 }, 0)
      const { api, service, store } = yield* setup({ stored })
      expect(yield* service.getTokenInfo).toEqual(Option.none())
      // Not removed when built (no lock then: another process may be saving a fresh one).
      expect(Option.isSome(yield* store.load)).toBe(true)
      api.obtainFailures.push(new AuthError({ endpoint: "obtain_token", reason: "InvalidCredentials", status: 400 }))
      const error = yield* Effect.flip(service.getToken)
      expect(error).toMatchObject({ _tag: "AuthError", reason: "InvalidCredentials" })
      expect(api.refreshCalls).toBe(0)
      expect(yield* store.load).toEqual(Option.none())
      yield* service.getToken
      expect(api.obtainCalls).toBe(2)
    }))

  it.effect("keeps serving a still-valid token when renewal fails in the margin, and tries again 30 s later", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { api, service } = yield* setup()
      const first = yield* service.getToken
      yield* TestClock.adjust("56 minutes")
      api.refreshFailures.push(new AuthError({ endpoint: "refresh-token", reason: "RefreshRejected", status: 401 }))
      api.obtainFailures.push(new AuthError({ endpoint: "obtain_token", reason: "ServerError", status: 503 }))
      expect(value(yield* logs.provide(service.getToken))).toBe(value(first))
      expect(logs.warnings().some((line) => line.includes("the current one is valid for 4m"))).toBe(true)
      expect([api.refreshCalls, api.obtainCalls]).toEqual([1, 2])
      // Within the next 30 s: answered from memory, no call.
      yield* TestClock.adjust("29 seconds")
      expect(value(yield* service.getToken)).toBe(value(first))
      expect([api.refreshCalls, api.obtainCalls]).toEqual([1, 2])
      // Then it tries again, and this time the refresh works.
      yield* TestClock.adjust("1 seconds")
      expect(value(yield* service.getToken)).toBe(api.issued[1])
      expect([api.refreshCalls, api.obtainCalls]).toEqual([2, 2])
    }))

  it.effect("callers that shared a renewal failing in the margin are served the still-valid token too", () =>
    Effect.gen(function*() {
      const { api, service } = yield* setup()
      const first = yield* service.getToken
      yield* TestClock.adjust("56 minutes")
      api.latency = Duration.millis(50)
      api.refreshFailures.push(new AuthError({ endpoint: "refresh-token", reason: "RefreshRejected", status: 401 }))
      api.obtainFailures.push(new AuthError({ endpoint: "obtain_token", reason: "ServerError", status: 503 }))
      const fiber = yield* Effect.fork(
        Effect.all(Array.from({ length: 10 }, () => service.getToken), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("100 millis") // the refresh, then the login, both failing
      expect([api.refreshCalls, api.obtainCalls]).toEqual([1, 2])
      expect(new Set((yield* Fiber.join(fiber)).map(value))).toEqual(new Set([value(first)]))
    }))

  it.effect("an expired token whose renewal fails is an error, not a stale answer", () =>
    Effect.gen(function*() {
      const { api, service } = yield* setup()
      yield* service.getToken
      yield* TestClock.adjust("1 hours")
      api.obtainFailures.push(new AuthError({ endpoint: "obtain_token", reason: "ServerError", status: 503 }))
      const error = yield* Effect.flip(service.getToken)
      expect(error).toMatchObject({ _tag: "AuthError", reason: "ServerError" })
    }))

  it.effect("the JWT's exp wins over a stored expires_at", () =>
    Effect.gen(function*() {
      // A file that claims 24 h, for a token whose exp says 4 minutes: inside the margin.
      const token = Redacted.make(ScriptedAuthApi.jwt({ exp: 240 }))
      const stored = new TokenData({
        token,
        obtainedAt: DateTime.unsafeMake(0),
        expiresAt: DateTime.unsafeMake(Duration.toMillis("24 hours"))
      })
      const { api, service } = yield* setup({ stored })
      const info = yield* service.getTokenInfo
      expect(Option.map(info, (i) => DateTime.toEpochMillis(i.expiresAt))).toEqual(Option.some(240_000))
      yield* service.getToken // inside the margin: refresh
      expect(api.refreshCalls).toBe(1)
    }))

  it.effect("adopts a token another process saved while this one decided to renew", () =>
    Effect.gen(function*() {
      const { api, service, store } = yield* setup()
      yield* service.getToken
      yield* TestClock.adjust("56 minutes")
      const other = tokenData({ exp: 7200 }, Duration.toMillis("56 minutes"))
      yield* store.save(other)
      expect(value(yield* service.getToken)).toBe(value(other.token))
      expect(api.refreshCalls).toBe(0)
      expect(api.obtainCalls).toBe(1)
    }))

  it.effect("serves from memory and warns when the store cannot save", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const failing = TokenStore.TokenStore.of({
        description: "broken",
        load: Effect.succeedNone,
        save: () =>
          new TokenStoreError({
            store: "file",
            operation: "save",
            path: "/x/token.json",
            reason: "ReadOnlyFileSystem"
          }),
        remove: Effect.void,
        withLock: (effect) => effect
      })
      const { api, service } = yield* logs.provide(setup({ store: failing }))
      const token = yield* logs.provide(service.getToken)
      expect(value(yield* service.getToken)).toBe(value(token))
      expect(api.obtainCalls).toBe(1)
      expect(logs.warnings().some((line) => line.includes("ReadOnlyFileSystem") && line.includes("memory only")))
        .toBe(true)
    }))

  it.effect("a save the store refuses for a later token: that token is served, and the store told what it replaced", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const memory = yield* TokenStore.makeMemory
      const replaced: Array<string | undefined> = []
      const later = tokenData({ exp: 7200, jti: "another process" }, 0)
      // A shared store whose fence keeps a later token another process saved meanwhile.
      const fenced = TokenStore.TokenStore.of({
        ...memory,
        save: (data, replacing) =>
          Effect.suspend(() => {
            replaced.push(replacing === undefined ? undefined : value(replacing.token))
            return replaced.length === 1 ? memory.save(data) : Effect.as(memory.save(later), later)
          })
      })
      const { api, service } = yield* setup({ store: fenced })
      const first = yield* service.getToken
      expect(replaced).toEqual([undefined])
      const refreshed = yield* logs.provide(service.forceRefresh)
      expect(api.refreshCalls).toBe(1)
      expect(replaced).toEqual([undefined, value(first)])
      expect(value(refreshed)).toBe(value(later.token))
      expect(value(yield* service.getToken)).toBe(value(later.token))
      expect(Option.map(yield* service.getTokenInfo, (info) => info.expiresAt)).toEqual(Option.some(later.expiresAt))
      expect(logs.warnings()).toEqual([expect.stringContaining("Another process saved a token that expires later")])
    }))

  it.effect("clearToken empties memory and store; the next getToken logs in", () =>
    Effect.gen(function*() {
      const { api, service, store } = yield* setup()
      yield* service.getToken
      yield* service.clearToken
      expect(yield* store.load).toEqual(Option.none())
      expect(yield* service.getTokenInfo).toEqual(Option.none())
      yield* service.getToken
      expect(api.obtainCalls).toBe(2)
    }))

  it.effect("obtainToken always logs in; forceRefresh refreshes a valid token", () =>
    Effect.gen(function*() {
      const { api, service } = yield* setup()
      yield* service.getToken
      yield* service.obtainToken
      expect(api.obtainCalls).toBe(2)
      yield* service.forceRefresh
      expect(api.refreshCalls).toBe(1)
      expect(api.obtainCalls).toBe(2)
    }))

  it.effect("refreshToken refuses without a token or with an expired one, and never logs in", () =>
    Effect.gen(function*() {
      const { api, service } = yield* setup()
      const none = yield* Effect.flip(service.refreshToken)
      expect(none._tag === "NoTokenToRefresh" && none.reason).toBe("no token")
      yield* service.getToken
      yield* TestClock.adjust("2 hours")
      const expired = yield* Effect.flip(service.refreshToken)
      expect(expired._tag === "NoTokenToRefresh" && expired.reason).toBe("expired")
      expect(api.obtainCalls).toBe(1)
      expect(api.refreshCalls).toBe(0)
      yield* service.getToken
      yield* service.refreshToken
      expect(api.refreshCalls).toBe(1)
      api.refreshFailures.push(new AuthError({ endpoint: "refresh-token", reason: "ServerError", status: 503 }))
      const failed = yield* Effect.flip(service.refreshToken)
      expect(failed).toMatchObject({ _tag: "AuthError", reason: "ServerError" })
      expect(api.obtainCalls).toBe(2)
    }))

  it.effect("renewRejected renews the rejected current token once, and not a token already replaced", () =>
    Effect.gen(function*() {
      const { api, service } = yield* setup()
      const stale = yield* service.getToken
      const renewed = yield* Effect.all(Array.from({ length: 50 }, () => service.renewRejected(stale)), {
        concurrency: "unbounded"
      })
      expect(api.refreshCalls + api.obtainCalls).toBe(2) // the first login and one renewal
      expect(new Set(renewed.map(value))).toEqual(new Set([api.issued[1]]))
      // A late rejection of the old token does not renew again.
      yield* service.renewRejected(stale)
      expect(api.refreshCalls + api.obtainCalls).toBe(2)
    }))

  it.effect("getToken callers queued behind a failed renewal share its failure: one attempt, not one each", () =>
    Effect.gen(function*() {
      const { api, service } = yield* setup()
      api.latency = Duration.millis(50)
      api.obtainFailures.push(
        ...Array.from(
          { length: 301 },
          () =>
            new AuthError({
              endpoint: "obtain_token",
              reason: "InvalidCredentials",
              status: 400,
              detail: "bad password"
            })
        )
      )
      const callers = (n: number) =>
        Effect.fork(
          Effect.all(Array.from({ length: n }, () => Effect.exit(service.getToken)), { concurrency: "unbounded" })
        )
      // Callers arrive while the failing login runs: at its start, 10 ms in, 40 ms in.
      const fibers = [yield* callers(100)]
      yield* TestClock.adjust("10 millis")
      fibers.push(yield* callers(100))
      yield* TestClock.adjust("30 millis")
      fibers.push(yield* callers(100))
      yield* TestClock.adjust("10 millis")
      expect(api.obtainCalls).toBe(1)
      // Time for any caller that tried again on its own to finish (a wrong password per caller).
      yield* TestClock.adjust("1 minutes")
      expect(api.obtainCalls).toBe(1)
      const exits = (yield* Effect.all(fibers.map(Fiber.join))).flat()
      expect(exits.length).toBe(300)
      expect(exits.map((exit) => Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()))
        .toEqual(
          exits.map(() => Option.some(expect.objectContaining({ _tag: "AuthError", reason: "InvalidCredentials" })))
        )
    }))

  it.effect("renewRejected callers share one failed renewal: one refresh and one login for all", () =>
    Effect.gen(function*() {
      const { api, service } = yield* setup()
      const stale = yield* service.getToken
      api.latency = Duration.millis(50)
      api.refreshFailures.push(
        new AuthError({ endpoint: "refresh-token", reason: "RefreshRejected", status: 401, detail: "revoked" })
      )
      api.obtainFailures.push(
        new AuthError({ endpoint: "obtain_token", reason: "InvalidCredentials", status: 400, detail: "bad password" })
      )
      api.obtainFailures.push(
        new AuthError({ endpoint: "obtain_token", reason: "InvalidCredentials", status: 400, detail: "bad password" })
      )
      const fiber = yield* Effect.fork(
        Effect.all(Array.from({ length: 50 }, () => Effect.flip(service.renewRejected(stale))), {
          concurrency: "unbounded"
        })
      )
      yield* TestClock.adjust("1 minutes")
      const errors = yield* Fiber.join(fiber)
      expect([api.refreshCalls, api.obtainCalls]).toEqual([1, 2]) // the first login, then one fallback
      expect(new Set(errors.map((error) => error._tag === "AuthError" ? error.reason : error._tag))).toEqual(
        new Set(["InvalidCredentials"])
      )
    }))

  describe("explicit renewals renew, whatever is under way (issue 9)", () => {
    it.effect("obtainToken called during a getToken login waits for it, then logs in itself", () =>
      Effect.gen(function*() {
        const { api, service } = yield* setup()
        api.latency = Duration.millis(50)
        const auto = yield* Effect.fork(service.getToken)
        yield* TestClock.adjust("10 millis")
        const explicit = yield* Effect.fork(service.obtainToken)
        yield* TestClock.adjust("40 millis") // the getToken login ends; obtainToken's starts
        expect(value(yield* Fiber.join(auto))).toBe(api.issued[0])
        expect(api.obtainCalls).toBe(2)
        yield* TestClock.adjust("50 millis")
        expect(value(yield* Fiber.join(explicit))).toBe(api.issued[1])
        expect(api.obtainCalls).toBe(2)
      }))

    it.effect("obtainToken queued behind a failing getToken login does not inherit its failure", () =>
      Effect.gen(function*() {
        const { api, service, store } = yield* setup()
        api.latency = Duration.millis(50)
        api.obtainFailures.push(new AuthError({ endpoint: "obtain_token", reason: "ServerError", status: 503 }))
        const auto = yield* Effect.fork(service.getToken)
        yield* TestClock.adjust("10 millis")
        const explicit = yield* Effect.fork(service.obtainToken)
        yield* TestClock.adjust("1 minutes")
        expect(Exit.isFailure(yield* Fiber.await(auto))).toBe(true)
        expect(value(yield* Fiber.join(explicit))).toBe(api.issued[0])
        expect(api.obtainCalls).toBe(2)
        const saved = yield* store.load
        expect(Option.map(saved, (data) => value(data.token))).toEqual(Option.some(api.issued[0]))
      }))

    it.effect("forceRefresh called during a getToken refresh refreshes again, the token that one issued", () =>
      Effect.gen(function*() {
        const { api, service } = yield* setup()
        const first = yield* service.getToken
        yield* TestClock.adjust("56 minutes")
        api.latency = Duration.millis(50)
        const auto = yield* Effect.fork(service.getToken)
        yield* TestClock.adjust("10 millis")
        const explicit = yield* Effect.fork(service.forceRefresh)
        yield* TestClock.adjust("1 minutes")
        expect(value(yield* Fiber.join(auto))).toBe(api.issued[1])
        expect(value(yield* Fiber.join(explicit))).toBe(api.issued[2])
        expect(api.refreshedFrom).toEqual([value(first), api.issued[1]])
        expect(api.obtainCalls).toBe(1)
      }))

    it.effect("forceRefresh queued behind a failing getToken renewal does not inherit its failure", () =>
      Effect.gen(function*() {
        const { api, service } = yield* setup()
        yield* service.getToken
        yield* TestClock.adjust("1 hours") // expired: getToken logs in
        api.latency = Duration.millis(50)
        api.obtainFailures.push(new AuthError({ endpoint: "obtain_token", reason: "ServerError", status: 503 }))
        const auto = yield* Effect.fork(service.getToken)
        yield* TestClock.adjust("10 millis")
        const explicit = yield* Effect.fork(service.forceRefresh)
        yield* TestClock.adjust("1 minutes")
        const failure = yield* Fiber.await(auto)
        expect(Exit.isFailure(failure) && Cause.failureOption(failure.cause)).toEqual(
          Option.some(expect.objectContaining({ _tag: "AuthError", reason: "ServerError" }))
        )
        expect(value(yield* Fiber.join(explicit))).toBe(api.issued[1])
        expect([api.refreshCalls, api.obtainCalls]).toEqual([0, 3]) // expired: a login, never a refresh
      }))

    it.effect("refreshToken called during a getToken refresh refreshes the token that one issued", () =>
      Effect.gen(function*() {
        const { api, service, store } = yield* setup()
        const first = yield* service.getToken
        yield* TestClock.adjust("56 minutes")
        api.latency = Duration.millis(50)
        const auto = yield* Effect.fork(service.getToken)
        yield* TestClock.adjust("10 millis")
        const explicit = yield* Effect.fork(service.refreshToken)
        yield* TestClock.adjust("1 minutes")
        yield* Fiber.join(auto)
        expect(value(yield* Fiber.join(explicit))).toBe(api.issued[2])
        expect(api.refreshedFrom).toEqual([value(first), api.issued[1]])
        const saved = yield* store.load
        expect(Option.map(saved, (data) => value(data.token))).toEqual(Option.some(api.issued[2]))
      }))

    it.effect("concurrent obtainToken calls: the first logs in, those that waited share the next login", () =>
      Effect.gen(function*() {
        const { api, service } = yield* setup()
        api.latency = Duration.millis(50)
        const first = yield* Effect.fork(service.obtainToken)
        yield* TestClock.adjust("10 millis")
        const waiting = yield* Effect.fork(
          Effect.all(Array.from({ length: 10 }, () => service.obtainToken), { concurrency: "unbounded" })
        )
        yield* TestClock.adjust("1 minutes")
        expect(value(yield* Fiber.join(first))).toBe(api.issued[0])
        expect(new Set((yield* Fiber.join(waiting)).map(value))).toEqual(new Set([api.issued[1]]))
        expect(api.obtainCalls).toBe(2)
      }))

    it.effect("forceRefresh calls waiting together share the next refresh; a waiting obtainToken logs in", () =>
      Effect.gen(function*() {
        const { api, service } = yield* setup()
        yield* service.getToken
        api.latency = Duration.millis(50)
        const first = yield* Effect.fork(service.forceRefresh)
        yield* TestClock.adjust("10 millis")
        const refreshes = yield* Effect.fork(
          Effect.all(Array.from({ length: 10 }, () => service.forceRefresh), { concurrency: "unbounded" })
        )
        yield* TestClock.adjust("1 minutes")
        yield* Fiber.join(first)
        expect(new Set((yield* Fiber.join(refreshes)).map(value))).toEqual(new Set([api.issued[2]]))
        expect([api.refreshCalls, api.obtainCalls]).toEqual([2, 1])
        // A login is never answered by a refresh, even one that starts after it was called.
        const refresh = yield* Effect.fork(service.forceRefresh)
        yield* TestClock.adjust("10 millis")
        const login = yield* Effect.fork(service.obtainToken)
        yield* TestClock.adjust("1 minutes")
        yield* Fiber.join(refresh)
        expect(value(yield* Fiber.join(login))).toBe(api.issued[4])
        expect([api.refreshCalls, api.obtainCalls]).toEqual([3, 2])
      }))

    it.effect("getToken shares a login that obtainToken started", () =>
      Effect.gen(function*() {
        const { api, service } = yield* setup()
        api.latency = Duration.millis(50)
        const explicit = yield* Effect.fork(service.obtainToken)
        yield* TestClock.adjust("10 millis")
        const auto = yield* Effect.fork(
          Effect.all(Array.from({ length: 10 }, () => service.getToken), { concurrency: "unbounded" })
        )
        yield* TestClock.adjust("1 minutes")
        expect(value(yield* Fiber.join(explicit))).toBe(api.issued[0])
        expect(new Set((yield* Fiber.join(auto)).map(value))).toEqual(new Set([api.issued[0]]))
        expect(api.obtainCalls).toBe(1)
      }))

    it.effect("an interrupted obtainToken does not strand the explicit calls queued behind it", () =>
      Effect.gen(function*() {
        const { api, service } = yield* setup()
        api.latency = Duration.millis(50)
        const first = yield* Effect.fork(service.obtainToken)
        yield* TestClock.adjust("10 millis")
        const second = yield* Effect.fork(service.obtainToken)
        yield* TestClock.adjust("10 millis")
        yield* Fiber.interrupt(first)
        yield* TestClock.adjust("1 minutes")
        expect(value(yield* Fiber.join(second))).toBe(api.issued.at(-1))
        expect(api.obtainCalls).toBe(2)
      }))
  })

  it.effect("refreshToken, forceRefresh and obtainToken save the new token to the store", () =>
    Effect.gen(function*() {
      const { service, store } = yield* setup()
      const stored = () => Effect.map(store.load, Option.map((data) => value(data.token)))
      yield* service.getToken
      for (const operation of [service.refreshToken, service.forceRefresh, service.obtainToken]) {
        const token = yield* operation
        expect(yield* stored()).toEqual(Option.some(value(token)))
      }
    }))

  it.effect("clearToken during a renewal waits for it: the renewed token does not come back", () =>
    Effect.gen(function*() {
      const { api, service, store } = yield* setup()
      api.latency = Duration.millis(50)
      const renewal = yield* Effect.fork(service.getToken)
      yield* TestClock.adjust("10 millis")
      const clear = yield* Effect.fork(service.clearToken)
      yield* TestClock.adjust("10 millis")
      expect(Option.isSome(yield* Fiber.poll(clear))).toBe(false)
      yield* TestClock.adjust("40 millis")
      yield* Fiber.join(renewal)
      yield* Fiber.join(clear)
      expect(yield* store.load).toEqual(Option.none())
      expect(yield* service.getTokenInfo).toEqual(Option.none())
    }))

  it.effect("getTokenInfo follows the Clock", () =>
    Effect.gen(function*() {
      const { service } = yield* setup()
      yield* service.getToken
      yield* TestClock.adjust("56 minutes")
      const info = Option.getOrThrow(yield* service.getTokenInfo)
      expect(Duration.toMillis(info.expiresIn)).toBe(Duration.toMillis("4 minutes"))
      expect(Duration.toMillis(info.age)).toBe(Duration.toMillis("56 minutes"))
      expect(info.expiresSoon).toBe(true)
      expect(info.isExpired).toBe(false)
      // The gauge follows too: seconds until expiry, never negative.
      const gauge = Effect.map(Metric.value(TokenMetrics.secondsUntilExpiry), (state) => state.value)
      expect(yield* gauge).toBe(240)
      yield* TestClock.adjust("4 minutes")
      const expired = Option.getOrThrow(yield* service.getTokenInfo)
      expect(expired.isExpired).toBe(true)
      expect(expired.expiresSoon).toBe(false)
      expect(Duration.toMillis(expired.expiresIn)).toBe(0)
      yield* TestClock.adjust("1 minute")
      yield* service.getTokenInfo
      expect(yield* gauge).toBe(0)
    }))

  it.effect("counts fallbacks, renewals by source and persistence failures in metrics", () =>
    Effect.gen(function*() {
      const count = (metric: Metric.Metric.Counter<number>) => Effect.map(Metric.value(metric), (state) => state.count)
      const fallbacks = yield* count(TokenMetrics.refreshFallbacks)
      const fromServer = yield* count(Metric.tagged(TokenMetrics.renewals, "source", "server"))
      const saveFailures = yield* count(Metric.tagged(TokenMetrics.persistenceFailures, "operation", "save"))
      const failing = TokenStore.TokenStore.of({
        description: "broken",
        load: Effect.succeedNone,
        save: () => new TokenStoreError({ store: "file", operation: "save", path: "/x/token.json", reason: "NoSpace" }),
        remove: Effect.void,
        withLock: (effect) => effect
      })
      const { api, service } = yield* setup({ store: failing })
      yield* service.getToken
      yield* TestClock.adjust("56 minutes")
      api.refreshFailures.push(new AuthError({ endpoint: "refresh-token", reason: "RefreshRejected", status: 401 }))
      yield* service.getToken
      expect((yield* count(TokenMetrics.refreshFallbacks)) - fallbacks).toBe(1)
      expect((yield* count(Metric.tagged(TokenMetrics.renewals, "source", "server"))) - fromServer).toBe(2)
      expect((yield* count(Metric.tagged(TokenMetrics.persistenceFailures, "operation", "save"))) - saveFailures)
        .toBe(2)
      const gauge = yield* Metric.value(TokenMetrics.secondsUntilExpiry)
      expect(gauge.value).toBe(3600)
    }))

  it.effect("a store that cannot load, then cannot remove an expired token: warned and counted, the service logs in", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const count = (operation: string) =>
        Effect.map(
          Metric.value(Metric.tagged(TokenMetrics.persistenceFailures, "operation", operation)),
          (state) => state.count
        )
      const failure = (operation: "load" | "remove") =>
        new TokenStoreError({ store: "redis", operation, path: "amp:token", reason: "connection refused" })
      const expired = tokenData({ exp: 3600 }, 0)
      let loads = 0
      const flaky = TokenStore.TokenStore.of({
        description: "flaky",
        load: Effect.suspend(() => ++loads === 1 ? failure("load") : Effect.succeedSome(expired)),
        save: Effect.succeed,
        remove: failure("remove"),
        withLock: (effect) => effect
      })
      const loadFailures = yield* count("load")
      const removeFailures = yield* count("remove")
      yield* TestClock.adjust("3 hours")
      const { api, service } = yield* logs.provide(setup({ store: flaky }))
      expect(yield* service.getTokenInfo).toEqual(Option.none())
      yield* logs.provide(service.getToken)
      expect(loads).toBe(2)
      expect(api.obtainCalls).toBe(1)
      expect((yield* count("load")) - loadFailures).toBe(1)
      expect((yield* count("remove")) - removeFailures).toBe(1)
      expect(logs.warnings()).toEqual([
        expect.stringContaining(
          "Could not load the token from Redis at amp:token: connection refused; continuing without a stored token"
        ),
        expect.stringContaining(
          "Could not remove the token from Redis at amp:token: connection refused; it stays in the store"
        )
      ])
    }))

  it.effect("refreshToken whose token expires while it waits for the store's lock refuses, and never logs in", () =>
    Effect.gen(function*() {
      const memory = yield* TokenStore.makeMemory
      const slowLock = TokenStore.TokenStore.of({
        ...memory,
        withLock: (effect) => Effect.zipRight(Effect.sleep("2 hours"), effect)
      })
      const { api, service } = yield* setup({ stored: tokenData({ exp: 3600 }, 0), store: slowLock })
      const fiber = yield* Effect.fork(Effect.flip(service.refreshToken))
      yield* TestClock.adjust("2 hours")
      expect(yield* Fiber.join(fiber)).toMatchObject({ _tag: "NoTokenToRefresh", reason: "expired" })
      expect(api.obtainCalls + api.refreshCalls).toBe(0)
    }))

  describe("at the exact expiry millisecond the token is expired", () => {
    it.effect("a stored token is not loaded; one a millisecond younger is", () =>
      Effect.gen(function*() {
        const stored = tokenData({ exp: 3600 }, 0)
        yield* TestClock.adjust(Duration.subtract(Duration.hours(1), Duration.millis(1)))
        const young = yield* setup({ stored })
        expect(Option.isSome(yield* young.service.getTokenInfo)).toBe(true)
        yield* TestClock.adjust("1 millis")
        const expired = yield* setup({ stored })
        expect(yield* expired.service.getTokenInfo).toEqual(Option.none())
      }))

    it.effect("renewRejected of an older token renews instead of serving the current one", () =>
      Effect.gen(function*() {
        const { api, service } = yield* setup()
        const current = yield* service.getToken
        const older = Redacted.make("an older token")
        yield* TestClock.adjust(Duration.subtract(Duration.hours(1), Duration.millis(1)))
        expect(value(yield* service.renewRejected(older))).toBe(value(current))
        expect([api.refreshCalls, api.obtainCalls]).toEqual([0, 1])
        yield* TestClock.adjust("1 millis")
        expect(value(yield* service.renewRejected(older))).toBe(api.issued[1])
        expect([api.refreshCalls, api.obtainCalls]).toEqual([0, 2])
      }))

    it.effect("refreshToken refuses without even taking the store's lock", () =>
      Effect.gen(function*() {
        const memory = yield* TokenStore.makeMemory
        let locks = 0
        const counted = TokenStore.TokenStore.of({
          ...memory,
          withLock: (effect) => Effect.suspend(() => (locks++, memory.withLock(effect)))
        })
        const { api, service, store } = yield* setup({ store: counted })
        const token = yield* service.getToken
        expect(locks).toBe(1)
        yield* TestClock.adjust("1 hours")
        expect(yield* Effect.flip(service.refreshToken)).toMatchObject({ _tag: "NoTokenToRefresh", reason: "expired" })
        expect(locks).toBe(1)
        expect(Option.map(yield* store.load, (data) => value(data.token))).toEqual(Option.some(value(token)))
        expect([api.refreshCalls, api.obtainCalls]).toEqual([0, 1])
      }))
  })

  it.effect("traces every operation but getToken's answer from memory, and where a renewed token came from", () =>
    Effect.gen(function*() {
      const traced = <A, E>(effect: Effect.Effect<A, E>) =>
        Effect.map(
          withSpans(effect),
          ({ spans }) => spans.map((span) => [span.name, span.attributes.get("source")])
        )
      const built = yield* withSpans(setup())
      expect(built.spans.map((span) => span.name)).toEqual(["TokenService.load"])
      const { service, store } = built.result
      expect(yield* traced(service.getToken)).toEqual([["TokenService.renew", "server"]])
      expect(yield* traced(service.getToken)).toEqual([])
      expect(yield* traced(service.obtainToken)).toEqual([["TokenService.obtainToken", "server"]])
      expect(yield* traced(service.forceRefresh)).toEqual([["TokenService.forceRefresh", "server"]])
      expect(yield* traced(service.refreshToken)).toEqual([["TokenService.refreshToken", "server"]])
      const rejected = yield* service.getToken
      expect(yield* traced(service.renewRejected(rejected))).toEqual([["TokenService.renewRejected", "server"]])
      // A token another process saved: adopted from the store.
      yield* TestClock.adjust("56 minutes")
      yield* store.save(tokenData({ exp: 7200 }, Duration.toMillis("56 minutes")))
      expect(yield* traced(service.getToken)).toEqual([["TokenService.renew", "file"]])
      expect(yield* traced(service.clearToken)).toEqual([["TokenService.clearToken", undefined]])
    }))

  it.effect("a token another process saved after this one was built is adopted at the first getToken", () =>
    Effect.gen(function*() {
      const { api, service, store } = yield* setup()
      const other = tokenData({ exp: 7200 }, 0)
      yield* store.save(other)
      expect(value(yield* service.getToken)).toBe(value(other.token))
      expect(api.obtainCalls + api.refreshCalls).toBe(0)
    }))

  it.effect("a token another process saved that is itself in the margin is refreshed, not served", () =>
    Effect.gen(function*() {
      const { api, service, store } = yield* setup()
      yield* service.getToken
      yield* TestClock.adjust("56 minutes")
      const other = tokenData({ exp: 3600 + 30 }, Duration.toMillis("56 minutes"))
      yield* store.save(other)
      expect(value(yield* service.getToken)).toBe(api.issued[1])
      expect(api.refreshedFrom).toEqual([value(other.token)])
    }))

  it.effect("renewals log a warning only when something went wrong: a failed refresh, not a plain renewal", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const { api, service } = yield* setup()
      yield* logs.provide(service.getToken)
      yield* TestClock.adjust("56 minutes")
      yield* logs.provide(service.getToken)
      expect(logs.warnings()).toEqual([])
      yield* TestClock.adjust("56 minutes")
      api.refreshFailures.push(
        new AuthError({ endpoint: "refresh-token", reason: "RefreshRejected", status: 401, detail: "revoked" })
      )
      yield* logs.provide(service.getToken)
      expect(logs.warnings()).toEqual([
        expect.stringMatching(/^Token refresh failed \(.*revoked.*\); logging in instead/)
      ])
    }))

  it.effect("calls made while clearToken runs wait for it, then renew: the cleared token is never served", () =>
    Effect.gen(function*() {
      const memory = yield* TokenStore.makeMemory
      const slowRemove = TokenStore.TokenStore.of({
        ...memory,
        remove: Effect.zipRight(Effect.sleep("50 millis"), memory.remove)
      })
      const { api, service } = yield* setup({ store: slowRemove })
      const cleared = yield* service.getToken
      const clear = yield* Effect.fork(service.clearToken)
      yield* TestClock.adjust("10 millis")
      const auto = yield* Effect.fork(service.getToken)
      const obtain = yield* Effect.fork(service.obtainToken)
      const again = yield* Effect.fork(service.clearToken)
      yield* TestClock.adjust("10 millis")
      const running = [
        Option.isNone(yield* Fiber.poll(auto)),
        Option.isNone(yield* Fiber.poll(obtain)),
        Option.isNone(yield* Fiber.poll(again))
      ]
      expect(running).toEqual([true, true, true])
      expect(api.obtainCalls).toBe(1)
      yield* TestClock.adjust("1 minutes")
      yield* Fiber.join(clear)
      yield* Fiber.join(again)
      const tokens = (yield* Effect.all([Fiber.join(auto), Fiber.join(obtain)])).map(value)
      expect(tokens).not.toContain(value(cleared))
      expect(api.issued.slice(1)).toEqual(expect.arrayContaining(tokens))
    }))

  it.effect("a store that answers a copy of the token it saved (as one that reads it back): no warning", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      const memory = yield* TokenStore.makeMemory
      const readBack = TokenStore.TokenStore.of({
        ...memory,
        save: (data) => Effect.as(memory.save(data), new TokenData({ ...data }))
      })
      const { service } = yield* setup({ store: readBack })
      yield* logs.provide(service.getToken)
      yield* logs.provide(service.forceRefresh)
      expect(logs.warnings()).toEqual([])
    }))

  it.effect("the removal of an expired stored token is logged with its expiry", () =>
    Effect.gen(function*() {
      const logs = LogCapture.make()
      yield* TestClock.adjust("3 hours")
      const { service } = yield* setup({ stored: tokenData({ exp: 3600 }, 0) })
      yield* logs.provide(service.getToken)
      expect(logs.lines.filter((line) => line.level === "INFO").map((line) => line.text)).toEqual([
        expect.stringMatching(/^The stored token expired at 1970-01-01T01:00:00(\.000)?Z; removing it/)
      ])
    }))

  it.effect("a getToken arriving while clearToken waits for a renewal is answered, and the clear then runs", () =>
    Effect.gen(function*() {
      const { api, service, store } = yield* setup()
      api.latency = Duration.millis(50)
      const renewal = yield* Effect.fork(service.getToken)
      yield* TestClock.adjust("10 millis")
      const clear = yield* Effect.fork(service.clearToken)
      yield* TestClock.adjust("10 millis")
      const late = yield* Effect.fork(service.getToken)
      yield* TestClock.adjust("1 minutes")
      const answered = yield* Fiber.poll(late)
      expect(Option.isSome(answered) && Exit.isSuccess(answered.value)).toBe(true)
      yield* Fiber.join(renewal)
      yield* Fiber.join(clear)
      expect(yield* store.load).toEqual(Option.none())
    }))

  it.effect("layerMock answers a fixed token with no API and no store", () =>
    Effect.gen(function*() {
      const service = yield* TokenService.TokenService
      expect(value(yield* service.getToken)).toBe("test-token")
      expect(value(yield* service.obtainToken)).toBe("test-token")
      expect(Option.isSome(yield* service.getTokenInfo)).toBe(true)
    }).pipe(Effect.provide(TokenService.layerMock("test-token"))))
})
