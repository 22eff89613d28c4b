/**
 * `amp-token`: the token file from the command line, for people who operate AMP integrations.
 *
 * ```sh
 * export AMP_USERNAME=... AMP_PASSWORD=...          # credentials come from the environment only
 * curl -H "Authorization: token $(amp-token token)" "$AMP_API_BASE_URL/assets/"
 * amp-token status --json                            # no network; exit 0 iff a token is valid
 * amp-token login | refresh | clear
 * ```
 *
 * Every command takes `--token-file PATH` (default `$AMP_TOKEN_FILE`, else `./token.json`),
 * `--base-url URL` (default `$AMP_API_BASE_URL`) and `--log-level LEVEL` (logs go to stderr),
 * before or after the command's name. The retry and timeout variables of the library apply. The
 * CLI always uses its token file, whatever the persistence policy says: keeping that file is
 * what it is for.
 *
 * A failure prints one line on stderr naming its cause and exits non-zero. Nothing prints the
 * password; only `amp-token token` prints the token.
 *
 * @since 0.1.0
 */
import type { TokenError } from "@amp-effect/core"
import { AmpConfig, AuthApi, TokenInfo, TokenService, TokenStore } from "@amp-effect/core"
import * as NodeTokenStore from "@amp-effect/node/NodeTokenStore"
import * as RedisConfig from "@amp-effect/redis/RedisConfig"
import * as RedisTokenStore from "@amp-effect/redis/RedisTokenStore"
import { Command, Options } from "@effect/cli"
import type { CliApp } from "@effect/cli"
import * as ValidationError from "@effect/cli/ValidationError"
import { FetchHttpClient, FileSystem, Path } from "@effect/platform"
import {
  Cause,
  Clock,
  ConfigProvider,
  Console,
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

// -----------------------------------------------------------------------------
// Options shared by every command
// -----------------------------------------------------------------------------

const tokenFileOption = Options.text("token-file").pipe(
  Options.withPseudoName("PATH"),
  Options.withDescription("The token file (default: $AMP_TOKEN_FILE, else ./token.json)"),
  Options.optional
)

const baseUrlOption = Options.text("base-url").pipe(
  Options.withPseudoName("URL"),
  Options.withDescription("The AMP API base URL, ending in /api (default: $AMP_API_BASE_URL, else AMP testnet)"),
  Options.optional
)

const logLevelOption = Options.choiceWithValue("log-level", [
  ["all", LogLevel.All],
  ["trace", LogLevel.Trace],
  ["debug", LogLevel.Debug],
  ["info", LogLevel.Info],
  ["warning", LogLevel.Warning],
  ["error", LogLevel.Error],
  ["fatal", LogLevel.Fatal],
  ["none", LogLevel.None]
]).pipe(
  Options.withDescription("How much to log on stderr (default: warning)"),
  Options.optional
)

const storeOption = Options.choice("store", ["file", "redis"]).pipe(
  Options.withDescription(
    "Where the token is kept: a file, or Redis for a whole fleet (default: $AMP_TOKEN_STORE, else file)"
  ),
  Options.optional
)

const redisUrlOption = Options.redacted("redis-url").pipe(
  Options.withPseudoName("URL"),
  Options.withDescription(
    "With --store redis: redis://[[user]:password@]host[:port][/db] or rediss:// (default: $AMP_REDIS_URL)"
  ),
  Options.optional
)

/**
 * Declared on `amp-token` itself and on every command, so that they work on either side of the
 * command's name (`amp-token --token-file X status`, `amp-token status --token-file X`); the
 * command's own value wins.
 */
const common = {
  tokenFile: tokenFileOption,
  baseUrl: baseUrlOption,
  logLevel: logLevelOption,
  store: storeOption,
  redisUrl: redisUrlOption
} as const

interface CommonFlags {
  readonly tokenFile: Option.Option<string>
  readonly baseUrl: Option.Option<string>
  readonly logLevel: Option.Option<LogLevel.LogLevel>
  readonly store: Option.Option<"file" | "redis">
  readonly redisUrl: Option.Option<Redacted.Redacted<string>>
}

/** Ends the command with `code` after its output was printed; no further message. */
class Exit extends Data.TaggedError("Exit")<{ readonly code: number }> {}

/** A command got or kept a token but could not write it to the token file. */
class NotSaved extends Data.TaggedError("NotSaved")<{ readonly error: TokenError.TokenStoreError }> {}

/** The token file is there but cannot be used (a directory, unreadable): nothing else was tried. */
class Unusable extends Data.TaggedError("Unusable")<{ readonly error: TokenError.TokenStoreError }> {}

type Failure =
  | AmpConfig.AmpConfigError
  | TokenError.AuthError
  | TokenError.TokenStoreError
  | NotSaved
  | Unusable
  | Exit

/** What a command runs with, under the flags' configuration: where the token is kept. */
type Context =
  | {
    readonly kind: "file"
    /** The token file, resolved against the working directory. */
    readonly file: string
    readonly store: Layer.Layer<TokenStore.TokenStore, AmpConfig.AmpConfigError>
  }
  | { readonly kind: "redis"; readonly store: Layer.Layer<TokenStore.TokenStore, AmpConfig.AmpConfigError> }

/**
 * The Redis store from the configuration (`AMP_REDIS_URL`, `AMP_REDIS_KEY_PREFIX`,
 * `AMP_TOKEN_ENCRYPTION_KEY`, the account from `AMP_API_BASE_URL` and `AMP_USERNAME`). It
 * loads node-redis when it is built, so a file-store run never reads it.
 */
const redisStore: Layer.Layer<TokenStore.TokenStore, AmpConfig.AmpConfigError> = RedisTokenStore.layerConfig()

/** The root command, whose options the commands fall back to. */
const root = Command.make("amp-token", common)

/**
 * Runs `f` with the flags applied: `--base-url` overrides `AMP_API_BASE_URL` for everything
 * read through `Config`, the token file is the flag's, else `AMP_TOKEN_FILE`'s, resolved
 * against the working directory, and `--log-level` sets the minimum log level.
 */
const withFlags = <A, E, R>(
  own: CommonFlags,
  f: (context: Context) => Effect.Effect<A, E, R>
) =>
  Effect.flatMap(root, (parent) => {
    const flags: CommonFlags = {
      tokenFile: Option.orElse(own.tokenFile, () => parent.tokenFile),
      baseUrl: Option.orElse(own.baseUrl, () => parent.baseUrl),
      logLevel: Option.orElse(own.logLevel, () => parent.logLevel),
      store: Option.orElse(own.store, () => parent.store),
      redisUrl: Option.orElse(own.redisUrl, () => parent.redisUrl)
    }
    // The flags win over the environment for everything read through `Config`.
    const overrides = new Map<string, string>()
    if (Option.isSome(flags.baseUrl)) overrides.set("AMP_API_BASE_URL", flags.baseUrl.value)
    if (Option.isSome(flags.store)) overrides.set("AMP_TOKEN_STORE", flags.store.value)
    if (Option.isSome(flags.redisUrl)) overrides.set("AMP_REDIS_URL", Redacted.value(flags.redisUrl.value))
    const given = {
      baseUrl: Option.isSome(flags.baseUrl),
      store: Option.isSome(flags.store),
      redisUrl: Option.isSome(flags.redisUrl)
    }
    // `ConfigProvider.orElse` falls back on any failure, an invalid value included: each flag's
    // value is checked on its own first, so that a bad flag is an error, never silently replaced
    // by the environment's value.
    const checkFlags = Effect.all([
      given.baseUrl ? AmpConfig.read(AmpConfig.baseUrl) : Effect.void,
      given.store ? AmpConfig.read(AmpConfig.tokenStore) : Effect.void,
      given.redisUrl ? AmpConfig.read(RedisConfig.url) : Effect.void
    ], { discard: true }).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(overrides)))
    return Effect.configProviderWith((current) =>
      Effect.gen(function*() {
        yield* checkFlags
        const kind = yield* AmpConfig.read(RedisConfig.tokenStore)
        const api = yield* Effect.orElseSucceed(AmpConfig.baseUrl, () => "(invalid)")
        if (kind === "redis") {
          yield* Effect.logDebug(`Token store: Redis, AMP API ${api}`)
          return yield* f({ kind, store: redisStore })
        }
        if (kind !== "file") {
          return yield* new AmpConfig.AmpConfigError({
            variable: Option.isSome(flags.store) ? "--store" : "AMP_TOKEN_STORE",
            value: kind,
            reason: "amp-token keeps the token in a file or in Redis: expected file or redis"
          })
        }
        const path = yield* Path.Path
        const file = yield* Option.match(flags.tokenFile, {
          onNone: () => AmpConfig.read(AmpConfig.tokenFile),
          onSome: (file) =>
            file.trim().length === 0
              ? Effect.fail(
                new AmpConfig.AmpConfigError({ variable: "--token-file", value: file, reason: "expected a file path" })
              )
              : Effect.succeed(file)
        })
        const resolved = path.resolve(file)
        yield* Effect.logDebug(`Token file ${resolved}, AMP API ${api}`)
        return yield* f({ kind, file: resolved, store: NodeTokenStore.layer(resolved) })
      }).pipe(
        Effect.withConfigProvider(
          overrides.size === 0
            ? current
            : ConfigProvider.fromMap(overrides).pipe(ConfigProvider.orElse(() => current))
        ),
        // The value came from a flag, so name the flag.
        Effect.mapError((error) => {
          if (!(error instanceof AmpConfig.AmpConfigError)) return error
          const named = flagNames[error.variable]
          return named !== undefined && given[named[1]]
            ? new AmpConfig.AmpConfigError({ ...error, variable: named[0] })
            : error
        }),
        (effect) => Option.isSome(flags.logLevel) ? Logger.withMinimumLogLevel(effect, flags.logLevel.value) : effect
      )
    )
  })

/** The variables a flag overrides: which flag to name in an error about one. */
const flagNames: Readonly<Record<string, readonly [string, "baseUrl" | "store" | "redisUrl"]>> = {
  AMP_API_BASE_URL: ["--base-url", "baseUrl"],
  AMP_TOKEN_STORE: ["--store", "store"],
  AMP_REDIS_URL: ["--redis-url", "redisUrl"]
}

/** Where the token is kept, for people: the file's path, or the Redis store's description. */
const whereOf = (context: Context, store: TokenStore.TokenStore["Type"]) =>
  context.kind === "file" ? context.file : store.description

/**
 * The token service over the context's store (credentials, base URL, retries from the
 * configuration), with a store that remembers a failed save, so that a command can report it
 * instead of exiting 0 with nothing written. Credentials are read here, when a command needs a
 * server: `status`, `clear` and a `token` served from the store never ask for them.
 *
 * The CLI talks to AMP through the runtime's `fetch` rather than the library's undici client:
 * one request per run needs no connection pool, and the bundle stays half the size.
 */
const withTokenService = <A, E, R>(
  context: Context,
  f: (
    tokens: TokenService.TokenService["Type"],
    saved: Effect.Effect<void, NotSaved>,
    where: string
  ) => Effect.Effect<A, E, R>
) =>
  Effect.gen(function*() {
    const failed = yield* Ref.make(Option.none<TokenError.TokenStoreError>())
    const recording = Layer.effect(
      TokenStore.TokenStore,
      Effect.map(TokenStore.TokenStore, (store) =>
        TokenStore.TokenStore.of({
          ...store,
          save: (data) => Effect.tapError(store.save(data), (error) => Ref.set(failed, Option.some(error)))
        }))
    ).pipe(Layer.provide(context.store))
    const service = TokenService.layerConfig().pipe(
      Layer.provideMerge(Layer.merge(AuthApi.layerConfig().pipe(Layer.provide(FetchHttpClient.layer)), recording))
    )
    const saved = Effect.flatMap(
      Ref.get(failed),
      Option.match({ onNone: () => Effect.void, onSome: (error) => Effect.fail(new NotSaved({ error })) })
    )
    return yield* Effect.gen(function*() {
      const tokens = yield* TokenService.TokenService
      const store = yield* TokenStore.TokenStore
      return yield* f(tokens, saved, whereOf(context, store))
    }).pipe(Effect.provide(service))
  })

/** Runs `f` with the context's store, for the commands that only read or remove the token. */
const withStore = <A, E, R>(
  context: Context,
  f: (store: TokenStore.TokenStore["Type"], where: string) => Effect.Effect<A, E, R>
) =>
  Effect.flatMap(TokenStore.TokenStore, (store) => f(store, whereOf(context, store))).pipe(
    Effect.provide(context.store)
  )

/** One line about the token just saved: where, and until when. Never the token. */
const describeSaved = (tokens: TokenService.TokenService["Type"], where: string, what: string) =>
  Effect.flatMap(tokens.getTokenInfo, (info) =>
    Console.log(Option.match(info, {
      onNone: () => `${what}; saved to ${where}`,
      onSome: (info) =>
        `${what}; saved to ${where} (expires ${DateTime.formatIso(info.expiresAt)}, in ${
          formatSeconds(info.expiresIn)
        })`
    })))

// -----------------------------------------------------------------------------
// Commands
// -----------------------------------------------------------------------------

/**
 * `token`: the file's token when it is valid beyond the refresh margin, with no credentials
 * and no network; otherwise a renewal through the token service. The token is printed only
 * once it is in the file: a token file that cannot be read or written is a failure, not a
 * login on every call.
 */
const token = Command.make("token", common, (flags) =>
  withFlags(flags, (context) =>
    Effect.gen(function*() {
      const stored = yield* withStore(context, (store) => store.load).pipe(
        Effect.catchTag("TokenStoreError", (error) => new Unusable({ error }))
      )
      const margin = yield* AmpConfig.read(AmpConfig.refreshMargin)
      const now = yield* Clock.currentTimeMillis
      const fresh = Option.filter(
        Option.map(stored, (data) => data.withJwtExpiry()),
        (data) => now < DateTime.toEpochMillis(data.expiresAt) - Duration.toMillis(margin)
      )
      const value = Option.isSome(fresh)
        ? fresh.value.token
        : yield* withTokenService(context, (tokens, saved) => Effect.zipLeft(tokens.getToken, saved))
      // stdout carries the token and nothing else, for `$(amp-token token)`.
      yield* Console.log(Redacted.value(value))
    }))).pipe(
    Command.withDescription(
      "Print a valid token on stdout, and nothing else: from the file, refreshed or from a new login as needed"
    )
  )

/** `login` and `refresh`: renew with `renew`, then say where the token went (once it is there). */
const renewing = (
  name: string,
  renew: (
    tokens: TokenService.TokenService["Type"]
  ) => Effect.Effect<unknown, TokenError.AuthError | TokenError.TokenStoreError>,
  done: string,
  description: string
) =>
  Command.make(
    name,
    common,
    (flags) =>
      withFlags(flags, (context) =>
        withTokenService(context, (tokens, saved, where) =>
          renew(tokens).pipe(Effect.zipRight(saved), Effect.zipRight(describeSaved(tokens, where, done)))))
  ).pipe(
    Command.withDescription(description)
  )

const login = renewing(
  "login",
  (tokens) => tokens.obtainToken,
  "Logged in",
  "Log in with AMP_USERNAME / AMP_PASSWORD and save the new token"
)

const refresh = renewing(
  "refresh",
  (tokens) => tokens.forceRefresh,
  "Token renewed",
  "Renew the token now (refresh, falling back to a new login) and save it"
)

const clear = Command.make(
  "clear",
  common,
  (flags) =>
    withFlags(flags, (context) =>
      withStore(context, (store, where) =>
        Effect.gen(function*() {
          if (context.kind === "file") {
            const fs = yield* FileSystem.FileSystem
            const existed = yield* Effect.orElseSucceed(fs.exists(context.file), () => true)
            yield* store.remove
            return yield* Console.log(existed ? `Removed the token file ${where}` : `No token file at ${where}`)
          }
          const existed = yield* Effect.orElseSucceed(Effect.map(store.load, Option.isSome), () => true)
          yield* store.remove
          yield* Console.log(existed ? `Removed the token from ${where}` : `No token in ${where}`)
        })))
).pipe(Command.withDescription("Remove the token from its file (or from Redis)"))

const json = Options.boolean("json").pipe(
  Options.withDescription(
    "Print one JSON object: has_token, expires_at, obtained_at, expires_in_seconds, age_seconds, is_expired, expires_soon"
  )
)

/**
 * The JSON `status --json` prints: exactly these keys; times RFC 3339; null without a token.
 *
 * @since 0.1.0
 * @category models
 */
export interface StatusJson {
  readonly has_token: boolean
  readonly expires_at: string | null
  readonly obtained_at: string | null
  readonly expires_in_seconds: number | null
  readonly age_seconds: number | null
  readonly is_expired: boolean | null
  readonly expires_soon: boolean | null
}

/**
 * `status --json`'s object for what the file holds (`None`: no token).
 *
 * @since 0.1.0
 * @category utils
 */
export const statusJson = (info: Option.Option<TokenInfo.TokenInfo>): StatusJson =>
  Option.match(info, {
    onNone: () => ({
      has_token: false,
      expires_at: null,
      obtained_at: null,
      expires_in_seconds: null,
      age_seconds: null,
      is_expired: null,
      expires_soon: null
    }),
    onSome: (info) => ({
      has_token: true,
      expires_at: DateTime.formatIso(info.expiresAt),
      obtained_at: DateTime.formatIso(info.obtainedAt),
      expires_in_seconds: Math.floor(Duration.toSeconds(info.expiresIn)),
      age_seconds: Math.floor(Duration.toSeconds(info.age)),
      is_expired: info.isExpired,
      expires_soon: info.expiresSoon
    })
  })

const statusText = (where: string, info: Option.Option<TokenInfo.TokenInfo>): string =>
  Option.match(info, {
    onNone: () => `${where}\nNo token.`,
    onSome: (info) =>
      [
        where,
        `Expires at: ${DateTime.formatIso(info.expiresAt)} (${
          info.isExpired ? "expired" : `in ${formatSeconds(info.expiresIn)}`
        })`,
        `Obtained at: ${DateTime.formatIso(info.obtainedAt)} (${formatSeconds(info.age)} ago)`,
        `Expired: ${info.isExpired ? "yes" : "no"}`,
        `Expires soon: ${info.expiresSoon ? "yes (the next use renews it)" : "no"}`
      ].join("\n")
  })

const status = Command.make(
  "status",
  { ...common, json },
  (flags) =>
    withFlags(flags, (context) =>
      Effect.gen(function*() {
        // No network and no credentials: the store and the clock only. The expiry is judged as
        // the library judges it: by the JWT's `exp` where it has one, whatever `expires_at` says.
        const [stored, where] = yield* withStore(
          context,
          (store, where) => Effect.map(store.load, (stored) => [stored, where] as const)
        )
        const margin = yield* AmpConfig.read(AmpConfig.refreshMargin)
        const now = yield* Clock.currentTimeMillis
        const info = Option.map(stored, (data) => TokenInfo.make(data.withJwtExpiry(), now, margin))
        const heading = context.kind === "file" ? `Token file: ${where}` : `Token store: ${where}`
        yield* Console.log(flags.json ? JSON.stringify(statusJson(info)) : statusText(heading, info))
        if (Option.isNone(info) || info.value.isExpired) return yield* new Exit({ code: 1 })
      }))
).pipe(
  Command.withDescription(
    "Show what the token file holds, without any network call; exit 0 when it holds an unexpired token, 1 otherwise"
  )
)

/**
 * The `amp-token` command and its subcommands.
 *
 * @since 0.1.0
 * @category commands
 */
export const command = root.pipe(
  Command.withHandler(() =>
    Effect.zipRight(
      Console.error("amp-token: choose a command: token, status, login, refresh or clear (see amp-token --help)"),
      new Exit({ code: 2 })
    )
  ),
  Command.withDescription("Keep an always-valid Blockstream AMP API token in a file"),
  Command.withSubcommands([token, status, login, refresh, clear])
)

// -----------------------------------------------------------------------------
// Running
// -----------------------------------------------------------------------------

/** Log lines on stderr, one per line, so stdout stays clean for `$(amp-token token)`. */
const stderrLogger = Logger.replace(
  Logger.defaultLogger,
  Logger.withConsoleError(Logger.make(({ logLevel, message }) => {
    const parts = Array.isArray(message) ? message : [message]
    const level = logLevel._tag === "Warning" ? "warning" : logLevel.label.toLowerCase()
    return `amp-token: ${level}: ${parts.map(String).join(" ")}`
  }))
)

/** The one line a failure prints, naming its cause. Never the password, never the token. */
const describeFailure = (error: Exclude<Failure, Exit>): string => {
  switch (error._tag) {
    case "AuthError":
      switch (error.reason) {
        case "InvalidCredentials":
          return `wrong credentials: ${error.message} (check AMP_USERNAME and AMP_PASSWORD)`
        case "NotFound":
          return `wrong base URL: ${error.message}`
        case "TransportError":
          return `server unreachable: ${error.message}`
        case "RequestTimeout":
          return `server not answering: ${error.message}`
        case "RateLimited":
          return `rate limited: ${error.message}`
        default:
          return error.message
      }
    case "AmpConfigError":
      return `configuration: ${error.message}`
    case "NotSaved":
      return `the token was obtained but not saved: ${error.error.message}`
    case "Unusable":
      return `cannot use the token ${error.error.path.startsWith("redis") ? "store" : "file"}: ${error.error.message}`
    default:
      return error.message
  }
}

/** `1d 2h 3m 4s`: whole seconds are precise enough for people. */
const formatSeconds = (duration: Duration.Duration): string => {
  const seconds = Math.floor(Duration.toSeconds(duration))
  return seconds === 0 ? "0s" : Duration.format(Duration.seconds(seconds))
}

const ansiEscape = /\u001b\[[0-9;]*m/g

/** The console with colour codes removed from what it prints (help and usage errors). */
const plainConsole = Effect.map(Console.consoleWith(Effect.succeed), (console): Console.Console => ({
  ...console,
  log: (...args) => console.log(...args.map(stripAnsi)),
  error: (...args) => console.error(...args.map(stripAnsi))
}))

const stripAnsi = (value: unknown) => typeof value === "string" ? value.replace(ansiEscape, "") : value

/**
 * How to run: `colors` is whether the help may use colour codes (the executable says yes only
 * when stdout is a terminal and `NO_COLOR` is unset).
 *
 * @since 0.1.0
 * @category models
 */
export interface RunOptions {
  readonly colors: boolean
}

/**
 * Runs the CLI on `argv` (`process.argv`: runtime, script, arguments) and answers the exit
 * code: 0 success, 1 failure, 2 usage error, 70 internal error. Everything it prints is already
 * printed: output on stdout, logs and the failure line on stderr. Logs at warning and above
 * unless `--log-level` says otherwise.
 *
 * @since 0.1.0
 * @category running
 */
export const run = (
  argv: ReadonlyArray<string>,
  options: RunOptions = { colors: false }
): Effect.Effect<number, never, CliApp.CliApp.Environment> =>
  Command.run(command, { name: "amp-token", version: packageJson.version })(argv).pipe(
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
    (effect) => options.colors ? effect : Effect.flatMap(plainConsole, (console) => Effect.withConsole(effect, console))
  )
