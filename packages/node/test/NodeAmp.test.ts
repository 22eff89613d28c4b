import { AmpClient, AmpConfig, TokenService, TokenStore } from "@amp-effect/core"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Undici from "@effect/platform-node/Undici"
import { describe, expect, it } from "@effect/vitest"
import { Config, ConfigProvider, Effect, Layer, Logger, Redacted } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { vi } from "vitest"
import { MockAmpServer, MockFault } from "../src/MockAmpServer.js"
import * as NodeAmp from "../src/NodeAmp.js"

// As if @amp-effect/postgres were not installed (the consumer test checks the real absence).
vi.mock("@amp-effect/postgres", () => {
  throw new Error("Cannot find package '@amp-effect/postgres'")
})

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "amp-node-test-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

/** Runs `effect` with a TokenService built by `layer` from the given environment. */
const withService = <A, E>(
  env: Record<string, string>,
  layer: Layer.Layer<TokenService.TokenService, unknown>,
  effect: (service: TokenService.TokenService["Type"]) => Effect.Effect<A, E>
) =>
  Effect.flatMap(TokenService.TokenService, effect).pipe(
    Effect.provide(layer),
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
  )

describe("NodeAmp", () => {
  it.scopedLive("a file store survives a restart: the second service makes no call", () =>
    Effect.gen(function*() {
      const server = yield* MockAmpServer.make()
      const dir = yield* tempDir
      const file = Path.join(dir, "nested", "token.json")
      const env = { AMP_API_BASE_URL: server.baseUrl, AMP_USERNAME: "mock_user", AMP_PASSWORD: "mock_pass" }
      const layer = NodeAmp.layerWithStore(NodeAmp.layerFileStore(file))

      const first = yield* withService(env, layer, (service) => service.getToken)
      expect((yield* server.counters).obtain).toBe(1)
      expect(Fs.statSync(file).mode & 0o777).toBe(0o600)
      expect(Fs.statSync(Path.dirname(file)).mode & 0o777).toBe(0o700)
      const onDisk = JSON.parse(Fs.readFileSync(file, "utf8"))
      expect(Object.keys(onDisk).sort()).toEqual(["expires_at", "obtained_at", "token"])
      expect(onDisk.token).toBe(Redacted.value(first))

      const second = yield* withService(env, layer, (service) => service.getToken)
      expect(Redacted.value(second)).toBe(Redacted.value(first))
      const counters = yield* server.counters
      expect(counters.obtain + counters.refresh).toBe(1)
    }))

  it.scopedLive("the policy keeps mock environments off the disk, even with AMP_TOKEN_PERSISTENCE=true", () =>
    Effect.gen(function*() {
      const server = yield* MockAmpServer.make()
      const dir = yield* tempDir
      const file = Path.join(dir, "token.json")
      const env = {
        AMP_API_BASE_URL: server.baseUrl,
        AMP_USERNAME: "mock_user",
        AMP_PASSWORD: "mock_pass",
        AMP_TOKEN_PERSISTENCE: "true",
        AMP_TOKEN_FILE: file
      }
      yield* withService(env, NodeAmp.layerConfig(), (service) => service.getToken)
      expect((yield* server.counters).obtain).toBe(1)
      expect(Fs.existsSync(file)).toBe(false)
      expect(Fs.readdirSync(dir)).toEqual([])
    }))

  it.scoped("the policy picks the AMP_TOKEN_FILE store for a real environment that asks for persistence", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = Path.join(dir, "token.json")
      const infos: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        if (logLevel._tag === "Info") infos.push((Array.isArray(message) ? message : [message]).join(" "))
      })
      const storeFor = (env: Record<string, string>) =>
        Effect.map(
          Effect.provide(TokenStore.TokenStore, NodeAmp.layerPolicyStore()),
          (store) => store.description
        ).pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))),
          Effect.provide(Logger.replace(Logger.defaultLogger, logger))
        )
      const real = {
        AMP_API_BASE_URL: "https://amp-test.blockstream.com/api",
        AMP_USERNAME: "alice",
        AMP_PASSWORD: "hunter2",
        AMP_TOKEN_FILE: file
      }
      expect(yield* storeFor({ ...real, AMP_TESTS: "live" })).toBe(`file ${file}`)
      expect(yield* storeFor({ ...real, AMP_TOKEN_PERSISTENCE: "true" })).toBe(`file ${file}`)
      expect(yield* storeFor(real)).toBe("none")
      expect(yield* storeFor({ ...real, AMP_TESTS: "live", AMP_USERNAME: "mock_user" })).toBe("none")
      // AMP_TOKEN_STORE names the store, whatever AMP_TOKEN_PERSISTENCE says...
      expect(yield* storeFor({ ...real, AMP_TOKEN_STORE: "file" })).toBe(`file ${file}`)
      expect(yield* storeFor({ ...real, AMP_TOKEN_STORE: "Memory", AMP_TOKEN_PERSISTENCE: "false" })).toBe("memory")
      expect(yield* storeFor({ ...real, AMP_TOKEN_STORE: "none", AMP_TOKEN_PERSISTENCE: "true" })).toBe("none")
      // ...but a mock environment never persists: the Redis and Postgres packages are not even
      // loaded (Redis would fail for want of AMP_REDIS_URL, Postgres is mocked away here).
      expect(yield* storeFor({ ...real, AMP_TOKEN_STORE: "redis", AMP_USERNAME: "mock_user" })).toBe("none")
      expect(yield* storeFor({ ...real, AMP_TOKEN_STORE: "postgres", AMP_PASSWORD: "Mock" })).toBe("none")
      // Which store, and why, at info level: the first thing to check when a token is not kept.
      expect(infos).toEqual([
        `Token persistence on (AMP_TESTS=live): tokens are kept in ${file}`,
        `Token persistence on (AMP_TOKEN_PERSISTENCE): tokens are kept in ${file}`,
        "Token persistence off: set AMP_TOKEN_PERSISTENCE=true to keep tokens between runs",
        "Token persistence off: mock credentials or a local/mock base URL never persist",
        `Token persistence on (AMP_TOKEN_STORE=file): tokens are kept in ${file}`,
        "Token persistence off (AMP_TOKEN_STORE=memory): tokens are shared in this process's memory, lost when it exits",
        "Token persistence off (AMP_TOKEN_STORE=none)",
        "Token persistence off: mock credentials or a local/mock base URL never persist (AMP_TOKEN_STORE=redis ignored)",
        "Token persistence off: mock credentials or a local/mock base URL never persist (AMP_TOKEN_STORE=postgres ignored)"
      ])
      expect(Fs.readdirSync(dir)).toEqual([])
      const error = yield* Effect.flip(storeFor({ ...real, API_RETRY_MAX_ATTEMPTS: "0" }))
      expect(error.variable).toBe("API_RETRY_MAX_ATTEMPTS")
    }))

  it.scopedLive(
    "AMP_TOKEN_STORE=redis without @amp-effect/redis installed says what to install",
    () =>
      Effect.gen(function*() {
        const run = (...imports: ReadonlyArray<string>) =>
          Effect.promise(() =>
            new Promise<{ tag: string; variable?: string; message?: string }>((resolve, reject) => {
              const fixtures = fileURLToPath(new URL("fixtures/", import.meta.url))
              const child = ChildProcess.execFile(
                process.execPath,
                [...imports.flatMap((module) => ["--import", module]), Path.join(fixtures, "redisStoreChoice.ts")],
                { cwd: fixtures },
                (error, stdout) =>
                  error === null ? resolve(JSON.parse(stdout.trim().split("\n").at(-1)!)) : reject(error)
              )
              child.stdin?.end()
            })
          )
        const fixtures = fileURLToPath(new URL("fixtures/", import.meta.url))
        const missing = yield* run("tsx", Path.join(fixtures, "hideRedis.mjs"))
        expect(missing.tag).toBe("AmpConfigError")
        expect(missing.variable).toBe("AMP_TOKEN_STORE")
        expect(missing.message).toContain(
          "AMP_TOKEN_STORE is \"redis\", but @amp-effect/redis could not be loaded: install it with its client " +
            "(npm install @amp-effect/redis redis) (Cannot find package '@amp-effect/redis'"
        )
        // The same process with the package resolvable loads it, and the store asks for its URL.
        const installed = yield* run("tsx")
        expect(installed).toMatchObject({ tag: "AmpConfigError", variable: "AMP_REDIS_URL" })
        expect(installed.message).toContain("AMP_REDIS_URL is not set")
      }),
    300_000 // "did not hang": two tsx children, one after the other, on a busy machine
  )

  it.effect("AMP_TOKEN_STORE=postgres without @amp-effect/postgres installed says what to install", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Layer.build(NodeAmp.layerPolicyStore()).pipe(
          Effect.scoped,
          Effect.withConfigProvider(ConfigProvider.fromMap(
            new Map([["AMP_USERNAME", "alice"], ["AMP_PASSWORD", "hunter2"], ["AMP_TOKEN_STORE", "Postgres"]])
          ))
        )
      )
      expect(error.variable).toBe("AMP_TOKEN_STORE")
      expect(error.message).toContain(
        "AMP_TOKEN_STORE is \"postgres\", but @amp-effect/postgres could not be loaded: install it with its driver " +
          "(npm install @amp-effect/postgres @effect/sql @effect/sql-pg) ("
      )
    }))

  it.scoped("AMP_TOKEN_STORE=redis loads @amp-effect/redis, configured for the account NodeAmp read", () =>
    Effect.gen(function*() {
      const infos: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        if (logLevel._tag === "Info") infos.push((Array.isArray(message) ? message : [message]).join(" "))
      })
      // The account under a prefix: the store must be given it, not read AMP_USERNAME itself.
      const env = {
        ISSUER_AMP_USERNAME: "alice",
        ISSUER_AMP_PASSWORD: "hunter2",
        ISSUER_AMP_TOKEN_STORE: "redis",
        AMP_REDIS_URL: "redis://127.0.0.1:1"
      }
      const description = yield* Effect.map(
        Effect.provide(TokenStore.TokenStore, NodeAmp.layerPolicyStore(AmpConfig.nested("ISSUER"))),
        (store) => store.description
      ).pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" })),
        Effect.provide(Logger.replace(Logger.defaultLogger, logger))
      )
      expect(description).toMatch(/^redis redis:\/\/127\.0\.0\.1:1 /)
      expect(infos).toEqual([`Token persistence on (AMP_TOKEN_STORE=redis): tokens are kept in ${description}`])
    }))

  it.scopedLive("over the application's own Dispatcher, composed to follow redirects, a 3xx is still refused", () =>
    Effect.gen(function*() {
      const amp = yield* MockAmpServer.make()
      const other = yield* MockAmpServer.make()
      yield* amp.script(
        "obtain",
        MockFault.status(307, { headers: { location: `${other.baseUrl}/user/obtain_token` } })
      )
      const sent: Array<string> = []
      const agent = new Undici.Agent()
      yield* Effect.addFinalizer(() => Effect.promise(() => agent.destroy()))
      const dispatcher = agent.compose(
        Undici.interceptors.redirect({ maxRedirections: 5 }),
        (dispatch) => (options, handler) => {
          sent.push(`${options.origin}${options.path}`)
          return dispatch(options, handler)
        }
      )
      const env = { AMP_API_BASE_URL: amp.baseUrl, AMP_USERNAME: "mock_user", AMP_PASSWORD: "mock_pass" }
      const layer = NodeAmp.layerConfig().pipe(Layer.provide(Layer.succeed(NodeHttpClient.Dispatcher, dispatcher)))
      const error = yield* Effect.flip(withService(env, layer, (service) => service.getToken))
      expect(error).toMatchObject({ _tag: "AuthError", reason: "Redirected", status: 307 })
      expect(sent).toEqual([`${amp.baseUrl}/user/obtain_token`])
      expect((yield* amp.counters).obtain).toBe(1)
      expect((yield* other.counters).total).toBe(0)
    }))

  // Stryker's sandbox leaves examples/ out; the demo runs in a child process, so no mutant of
  // this package's src would ever be active in it anyway.
  const demo = fileURLToPath(new URL("../../../examples/token-persistence.ts", import.meta.url))
  it.live.skipIf(!Fs.existsSync(demo))(
    "the demo runs end to end against the embedded server",
    () =>
      Effect.promise(() =>
        new Promise<{ code: number | null; out: string }>((resolve) => {
          const root = fileURLToPath(new URL("../../..", import.meta.url))
          const child = ChildProcess.spawn(
            process.execPath,
            ["--import", "tsx", "examples/token-persistence.ts"],
            { cwd: root }
          )
          let out = ""
          child.stdout.on("data", (chunk) => (out += chunk))
          child.stderr.on("data", (chunk) => (out += chunk))
          child.on("close", (code) => resolve({ code, out }))
        })
      ).pipe(Effect.map(({ code, out }) => {
        expect(code).toBe(0)
        expect(out).toContain("server calls so far: 1 login(s), 0 refresh(es)")
        expect(out).toContain("1000 answers, 1 distinct token(s)")
        expect(out).toContain("InvalidCredentials")
        expect(out).toMatch(/token\.json: absent/)
      })),
    120_000
  )
})

describe("NodeAmp.layerClient", () => {
  it.scopedLive("gives an authenticated AmpClient from the environment: one login for many calls", () =>
    Effect.gen(function*() {
      const server = yield* MockAmpServer.make()
      const env = { AMP_API_BASE_URL: server.baseUrl, AMP_USERNAME: "mock_user", AMP_PASSWORD: "mock_pass" }
      const assets = yield* Effect.flatMap(
        AmpClient.AmpClient,
        (amp) => Effect.all(Array.from({ length: 20 }, () => amp.listAssets), { concurrency: "unbounded" })
      ).pipe(
        Effect.provide(NodeAmp.layerClient()),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
      )
      expect(assets.every((list) => list.length === assets[0]!.length && list.length > 0)).toBe(true)
      const counters = yield* server.counters
      expect([counters.obtain, counters.assets]).toEqual([1, 20])
    }))
})

describe("NodeAmp with nested configuration", () => {
  /** A provider that joins nested paths as the environment does: ISSUER + AMP_USERNAME → ISSUER_AMP_USERNAME. */
  const provider = (env: Record<string, string>) =>
    ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" })

  /** The application's own variables with the library's names: read, they would fail or mislead. */
  const clashing = {
    AMP_USERNAME: "someone-else",
    AMP_PASSWORD: "wrong",
    API_RETRY_MAX_ATTEMPTS: "the app's own",
    API_RETRY_BASE_DELAY_MS: "the app's own"
  }

  it.scopedLive("AmpConfig.nested reads every variable under the prefix, and only there", () =>
    Effect.gen(function*() {
      const server = yield* MockAmpServer.make()
      // One 503: the prefixed retry policy (2 attempts, no delay) gets past it.
      yield* server.script("obtain", MockFault.status(503))
      const env = {
        ...clashing,
        ISSUER_AMP_API_BASE_URL: server.baseUrl,
        ISSUER_AMP_USERNAME: "mock_user",
        ISSUER_AMP_PASSWORD: "mock_pass",
        ISSUER_API_RETRY_MAX_ATTEMPTS: "2",
        ISSUER_API_RETRY_BASE_DELAY_MS: "0",
        ISSUER_API_RETRY_MAX_DELAY_MS: "0"
      }
      const assets = yield* Effect.flatMap(AmpClient.AmpClient, (amp) => amp.listAssets).pipe(
        Effect.provide(NodeAmp.layerClient(AmpConfig.nested("ISSUER"))),
        Effect.withConfigProvider(provider(env))
      )
      expect(assets.length).toBeGreaterThan(0)
      const counters = yield* server.counters
      expect([counters.obtain, counters.assets]).toEqual([2, 1])

      // With one attempt under the prefix, the 503 is final: the unprefixed policy is not used.
      yield* server.script("obtain", MockFault.status(503))
      const error = yield* Effect.flip(
        Effect.flatMap(TokenService.TokenService, (service) => service.getToken).pipe(
          Effect.provide(NodeAmp.layerConfig(AmpConfig.nested("ISSUER"))),
          Effect.withConfigProvider(provider({ ...env, ISSUER_API_RETRY_MAX_ATTEMPTS: "1" }))
        )
      )
      expect(error).toMatchObject({ _tag: "AuthError", reason: "ServerError" })
      expect((yield* server.counters).obtain).toBe(3)
    }))

  it.scopedLive("one group renamed with Config.nested: AMP_API_RETRY_* instead of the application's API_RETRY_*", () =>
    Effect.gen(function*() {
      const server = yield* MockAmpServer.make()
      yield* server.script("obtain", MockFault.status(503), MockFault.status(503))
      const env = {
        API_RETRY_MAX_ATTEMPTS: "the app's own",
        AMP_API_BASE_URL: server.baseUrl,
        AMP_USERNAME: "mock_user",
        AMP_PASSWORD: "mock_pass",
        AMP_API_RETRY_MAX_ATTEMPTS: "3",
        AMP_API_RETRY_BASE_DELAY_MS: "0",
        AMP_API_RETRY_MAX_DELAY_MS: "0"
      }
      yield* withService(
        env,
        NodeAmp.layerConfig({ retry: Config.nested(AmpConfig.retry, "AMP") }),
        (service) => service.getToken
      ).pipe(Effect.withConfigProvider(provider(env)))
      expect((yield* server.counters).obtain).toBe(3)
    }))

  it.effect("a bad prefixed variable fails the layer naming it with its prefix", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Effect.flatMap(TokenService.TokenService, (service) => service.getToken).pipe(
          Effect.provide(NodeAmp.layerConfig(AmpConfig.nested("ISSUER"))),
          Effect.withConfigProvider(provider({
            ...clashing,
            ISSUER_AMP_USERNAME: "alice",
            ISSUER_AMP_PASSWORD: "s3cret-pass",
            ISSUER_API_REQUEST_TIMEOUT_SECONDS: "0"
          }))
        )
      )
      expect(error._tag).toBe("AmpConfigError")
      expect(error.message).toBe(
        "ISSUER_API_REQUEST_TIMEOUT_SECONDS is invalid: got \"0\", expected a whole number of seconds (>= 1)"
      )
      const missing = yield* Effect.flip(
        Layer.build(NodeAmp.layerPolicyStore(AmpConfig.nested("ISSUER"))).pipe(
          Effect.scoped,
          Effect.withConfigProvider(provider({ ...clashing, ISSUER_AMP_USERNAME: "alice" }))
        )
      )
      expect(missing.message).toBe("ISSUER_AMP_PASSWORD is not set")
    }))
})
