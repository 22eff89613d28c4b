/**
 * Driving the `TestClock` past work that also waits on real promises: the in-memory mock AMP
 * reads request and answer bodies through web `Request` / `Response` objects, whose reads
 * settle on the real event loop, not on the `TestClock`.
 */
import { Chunk, type Duration, Effect, Fiber, Option, TestClock } from "effect"

/** One turn of the real event loop: in-memory bodies are read through (real) promises. */
export const macrotask: Effect.Effect<void> = Effect.promise(() =>
  new Promise<void>((resolve) => setTimeout(resolve, 0))
)

/** Lets other fibers run until `n` sleeps wait on the TestClock (their delays have started). */
export const awaitSleeps = (n: number): Effect.Effect<void> =>
  Effect.gen(function*() {
    while (Chunk.size(yield* TestClock.sleeps()) < n) yield* Effect.yieldNow()
  })

/** Lets other fibers run until a sleep waits on the TestClock to wake at `at` (epoch millis). */
export const awaitSleepUntil = (at: number): Effect.Effect<void> =>
  Effect.gen(function*() {
    while (!Chunk.some(yield* TestClock.sleeps(), (wake) => wake === at)) yield* Effect.yieldNow()
  })

/**
 * Moves the TestClock forward in steps until `fiber` is done, letting real promises settle in
 * between: each attempt of a retried call reads its answer's body before it sleeps again, so
 * one big jump would pass the next sleep by before it is scheduled.
 */
export const adjustUntilDone = <A, E>(
  fiber: Fiber.Fiber<A, E>,
  step: Duration.DurationInput = "100 millis"
): Effect.Effect<A, E> =>
  Effect.gen(function*() {
    while (Option.isNone(yield* Fiber.poll(fiber))) {
      yield* TestClock.adjust(step)
      yield* macrotask
    }
    return yield* Fiber.join(fiber)
  })

/** Runs `effect` in a fiber of its own while the TestClock moves on: its backoffs and timeouts elapse. */
export const untilDone = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  step?: Duration.DurationInput
): Effect.Effect<A, E, R> => Effect.flatMap(Effect.fork(effect), (fiber) => adjustUntilDone(fiber, step))
