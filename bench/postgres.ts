/**
 * The Postgres token store (`@amp-effect/postgres`) in the shared-store sections
 * (`bench/sharedStore.ts`), against a throwaway PostgreSQL (`@amp-effect/postgres/testing`:
 * loopback, a free port, fsync off; the sections fail with a note when none is installed):
 * postgres-fleet (on an empty database) and postgres-hot-path, to be read beside Redis's.
 */
import { PostgresTokenStore } from "@amp-effect/postgres"
import { PostgresServer } from "@amp-effect/postgres/testing"
import { Effect, Redacted } from "effect"
import * as SharedStore from "./sharedStore.js"

const postgres: SharedStore.SharedStore = {
  id: "postgres",
  name: "Postgres",
  server: PostgresServer.unavailable === undefined
    ? PostgresServer.scoped()
    : Effect.dieMessage(PostgresServer.unavailable),
  childEnv: (url) => ({ AMP_POSTGRES_URL: url, AMP_POSTGRES_TABLE: "bench_fleet" }),
  layer: (url, account) => PostgresTokenStore.layerUrl({ url: Redacted.make(url), account, table: "bench_hot_path" }),
  lock: "the advisory lock (PostgresTokenStore withLock)"
}

export const runFleet = SharedStore.runFleet(postgres)

export const runHotPath = SharedStore.runHotPath(postgres)
