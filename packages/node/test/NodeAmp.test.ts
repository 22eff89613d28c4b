import { AmpClient, TokenService, TokenStore } from "@amp-effect/core"
import { describe, expect, it } from "@effect/vitest"
import type { Layer } from "effect"
import { ConfigProvider, Effect, Logger, Redacted } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { MockAmpServer } from "../src/MockAmpServer.js"
import * as NodeAmp from "../src/NodeAmp.js"

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
      yield* withService(env, NodeAmp.layerConfig, (service) => service.getToken)
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
          Effect.provide(TokenStore.TokenStore, NodeAmp.layerPolicyStore),
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
      // Which store, and why, at info level: the first thing to check when a token is not kept.
      expect(infos).toEqual([
        `Token persistence on (AMP_TESTS=live): tokens are kept in ${file}`,
        `Token persistence on (AMP_TOKEN_PERSISTENCE): tokens are kept in ${file}`,
        "Token persistence off: set AMP_TOKEN_PERSISTENCE=true to keep tokens between runs",
        "Token persistence off: mock credentials or a local/mock base URL never persist"
      ])
      const error = yield* Effect.flip(storeFor({ ...real, API_RETRY_MAX_ATTEMPTS: "0" }))
      expect(error.variable).toBe("API_RETRY_MAX_ATTEMPTS")
    }))

  it.live(
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
    60_000
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
        Effect.provide(NodeAmp.layerClient),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
      )
      expect(assets.every((list) => list.length === assets[0]!.length && list.length > 0)).toBe(true)
      const counters = yield* server.counters
      expect([counters.obtain, counters.assets]).toEqual([1, 20])
    }))
})
