/**
 * The retry policy of every call to the AMP API (`AuthApi` and `AmpClient`), as a `Schedule`.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Metric, Schedule } from "effect"
import { type AmpHttpError, isAmpHttpError, isTransient } from "./AmpHttpError.js"
import * as TokenMetrics from "./TokenMetrics.js"

/**
 * The knobs of the policy (from `API_RETRY_*`).
 *
 * @since 0.1.0
 * @category models
 */
export interface RetryOptions {
  /** Attempts in all, the first one included (at least 1). */
  readonly maxAttempts: number
  /** The delay before the first retry; it doubles for each further one. */
  readonly baseDelay: Duration.Duration
  /** No delay exceeds it; a 429 asking for longer fails at once. */
  readonly maxDelay: Duration.Duration
}

/**
 * The policy used when none is given.
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
 * The policy as a `Schedule` fed with the failures of the attempts: it retries a transient
 * `AmpHttpError` that `retried` (default: always) accepts, up to `maxAttempts` attempts in all.
 * Retry `n` waits `baseDelay * 2^(n-1)` plus up to 20 % jitter (so that clients do not retry in
 * lock-step), capped at `maxDelay`, and never less than a 429's `Retry-After`; a 429 asking for
 * longer than `maxDelay` fails at once rather than block the caller. Each retry is logged (no
 * secret), counted in `TokenMetrics.retries` and recorded as `attempts` on the current span.
 *
 * @example
 * ```ts
 * import { AmpHttpError, RetryPolicy } from "@amp-effect/core"
 * import { Duration, Effect } from "effect"
 *
 * // Fails twice with a 503, then answers: retried after about 10 ms, then 20 ms.
 * let attempts = 0
 * const flaky = Effect.suspend(() =>
 *   ++attempts < 3
 *     ? Effect.fail(new AmpHttpError.ApiError({ method: "GET", path: "/api/assets/", reason: "ServerError", status: 503 }))
 *     : Effect.succeed("the assets")
 * )
 * const policy = { maxAttempts: 3, baseDelay: Duration.millis(10), maxDelay: Duration.seconds(1) }
 * Effect.runPromise(Effect.retry(flaky, RetryPolicy.schedule(policy))).then(console.log)
 * // Output, after two warnings ("AMP GET /api/assets/ failed on the server side (HTTP 503);
 * // retrying in 10ms (attempt 2 of 3)", ...): the assets
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const schedule = <E>(
  options: RetryOptions,
  retried: (error: AmpHttpError) => Effect.Effect<boolean> = () => Effect.succeed(true)
): Schedule.Schedule<[[E, Duration.Duration], number], E> =>
  Schedule.identity<E>().pipe(
    Schedule.intersect(Schedule.jitteredWith(Schedule.exponential(options.baseDelay), { min: 1, max: 1.2 })),
    Schedule.intersect(Schedule.recurs(options.maxAttempts - 1)),
    Schedule.whileInputEffect((error: E) =>
      isAmpHttpError(error) && isTransient(error) && !tooLong(error, options)
        ? retried(error)
        : Effect.succeed(false)
    ),
    // Only reached when the schedule goes on, so the error is an `AmpHttpError`.
    Schedule.modifyDelayEffect(([[error], retries], backoff) => {
      const failure = error as AmpHttpError
      const jittered = Duration.millis(Math.round(Duration.toMillis(Duration.min(backoff, options.maxDelay))))
      const delay = failure.retryAfter === undefined ? jittered : Duration.max(failure.retryAfter, jittered)
      return Effect.as(announce(failure, delay, retries + 2, options.maxAttempts), delay)
    })
  )

const tooLong = (error: AmpHttpError, options: RetryOptions) =>
  error.retryAfter !== undefined && Duration.greaterThan(error.retryAfter, options.maxDelay)

/** Counts, logs and records on the span the coming attempt number `attempt`. */
const announce = (error: AmpHttpError, delay: Duration.Duration, attempt: number, maxAttempts: number) =>
  Effect.all([
    Metric.increment(Metric.taggedWithLabels(TokenMetrics.retries, [
      TokenMetrics.label("endpoint", error._tag === "AuthError" ? error.endpoint : "api"),
      TokenMetrics.label("cause", error.reason)
    ])),
    Effect.annotateCurrentSpan("attempts", attempt),
    Effect.logWarning(`${error.message}; retrying in ${Duration.format(delay)} (attempt ${attempt} of ${maxAttempts})`)
  ])
