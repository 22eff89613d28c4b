/**
 * One replica of an application as a process of its own, for fleet tests driven by
 * `FleetReplicas`: a `TokenService` over the store it is given, everything else from the
 * environment as an application would have it (`AMP_API_BASE_URL`, `AMP_USERNAME`,
 * `AMP_PASSWORD`, `API_REQUEST_TIMEOUT_SECONDS`, ...), over Node's own `fetch` (nothing to bundle,
 * so the process starts faster than over undici).
 *
 * It prints `{"op":"ready"}` once the service is built (its first look at the store done), then
 * reads one command per line on stdin and answers each with one JSON line:
 *
 * - `get`: `getToken`, answering `{"op":"get","token":...,"ms":...}` (how long it took);
 * - `refresh`: `forceRefresh`, answering like `get`;
 * - `load`: the store's `load`, answering `{"op":"load","token":...|null}`;
 * - `clock <ms>`: from now on its clock runs `<ms>` ahead of the real one (behind if negative);
 * - `metrics`: `{"op":"metrics","metrics":{"name{label=value}":count,...}}`, every counter.
 *
 * Log lines are JSON too: `{"log":"WARN","message":...}`. A failed command answers
 * `{"op":...,"error":<message>}`. It exits when its stdin closes.
 */
import { AuthApi, TokenService, TokenStore } from "@amp-effect/core"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import { Clock, Duration, Effect, Layer, Logger, Metric, MetricState, Option, Queue, Redacted } from "effect"
import * as Readline from "node:readline"

const print = (value: unknown) => process.stdout.write(JSON.stringify(value) + "\n")

/** The real clock, `offset.ms` ahead. */
const shifted = (offset: { ms: number }): Clock.Clock => {
  const real = Clock.make()
  const millis = () => real.unsafeCurrentTimeMillis() + offset.ms
  const nanos = () => real.unsafeCurrentTimeNanos() + BigInt(offset.ms) * 1_000_000n
  return {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: millis,
    currentTimeMillis: Effect.sync(millis),
    unsafeCurrentTimeNanos: nanos,
    currentTimeNanos: Effect.sync(nanos),
    sleep: (duration) => real.sleep(duration)
  }
}

const logger = Logger.make(({ logLevel, message }) =>
  print({ log: logLevel.label, message: (Array.isArray(message) ? message : [message]).map(String).join(" ") })
)

const counters = Effect.map(Metric.snapshot, (pairs) => {
  const out: Record<string, number> = {}
  for (const pair of pairs) {
    if (!MetricState.isCounterState(pair.metricState)) continue
    const tags = pair.metricKey.tags.map((tag) => `${tag.key}=${tag.value}`).join(",")
    out[tags === "" ? pair.metricKey.name : `${pair.metricKey.name}{${tags}}`] = Number(pair.metricState.count)
  }
  return out
})

const answer = <A>(op: string, effect: Effect.Effect<A, { readonly message: string }>, fields: (a: A) => object) =>
  Effect.matchEffect(effect, {
    onFailure: (error) => Effect.sync(() => print({ op, error: error.message })),
    onSuccess: (a) => Effect.sync(() => print({ op, ...fields(a) }))
  })

const timedToken = ([elapsed, token]: [Duration.Duration, Redacted.Redacted<string>]) => ({
  token: Redacted.value(token),
  ms: Duration.toMillis(elapsed)
})

const serve = (offset: { ms: number }) =>
  Effect.gen(function*() {
    const lines = yield* Queue.unbounded<string>()
    const input = Readline.createInterface({ input: process.stdin })
    input.on("line", (line) => Queue.unsafeOffer(lines, line.trim()))
    // The test that started us is gone: so are we.
    input.on("close", () => process.exit(0))
    const service = yield* TokenService.TokenService
    const store = yield* TokenStore.TokenStore
    print({ op: "ready" })
    while (true) {
      const [op = "", argument] = (yield* Queue.take(lines)).split(" ")
      if (op === "get" || op === "refresh") {
        yield* answer(op, Effect.timed(op === "get" ? service.getToken : service.forceRefresh), timedToken)
      } else if (op === "load") {
        yield* answer(op, store.load, (stored) => ({
          token: Option.match(stored, { onNone: () => null, onSome: (data) => Redacted.value(data.token) })
        }))
      } else if (op === "clock") {
        offset.ms = Number(argument)
        print({ op })
      } else if (op === "metrics") {
        print({ op, metrics: yield* counters })
      } else {
        print({ op, error: "unknown command" })
      }
    }
  })

/**
 * Runs this process as a replica over `store` (see the module's description); exits 1 if the
 * service cannot be built. A fleet test's fixture is this call with its store's layer.
 */
export const run = <E>(store: Layer.Layer<TokenStore.TokenStore, E>): void => {
  const offset = { ms: 0 }
  const layer = TokenService.layerConfig().pipe(
    Layer.provideMerge(store),
    Layer.provide(AuthApi.layerConfig().pipe(Layer.provide(FetchHttpClient.layer)))
  )
  Effect.runPromise(
    serve(offset).pipe(
      Effect.provide(layer),
      Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
      Effect.withClock(shifted(offset))
    )
  ).catch((error) => {
    process.stderr.write(`replica failed: ${error}\n`)
    process.exit(1)
  })
}
