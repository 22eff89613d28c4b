/**
 * The retry policy for calls to the AMP API (the authentication endpoints and `AmpClient`), as a `Schedule`.
 *
 * - At most `maxAttempts` attempts in all (the first one included).
 * - Only transient failures are retried: 5xx/408, transport errors, timeouts and 429.
 *   Wrong credentials, refused refreshes and malformed answers fail at once.
 * - Before retry `n` (1-based) it waits `baseDelay * 2^(n-1)` plus up to 20 % random jitter,
 *   capped at `maxDelay`; the jitter keeps many clients from retrying in lock-step.
 * - A 429 with `Retry-After` waits at least what the server asked. If it asked for longer than
 *   `maxDelay`, the 429 is returned at once instead of blocking the caller for that long.
 * - A 429 without `Retry-After` is treated like a 503: the normal backoff.
 *
 * Both `AuthApi` and `AmpClient` retry under it: it is the `Schedule` of their one HTTP pipeline.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Metric, Random, Schedule } from "effect"
import { type AmpHttpError, isAmpHttpError, isTransient } from "./AmpHttpError.js"
import * as TokenMetrics from "./TokenMetrics.js"

/**
 * The knobs of the policy (from `API_RETRY_*`); `defaultOptions` holds the defaults.
 *
 * @since 0.1.0
 * @category models
 */
export interface RetryOptions {
  /** Attempts in all, the first one included (at least 1). Default 3. */
  readonly maxAttempts: number
  /** The delay before the first retry; it doubles for each further one. Default 1 second. */
  readonly baseDelay: Duration.Duration
  /** No delay exceeds it; a 429 asking for longer fails at once. Default 30 seconds. */
  readonly maxDelay: Duration.Duration
}

/**
 * The policy used when none is given (`AuthApi` and `AmpClient` options, and the defaults of
 * `API_RETRY_MAX_ATTEMPTS`, `API_RETRY_BASE_DELAY_MS`, `API_RETRY_MAX_DELAY_MS`): 3 attempts in
 * all, 1 second before the first retry, no delay above 30 seconds.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultOptions: RetryOptions = {
  maxAttempts: 3,
  baseDelay: Duration.seconds(1),
  maxDelay: Duration.seconds(30)
}

/**
 * The policy as a `Schedule` fed with the failures of the attempts: `HttpClient.retry` takes it
 * (the AMP pipeline does). It goes on while the failure is a transient `AmpHttpError`
 * (`AmpHttpError.isTransient`), fewer than `maxAttempts` attempts were made, and `retried`
 * (default: always) agrees. Each retry waits `baseDelay * 2^(n-1)` plus up to 20 % jitter,
 * capped at `maxDelay`, and never less than a 429's `Retry-After`; a 429 asking for longer than
 * `maxDelay` stops it at once. Each retry is logged (the error's message: no secret), counted
 * in `TokenMetrics.retries`, and recorded as `attempts` on the current span.
 *
 * @example
 * ```ts
 * import { AmpHttpError, RetryPolicy } from "@amp-effect/core"
 * import { Duration, Effect } from "effect"
 *
 * const policy: RetryPolicy.RetryOptions = {
 *   maxAttempts: 3,
 *   baseDelay: Duration.millis(10),
 *   maxDelay: Duration.seconds(1)
 * }
 *
 * // Fails twice with a 503, then answers.
 * let attempts = 0
 * const flaky = Effect.suspend(() =>
 *   ++attempts < 3
 *     ? Effect.fail(new AmpHttpError.ApiError({ method: "GET", path: "/api/assets/", reason: "ServerError", status: 503 }))
 *     : Effect.succeed("the assets")
 * )
 *
 * Effect.runPromise(Effect.retry(flaky, RetryPolicy.schedule(policy))).then((result) => console.log(result, attempts))
 * // Output, after two warnings ("AMP GET /api/assets/ failed on the server side (HTTP 503);
 * // retrying in 10ms (attempt 2 of 3)", ...): the assets 3
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const schedule = <E>(
  options: RetryOptions,
  retried: (error: AmpHttpError) => Effect.Effect<boolean> = () => Effect.succeed(true)
): Schedule.Schedule<[E, number], E> =>
  Schedule.identity<E>().pipe(
    Schedule.intersect(Schedule.recurs(options.maxAttempts - 1)),
    Schedule.whileInputEffect((error: E) =>
      isAmpHttpError(error) && isTransient(error) && !tooLong(error, options)
        ? retried(error)
        : Effect.succeed(false)
    ),
    // Only called when the schedule goes on (so the error is an `AmpHttpError`): the log line
    // and the count are only for a real retry.
    Schedule.modifyDelayEffect(([error, retries]) => announce(options, error as AmpHttpError, retries + 1))
  )

/** A 429 asking to wait longer than the maximum delay: failing at once beats blocking for that long. */
const tooLong = (error: AmpHttpError, options: RetryOptions) =>
  error.retryAfter !== undefined && Duration.greaterThan(error.retryAfter, options.maxDelay)

/** The delay before retry number `retry` of `error`, counted, logged and recorded on the span. */
const announce = (options: RetryOptions, error: AmpHttpError, retry: number) =>
  Effect.gen(function*() {
    const backoff = Duration.toMillis(options.baseDelay) * 2 ** (retry - 1)
    const jittered = Duration.min(
      Duration.millis(Math.round(backoff * (1 + (yield* Random.next) * 0.2))),
      options.maxDelay
    )
    const delay = error.retryAfter !== undefined ? Duration.max(error.retryAfter, jittered) : jittered
    yield* Metric.increment(Metric.taggedWithLabels(TokenMetrics.retries, [
      TokenMetrics.label("endpoint", error._tag === "AuthError" ? error.endpoint : "api"),
      TokenMetrics.label("cause", error.reason)
    ]))
    yield* Effect.annotateCurrentSpan("attempts", retry + 1)
    yield* Effect.logWarning(
      `${error.message}; retrying in ${Duration.format(delay)} (attempt ${retry + 1} of ${options.maxAttempts})`
    )
    return delay
  })
