/**
 * The retry policy for calls to the AMP authentication endpoints, as a `Schedule`.
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
 * @since 0.1.0
 */
import { Duration, Effect, Metric, Random, Schedule } from "effect"
import { type AuthError, isTransient } from "./TokenError.js"
import * as TokenMetrics from "./TokenMetrics.js"

/** The knobs of the policy (from `API_RETRY_*`). */
export interface RetryOptions {
  readonly maxAttempts: number
  readonly baseDelay: Duration.Duration
  readonly maxDelay: Duration.Duration
}

/** The jitter added to each backoff delay, as a fraction of it. */
export const jitterFraction = 0.2

/**
 * What the policy needs to know of an error: its tag (for logs and metrics), its message, and
 * the wait a 429 asked for, if any. Both the authentication errors and the authenticated
 * client's errors have this shape, so they share one policy.
 */
export interface RetryableError {
  readonly _tag: string
  readonly message: string
  readonly retryAfter?: Duration.Duration | undefined
}

/** What the policy is applied to: which errors are transient, and a label for the metric. */
export interface RetryTarget<E extends RetryableError> {
  readonly isTransient: (error: E) => boolean
  /** The `endpoint` label of the `amp_token_retries_total` metric. */
  readonly endpoint: (error: E) => string
}

/** The authentication endpoints: transient per `TokenError.isTransient`. */
export const authTarget: RetryTarget<AuthError> = {
  isTransient,
  endpoint: (error) => "endpoint" in error ? error.endpoint : "unknown"
}

/**
 * Whether `error` is worth another attempt: transient, and not a 429 asking to wait longer than
 * the maximum delay.
 */
export const isRetryable = <E extends RetryableError>(
  error: E,
  options: RetryOptions,
  target: RetryTarget<E>
): boolean =>
  target.isTransient(error) &&
  !(error.retryAfter !== undefined && Duration.greaterThan(error.retryAfter, options.maxDelay))

/** The delay before retry number `retry` (1-based), before jitter and the cap. */
export const backoff = (options: RetryOptions, retry: number): Duration.Duration =>
  Duration.times(options.baseDelay, 2 ** (retry - 1))

/** The policy as a `Schedule` fed with the failures of the attempts. */
export const schedule = <E extends RetryableError>(
  options: RetryOptions,
  target: RetryTarget<E>
): Schedule.Schedule<[E, number], E> =>
  Schedule.identity<E>().pipe(
    Schedule.intersect(Schedule.recurs(options.maxAttempts - 1)),
    Schedule.whileInput((error: E) => isRetryable(error, options, target)),
    // Only called when the schedule goes on, so the log line is only written for a real retry.
    Schedule.modifyDelayEffect(([error, retried]) =>
      Effect.gen(function*() {
        const base = backoff(options, retried + 1)
        const jittered = Duration.min(
          Duration.millis(Math.round(Duration.toMillis(base) * (1 + (yield* Random.next) * jitterFraction))),
          options.maxDelay
        )
        const delay = error.retryAfter !== undefined ? Duration.max(error.retryAfter, jittered) : jittered
        yield* Metric.increment(Metric.taggedWithLabels(TokenMetrics.retries, [
          TokenMetrics.label("endpoint", target.endpoint(error)),
          TokenMetrics.label("cause", error._tag)
        ]))
        yield* Effect.logWarning(
          `${error.message}; retrying in ${Duration.format(delay)} (attempt ${retried + 2} of ${options.maxAttempts})`
        )
        return delay
      })
    )
  )

/**
 * Runs `attempt` under the policy. Each retry is logged with the error's message (no secret).
 *
 * The schedule is only set up once the first attempt has failed: a call that succeeds at once
 * (nearly all of them) pays for nothing but a `catchAll`.
 */
export const retry =
  <E extends RetryableError>(options: RetryOptions, target: RetryTarget<E>) =>
  <A, R>(attempt: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.catchAll(attempt, (first) => {
      // The schedule sees the first failure as its first input, then drives the real attempts.
      let replayed = false
      const again = Effect.suspend(() => {
        if (replayed) return attempt
        replayed = true
        return Effect.fail(first)
      })
      return Effect.retry(again, schedule(options, target))
    })
