/**
 * `NodeAmp`'s persistence policy picking the Postgres store from `AMP_TOKEN_STORE=postgres`,
 * against a real PostgreSQL: the optional peer is loaded, configured from `AMP_POSTGRES_*`, the
 * store is announced without credentials, and a token saved through one store is loaded by a
 * second one built later (so it was kept in the database, not in memory or on disk).
 */
import { TokenStore } from "@amp-effect/core"
import { TokenStoreContract } from "@amp-effect/core/testing"
import * as NodeAmp from "@amp-effect/node/NodeAmp"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Logger, Option, Redacted } from "effect"
import * as PostgresTokenStore from "../src/PostgresTokenStore.js"
import { PostgresServer } from "../src/testing/index.js"
import * as Database from "./utils/Database.js"

const { sampleToken } = TokenStoreContract

const suite = PostgresServer.unavailable === undefined ? describe : describe.skip

suite("NodeAmp.layerPolicyStore with AMP_TOKEN_STORE=postgres", () => {
  it.scopedLive("keeps the token in Postgres under the account's key, and names the server without its password", () =>
    Effect.gen(function*() {
      const server = yield* PostgresServer.scoped()
      // A real (not mock) account: the policy would refuse any store to a mock environment.
      const account = { baseUrl: "https://amp.example.com/api", username: "svc-issuer@example.com" }
      const env = {
        AMP_API_BASE_URL: account.baseUrl,
        AMP_USERNAME: account.username,
        AMP_PASSWORD: "not-used",
        AMP_TOKEN_STORE: "postgres",
        AMP_POSTGRES_URL: server.url,
        AMP_POSTGRES_TABLE: "policy_tokens"
      }
      const infos: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        if (logLevel._tag === "Info") infos.push((Array.isArray(message) ? message : [message]).join(" "))
      })
      const withStore = <A, E>(f: (store: TokenStore.TokenStore["Type"]) => Effect.Effect<A, E>) =>
        Effect.flatMap(TokenStore.TokenStore, f).pipe(
          Effect.provide(NodeAmp.layerPolicyStore()),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))),
          Effect.provide(Logger.replace(Logger.defaultLogger, logger))
        )
      const token = sampleToken("policy-token", Date.now())
      const description = yield* withStore((store) => Effect.as(store.save(token), store.description))
      expect(description).toBe(`postgres postgres://127.0.0.1:${server.port}/postgres (table public.policy_tokens)`)
      expect(infos).toEqual([`Token persistence on (AMP_TOKEN_STORE=postgres): tokens are kept in ${description}`])
      expect(infos.join("\n")).not.toContain(server.password)

      const sql = yield* Database.client(server.url)
      const rows = yield* sql<{ readonly account: string }>`SELECT account FROM public.policy_tokens`
      expect(rows.map((row) => row.account)).toEqual([PostgresTokenStore.accountKey(account)])

      const loaded = yield* withStore((store) => store.load)
      expect(Option.map(loaded, (data) => Redacted.value(data.token))).toEqual(Option.some("policy-token"))
    }))
})
