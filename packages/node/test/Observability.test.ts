/**
 * What the library tells its operators: spans, span attributes, log lines and error messages.
 *
 * The whole token lifecycle runs against the embedded mock server at the most verbose log level
 * with tracing on — including a server that echoes the password and the token back in its error
 * bodies — and every line, attribute, event and message is captured. None may contain the
 * password or any token the server issued.
 */
import { AmpClient, TokenService } from "@amp-effect/core"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { describe, expect, it } from "@effect/vitest"
import { Cause, ConfigProvider, Context, Effect, Exit, Layer, Logger, LogLevel, Option, Redacted, Tracer } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { MockAmpServer, MockFault } from "../src/MockAmpServer.js"
import * as NodeAmp from "../src/NodeAmp.js"

const password = "mock_pass"
const wrongPassword = "wrong-Pa55word-7d41"

// -----------------------------------------------------------------------------
// Capture
// -----------------------------------------------------------------------------

/** Everything a span exported: its name, attributes, events and how it ended. */
interface SpanRecord {
  readonly name: string
  readonly attributes: Map<string, unknown>
  readonly events: Array<{ readonly name: string; readonly attributes: Record<string, unknown> | undefined }>
  exit: Exit.Exit<unknown, unknown> | undefined
}

/**
 * A tracer that records every span it starts, delegating the span itself to the tracer it
 * wraps: what an exporter (`@effect/opentelemetry`) would receive.
 */
const recordingTracer = (base: Tracer.Tracer, spans: Array<SpanRecord>): Tracer.Tracer =>
  Tracer.make({
    span(name, parent, context, links, startTime, kind, options) {
      const span = base.span(name, parent, context, links, startTime, kind, options)
      const record: SpanRecord = { name, attributes: new Map(), events: [], exit: undefined }
      spans.push(record)
      return {
        _tag: "Span",
        name: span.name,
        spanId: span.spanId,
        traceId: span.traceId,
        parent: span.parent,
        context: span.context,
        get status() {
          return span.status
        },
        get attributes() {
          return span.attributes
        },
        get links() {
          return span.links
        },
        sampled: span.sampled,
        kind: span.kind,
        attribute(key, value) {
          record.attributes.set(key, value)
          span.attribute(key, value)
        },
        event(name, time, attributes) {
          record.events.push({ name, attributes })
          span.event(name, time, attributes)
        },
        end(endTime, exit) {
          record.exit = exit
          span.end(endTime, exit)
        },
        addLinks(links) {
          span.addLinks(links)
        }
      }
    },
    context: (f, fiber) => base.context(f, fiber)
  })

/** How an exporter would write a value: strings as they are, the rest as JSON and as text. */
const show = (value: unknown): string => {
  if (typeof value === "string") return value
  let json = ""
  try {
    json = JSON.stringify(value) ?? ""
  } catch {
    // circular: the text form below is enough
  }
  return `${json} ${String(value)}`
}

const spanText = (span: SpanRecord): string =>
  [
    span.name,
    ...Array.from(span.attributes, ([key, value]) => `${key}=${show(value)}`),
    ...span.events.map((event) => `${event.name} ${show(event.attributes)}`),
    span.exit !== undefined && Exit.isFailure(span.exit) ? Cause.pretty(span.exit.cause) : ""
  ].join("\n")

/** Everything an error exposes: message, text form, JSON form, and the pretty cause. */
const errorText = (cause: Cause.Cause<unknown>): string =>
  [
    Cause.pretty(cause),
    ...Cause.failures(cause).pipe((failures) =>
      Array.from(failures, (error) =>
        [error instanceof Error ? error.message : "", String(error), show(error)].join("\n"))
    )
  ].join("\n")

/** A secret's name and where it appears in `captured`, to name a leak precisely. */
const leaks = (captured: ReadonlyArray<string>, secrets: ReadonlyArray<readonly [string, string]>) =>
  secrets.flatMap(([label, secret]) =>
    captured.filter((text) => text.includes(secret)).map((text) => `${label} in: ${text.slice(0, 300)}`)
  )

// -----------------------------------------------------------------------------
// Setup
// -----------------------------------------------------------------------------

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "amp-observability-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const environment = (server: MockAmpServer.Service, pass: string) =>
  ConfigProvider.fromMap(
    new Map([
      ["AMP_API_BASE_URL", server.baseUrl],
      ["AMP_USERNAME", "mock_user"],
      ["AMP_PASSWORD", pass],
      ["API_RETRY_BASE_DELAY_MS", "10"],
      ["API_RETRY_MAX_DELAY_MS", "50"]
    ])
  )

/**
 * What an application process builds: a `TokenService` over the token file and an `AmpClient`
 * over it, from the environment. Built into the test's scope, so it lives until the test ends.
 */
const application = (server: MockAmpServer.Service, file: string, pass = password) =>
  Layer.build(
    AmpClient.layerConfig().pipe(
      Layer.provideMerge(NodeAmp.layerWithStore(NodeAmp.layerFileStore(file))),
      Layer.provide(NodeHttpClient.layerUndici)
    )
  ).pipe(
    Effect.map((context) => ({
      tokens: Context.get(context, TokenService.TokenService),
      amp: Context.get(context, AmpClient.AmpClient)
    })),
    Effect.withConfigProvider(environment(server, pass))
  )

describe("Observability", { timeout: 60_000 }, () => {
  it.scopedLive("no secret in any log line, span attribute, span event or error across the whole lifecycle", () => {
    const spans: Array<SpanRecord> = []
    const logs: Array<string> = []
    const errors: Array<string> = []
    // Every log line, in the two forms exporters write: logfmt text and a structured object.
    const capture = Logger.make((options) => {
      logs.push(Logger.logfmtLogger.log(options))
      logs.push(show(Logger.structuredLogger.log(options)))
    })
    /** Runs a step that must fail, keeping everything its failure says. */
    const failing = <A, E>(effect: Effect.Effect<A, E>) =>
      Effect.flatMap(Effect.exit(effect), (exit) => {
        if (Exit.isSuccess(exit)) return Effect.dieMessage("expected this step to fail")
        errors.push(errorText(exit.cause))
        return Effect.succeed(Cause.failureOption(exit.cause))
      })

    return Effect.gen(function*() {
      const server = yield* MockAmpServer.make()
      const file = Path.join(yield* tempDir, "token.json")
      const counters = () => server.counters

      // login + save: process A logs in; its token is valid but inside the refresh margin.
      yield* server.setTokenLifetime("4 minutes")
      const a = yield* application(server, file)
      yield* a.tokens.getToken
      expect(yield* counters()).toMatchObject({ obtain: 1, refresh: 0 })
      expect(Fs.existsSync(file)).toBe(true)

      // load: process B starts on the same file, with no call to the server.
      const b = yield* application(server, file)
      expect(Option.isSome(yield* b.tokens.getTokenInfo)).toBe(true)
      expect((yield* counters()).total).toBe(1)

      // refresh: A's token is inside the margin, so getToken refreshes it (now for 24 hours).
      yield* server.setTokenLifetime("24 hours")
      yield* a.tokens.getToken
      expect(yield* counters()).toMatchObject({ obtain: 1, refresh: 1 })

      // B's token is inside the margin too; under the lock it finds A's newer token in the file.
      yield* b.tokens.getToken
      expect(yield* counters()).toMatchObject({ obtain: 1, refresh: 1 })

      // fallback: the refresh is refused by a server that echoes the token; B logs in instead.
      const current = Redacted.value(yield* b.tokens.getToken)
      yield* server.script(
        "refresh",
        MockFault.status(401, { body: JSON.stringify({ detail: `token ${current} was revoked` }) })
      )
      yield* b.tokens.forceRefresh
      expect(yield* counters()).toMatchObject({ obtain: 2, refresh: 2 })

      // 401 recovery: every token is revoked; the AmpClient renews and sends again.
      yield* server.revokeAll
      const assets = yield* b.amp.listAssets
      expect(assets.length).toBeGreaterThan(0)
      expect((yield* counters()).unauthorized).toBeGreaterThanOrEqual(1)

      // a transient failure, retried (and logged) before the login succeeds
      yield* server.script("obtain", MockFault.status(503))
      yield* b.tokens.obtainToken

      // failures whose server answers echo the secrets back: the right password, a wrong one
      yield* server.script(
        "obtain",
        MockFault.status(400, { body: JSON.stringify({ detail: `password ${password} is locked` }) })
      )
      const locked = yield* failing(b.tokens.obtainToken)
      expect(Option.map(locked, (error) => error._tag === "AuthError" && error.reason)).toEqual(
        Option.some("InvalidCredentials")
      )
      const wrong = yield* application(server, Path.join(Path.dirname(file), "other.json"), wrongPassword)
      yield* server.script(
        "obtain",
        MockFault.status(400, { body: `{"detail":"no user with password ${wrongPassword}"}` })
      )
      yield* failing(wrong.tokens.getToken)
      yield* failing(wrong.tokens.getToken) // the mock's own 400 this time
      // the AmpClient's own errors: a request that cannot get a token
      yield* failing(wrong.amp.listAssets)

      // clear
      yield* b.tokens.clearToken
      expect(Fs.existsSync(file)).toBe(false)
      expect(yield* b.tokens.getTokenInfo).toEqual(Option.none())

      // What was captured is real: spans of every stage, their attributes, verbose log lines.
      const names = new Set(spans.map((span) => span.name))
      for (
        const name of [
          "AuthApi.obtain",
          "AuthApi.refresh",
          "TokenService.load",
          "TokenService.renew",
          "TokenService.forceRefresh",
          "TokenService.renewRejected",
          "TokenService.clearToken",
          "TokenStore.load",
          "TokenStore.save",
          "TokenStore.withLock"
        ]
      ) {
        expect(names, name).toContain(name)
      }
      const attributes = (name: string, key: string) =>
        spans.filter((span) => span.name === name).map((span) => span.attributes.get(key))
      expect(attributes("AuthApi.obtain", "outcome")).toEqual(
        expect.arrayContaining(["success", "InvalidCredentials"])
      )
      expect(attributes("AuthApi.obtain", "attempts")).toContain(2) // the 503, then success
      expect(attributes("AuthApi.refresh", "outcome")).toEqual(expect.arrayContaining(["success", "RefreshRejected"]))
      const sources = spans.flatMap((span) => span.attributes.has("source") ? [span.attributes.get("source")] : [])
      expect(sources).toEqual(expect.arrayContaining(["server", "file"]))
      // The HTTP client's spans carry the request headers: a token there would be caught.
      const authorization = spans.flatMap((span) => {
        const value = span.attributes.get("http.request.header.authorization")
        return value === undefined ? [] : [show(value)]
      })
      expect(authorization.length).toBeGreaterThan(0)
      for (const value of authorization) expect(value).toContain("<redacted>")
      expect(logs.some((line) => line.includes("level=DEBUG"))).toBe(true)
      expect(logs.some((line) => line.includes("logging in instead"))).toBe(true)
      expect(logs.some((line) => line.includes("retrying in"))).toBe(true)
      expect(errors.length).toBe(4)
      // The echoed bodies did reach the errors and logs (scrubbed): absence is not luck.
      expect(errors.some((text) => text.includes("is locked"))).toBe(true)
      expect(errors.some((text) => text.includes("no user with password"))).toBe(true)
      expect(logs.some((line) => line.includes("was revoked"))).toBe(true)

      // The point: no secret anywhere.
      const issued = yield* server.issuedTokens
      expect(issued.length).toBeGreaterThanOrEqual(5)
      const secrets: Array<readonly [string, string]> = [
        ["the password", password],
        ["the wrong password", wrongPassword],
        ...issued.flatMap((token, i) => [
          [`token ${i}`, token] as const,
          // the signature alone is enough to be a leak
          [`token ${i}'s signature`, token.split(".")[2]!] as const
        ])
      ]
      const captured = [...logs, ...spans.map(spanText), ...errors]
      expect(leaks(captured, secrets)).toEqual([])
    }).pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
      Logger.withMinimumLogLevel(LogLevel.All),
      Effect.withTracerEnabled(true),
      (effect) => Effect.flatMap(Effect.tracer, (base) => Effect.withTracer(effect, recordingTracer(base, spans)))
    )
  })
})
