import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Metric, Random, TestClock } from "effect"
import { ApiError, AuthError } from "../src/AmpHttpError.js"
import * as RetryPolicy from "../src/RetryPolicy.js"
import * as LogCapture from "../src/testing/LogCapture.js"
import * as TokenMetrics from "../src/TokenMetrics.js"

const options: RetryPolicy.RetryOptions = {
  maxAttempts: 4,
  baseDelay: Duration.millis(1000),
  maxDelay: Duration.millis(3000)
}

/** An operation that fails with the given errors in turn, then succeeds; records attempt times. */
const flaky = <E>(errors: ReadonlyArray<E>) => {
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

const server503 = new AuthError({ endpoint: "obtain_token", reason: "ServerError", status: 503 })
const rateLimited = (retryAfter?: Duration.Duration) =>
  new AuthError(
    retryAfter === undefined
      ? { endpoint: "obtain_token", reason: "RateLimited", status: 429 }
      : { endpoint: "obtain_token", reason: "RateLimited", status: 429, retryAfter }
  )
/** The policy as the pipeline applies it: every transient `AmpHttpError`. */
const retry = (options: RetryPolicy.RetryOptions) => <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.retry(effect, RetryPolicy.schedule<E>(options))

describe("RetryPolicy", () => {
  it.effect("waits base·2^(n-1) plus at most 20 % jitter, capped at the max delay", () =>
    Effect.gen(function*() {
      const { attempts, effect } = flaky([server503, server503, server503])
      const fiber = yield* Effect.fork(retry(options)(effect))
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

  it.effect("the jitter is the random draw's share of 20 % of the backoff, on every retry", () =>
    Effect.gen(function*() {
      // Draws of 0.5, 1 and 0 (a real generator is never exactly 1; the bound is still 20 %).
      const { attempts, effect } = flaky([server503, server503, server503])
      const fiber = yield* Effect.fork(retry({ ...options, maxDelay: Duration.seconds(10) })(effect))
      yield* TestClock.adjust("20 seconds")
      expect(yield* Fiber.join(fiber)).toBe("ok")
      const gaps = attempts.slice(1).map((at, i) => at - attempts[i]!)
      expect(gaps).toEqual([1000 * 1.1, 2000 * 1.2, 4000])
    }).pipe(Effect.withRandom(Random.fixed([0.5, 1, 0]))))

  it.effect("only the failures the caller selects are retried (AmpClient: by method), and only AMP's", () =>
    Effect.gen(function*() {
      const api503 = new ApiError({ method: "GET", path: "/api/assets/", reason: "ServerError", status: 503 })
      const client = (options: RetryPolicy.RetryOptions) => <A, E>(effect: Effect.Effect<A, E>) =>
        Effect.retry(effect, RetryPolicy.schedule<E>(options, (error) => Effect.succeed(error._tag === "ApiError")))

      const other = flaky([new Error("not AMP's")])
      yield* Effect.flip(retry(options)(other.effect))
      expect(other.attempts.length).toBe(1)

      const login = flaky([server503])
      const failed = yield* Effect.flip(client(options)(login.effect))
      expect(failed).toBe(server503)
      expect(login.attempts.length).toBe(1)

      const request = flaky([api503])
      const fiber = yield* Effect.fork(client(options)(request.effect))
      yield* TestClock.adjust("2 seconds")
      expect(yield* Fiber.join(fiber)).toBe("ok")
      expect(request.attempts.length).toBe(2)
    }))

  it.effect("makes at most maxAttempts attempts in all, then fails with the last error", () =>
    Effect.gen(function*() {
      const { attempts, effect } = flaky(Array.from({ length: 10 }, () => server503))
      const fiber = yield* Effect.fork(Effect.flip(retry(options)(effect)))
      yield* TestClock.adjust("1 minutes")
      const error = yield* Fiber.join(fiber)
      expect(error).toBe(server503)
      expect(attempts.length).toBe(4)
    }))

  it.effect("API_RETRY_MAX_ATTEMPTS=1 means no retry", () =>
    Effect.gen(function*() {
      const { attempts, effect } = flaky([server503])
      yield* Effect.flip(retry({ ...options, maxAttempts: 1 })(effect))
      expect(attempts.length).toBe(1)
    }))

  it.effect("never retries wrong credentials or a malformed answer", () =>
    Effect.gen(function*() {
      for (
        const error of [
          new AuthError({ endpoint: "obtain_token", reason: "InvalidCredentials", status: 400 }),
          new AuthError({ endpoint: "obtain_token", reason: "NotFound", status: 404 }),
          new AuthError({ endpoint: "refresh-token", reason: "RefreshRejected", status: 401 }),
          new AuthError({ endpoint: "obtain_token", reason: "MalformedResponse", status: 200, detail: "x" }),
          new AuthError({ endpoint: "obtain_token", reason: "InvalidRequest", detail: "x" })
        ]
      ) {
        const { attempts, effect } = flaky([error])
        const failed = yield* Effect.flip(retry(options)(effect))
        expect(failed).toBe(error)
        expect(attempts.length).toBe(1)
      }
    }))

  it.effect("a 429 waits at least what Retry-After asks", () =>
    Effect.gen(function*() {
      const limited = rateLimited(Duration.millis(2500))
      const { attempts, effect } = flaky([limited])
      const fiber = yield* Effect.fork(retry(options)(effect))
      yield* TestClock.adjust("2499 millis")
      expect(attempts.length).toBe(1)
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(fiber)).toBe("ok")
      expect(attempts).toEqual([0, 2500])
    }))

  it.effect("a 429 asking for longer than the max delay fails at once with the rate-limit error", () =>
    Effect.gen(function*() {
      const limited = rateLimited(Duration.seconds(120))
      const { attempts, effect } = flaky([limited])
      const error = yield* Effect.flip(retry(options)(effect))
      expect(error).toBe(limited)
      expect(error.message).toContain("2m")
      expect(attempts.length).toBe(1)
    }))

  it.effect("a 429 without Retry-After backs off like a 503", () =>
    Effect.gen(function*() {
      const { attempts, effect } = flaky([rateLimited()])
      const fiber = yield* Effect.fork(retry(options)(effect))
      yield* TestClock.adjust("999 millis")
      expect(attempts.length).toBe(1)
      yield* TestClock.adjust("201 millis")
      expect(yield* Fiber.join(fiber)).toBe("ok")
    }))

  it.effect("counts each retry by endpoint (\"api\" for API calls) and cause, and says which attempt comes", () =>
    Effect.gen(function*() {
      const count = (endpoint: string, cause: string) =>
        Effect.map(
          Metric.value(Metric.taggedWithLabels(TokenMetrics.retries, [
            TokenMetrics.label("endpoint", endpoint),
            TokenMetrics.label("cause", cause)
          ])),
          (state) => state.count
        )
      const before = [yield* count("obtain_token", "ServerError"), yield* count("api", "ServerError")]
      const logs = LogCapture.make()
      const login = flaky([server503, server503])
      const request = flaky([new ApiError({ method: "GET", path: "/assets", reason: "ServerError", status: 502 })])
      const both = Effect.all([
        retry(options)(login.effect),
        retry(options)(request.effect)
      ])
      const fiber = yield* Effect.fork(logs.provide(both))
      yield* TestClock.adjust("20 seconds")
      yield* Fiber.join(fiber)
      expect([yield* count("obtain_token", "ServerError"), yield* count("api", "ServerError")]).toEqual([
        before[0]! + 2,
        before[1]! + 1
      ])
      const warnings = logs.warnings()
      expect(warnings.filter((line) => line.includes("(attempt 2 of 4)"))).toHaveLength(2)
      expect(warnings.filter((line) => line.includes("(attempt 3 of 4)"))).toHaveLength(1)
    }))
})
