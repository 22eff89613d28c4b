/**
 * The Postgres token store: one row per account, written with a fenced upsert, and the lock
 * kit's storage over a session-level advisory lock on a connection reserved for the hold.
 *
 * @internal
 */
import { type EncryptionKey, type TokenData, TokenEnvelope, TokenError, TokenStore } from "@amp-effect/core"
import * as StoreLock from "@amp-effect/core/StoreLock"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { DateTime, Duration, Effect, Either, Exit, Metric, Option, Scope } from "effect"
import { createHash } from "node:crypto"
import * as Os from "node:os"
import * as PostgresMetrics from "../PostgresMetrics.js"
import { advisoryKey, migrate, type Names } from "./migrations.js"

export interface Settings {
  /** The client (opened on first use when the store opens its own); fails with a reason. */
  readonly client: Effect.Effect<SqlClient.SqlClient, string>
  /** For messages: `postgres://db:5432/app (table public.amp_effect_tokens)`. */
  readonly where: string
  /** Texts never to appear in a message (the URL's password). */
  readonly secrets: ReadonlyArray<string>
  readonly names: Names
  /** The account's hash: the row's key. */
  readonly account: string
  readonly lockLease: Duration.Duration
  readonly lockTimeout: Duration.Duration
  readonly statementTimeout: Duration.Duration
  readonly whenUnavailable: "proceed" | "fail"
  /** The first seals, all open; none: the token in clear. */
  readonly encryptionKeys: ReadonlyArray<EncryptionKey.EncryptionKey>
}

/** SHA-256 of base URL and username, 32 hex digits (as Redis's keys). */
export const accountHash = (baseUrl: string, username: string): string =>
  createHash("sha256").update(`${baseUrl.replace(/\/+$/, "")}\n${username}`).digest("hex").slice(0, 32)

/**
 * `effect`'s first success, kept for later calls; a failure is not kept (the next call runs it
 * again), nor is a success after `forget`.
 */
export const keepSuccess = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.map(Effect.makeSemaphore(1), (semaphore) => {
    let kept: Option.Option<A> = Option.none()
    const keep = (value: A) => Effect.sync(() => kept = Option.some(value))
    const get = Effect.suspend(() => Option.isSome(kept) ? Effect.succeed(kept.value) : Effect.tap(effect, keep))
    return { get: semaphore.withPermits(1)(get), forget: Effect.sync(() => kept = Option.none()) }
  })

/** What the operations share: settings, the client once migrated, and the lock's key. */
interface Link {
  readonly settings: Settings
  readonly ready: Effect.Effect<SqlClient.SqlClient, string>
  /** Forgets that the schema is in place. */
  readonly forget: Effect.Effect<unknown>
  readonly lockKey: string
}

const messageOf = (error: unknown): string => {
  if (typeof error !== "object" || error === null) return String(error)
  const { cause, message } = error as { readonly message?: unknown; readonly cause?: unknown }
  const inner = typeof cause === "object" && cause !== null && "message" in cause ? String(cause.message) : ""
  return inner === "" || inner === message ? String(message) : `${String(message)}: ${inner}`
}

/** A failure's reason for messages: the URL's password removed, bounded. */
export const reasonOf = (settings: Pick<Settings, "secrets">, error: unknown): string => {
  const text = settings.secrets.reduce((safe, secret) => safe.split(secret).join("<redacted>"), messageOf(error))
  return text.length > 300 ? `${text.slice(0, 300)}…` : text
}

const timedOut = (settings: Settings) => `Postgres did not answer within ${Duration.format(settings.statementTimeout)}`

/**
 * `query`, abandoned after the statement timeout (the client cancels it on the server).
 * Interruptible, timeout included, even where the caller is not (the lock kit's take and
 * release): there the timeout would otherwise wait for a frozen connection to answer.
 */
const bounded = <A, E>(settings: Settings, query: Effect.Effect<A, E>): Effect.Effect<A, string> =>
  Effect.interruptible(
    query.pipe(
      Effect.mapError((error) => reasonOf(settings, error)),
      Effect.disconnect,
      Effect.timeoutFail({ duration: settings.statementTimeout, onTimeout: () => timedOut(settings) })
    )
  )

/** On the lock's connection, any failure but a slow answer means its session, and lock, are gone. */
const orLost = (settings: Settings) => (reason: string) =>
  reason === timedOut(settings) ? Effect.fail(reason) : Effect.succeed(false)

/** The table is gone (it or its schema dropped, a database restored from before it existed). */
const isMissing = (error: unknown) =>
  (error as { readonly cause?: { readonly code?: unknown } } | undefined)?.cause?.code === "42P01"

/** A statement once the schema is in place; a missing table makes the next one migrate again. */
const run = <A>(link: Link, query: (sql: SqlClient.SqlClient) => Effect.Effect<A, unknown>) =>
  Effect.flatMap(
    link.ready,
    (sql) => bounded(link.settings, Effect.tapError(query(sql), (e) => isMissing(e) ? link.forget : Effect.void))
  )

export const make = (settings: Settings) =>
  Effect.gen(function*() {
    const migrated = yield* keepSuccess(Effect.flatMap(settings.client, (client) => {
      const sql = client.withoutTransforms()
      return Effect.as(bounded(settings, migrate(sql, settings.names)), sql)
    }))
    const lockKey = advisoryKey(`lock ${settings.names.schema}.${settings.names.table} ${settings.account}`)
    const link: Link = { settings, ready: migrated.get, forget: migrated.forget, lockKey }
    const withLock = yield* StoreLock.make(lockStorage(link), {
      store: "postgres",
      name: `Postgres advisory lock ${lockKey}`,
      where: `${settings.where} (advisory lock ${lockKey})`,
      lease: settings.lockLease,
      timeout: settings.lockTimeout,
      whenUnavailable: settings.whenUnavailable,
      localProcess: { pid: process.pid, hostname: Os.hostname(), isAlive: () => Effect.succeed(true) },
      lost: PostgresMetrics.lockLost,
      unavailable: PostgresMetrics.unavailable
    })
    const span = (name: string) =>
      Effect.withSpan(name, {
        attributes: { store: "postgres", table: `${settings.names.schema}.${settings.names.table}` }
      })
    return TokenStore.TokenStore.of({
      description: `postgres ${settings.where}`,
      load: span("TokenStore.load")(load(link)),
      save: (data, replacing) => span("TokenStore.save")(save(link, data, replacing)),
      remove: run(link, (sql) => sql`DELETE FROM ${table(sql, settings)} WHERE account = ${settings.account}`).pipe(
        Effect.catchAll(storeError(link, "remove")),
        Effect.asVoid,
        span("TokenStore.remove")
      ),
      withLock
    })
  })

const table = (sql: SqlClient.SqlClient, settings: Settings) =>
  sql`${sql(settings.names.schema)}.${sql(settings.names.table)}`

const storeError = (link: Link, operation: TokenError.TokenStoreError["operation"]) => (reason: string) =>
  Effect.zipRight(
    Metric.increment(Metric.tagged(PostgresMetrics.unavailable, "operation", operation)),
    Effect.fail(new TokenError.TokenStoreError({ store: "postgres", operation, path: link.settings.where, reason }))
  )

/** The account's stored value, if any (only one expiring after `after`, when given). */
const read = (link: Link, operation: "load" | "save", after?: Date) =>
  run(link, (sql) =>
    sql<{ readonly value: string }>`SELECT value FROM ${table(sql, link.settings)}
      WHERE account = ${link.settings.account} ${after === undefined ? sql`` : sql`AND expires_at > ${after}`}`).pipe(
      Effect.catchAll(storeError(link, operation)),
      Effect.map((rows) => Option.fromNullable(rows[0]?.value))
    )

const envelope = (settings: Settings): TokenEnvelope.Options => ({
  store: "postgres",
  account: settings.account,
  keys: settings.encryptionKeys
})

/** The stored token, unless it expired (by this process's clock) or cannot be read. */
const load = (link: Link) =>
  Effect.gen(function*() {
    const { settings } = link
    const value = yield* read(link, "load", DateTime.toDateUtc(yield* DateTime.now))
    if (Option.isNone(value)) return Option.none<TokenData.TokenData>()
    const decoded = yield* Effect.either(TokenEnvelope.decode(value.value, envelope(settings)))
    if (Either.isRight(decoded)) return Option.some(decoded.right)
    yield* Metric.increment(Metric.tagged(PostgresMetrics.corrupt, "reason", decoded.left.reason))
    yield* Effect.logWarning(
      `The token in Postgres (${settings.where}) cannot be used: ${decoded.left.detail}; ` +
        "treating it as missing, so a new token will be obtained"
    )
    return Option.none<TokenData.TokenData>()
  })

/**
 * The fenced upsert: written unless the stored token expires as late or later and is not the
 * one this save replaces; an expired stored token is always replaced. Answers the token the
 * table holds afterwards. Expired rows of every account go on the way.
 */
const save = (link: Link, data: TokenData.TokenData, replacing: TokenData.TokenData | undefined) =>
  Effect.gen(function*() {
    const { settings } = link
    const now = DateTime.toDateUtc(yield* DateTime.now)
    const expiresAt = DateTime.toDateUtc(data.expiresAt)
    if (expiresAt.getTime() <= now.getTime()) {
      yield* Effect.logDebug(`Not saving an already expired token to Postgres (${settings.where})`)
      return data
    }
    const value = yield* TokenEnvelope.encode(data, envelope(settings))
    const fingerprint = yield* TokenEnvelope.fingerprint(data, "postgres")
    const replaced = replacing === undefined ? "" : yield* TokenEnvelope.fingerprint(replacing, "postgres")
    const written = yield* run(link, (sql) =>
      Effect.zipLeft(
        sql`INSERT INTO ${table(sql, settings)} AS t (account, expires_at, fingerprint, value, updated_at)
          VALUES (${settings.account}, ${expiresAt}, ${fingerprint}, ${value}, now())
          ON CONFLICT (account) DO UPDATE SET expires_at = excluded.expires_at,
            fingerprint = excluded.fingerprint, value = excluded.value, updated_at = now()
          WHERE t.expires_at < excluded.expires_at OR t.fingerprint = ${replaced} OR t.expires_at <= ${now}
          RETURNING account`,
        sql`DELETE FROM ${table(sql, settings)} WHERE expires_at <= ${now}`
      )).pipe(Effect.catchAll(storeError(link, "save")))
    if (written.length > 0) return data
    // Fenced out: another process saved a token that expires as late or later.
    yield* Metric.increment(PostgresMetrics.saveRejections)
    const stored = yield* Option.match(yield* read(link, "save"), {
      onNone: () => Effect.succeed(Either.left("it was removed meanwhile")),
      onSome: (text) =>
        TokenEnvelope.decode(text, envelope(settings)).pipe(Effect.mapError((e) => e.detail), Effect.either)
    })
    if (Either.isLeft(stored)) {
      return yield* new TokenError.TokenStoreError({
        store: "postgres",
        operation: "save",
        path: settings.where,
        reason: `it keeps a token that expires later, which this process cannot read: ${stored.left}`
      })
    }
    yield* Effect.logWarning(
      `Kept the token already in Postgres (${settings.where}): it expires at ${
        DateTime.formatIso(stored.right.expiresAt)
      }, not before this process's new one (${
        DateTime.formatIso(data.expiresAt)
      }), so another process renewed meanwhile`
    )
    return stored.right
  })

// --- the lock ------------------------------------------------------------------

/** Gives the lock connection back the settings it connected with. */
const disarm = `set_config('idle_session_timeout',
    (SELECT reset_val FROM pg_settings WHERE name = 'idle_session_timeout'), false) AS timeout,
  set_config('application_name', (SELECT reset_val FROM pg_settings WHERE name = 'application_name'), false) AS name`

/** The advisory lock `$1` among `pg_locks` rows (a bigint key is split in two oids). */
const isLock = (alias: string) =>
  `${alias}.locktype = 'advisory' AND ${alias}.granted AND ${alias}.objsubid = 1
    AND ((${alias}.classid::bigint << 32) | ${alias}.objid::bigint) = $1::bigint`

/**
 * One round trip: arms the session (`idle_session_timeout` = the lease; `application_name`
 * names the owner for waiters), then tries the lock. Armed first, so that a lock whose answer
 * is lost (timed out) still goes with its session once idle for a lease.
 */
const takeQuery = `SELECT set_config('idle_session_timeout', $2, false) AS timeout,
  set_config('application_name', $3, false) AS name, pg_try_advisory_lock($1::bigint) AS taken`

/** Busy: disarms the session (it goes back to the pool) and reads who holds the lock. */
const busyQuery = `SELECT ${disarm}, (SELECT a.application_name FROM pg_locks l
  JOIN pg_stat_activity a ON a.pid = l.pid WHERE ${isLock("l")} LIMIT 1) AS holder`

const extendQuery = `SELECT EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = pg_backend_pid() AND ${isLock("l")}) AS held`

const releaseQuery = `SELECT pg_advisory_unlock($1::bigint) AS released, ${disarm}`

const ownerPrefix = "amp-effect lock: "

/**
 * The kit's storage over `pg_try_advisory_lock` on a connection reserved until release: a
 * holder killed or cut off loses the lock with its session; a paused one's session is ended by
 * its `idle_session_timeout` once no extension (a query on it) came for a lease.
 */
const lockStorage = (link: Link): StoreLock.Storage => {
  const { settings } = link
  const held = new Map<string, { readonly connection: Connection; readonly scope: Scope.CloseableScope }>()
  const query = (connection: Connection, text: string, ...params: ReadonlyArray<unknown>) =>
    bounded(
      settings,
      connection.execute(text, params, undefined) as Effect.Effect<ReadonlyArray<Record<string, unknown>>, unknown>
    )
  const take = (owner: StoreLock.Owner) =>
    Effect.gen(function*() {
      const sql = yield* link.ready
      const scope = yield* Scope.make()
      const attempt = Effect.gen(function*() {
        const connection = yield* bounded(settings, Scope.extend(sql.reserve, scope))
        const lease = String(Duration.toMillis(settings.lockLease))
        const name = ownerPrefix + StoreLock.describeOwner(owner)
        const [row] = yield* query(connection, takeQuery, link.lockKey, lease, name)
        if (row?.taken === true) {
          held.set(owner.nonce, { connection, scope })
          return { _tag: "Taken" } as const
        }
        const [busy] = yield* query(connection, busyQuery, link.lockKey)
        const holder = typeof busy?.holder === "string" && busy.holder.startsWith(ownerPrefix)
          ? busy.holder.slice(ownerPrefix.length)
          : "another session"
        return { _tag: "Busy", holder } as const
      })
      return yield* attempt.pipe(
        Effect.onExit((exit) =>
          Exit.isSuccess(exit) && exit.value._tag === "Taken" ? Effect.void : Scope.close(scope, Exit.void)
        )
      )
    })
  return {
    take,
    extend: (owner) => {
      const lock = held.get(owner.nonce)
      if (lock === undefined) return Effect.succeed(false)
      return query(lock.connection, extendQuery, link.lockKey).pipe(
        Effect.map((rows) => rows[0]?.held === true),
        Effect.catchAll(orLost(settings))
      )
    },
    release: (owner) => {
      const lock = held.get(owner.nonce)
      if (lock === undefined) return Effect.succeed(false)
      held.delete(owner.nonce)
      return query(lock.connection, releaseQuery, link.lockKey).pipe(
        Effect.map((rows) => rows[0]?.released === true),
        Effect.catchAll(orLost(settings)),
        Effect.ensuring(Scope.close(lock.scope, Exit.void))
      )
    }
  }
}
