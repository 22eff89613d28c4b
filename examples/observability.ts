/**
 * Observability: exporting the library's spans and metrics.
 *
 * Run: pnpm tsx examples/observability.ts    (embedded mock AMP server, no credentials needed)
 *
 * amp-effect traces through Effect's `Tracer` and counts through Effect's `Metric`, so whatever
 * exporter the application installs receives them. This example installs the smallest possible
 * one of each: a tracer that prints every span when it ends (name, duration, attributes,
 * nested under its parent), and a metrics dump in Prometheus text format from
 * `Metric.snapshot`. It then runs a login, 1,000 cached calls (no spans: the hot path has
 * none), a refresh, a refused refresh that falls back to a login, and a 401 that the
 * `AmpClient` recovers from — and prints what an exporter would have received. No token and no
 * password appears in any of it: the `Authorization` header shows as `<redacted>`.
 *
 * In production, replace both with `@effect/opentelemetry` (not a dependency of this project):
 *
 *   import { NodeSdk } from "@effect/opentelemetry"
 *   const Observability = NodeSdk.layer(() => ({
 *     resource: { serviceName: "my-app" },
 *     spanProcessor: new BatchSpanProcessor(new OTLPTraceExporter()),
 *     metricReader: new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter() })
 *   }))
 *   program.pipe(Effect.provide(Observability))
 *
 * With `AMP_API_BASE_URL`, `AMP_USERNAME` and `AMP_PASSWORD` set it runs against that AMP, and
 * skips the steps that need the mock server's scripted faults.
 */
import { AmpClient, TokenService } from "@amp-effect/core"
import { NodeAmp } from "@amp-effect/node"
import { MockFault } from "@amp-effect/node/MockAmpServer"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Console, Effect, type Exit, Layer, Logger, LogLevel, Metric, MetricState, Option, Tracer } from "effect"
import { runExample } from "./environment.js"

// -----------------------------------------------------------------------------
// A tracer that prints spans
// -----------------------------------------------------------------------------

let nextId = 0

/** A span that remembers its attributes and prints itself when it ends. */
class ConsoleSpan implements Tracer.Span {
  readonly _tag = "Span"
  readonly spanId = (nextId++).toString(16).padStart(16, "0")
  readonly traceId: string
  readonly sampled = true
  readonly attributes = new Map<string, unknown>()
  readonly links: Array<Tracer.SpanLink>
  status: Tracer.SpanStatus
  readonly depth: number

  constructor(
    readonly name: string,
    readonly parent: Option.Option<Tracer.AnySpan>,
    readonly context: Tracer.Span["context"],
    links: ReadonlyArray<Tracer.SpanLink>,
    startTime: bigint,
    readonly kind: Tracer.SpanKind
  ) {
    this.status = { _tag: "Started", startTime }
    this.links = [...links]
    this.traceId = Option.match(parent, { onNone: () => this.spanId, onSome: (parent) => parent.traceId })
    this.depth = Option.match(parent, {
      onNone: () => 0,
      onSome: (parent) => parent instanceof ConsoleSpan ? parent.depth + 1 : 0
    })
  }

  attribute(key: string, value: unknown) {
    this.attributes.set(key, value)
  }

  event(name: string, _startTime: bigint, attributes?: Record<string, unknown>) {
    console.log(`${"  ".repeat(this.depth + 1)}· event ${name} ${JSON.stringify(attributes ?? {})}`)
  }

  addLinks(links: ReadonlyArray<Tracer.SpanLink>) {
    this.links.push(...links)
  }

  end(endTime: bigint, exit: Exit.Exit<unknown, unknown>) {
    this.status = { _tag: "Ended", startTime: this.status.startTime, endTime, exit }
    const ms = Number(endTime - this.status.startTime) / 1e6
    // The HTTP client's spans carry a dozen attributes; show the telling ones.
    const shown = Array.from(this.attributes).filter(([key]) =>
      !key.startsWith("http.") && !key.startsWith("url.") && !key.startsWith("server.") ||
      key === "http.response.status_code" || key === "http.request.header.authorization"
    )
    const attributes = shown.map(([key, value]) => `${key}=${String(value)}`).join(" ")
    const outcome = exit._tag === "Success" ? "" : " FAILED"
    console.log(`${"  ".repeat(this.depth)}span ${this.name} ${ms.toFixed(1)} ms${outcome} ${attributes}`)
  }
}

/** Spans print when they end, so children print before their parent (as exporters receive them). */
const consoleTracer = Tracer.make({
  span: (name, parent, context, links, startTime, kind) =>
    new ConsoleSpan(name, parent, context, links, startTime, kind),
  context: (f) => f()
})

// -----------------------------------------------------------------------------
// Metrics in Prometheus text format
// -----------------------------------------------------------------------------

const printMetrics = Effect.flatMap(Metric.snapshot, (pairs) =>
  Console.log(
    pairs
      .filter((pair) => pair.metricKey.name.startsWith("amp_token_"))
      .flatMap((pair) => {
        const state = pair.metricState
        const value = MetricState.isCounterState(state)
          ? state.count
          : MetricState.isGaugeState(state)
          ? state.value
          : undefined
        if (value === undefined) return []
        const labels = pair.metricKey.tags.map((tag) => `${tag.key}="${tag.value}"`).join(",")
        return [`${pair.metricKey.name}${labels === "" ? "" : `{${labels}}`} ${value}`]
      })
      .sort()
      .join("\n")
  ))

// -----------------------------------------------------------------------------
// The program
// -----------------------------------------------------------------------------

const step = (title: string) => Console.log(`\n▶ ${title}`)

runExample((mock) =>
  Effect.gen(function*() {
    const tokens = yield* TokenService.TokenService
    const amp = yield* AmpClient.AmpClient

    yield* step("First getToken: a login")
    yield* tokens.getToken

    yield* step("1,000 more getToken calls: served from memory, no span, no metric")
    yield* Effect.forEach(Array.from({ length: 1000 }), () => tokens.getToken, { discard: true })

    yield* step("forceRefresh: the refresh endpoint")
    yield* tokens.forceRefresh

    if (Option.isSome(mock)) {
      const server = mock.value
      yield* step("A refused refresh falls back to a login (a warning is logged)")
      yield* server.script("refresh", MockFault.status(401))
      yield* tokens.forceRefresh

      yield* step("Every token revoked: the AmpClient gets a 401, renews, and sends again")
      yield* server.revokeAll
      const assets = yield* amp.listAssets
      yield* Console.log(`  ${assets.length} assets`)
    }

    yield* step("getTokenInfo (updates the seconds-until-expiry gauge)")
    yield* tokens.getTokenInfo

    yield* step("Metrics, as a Prometheus scrape would show them")
    yield* printMetrics
  }).pipe(
    Effect.provide(
      AmpClient.layerConfig().pipe(
        Layer.provideMerge(NodeAmp.layerConfig()),
        Layer.provide(NodeHttpClient.layerUndici)
      )
    ),
    // Install the exporters: for the whole program, spans go to the console tracer, and log
    // lines from debug up go to the console logger.
    Effect.provide(Layer.setTracer(consoleTracer)),
    Logger.withMinimumLogLevel(LogLevel.Debug),
    Effect.provide(Logger.pretty)
  )
)
