/**
 * `amp-token`: the token file (or the fleet's token in Redis or Postgres) from the command line.
 *
 * ```sh
 * export AMP_USERNAME=... AMP_PASSWORD=...          # credentials come from the environment only
 * curl -H "Authorization: token $(amp-token token)" "$AMP_API_BASE_URL/assets/"
 * amp-token status --json                            # no network; exit 0 iff a token is valid
 * amp-token login | refresh | clear
 * ```
 *
 * Options work before or after the command's name (after it, they win) and fall back to their
 * environment variables. The CLI always keeps its token, whatever the persistence policy says.
 *
 * @since 0.1.0
 */
import { AmpConfig, AuthApi, type TokenError, TokenInfo, TokenService, TokenStore } from "@amp-effect/core"
import * as NodeTokenStore from "@amp-effect/node/NodeTokenStore"
import * as PostgresConfig from "@amp-effect/postgres/PostgresConfig"
import * as PostgresTokenStore from "@amp-effect/postgres/PostgresTokenStore"
import * as RedisConfig from "@amp-effect/redis/RedisConfig"
import * as RedisTokenStore from "@amp-effect/redis/RedisTokenStore"
import { Command, Options } from "@effect/cli"
import type { CliApp } from "@effect/cli"
import * as ValidationError from "@effect/cli/ValidationError"
import { FetchHttpClient, FileSystem, Path } from "@effect/platform"
import {
  Array as Arr,
  Cause,
  Clock,
  Config,
  ConfigProvider,
  Console,
  Context,
  Data,
  DateTime,
  Duration,
  Effect,
  Layer,
  Logger,
  LogLevel,
  Option,
  Redacted,
  Ref
} from "effect"
import packageJson from "../package.json" with { type: "json" }

// @effect/cli's help says that an option "can be set from environment variables", not which
// one: each description names its variable.
const tokenFile = Options.text("token-file").pipe(
  Options.withPseudoName("PATH"),
  Options.withDescription("The token file (default: $AMP_TOKEN_FILE, else ./token.json)")
)

const baseUrl = Options.text("base-url").pipe(
  Options.withPseudoName("URL"),
  Options.withDescription("The AMP API base URL, ending in /api (default: $AMP_API_BASE_URL, else AMP testnet)")
)

const store = Options.choice("store", ["file", "redis", "postgres"]).pipe(
  Options.withDescription(
    "Where the token is kept: a file, or Redis or Postgres for a whole fleet (default: $AMP_TOKEN_STORE, else file)"
  )
)

const url = (kind: string, format: string) =>
  Options.redacted(`${kind}-url`).pipe(
    Options.withPseudoName("URL"),
    Options.withDescription(`With --store ${kind}: ${format} (default: $AMP_${kind.toUpperCase()}_URL)`),
    Options.optional
  )

const logLevel = Options.choiceWithValue(
  "log-level",
  LogLevel.allLevels.map((level) => [level._tag.toLowerCase(), level] as const)
).pipe(Options.withDescription("How much to log on stderr (default: warning)"))

/** The options a command takes after its name, where they win over `amp-token`'s. */
const own = {
  tokenFile: Options.optional(tokenFile),
  baseUrl: Options.optional(baseUrl),
  store: Options.optional(store),
  redisUrl: url("redis", "redis://[[user]:password@]host[:port][/db] or rediss://"),
  postgresUrl: url("postgres", "postgres://user:password@host[:port]/db"),
  logLevel: Options.optional(logLevel)
}

// Only before the name do options fall back to variables: after it, a variable would win over
// a flag before the name. Not the URLs: the chosen store reads its own.
const root = Command.make("amp-token", {
  ...own,
  tokenFile: Options.withFallbackConfig(tokenFile, AmpConfig.tokenFile),
  baseUrl: Options.withFallbackConfig(baseUrl, AmpConfig.baseUrl),
  store: Options.withFallbackConfig(
    store,
    Config.map(AmpConfig.tokenStore, Option.getOrElse(() => AmpConfig.defaultStoreKind))
  )
})

/** Where the token is (the file's path or the store's name), and the AMP API. */
class Chosen extends Context.Tag("@amp-effect/cli/Chosen")<Chosen, {
  readonly kind: "file" | "redis" | "postgres"
  readonly where: string
  readonly baseUrl: string
}>() {}

/** A flag's value checked by the `Config` of `variable`: a failure names the flag. */
const checked = <A>(flag: string, variable: string, config: Config.Config<A>, value: string) =>
  AmpConfig.read(config).pipe(
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map([[variable, value]]))),
    Effect.mapError((error) => new AmpConfig.AmpConfigError({ ...error, variable: flag }))
  )

/** The shared stores: name, URL variable, its `Config`, layer. Each loads its driver when built. */
const shared = {
  redis: ["Redis", "AMP_REDIS_URL", RedisConfig.url, RedisTokenStore.layerConfig],
  postgres: ["Postgres", "AMP_POSTGRES_URL", PostgresConfig.url, PostgresTokenStore.layerConfig]
} as const

/** Each command's layer (`Command.provide`): the `TokenStore` the options choose, and `Chosen`. */
const layerStore = (flags: Command.Command.ParseConfig<typeof own>) =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const parent = yield* root
    const apiFlag = Option.getOrElse(flags.baseUrl, () => parent.baseUrl)
    const api = yield* checked("--base-url", "AMP_API_BASE_URL", AmpConfig.baseUrl, apiFlag)
    const kind = Option.getOrElse(flags.store, () => parent.store)
    if (kind === "redis" || kind === "postgres") {
      const [name, variable, config, layer] = shared[kind]
      const option = `${kind}Url` as const
      const given = Option.orElse(flags[option], () => parent[option])
      const store = layer({
        baseUrl: Config.succeed(api),
        url: Option.isSome(given)
          ? Config.succeed(yield* checked(`--${kind}-url`, variable, config, Redacted.value(given.value)))
          : config
      })
      yield* Effect.logDebug(`Token store: ${name}, AMP API ${api}`)
      return Layer.provideMerge(
        Layer.effect(
          Chosen,
          Effect.map(TokenStore.TokenStore, ({ description }) => ({ kind, where: description, baseUrl: api }))
        ),
        store
      )
    }
    if (kind !== "file") {
      return yield* new AmpConfig.AmpConfigError({
        variable: "AMP_TOKEN_STORE",
        value: kind,
        reason: "amp-token keeps the token in a file, in Redis or in Postgres: expected file, redis or postgres"
      })
    }
    const path = yield* Path.Path
    const fileFlag = Option.getOrElse(flags.tokenFile, () => parent.tokenFile)
    const file = path.resolve(yield* checked("--token-file", "AMP_TOKEN_FILE", AmpConfig.tokenFile, fileFlag))
    yield* Effect.logDebug(`Token file ${file}, AMP API ${api}`)
    return Layer.merge(NodeTokenStore.layer(file), Layer.succeed(Chosen, { kind, where: file, baseUrl: api }))
  }))

/** Ends the command with `code`, printing nothing more. */
class Exit extends Data.TaggedError("Exit")<{ readonly code: number }> {}

/** The token file cannot be used (nothing else was tried), or a renewed token was not saved. */
class StoreFailed extends Data.TaggedError("StoreFailed")<{ what: string; error: TokenError.TokenStoreError }> {}

/**
 * Runs `f` with the token service, and `saved`, failing if it could not save the token (it only
 * warns). `fetch` reaches AMP: one request needs no pool, and the bundle stays half the size.
 */
const withTokenService = <A, E, R>(
  f: (tokens: TokenService.TokenService["Type"], saved: Effect.Effect<void, StoreFailed>) => Effect.Effect<A, E, R>
) =>
  Effect.gen(function*() {
    const { baseUrl } = yield* Chosen
    const saved = yield* Ref.make<Effect.Effect<void, StoreFailed>>(Effect.void)
    const recording = Layer.effect(
      TokenStore.TokenStore,
      Effect.map(TokenStore.TokenStore, (store) => ({
        ...store,
        save: (data, replacing) =>
          Effect.tapError(store.save(data, replacing), (error) =>
            Ref.set(saved, new StoreFailed({ what: "the token was obtained but not saved", error })))
      }))
    )
    const api = AuthApi.layerConfig({ baseUrl: Config.succeed(baseUrl) }).pipe(Layer.provide(FetchHttpClient.layer))
    const service = TokenService.layerConfig().pipe(Layer.provide(Layer.merge(api, recording)))
    const run = Effect.flatMap(TokenService.TokenService, (tokens) =>
      f(tokens, Effect.flatten(Ref.get(saved))))
    return yield* Effect.provide(run, service)
  })

/** A command on the chosen store, logging at the level `--log-level` sets. */
const onStore = <Name extends string, R, E, A extends Command.Command.ParseConfig<typeof own>>(
  self: Command.Command<Name, R, E, A>
) =>
  self.pipe(
    Command.provide((flags) => layerStore(flags)),
    Command.transformHandler((effect, flags) =>
      Effect.flatMap(root, (parent) => {
        // None leaves @effect/cli's own --log-level, which takes some positions before ours.
        const level = Option.orElse(flags.logLevel, () => parent.logLevel)
        return Option.isSome(level) ? Logger.withMinimumLogLevel(effect, level.value) : effect
      })
    )
  )

const command = <R, E>(name: string, description: string, handler: Effect.Effect<void, E, R>) =>
  Command.make(name, own, () => handler).pipe(Command.withDescription(description), onStore)

/** The stored token and what the library says of it now (by the JWT's `exp` where it has one). */
const inspect = Effect.gen(function*() {
  const stored = yield* Effect.flatMap(TokenStore.TokenStore, (store) => store.load)
  const margin = yield* AmpConfig.read(AmpConfig.refreshMargin)
  const now = yield* Clock.currentTimeMillis
  return Option.map(stored, (data) => {
    const checked = data.withJwtExpiry()
    return [checked, TokenInfo.make(checked, now, margin)] as const
  })
})

// An unusable token file fails (not a login on every call); a token is printed once saved. A
// shared store that is down is only warned about, as in the library.
const token = command(
  "token",
  "Print a valid token on stdout, and nothing else: from the store, refreshed or from a new login as needed",
  Effect.gen(function*() {
    const { kind } = yield* Chosen
    const stored = yield* inspect.pipe(
      Effect.catchTag(
        "TokenStoreError",
        (error) => kind === "file" ? new StoreFailed({ what: "cannot use the token file", error }) : Effect.succeedNone
      )
    )
    const fresh = Option.filter(stored, ([, info]) => !info.isExpired && !info.expiresSoon)
    const value = Option.isSome(fresh)
      ? fresh.value[0].token
      : yield* withTokenService((tokens, saved) =>
        kind === "file" ? Effect.zipLeft(tokens.getToken, saved) : tokens.getToken
      )
    yield* Console.log(Redacted.value(value))
  })
)

const renewed = (done: string, renew: "obtainToken" | "forceRefresh") =>
  withTokenService((tokens, saved) =>
    Effect.gen(function*() {
      yield* tokens[renew]
      yield* saved
      const { where } = yield* Chosen
      // A renewal leaves its token in memory: no token here would be a bug.
      const info = yield* Effect.orDie(Effect.flatten(tokens.getTokenInfo))
      const expires = `expires ${DateTime.formatIso(info.expiresAt)}, in ${formatSeconds(info.expiresIn)}`
      yield* Console.log(`${done}; saved to ${where} (${expires})`)
    })
  )

const login = command(
  "login",
  "Log in with AMP_USERNAME / AMP_PASSWORD and save the new token",
  renewed("Logged in", "obtainToken")
)

const refresh = command(
  "refresh",
  "Renew the token now (refresh, falling back to a new login) and save it",
  renewed("Token renewed", "forceRefresh")
)

const clear = command(
  "clear",
  "Remove the token from its file (or from Redis or Postgres)",
  Effect.gen(function*() {
    const { kind, where } = yield* Chosen
    const store = yield* TokenStore.TokenStore
    const exists: Effect.Effect<boolean, unknown, FileSystem.FileSystem> = kind === "file"
      ? Effect.flatMap(FileSystem.FileSystem, (fs) => fs.exists(where))
      : Effect.map(store.load, Option.isSome)
    const existed = yield* Effect.orElseSucceed(exists, () => true)
    yield* store.remove
    const [removed, none] = kind === "file"
      ? ["Removed the token file", "No token file at"]
      : ["Removed the token from", "No token in"]
    yield* Console.log(`${existed ? removed : none} ${where}`)
  })
)

/** The object `status --json` prints: exactly these keys; times RFC 3339; null without a token. */
const statusJson = (stored: Option.Option<TokenInfo.TokenInfo>) => {
  const info = Option.getOrUndefined(stored)
  return {
    has_token: info !== undefined,
    expires_at: info ? DateTime.formatIso(info.expiresAt) : null,
    obtained_at: info ? DateTime.formatIso(info.obtainedAt) : null,
    expires_in_seconds: info ? Math.floor(Duration.toSeconds(info.expiresIn)) : null,
    age_seconds: info ? Math.floor(Duration.toSeconds(info.age)) : null,
    is_expired: info ? info.isExpired : null,
    expires_soon: info ? info.expiresSoon : null
  }
}

const statusText = (heading: string, info: Option.Option<TokenInfo.TokenInfo>): string =>
  Option.match(info, {
    onNone: () => `${heading}\nNo token.`,
    onSome: (info) =>
      [
        heading,
        `Expires at: ${DateTime.formatIso(info.expiresAt)} (${
          info.isExpired ? "expired" : `in ${formatSeconds(info.expiresIn)}`
        })`,
        `Obtained at: ${DateTime.formatIso(info.obtainedAt)} (${formatSeconds(info.age)} ago)`,
        `Expired: ${info.isExpired ? "yes" : "no"}`,
        `Expires soon: ${info.expiresSoon ? "yes (the next use renews it)" : "no"}`
      ].join("\n")
  })

const json = Options.boolean("json").pipe(
  Options.withDescription(
    "Print one JSON object: has_token, expires_at, obtained_at, expires_in_seconds, age_seconds, is_expired, expires_soon"
  )
)

const status = Command.make("status", { ...own, json }, (flags) =>
  Effect.gen(function*() {
    const { kind, where } = yield* Chosen
    const info = Option.map(yield* inspect, ([, info]) => info)
    const heading = kind === "file" ? `Token file: ${where}` : `Token store: ${where}`
    yield* Console.log(flags.json ? JSON.stringify(statusJson(info)) : statusText(heading, info))
    if (Option.isNone(info) || info.value.isExpired) return yield* new Exit({ code: 1 })
  })).pipe(
    Command.withDescription("Show the stored token without any network call; exit 0 if it is unexpired, 1 otherwise"),
    onStore
  )

const cli = root.pipe(
  Command.withHandler(() =>
    Effect.zipRight(
      Console.error("amp-token: choose a command: token, status, login, refresh or clear (see amp-token --help)"),
      new Exit({ code: 2 })
    )
  ),
  Command.withDescription("Keep an always-valid Blockstream AMP API token in a file, in Redis or in Postgres"),
  Command.withSubcommands([token, status, login, refresh, clear])
)

/** Log lines on stderr, one per line, so stdout stays clean for `$(amp-token token)`. */
const stderrLogger = Logger.replace(
  Logger.defaultLogger,
  Logger.withConsoleError(Logger.make(({ logLevel, message }) => {
    const level = logLevel._tag === "Warning" ? "warning" : logLevel.label.toLowerCase()
    return `amp-token: ${level}: ${Arr.ensure(message).map(String).join(" ")}`
  }))
)

/** What a failed call to AMP means for the user. */
const authCauses: Partial<Record<TokenError.AuthError["reason"], string>> = {
  InvalidCredentials: "wrong credentials",
  NotFound: "wrong base URL",
  TransportError: "server unreachable",
  RequestTimeout: "server not answering",
  RateLimited: "rate limited"
}

/** The one line a failure prints, naming its cause. Never the password, never the token. */
const describeFailure = (
  error: AmpConfig.AmpConfigError | TokenError.AuthError | TokenError.TokenStoreError | StoreFailed
): string => {
  if (error._tag === "AmpConfigError") return `configuration: ${error.message}`
  if (error._tag === "StoreFailed") return `${error.what}: ${error.error.message}`
  const cause = error._tag === "AuthError" ? authCauses[error.reason] : undefined
  if (cause === undefined) return error.message
  const hint = error.reason === "InvalidCredentials" ? " (check AMP_USERNAME and AMP_PASSWORD)" : ""
  return `${cause}: ${error.message}${hint}`
}

/** `1d 2h 3m 4s`: whole seconds are precise enough for people. */
const formatSeconds = (duration: Duration.Duration): string => {
  const seconds = Math.floor(Duration.toSeconds(duration))
  return seconds === 0 ? "0s" : Duration.format(Duration.seconds(seconds))
}

const stripAnsi = (text: unknown) => String(text).replace(/\u001b\[[0-9;]*m/g, "")

/** The console without colour codes (in the help and usage errors). */
const plainConsole = Effect.map(Console.consoleWith(Effect.succeed), (console): Console.Console => ({
  ...console,
  log: (...args) => console.log(...args.map(stripAnsi)),
  error: (...args) => console.error(...args.map(stripAnsi))
}))

/**
 * `colors`: whether the help may use colour codes.
 *
 * @since 0.1.0
 * @category models
 */
export interface RunOptions {
  readonly colors: boolean
}

/**
 * Runs the CLI on `argv` (`process.argv`) and answers the exit code once all is printed: 0
 * success, 1 failure (one line on stderr), 2 usage error, 70 internal error.
 *
 * @since 0.1.0
 * @category running
 */
export const run = (
  argv: ReadonlyArray<string>,
  options?: RunOptions
): Effect.Effect<number, never, CliApp.CliApp.Environment> =>
  Command.run(cli, { name: "amp-token", version: packageJson.version })(argv).pipe(
    Effect.as(0),
    Effect.catchAll((error) => {
      if (ValidationError.isValidationError(error)) {
        // @effect/cli printed the problem (and the help when asked for it).
        return Effect.succeed(ValidationError.isHelpRequested(error) ? 0 : 2)
      }
      if (error._tag === "Exit") return Effect.succeed(error.code)
      return Effect.as(Console.error(`amp-token: ${describeFailure(error)}`), 1)
    }),
    Effect.catchAllDefect((defect) =>
      Effect.as(
        Console.error(`amp-token: internal error: ${Cause.pretty(Cause.die(defect)).split("\n", 1)[0]}`),
        70
      )
    ),
    Effect.provide(stderrLogger),
    Logger.withMinimumLogLevel(LogLevel.Warning),
    (effect) =>
      options?.colors ? effect : Effect.flatMap(plainConsole, (console) => Effect.withConsole(effect, console))
  )
