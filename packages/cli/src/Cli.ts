/**
 * `amp-token`: the token file (or the fleet's token in Redis) from the command line.
 *
 * ```sh
 * export AMP_USERNAME=... AMP_PASSWORD=...          # credentials come from the environment only
 * curl -H "Authorization: token $(amp-token token)" "$AMP_API_BASE_URL/assets/"
 * amp-token status --json                            # no network; exit 0 iff a token is valid
 * amp-token login | refresh | clear
 * ```
 *
 * The options work before or after the command's name (after it, they win); each falls back to
 * its environment variable, read and checked by the library's own `Config`. The CLI always keeps
 * its token, whatever the persistence policy says.
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

// -----------------------------------------------------------------------------
// Options
// -----------------------------------------------------------------------------

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

const store = Options.choice("store", ["file", "redis"]).pipe(
  Options.withDescription(
    "Where the token is kept: a file, or Redis for a whole fleet (default: $AMP_TOKEN_STORE, else file)"
  )
)

const redisUrl = Options.redacted("redis-url").pipe(
  Options.withPseudoName("URL"),
  Options.withDescription(
    "With --store redis: redis://[[user]:password@]host[:port][/db] or rediss:// (default: $AMP_REDIS_URL)"
  )
)

/** Logs go to stderr; warnings and above unless this says otherwise. */
const logLevel = Options.choiceWithValue(
  "log-level",
  LogLevel.allLevels.map((level) => [level._tag.toLowerCase(), level] as const)
).pipe(Options.withDescription("How much to log on stderr (default: warning)"), Options.optional)

/** The options every command takes after its name, where they win over `amp-token`'s. */
const own = {
  tokenFile: Options.optional(tokenFile),
  baseUrl: Options.optional(baseUrl),
  store: Options.optional(store),
  redisUrl: Options.optional(redisUrl),
  logLevel
}

/**
 * `amp-token`'s options, before a command's name: the same, each flag falling back to its
 * variable through the library's `Config`. Only here, so that the environment never hides a
 * flag given before the name. `--redis-url` has no fallback: the Redis store reads
 * `AMP_REDIS_URL` itself when it is chosen, so a file-store run never checks it.
 */
const root = Command.make("amp-token", {
  ...own,
  tokenFile: Options.withFallbackConfig(tokenFile, AmpConfig.tokenFile),
  baseUrl: Options.withFallbackConfig(baseUrl, AmpConfig.baseUrl),
  store: Options.withFallbackConfig(store, RedisConfig.tokenStore)
})

// -----------------------------------------------------------------------------
// The store a command works on
// -----------------------------------------------------------------------------

/** Where the token is: the store kind `--store` chose, and the file's path or the store's name. */
class Chosen extends Context.Tag("@amp-effect/cli/Chosen")<Chosen, {
  readonly kind: "file" | "redis"
  readonly where: string
  readonly baseUrl: string
}>() {}

/**
 * A flag's value checked by the library's `Config` for `variable`, as the variable's value is
 * (when the options are parsed, or by the Redis store): a failure here is the flag's, and names it.
 */
const checked = <A>(flag: string, variable: string, config: Config.Config<A>, value: string) =>
  AmpConfig.read(config).pipe(
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map([[variable, value]]))),
    Effect.mapError((error) => new AmpConfig.AmpConfigError({ ...error, variable: flag }))
  )

/**
 * Each command's layer (`Command.provide`): the `TokenStore` its options and `amp-token`'s
 * choose (the file resolved against the working directory, or Redis with the library's
 * `RedisTokenStore.layerConfig`), and `Chosen`.
 */
const layerStore = (flags: Command.Command.ParseConfig<typeof own>) =>
  Layer.unwrapEffect(Effect.gen(function*() {
    const parent = yield* root
    const api = yield* checked(
      "--base-url",
      "AMP_API_BASE_URL",
      AmpConfig.baseUrl,
      Option.getOrElse(flags.baseUrl, () => parent.baseUrl)
    )
    const kind = Option.getOrElse(flags.store, () => parent.store)
    if (kind === "redis") {
      const url = Option.orElse(flags.redisUrl, () => parent.redisUrl)
      const layer = RedisTokenStore.layerConfig({
        baseUrl: Config.succeed(api),
        url: Option.isSome(url)
          ? Config.succeed(yield* checked("--redis-url", "AMP_REDIS_URL", RedisConfig.url, Redacted.value(url.value)))
          : RedisConfig.url
      })
      yield* Effect.logDebug(`Token store: Redis, AMP API ${api}`)
      return Layer.provideMerge(
        Layer.effect(
          Chosen,
          Effect.map(TokenStore.TokenStore, ({ description }) => ({ kind, where: description, baseUrl: api }))
        ),
        layer
      )
    }
    if (kind !== "file") {
      return yield* new AmpConfig.AmpConfigError({
        variable: "AMP_TOKEN_STORE",
        value: kind,
        reason: "amp-token keeps the token in a file or in Redis: expected file or redis"
      })
    }
    const path = yield* Path.Path
    const file = path.resolve(
      yield* checked(
        "--token-file",
        "AMP_TOKEN_FILE",
        AmpConfig.tokenFile,
        Option.getOrElse(flags.tokenFile, () => parent.tokenFile)
      )
    )
    yield* Effect.logDebug(`Token file ${file}, AMP API ${api}`)
    return Layer.merge(NodeTokenStore.layer(file), Layer.succeed(Chosen, { kind, where: file, baseUrl: api }))
  }))

/** Ends the command with `code` after its output was printed; no further message. */
class Exit extends Data.TaggedError("Exit")<{ readonly code: number }> {}

/**
 * The token file cannot be used (a directory, unreadable): nothing else was tried; or a command
 * got a token but could not save it to its store.
 */
class StoreFailed extends Data.TaggedError("StoreFailed")<{
  readonly reason: "Unusable" | "NotSaved"
  readonly error: TokenError.TokenStoreError
}> {}

/**
 * Runs `f` with the library's token service over the chosen store (credentials, retries and
 * margin from `Config`, read only now that a server is needed) and `saved`, which fails when
 * the service could not save the token: it logs that and carries on from memory, which is
 * right for a process that keeps running, not for a command whose point is the saved token.
 *
 * The CLI talks to AMP through the runtime's `fetch` rather than the library's undici client:
 * one request per run needs no connection pool, and the bundle stays half the size.
 */
const withTokenService = <A, E, R>(
  f: (tokens: TokenService.TokenService["Type"], saved: Effect.Effect<void, StoreFailed>) => Effect.Effect<A, E, R>
) =>
  Effect.gen(function*() {
    const { baseUrl } = yield* Chosen
    const failed = yield* Ref.make(Option.none<TokenError.TokenStoreError>())
    const recording = Layer.effect(
      TokenStore.TokenStore,
      Effect.map(TokenStore.TokenStore, (store) => ({
        ...store,
        save: (data, replacing) =>
          Effect.tapError(store.save(data, replacing), (error) => Ref.set(failed, Option.some(error)))
      }))
    )
    const api = AuthApi.layerConfig({ baseUrl: Config.succeed(baseUrl) }).pipe(Layer.provide(FetchHttpClient.layer))
    const saved = Effect.flatMap(
      Ref.get(failed),
      Option.match({ onNone: () => Effect.void, onSome: (error) => new StoreFailed({ reason: "NotSaved", error }) })
    )
    return yield* Effect.flatMap(TokenService.TokenService, (tokens) => f(tokens, saved)).pipe(
      Effect.provide(TokenService.layerConfig().pipe(Layer.provide(Layer.merge(api, recording))))
    )
  })

/**
 * Makes `self` a command on the chosen store (`layerStore`), logging at the level `--log-level`
 * sets on either side of its name.
 */
const onStore = <Name extends string, R, E, A extends Command.Command.ParseConfig<typeof own>>(
  self: Command.Command<Name, R, E, A>
) =>
  self.pipe(
    Command.provide((flags) => layerStore(flags)),
    Command.transformHandler((effect, flags) =>
      Effect.flatMap(root, (parent) =>
        Option.match(Option.orElse(flags.logLevel, () => parent.logLevel), {
          onNone: () => effect,
          onSome: (level) => Logger.withMinimumLogLevel(effect, level)
        }))
    )
  )

/** A command on the chosen store, with the shared options after its name. */
const command = <R, E>(name: string, description: string, handler: Effect.Effect<void, E, R>) =>
  Command.make(name, own, () => handler).pipe(Command.withDescription(description), onStore)

/**
 * The stored token, and what the library would say of it now: its expiry is the JWT's `exp`
 * where it has one, whatever `expires_at` says. No network, no credentials.
 */
const inspect = Effect.gen(function*() {
  const stored = yield* Effect.flatMap(TokenStore.TokenStore, (store) => store.load)
  const margin = yield* AmpConfig.read(AmpConfig.refreshMargin)
  const now = yield* Clock.currentTimeMillis
  return Option.map(stored, (data) => {
    const checked = data.withJwtExpiry()
    return [checked, TokenInfo.make(checked, now, margin)] as const
  })
})

// -----------------------------------------------------------------------------
// Commands
// -----------------------------------------------------------------------------

/**
 * `token`: the stored token when it is valid beyond the refresh margin, with no credentials and
 * no network; otherwise the token service's. A token file that cannot be read or written is a
 * failure (not a login on every call), and the token is printed only once it is in the file.
 * Redis is shared and may be down for a while: as in the library, the token service then logs
 * it and carries on without it.
 */
const token = command(
  "token",
  "Print a valid token on stdout, and nothing else: from the store, refreshed or from a new login as needed",
  Effect.gen(function*() {
    const { kind } = yield* Chosen
    const stored = yield* inspect.pipe(
      Effect.catchTag(
        "TokenStoreError",
        (error) => kind === "file" ? new StoreFailed({ reason: "Unusable", error }) : Effect.succeedNone
      )
    )
    const fresh = Option.filter(stored, ([, info]) => !info.isExpired && !info.expiresSoon)
    const value = Option.isSome(fresh)
      ? fresh.value[0].token
      : yield* withTokenService((tokens, saved) =>
        kind === "file" ? Effect.zipLeft(tokens.getToken, saved) : tokens.getToken
      )
    // stdout carries the token and nothing else, for `$(amp-token token)`.
    yield* Console.log(Redacted.value(value))
  })
)

/** `login` and `refresh`: renew, then say where the token went and until when (once it is there). */
const renewed = (
  done: string,
  renew: (
    tokens: TokenService.TokenService["Type"]
  ) => Effect.Effect<unknown, TokenError.AuthError | TokenError.TokenStoreError>
) =>
  withTokenService((tokens, saved) =>
    Effect.gen(function*() {
      yield* renew(tokens)
      yield* saved
      const { where } = yield* Chosen
      // A renewal leaves its token in memory: no token here would be a bug.
      const info = yield* Effect.orDie(Effect.flatten(tokens.getTokenInfo))
      yield* Console.log(
        `${done}; saved to ${where} (expires ${DateTime.formatIso(info.expiresAt)}, in ${
          formatSeconds(info.expiresIn)
        })`
      )
    })
  )

const login = command(
  "login",
  "Log in with AMP_USERNAME / AMP_PASSWORD and save the new token",
  renewed("Logged in", (tokens) => tokens.obtainToken)
)

const refresh = command(
  "refresh",
  "Renew the token now (refresh, falling back to a new login) and save it",
  renewed("Token renewed", (tokens) => tokens.forceRefresh)
)

const clear = command(
  "clear",
  "Remove the token from its file (or from Redis)",
  Effect.gen(function*() {
    const { kind, where } = yield* Chosen
    const store = yield* TokenStore.TokenStore
    const exists: Effect.Effect<boolean, unknown, FileSystem.FileSystem> = kind === "file"
      ? Effect.flatMap(FileSystem.FileSystem, (fs) => fs.exists(where))
      : Effect.map(store.load, Option.isSome)
    const existed = yield* Effect.orElseSucceed(exists, () => true)
    yield* store.remove
    yield* Console.log(
      kind === "file"
        ? existed ? `Removed the token file ${where}` : `No token file at ${where}`
        : existed
        ? `Removed the token from ${where}`
        : `No token in ${where}`
    )
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

/**
 * `status`: the store and the clock only, no network and no credentials. The expiry is judged
 * as the library judges it: by the JWT's `exp` where it has one, whatever `expires_at` says.
 */
const status = Command.make("status", { ...own, json }, (flags) =>
  Effect.gen(function*() {
    const { kind, where } = yield* Chosen
    const info = Option.map(yield* inspect, ([, info]) => info)
    const heading = kind === "file" ? `Token file: ${where}` : `Token store: ${where}`
    yield* Console.log(flags.json ? JSON.stringify(statusJson(info)) : statusText(heading, info))
    if (Option.isNone(info) || info.value.isExpired) return yield* new Exit({ code: 1 })
  })).pipe(
    Command.withDescription(
      "Show what the token file holds, without any network call; exit 0 when it holds an unexpired token, 1 otherwise"
    ),
    onStore
  )

/** `amp-token` and its commands. */
const cli = root.pipe(
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
    const parts = Arr.ensure(message)
    const level = logLevel._tag === "Warning" ? "warning" : logLevel.label.toLowerCase()
    return `amp-token: ${level}: ${parts.map(String).join(" ")}`
  }))
)

/** What a failed call to AMP means for the user, by its reason. */
const authCauses: Partial<Record<TokenError.AuthError["reason"], string>> = {
  InvalidCredentials: "wrong credentials",
  NotFound: "wrong base URL",
  TransportError: "server unreachable",
  RequestTimeout: "server not answering",
  RateLimited: "rate limited"
}

const storeFailures: Record<StoreFailed["reason"], string> = {
  Unusable: "cannot use the token file",
  NotSaved: "the token was obtained but not saved"
}

/** The one line a failure prints, naming its cause. Never the password, never the token. */
const describeFailure = (
  error: AmpConfig.AmpConfigError | TokenError.AuthError | TokenError.TokenStoreError | StoreFailed
): string => {
  switch (error._tag) {
    case "AuthError": {
      const cause = authCauses[error.reason]
      const hint = error.reason === "InvalidCredentials" ? " (check AMP_USERNAME and AMP_PASSWORD)" : ""
      return cause === undefined ? error.message : `${cause}: ${error.message}${hint}`
    }
    case "AmpConfigError":
      return `configuration: ${error.message}`
    case "StoreFailed":
      return `${storeFailures[error.reason]}: ${error.error.message}`
    case "TokenStoreError":
      return error.message
  }
}

/** `1d 2h 3m 4s`: whole seconds are precise enough for people. */
const formatSeconds = (duration: Duration.Duration): string => {
  const seconds = Math.floor(Duration.toSeconds(duration))
  return seconds === 0 ? "0s" : Duration.format(Duration.seconds(seconds))
}

const stripAnsi = (text: unknown) => String(text).replace(/\u001b\[[0-9;]*m/g, "")

/** The console with colour codes removed from what it prints (help and usage errors). */
const plainConsole = Effect.map(Console.consoleWith(Effect.succeed), (console): Console.Console => ({
  ...console,
  log: (...args) => console.log(...args.map(stripAnsi)),
  error: (...args) => console.error(...args.map(stripAnsi))
}))

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
