/**
 * Client overhead: `AmpClient.httpClient` (base URL, token from `TokenService.getToken`, 401
 * recovery, retry policy, per-attempt timeout, redacted header) against a plain `HttpClient`
 * sending the same request with a fixed header and the same per-attempt timeout
 * (`Effect.timeoutFail`, which races the request against a timer), to the same loopback
 * endpoint (`GET /assets/` on the mock server, in a process of its own). 12,000 requests each,
 * 32 in flight, in alternating batches; the plain client without a timeout shows what the
 * timeout alone costs.
 *
 * Besides wall time, the CPU time this process spends per request (the server runs in
 * another): on a busy machine it is the steadier measure of what the client itself adds.
 */
import { AmpClient, TokenService } from "@amp-effect/core"
import { HttpClient, HttpClientRequest, type HttpClientResponse } from "@effect/platform"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Duration, Effect, Layer, Redacted } from "effect"
import {
  type FigureResult,
  interleaved,
  median,
  medianOver,
  noRetry,
  report,
  round,
  serverProcess,
  serviceLayer,
  target
} from "./harness.js"

const batch = 1_000
const concurrency = 32
// 12 rounds × 1 batch of 1,000 per client and round = 12,000 requests each. A multiple of the
// three clients, so that each opens a round equally often.
const rounds = 12
const batchesPerRound = 1

export const run = Effect.gen(function*() {
  const baseUrl = yield* serverProcess
  const context = yield* Layer.build(
    AmpClient.layer({ baseUrl, retry: noRetry, requestTimeout: Duration.seconds(30) }).pipe(
      Layer.provideMerge(serviceLayer(baseUrl)),
      Layer.provideMerge(NodeHttpClient.layerUndici)
    )
  )
  const amp = (yield* Effect.provide(AmpClient.AmpClient, context)).httpClient
  const plain = yield* Effect.provide(HttpClient.HttpClient, context)
  const token = yield* Effect.flatMap(Effect.provide(TokenService.TokenService, context), (tokens) => tokens.getToken)

  // The same request and the same work on the answer (status check, body read) on both sides.
  const readOk = (response: HttpClientResponse.HttpClientResponse) =>
    response.status === 200 ? response.text : Effect.dieMessage(`HTTP ${response.status}`)
  const viaAmp = Effect.flatMap(amp.get("/assets/"), readOk)
  const plainRequest = HttpClientRequest.get(`${baseUrl}/assets/`)
  const plainSend = Effect.suspend(() =>
    plain.execute(HttpClientRequest.setHeader(plainRequest, "authorization", `token ${Redacted.value(token)}`))
  )
  const viaPlain = Effect.flatMap(plainSend, readOk)
  // The plain client with the per-attempt timeout the AmpClient puts on each request, on the
  // same span (until the answer's headers): `Effect.timeoutFail`, which races the request
  // against a timer. The like-for-like baseline.
  const viaPlainWithTimeout = plainSend.pipe(
    Effect.timeoutFail({ duration: Duration.seconds(30), onTimeout: () => "timeout" as const }),
    Effect.flatMap(readOk)
  )
  const many = (request: Effect.Effect<string, unknown>) =>
    Effect.forEach(Array.from({ length: batch }), () => request, { concurrency, discard: true }).pipe(Effect.orDie)

  // Each batch also records the CPU time this process spent on it (the server is elsewhere).
  const cpu: Record<string, Array<number>> = {}
  const measured = (name: string, effect: Effect.Effect<void>) => () => {
    const before = process.cpuUsage()
    return Effect.runPromise(effect).then(() => {
      const spent = process.cpuUsage(before)
      ;(cpu[name] ??= []).push((spent.user + spent.system) / batch)
    })
  }

  const ampBatch = many(viaAmp)
  const plainBatch = many(viaPlain)
  const timeoutBatch = many(viaPlainWithTimeout)
  yield* ampBatch // warm every path and the connection pool once
  yield* plainBatch
  yield* timeoutBatch
  // One unmeasured batch per client and round first: without it, whichever client opens a round
  // (tinybench's first call on a fresh Bench) measures 3-5x slower, and the median of the
  // per-round ratios swings with the order of the clients instead of with the clients.
  const results = yield* Effect.promise(() =>
    interleaved([
      ["AmpClient", measured("AmpClient", ampBatch)],
      ["plain HttpClient", measured("plain HttpClient", plainBatch)],
      ["plain + timeout", measured("plain + timeout", timeoutBatch)]
    ], { rounds, time: 0, iterations: batchesPerRound, warmupTime: 0, warmupIterations: 1 })
  )

  // Like for like: the plain client given the same per-attempt timeout the AmpClient has.
  const ratio = medianOver(results, (r) => r["AmpClient"]! / r["plain + timeout"]!)
  const timeoutRatio = medianOver(results, (r) => r["plain + timeout"]! / r["plain HttpClient"]!)
  const plainRatio = medianOver(results, (r) => r["AmpClient"]! / r["plain HttpClient"]!)
  const perSecond = (name: string) => round(medianOver(results, (r) => (batch * 1000) / r[name]!))
  // Wall time added per request (batches run `concurrency` requests at once).
  const addedMicros = medianOver(results, (r) => ((r["AmpClient"]! - r["plain + timeout"]!) * 1000) / batch)
  // The least CPU a batch took: the steady state, without a garbage collection landing in it.
  const cpuPerRequest = (name: string) => Math.min(...(cpu[name] ?? []))
  // Batch against batch of the same round and place in it.
  const cpuAdded = median(
    (cpu["AmpClient"] ?? []).map((amp, i) => amp - (cpu["plain + timeout"] ?? [])[i]!)
  )
  const figures = [
    report("plain HttpClient", perSecond("plain HttpClient"), "req/s"),
    report("plain HttpClient + per-attempt timeout", perSecond("plain + timeout"), "req/s"),
    report("AmpClient", perSecond("AmpClient"), "req/s"),
    target(
      `client overhead: AmpClient vs plain + the same timeout (${rounds * batchesPerRound * batch} requests each)`,
      round(ratio),
      "x time",
      "<=",
      1.1
    ),
    report("client overhead: wall time added per request", round(addedMicros), "µs"),
    report(
      "client overhead: CPU per request, plain + timeout (best batch)",
      round(cpuPerRequest("plain + timeout")),
      "µs"
    ),
    report("client overhead: CPU per request, AmpClient (best batch)", round(cpuPerRequest("AmpClient")), "µs"),
    report("client overhead: CPU added per request", round(cpuAdded), "µs"),
    report("client overhead: plain + per-attempt Effect.timeoutFail vs plain", round(timeoutRatio), "x time"),
    report("client overhead: AmpClient vs plain (no timeout)", round(plainRatio), "x time")
  ]
  const notes = round(ratio) <= 1.1 ? [] : [
    `client overhead: AmpClient took ${round(ratio)}x the time of a plain client with the same per-attempt ` +
    `timeout (${round(addedMicros)} µs more per request, ${concurrency} in flight; ${round(cpuAdded)} µs more CPU) ` +
    "against a loopback server that answers in microseconds, so the client's own CPU is the whole cost. " +
    "Against a real AMP round trip (tens of ms) the same microseconds are well under 1 %"
  ]
  return { figures, notes } satisfies FigureResult
}).pipe(Effect.scoped)
