import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, TestClock } from "effect"
import * as RetryPolicy from "../src/RetryPolicy.js"
import { type AuthError, InvalidCredentials, MalformedResponse, RateLimited, ServerError } from "../src/TokenError.js"

const options: RetryPolicy.RetryOptions = {
  maxAttempts: 4,
  baseDelay: Duration.millis(1000),
  maxDelay: Duration.millis(3000)
}

/** An operation that fails with the given errors in turn, then succeeds; records attempt times. */
const flaky = (errors: ReadonlyArray<AuthError>) => {
  const attempts: Array<number> = []
  const effect = Effect.suspend(() => {
    const error = errors[attempts.length]
    return Effect.flatMap(Effect.clockWith((clock) => clock.currentTimeMillis), (now) => {
      attempts.push(now)
      return error === undefined ? Effect.succeed("ok") : Effect.fail(error)
    })
  })
  return { attempts, effect }
}

const server503 = new ServerError({ endpoint: "obtain_token", status: 503 })

describe("RetryPolicy", () => {
  it.effect("waits base·2^(n-1) plus at most 20 % jitter, capped at the max delay", () =>
    Effect.gen(function*() {
      const { attempts, effect } = flaky([server503, server503, server503])
      const fiber = yield* Effect.fork(RetryPolicy.retry(options, RetryPolicy.authTarget)(effect))
      yield* TestClock.adjust("20 seconds")
      expect(yield* Fiber.join(fiber)).toBe("ok")
      expect(attempts.length).toBe(4)
      const gaps = attempts.slice(1).map((at, i) => at - attempts[i]!)
      expect(gaps[0]).toBeGreaterThanOrEqual(1000)
      expect(gaps[0]).toBeLessThanOrEqual(1200)
      expect(gaps[1]).toBeGreaterThanOrEqual(2000)
      expect(gaps[1]).toBeLessThanOrEqual(2400)
      expect(gaps[2]).toBe(3000) // 4000 + jitter, capped at 3000
    }))

  it.effect("makes at most maxAttempts attempts in all, then fails with the last error", () =>
    Effect.gen(function*() {
      const { attempts, effect } = flaky(Array.from({ length: 10 }, () => server503))
      const fiber = yield* Effect.fork(Effect.flip(RetryPolicy.retry(options, RetryPolicy.authTarget)(effect)))
      yield* TestClock.adjust("1 minutes")
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("ServerError")
      expect(attempts.length).toBe(4)
    }))

  it.effect("API_RETRY_MAX_ATTEMPTS=1 means no retry", () =>
    Effect.gen(function*() {
      const { attempts, effect } = flaky([server503])
      yield* Effect.flip(RetryPolicy.retry({ ...options, maxAttempts: 1 }, RetryPolicy.authTarget)(effect))
      expect(attempts.length).toBe(1)
    }))

  it.effect("never retries wrong credentials or a malformed answer", () =>
    Effect.gen(function*() {
      for (
        const error of [
          new InvalidCredentials({ status: 400, detail: "" }),
          new MalformedResponse({ endpoint: "obtain_token", status: 200, reason: "x" })
        ]
      ) {
        const { attempts, effect } = flaky([error])
        const failed = yield* Effect.flip(RetryPolicy.retry(options, RetryPolicy.authTarget)(effect))
        expect(failed._tag).toBe(error._tag)
        expect(attempts.length).toBe(1)
      }
    }))

  it.effect("a 429 waits at least what Retry-After asks", () =>
    Effect.gen(function*() {
      const limited = new RateLimited({ endpoint: "obtain_token", retryAfter: Duration.millis(2500) })
      const { attempts, effect } = flaky([limited])
      const fiber = yield* Effect.fork(RetryPolicy.retry(options, RetryPolicy.authTarget)(effect))
      yield* TestClock.adjust("2499 millis")
      expect(attempts.length).toBe(1)
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(fiber)).toBe("ok")
      expect(attempts).toEqual([0, 2500])
    }))

  it.effect("a 429 asking for longer than the max delay fails at once with the rate-limit error", () =>
    Effect.gen(function*() {
      const limited = new RateLimited({ endpoint: "obtain_token", retryAfter: Duration.seconds(120) })
      const { attempts, effect } = flaky([limited])
      const error = yield* Effect.flip(RetryPolicy.retry(options, RetryPolicy.authTarget)(effect))
      expect(error).toBe(limited)
      expect(error.message).toContain("2m")
      expect(attempts.length).toBe(1)
    }))

  it.effect("a 429 without Retry-After backs off like a 503", () =>
    Effect.gen(function*() {
      const { attempts, effect } = flaky([new RateLimited({ endpoint: "obtain_token" })])
      const fiber = yield* Effect.fork(RetryPolicy.retry(options, RetryPolicy.authTarget)(effect))
      yield* TestClock.adjust("999 millis")
      expect(attempts.length).toBe(1)
      yield* TestClock.adjust("201 millis")
      expect(yield* Fiber.join(fiber)).toBe("ok")
    }))
})
