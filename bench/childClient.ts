/**
 * A child process of `pnpm bench` (processes and warm start): what an application does when it
 * starts — build `NodeAmp.layerWithStore(NodeAmp.layerFileStore(file))` from the environment
 * (`AMP_API_BASE_URL`, `AMP_USERNAME`, `AMP_PASSWORD`), get a token, make one authenticated
 * call (`GET /assets/`) — then print one JSON line with its timings and exit.
 *
 * Run built, as `childClient.mjs` in a `BuiltApp` (see there); from its source for a try:
 *
 *   BENCH_TOKEN_FILE=/tmp/x/token.json AMP_API_BASE_URL=... node --import tsx bench/childClient.ts
 */
import * as TokenService from "@amp-effect/core/TokenService"
import * as NodeAmp from "@amp-effect/node/NodeAmp"
import { HttpClient, HttpClientRequest } from "@effect/platform"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Config, Console, Effect, Layer, Redacted } from "effect"

// Modules are loaded by now: from here on is what the application itself spends.
const mainStarted = performance.now()

const program = Effect.gen(function*() {
  const baseUrl = yield* Config.string("AMP_API_BASE_URL")
  const tokens = yield* TokenService.TokenService
  const client = (yield* HttpClient.HttpClient).pipe(HttpClient.filterStatusOk)
  const token = yield* tokens.getToken
  const response = yield* client.execute(
    HttpClientRequest.get(`${baseUrl}/assets/`).pipe(
      HttpClientRequest.setHeader("authorization", `token ${Redacted.value(token)}`)
    )
  )
  yield* response.json
  const done = performance.now()
  yield* Console.log(JSON.stringify({
    // from the first line of this module (imports already loaded)
    fromMainMs: done - mainStarted,
    // from Node's time origin: the process's start, Node's boot and the loading of the modules included
    fromProcessStartMs: done
  }))
})

const file = process.env["BENCH_TOKEN_FILE"]
if (file === undefined) throw new Error("BENCH_TOKEN_FILE is not set")

program.pipe(
  Effect.provide(Layer.merge(NodeAmp.layerWithStore(NodeAmp.layerFileStore(file)), NodeHttpClient.layerUndici)),
  Effect.scoped,
  NodeRuntime.runMain
)
