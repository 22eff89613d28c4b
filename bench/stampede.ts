/**
 * Stampedes: 10,000 fibers call `getToken` at once against the mock server (50 ms latency on
 * obtain and refresh), first with no token (exactly one login), then with a token inside the
 * refresh margin (exactly one refresh). Each fiber times its own wait.
 */
import { TokenService } from "@amp-effect/core"
import { MockAmpServer } from "@amp-effect/node/MockAmpServer"
import { Duration, Effect, Layer } from "effect"
import { type Figure, type FigureResult, percentile, report, round, serviceLayer, target } from "./harness.js"

const fibers = 10_000

/** Every fiber calls `getToken` at once; the wait of each, in ms. */
const stampede = (tokens: TokenService.TokenService["Type"]) =>
  Effect.forEach(
    Array.from({ length: fibers }),
    () =>
      Effect.suspend(() => {
        const started = performance.now()
        return Effect.map(tokens.getToken, () => performance.now() - started)
      }),
    { concurrency: "unbounded" }
  )

/** A fresh service (empty memory store) over `server`. */
const freshService = (server: MockAmpServer.Service) =>
  Effect.flatMap(
    Layer.build(serviceLayer(server.baseUrl)),
    (context) => Effect.provide(TokenService.TokenService, context)
  )

export const run = Effect.gen(function*() {
  const server = yield* MockAmpServer.make({ latency: Duration.millis(50) })
  const figures: Array<Figure> = []
  const notes: Array<string> = []

  // No token at all.
  const cold = yield* freshService(server)
  const coldWaits = yield* stampede(cold)
  const coldCounters = yield* server.counters
  figures.push(
    target("stampede: logins", coldCounters.obtain, "calls", "==", 1),
    report("stampede: p50 wait", round(percentile(coldWaits, 50)), "ms"),
    report("stampede: p99 wait", round(percentile(coldWaits, 99)), "ms")
  )
  if (coldCounters.obtain !== 1) notes.push(`stampede: ${coldCounters.obtain} logins reached the server, not 1`)

  // A token 4 minutes from expiry: valid, but inside the 5-minute refresh margin.
  const expiring = yield* freshService(server)
  yield* server.setTokenLifetime(Duration.minutes(4))
  yield* expiring.getToken
  yield* server.setTokenLifetime(Duration.hours(24))
  yield* server.resetCounters
  const expiringWaits = yield* stampede(expiring)
  const expiringCounters = yield* server.counters
  figures.push(
    target("expiring stampede: refreshes", expiringCounters.refresh, "calls", "==", 1),
    target("expiring stampede: logins", expiringCounters.obtain, "calls", "==", 0),
    report("expiring stampede: p50 wait", round(percentile(expiringWaits, 50)), "ms"),
    report("expiring stampede: p99 wait", round(percentile(expiringWaits, 99)), "ms")
  )
  if (expiringCounters.refresh !== 1 || expiringCounters.obtain !== 0) {
    notes.push(
      `expiring stampede: ${expiringCounters.refresh} refreshes and ${expiringCounters.obtain} logins reached the server, not 1 and 0`
    )
  }
  return { figures, notes } satisfies FigureResult
}).pipe(Effect.scoped)
