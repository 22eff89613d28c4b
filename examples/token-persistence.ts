/**
 * The token lifecycle, narrated: what `pnpm demo` runs.
 *
 * By default it starts the embedded mock AMP server on 127.0.0.1 and needs no credentials; the
 * server's request counters prove each claim. With `--live` and `AMP_API_BASE_URL`,
 * `AMP_USERNAME`, `AMP_PASSWORD` set, the steps that need no scripted faults run against the
 * real API instead.
 *
 *   pnpm demo                  # mock server
 *   pnpm demo -- --live        # real AMP API (uses a temporary token file)
 */
import { AmpConfig, AuthApi, TokenService } from "@amp-effect/core"
import { NodeAmp } from "@amp-effect/node"
import { MockAmpServer, MockFault } from "@amp-effect/node/MockAmpServer"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Config, Console, Context, Duration, Effect, Layer, Logger, LogLevel, Option, Redacted } from "effect"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"

const live = process.argv.includes("--live")

/** Shows enough of a token to tell two apart, never the whole of it. */
const mask = (token: Redacted.Redacted<string>) => {
  const text = Redacted.value(token)
  return `${text.slice(0, 6)}…${text.slice(-4)} (${text.length} chars)`
}

const step = (title: string) => Console.log(`\n▶ ${title}`)
const say = (line: string) => Console.log(`  ${line}`)

/**
 * A fresh TokenService over the given API settings and token file: what a new process gets.
 * Built into the demo's scope, so its HTTP client lives as long as the demo.
 */
const service = (credentials: AmpConfig.Credentials, file: string) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(
      TokenService.layer().pipe(
        // The credentials given here; the retry policy and timeout from API_RETRY_* and
        // API_REQUEST_TIMEOUT_SECONDS, as everywhere.
        Layer.provide(AuthApi.layerConfig({
          baseUrl: Config.succeed(credentials.baseUrl),
          username: Config.succeed(credentials.username),
          password: Config.succeed(credentials.password)
        })),
        Layer.provide(Layer.merge(NodeHttpClient.layerUndici, NodeAmp.layerFileStore(file)))
      )
    )
    return Context.get(context, TokenService.TokenService)
  })

const fileFacts = (file: string) =>
  Effect.promise(async () => {
    const stat = await Fs.stat(file).catch(() => undefined)
    if (stat === undefined) return "absent"
    const json = JSON.parse(await Fs.readFile(file, "utf8")) as Record<string, string>
    return `present, mode ${(stat.mode & 0o777).toString(8)}, expires_at ${json.expires_at}`
  })

const program = Effect.gen(function*() {
  const dir = yield* Effect.acquireRelease(
    Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "amp-effect-demo-"))),
    (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))
  )
  const file = Path.join(dir, "token.json")

  let credentials: AmpConfig.Credentials
  let server: MockAmpServer.Service | undefined
  if (live) {
    credentials = yield* AmpConfig.read(AmpConfig.credentials)
    yield* Console.log(`Live run against ${credentials.baseUrl} as ${credentials.username}`)
  } else {
    server = yield* MockAmpServer.make({ tokenLifetime: "1 hour" })
    credentials = {
      baseUrl: server.baseUrl,
      username: MockAmpServer.defaultCredentials.username,
      password: Redacted.make(MockAmpServer.defaultCredentials.password)
    }
    yield* Console.log(`Mock AMP server listening at ${server.baseUrl}`)
  }
  const calls = server === undefined
    ? Effect.succeed("(not counted against the live API)")
    : Effect.map(server.counters, (c) => `server calls so far: ${c.obtain} login(s), ${c.refresh} refresh(es)`)

  yield* step("1. First run: no token file, so the service logs in and saves the token")
  const first = yield* service(credentials, file)
  const token = yield* first.getToken
  yield* say(`token ${mask(token)}`)
  yield* say(`${file}: ${yield* fileFacts(file)}`)
  yield* say(yield* calls)

  yield* step("2. A second service instance (as a restart would) loads the token from disk")
  const second = yield* service(credentials, file)
  const reloaded = yield* second.getToken
  yield* say(`token ${mask(reloaded)}, same as before: ${Redacted.value(reloaded) === Redacted.value(token)}`)
  yield* say(yield* calls)

  yield* step("3. 1,000 fibers ask a service with no token at once: one login serves them all")
  const fresh = yield* service(credentials, Path.join(dir, "fresh", "token.json"))
  const many = yield* Effect.all(Array.from({ length: 1000 }, () => fresh.getToken), { concurrency: "unbounded" })
  yield* say(`${many.length} answers, ${new Set(many.map(Redacted.value)).size} distinct token(s)`)
  yield* say(yield* calls)

  if (server !== undefined) {
    yield* step("4. A token inside the 5-minute refresh margin is refreshed through /user/refresh-token")
    yield* server.setTokenLifetime("4 minutes")
    yield* second.obtainToken
    yield* server.setTokenLifetime("1 hour")
    const info = Option.getOrThrow(yield* second.getTokenInfo)
    yield* say(
      `current token expires in ${Math.round(Duration.toSeconds(info.expiresIn))} s; expiresSoon = ${info.expiresSoon}`
    )
    const refreshed = yield* second.getToken
    yield* say(`getToken answered a new token ${mask(refreshed)}`)
    yield* say(yield* calls)

    yield* step("5. When the refresh fails, the service falls back to a fresh login")
    yield* server.setTokenLifetime("4 minutes")
    yield* second.obtainToken
    yield* server.setTokenLifetime("1 hour")
    yield* server.script("refresh", MockFault.status(401, { body: "{\"detail\":\"Invalid token.\"}" }))
    const recovered = yield* second.getToken
    yield* say(`getToken answered ${mask(recovered)} after the refresh was refused`)
    yield* say(yield* calls)

    yield* step("6. A wrong password is a typed error, and is not retried")
    const wrong = yield* service(
      { ...credentials, password: Redacted.make("not-the-password") },
      Path.join(dir, "other.json")
    )
    const error = yield* Effect.flip(wrong.getToken)
    yield* say(`${error._tag === "AuthError" ? error.reason : error._tag}: ${error.message}`)
    yield* say(yield* calls)
  } else {
    yield* step("4. Forcing a refresh through /user/refresh-token")
    const refreshed = yield* second.forceRefresh
    yield* say(`new token ${mask(refreshed)}`)
  }

  yield* step("7. clearToken forgets the token and removes the file")
  yield* second.clearToken
  yield* say(`${file}: ${yield* fileFacts(file)}`)
  yield* Console.log("\nDone: every token above came from the server once and was reused until it had to change.")
})

program.pipe(
  Effect.scoped,
  Effect.provide(Logger.pretty),
  Logger.withMinimumLogLevel(LogLevel.Info),
  NodeRuntime.runMain
)
