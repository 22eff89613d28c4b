import { TokenStoreContract } from "@amp-effect/core/testing"
import { expect, it } from "@effect/vitest"
import { Effect, Layer, Option, Redacted } from "effect"
import * as PostgresTokenStore from "../src/PostgresTokenStore.js"
import * as Database from "./utils/Database.js"

const describe = Database.setup()
const { sampleToken, plain } = TokenStoreContract

const options = (table = Database.freshTable()) => ({
  url: Redacted.make(Database.current().url),
  account: Database.account,
  table
})

describe("PostgresTokenStore", () => {
  // Each test its own table, on first use created by the store itself.
  TokenStoreContract.storeContract(
    "postgres (a pool of its own)",
    Layer.suspend(() => PostgresTokenStore.layerUrl(options()))
  )
  TokenStoreContract.storeContract(
    "postgres (the application's SqlClient)",
    Layer.suspend(() =>
      PostgresTokenStore.layer({ account: Database.account, table: Database.freshTable() }).pipe(
        Layer.provide(Database.layerClient)
      )
    )
  )

  it.scoped("smoke: save then load", () =>
    Effect.gen(function*() {
      const store = yield* PostgresTokenStore.makeUrl(options())
      yield* store.save(sampleToken("a"))
      expect(Option.map(yield* store.load, plain)).toEqual(Option.some(plain(sampleToken("a"))))
    }))
})
