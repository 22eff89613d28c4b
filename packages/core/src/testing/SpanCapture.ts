/**
 * The spans started while an effect runs: for tests of what a program traces.
 *
 * @since 0.1.0
 */
import { Effect, Tracer } from "effect"

/**
 * Runs `effect` with a tracer that records every span it starts; its result and those spans.
 *
 * @since 0.1.0
 * @category utils
 */
export const withSpans = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const base = yield* Effect.tracer
    const spans: Array<Tracer.Span> = []
    const tracer = Tracer.make({
      span: (...args) => {
        const span = base.span(...args)
        spans.push(span)
        return span
      },
      context: (f, fiber) => base.context(f, fiber)
    })
    const result = yield* Effect.withTracer(effect, tracer)
    return { result, spans }
  })
