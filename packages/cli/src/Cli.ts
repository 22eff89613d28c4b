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
 * `--base-url URL` (default `$AMP_API_BASE_URL`) and `--log-level LEVEL` (logs go to stderr).
 * The retry and timeout variables of the library apply. The CLI always uses its token file,
 * whatever the persistence policy says: keeping that file is what it is for.
 *
 * A failure prints one line on stderr naming its cause and exits non-zero. Nothing prints the
 * password; only `amp-token token` prints the token.
 *
 * @since 0.1.0
 */
import type { TokenError } from "@amp-effect/core"
import { AmpConfig, TokenInfo, TokenService, TokenStore } from "@amp-effect/core"
import { NodeAmp } from "@amp-effect/node"
import { Command, Options } from "@effect/cli"
import type { CliApp } from "@effect/cli"
import * as ValidationError from "@effect/cli/ValidationError"
import { FileSystem, Path } from "@effect/platform"
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

const common = { tokenFile: tokenFileOption, baseUrl: baseUrlOption } as const

interface CommonFlags {
  readonly tokenFile: Option.Option<string>
  readonly baseUrl: Option.Option<string>
}

/** Ends the command with `code` after its output was printed; no further message. */
class Exit extends Data.TaggedError("Exit")<{ readonly code: number }> {}

/** `login`/`refresh` got a token but could not write it to the token file. */
class NotSaved extends Data.TaggedError("NotSaved")<{ readonly error: TokenError.TokenStoreError }> {}

type Failure = AmpConfig.AmpConfigError | TokenError.AuthError | TokenError.TokenStoreError | NotSaved | Exit

/**
 * Runs `f` with the flags applied: `--base-url` overrides `AMP_API_BASE_URL` for everything
 * read through `Config`, and the token file is the flag's, else `AMP_TOKEN_FILE`'s, resolved
 * against the working directory.
 */
const withFlags = <A, E, R>(
  flags: CommonFlags,
  f: (tokenFile: string) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | AmpConfig.AmpConfigError, R | Path.Path> =>
  Effect.configProviderWith((current) => {
    const provider = Option.match(flags.baseUrl, {
      onNone: () => current,
      onSome: (url) =>
        ConfigProvider.fromMap(new Map([["AMP_API_BASE_URL", url]])).pipe(ConfigProvider.orElse(() => current))
    })
    return Effect.gen(function*() {
      const path = yield* Path.Path
      const file = yield* Option.match(flags.tokenFile, {
        onNone: () => AmpConfig.tokenFile,
        onSome: (file) =>
          file.trim().length === 0
            ? Effect.fail(
              new AmpConfig.AmpConfigError({ variable: "--token-file", value: file, reason: "expected a file path" })
            )
            : Effect.succeed(file)
      })
      const resolved = path.resolve(file)
      yield* Effect.logDebug(
        `Token file ${resolved}, AMP API ${yield* Effect.orElseSucceed(AmpConfig.baseUrl, () => "(invalid)")}`
      )
      return yield* f(resolved)
    }).pipe(
      Effect.withConfigProvider(provider),
      // The value came from the flag, so name the flag.
      Effect.mapError((error) =>
        error instanceof AmpConfig.AmpConfigError && error.variable === "AMP_API_BASE_URL" &&
          Option.isSome(flags.baseUrl)
          ? new AmpConfig.AmpConfigError({ ...error, variable: "--base-url" })
          : error
      )
    )
  })

/**
 * The token service over the token file at `file` (credentials, base URL, retries from the
 * configuration), with a store that remembers a failed save so that `login` and `refresh` can
 * report it instead of exiting 0 with nothing written.
 */
const withTokenService = <A, E, R>(
  file: string,
  f: (tokens: TokenService.TokenService["Type"], saveFailure: Effect.Effect<void, NotSaved>) => Effect.Effect<A, E, R>
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
    ).pipe(Layer.provide(NodeAmp.layerFileStore(file)))
    const saveFailure = Effect.flatMap(
      Ref.get(failed),
      Option.match({
        onNone: () => Effect.void,
        onSome: (error) => Effect.fail(new NotSaved({ error }))
      })
    )
    return yield* Effect.flatMap(TokenService.TokenService, (service) => f(service, saveFailure)).pipe(
      Effect.provide(NodeAmp.layerWithStore(recording))
    )
  })

/** One line about the token just saved: where, and until when. Never the token. */
const describeSaved = (tokens: TokenService.TokenService["Type"], file: string, what: string) =>
  Effect.flatMap(tokens.getTokenInfo, (info) =>
    Console.log(Option.match(info, {
      onNone: () => `${what}; saved to ${file}`,
      onSome: (info) =>
        `${what}; saved to ${file} (expires ${DateTime.formatIso(info.expiresAt)}, in ${formatSeconds(info.expiresIn)})`
    })))

// -----------------------------------------------------------------------------
// Commands
// -----------------------------------------------------------------------------

const token = Command.make("token", common, (flags) =>
  withFlags(flags, (file) =>
    withTokenService(file, (tokens) =>
      // stdout carries the token and nothing else, for `$(amp-token token)`.
      Effect.flatMap(tokens.getToken, (token) => Console.log(Redacted.value(token)))))).pipe(
    Command.withDescription(
      "Print a valid token on stdout, and nothing else: from the file, refreshed or from a new login as needed"
    )
  )

const login = Command.make(
  "login",
  common,
  (flags) =>
    withFlags(flags, (file) =>
      withTokenService(file, (tokens, saveFailure) =>
        tokens.obtainToken.pipe(
          Effect.zipRight(saveFailure),
          Effect.zipRight(describeSaved(tokens, file, "Logged in"))
        )))
).pipe(Command.withDescription("Log in with AMP_USERNAME / AMP_PASSWORD and save the new token"))

const refresh = Command.make(
  "refresh",
  common,
  (flags) =>
    withFlags(flags, (file) =>
      withTokenService(file, (tokens, saveFailure) =>
        tokens.forceRefresh.pipe(
          Effect.zipRight(saveFailure),
          Effect.zipRight(describeSaved(tokens, file, "Token renewed"))
        )))
).pipe(
  Command.withDescription("Renew the token now (refresh, falling back to a new login) and save it")
)

const clear = Command.make("clear", common, (flags) =>
  withFlags(flags, (file) =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const existed = yield* Effect.orElseSucceed(fs.exists(file), () => true)
      const store = yield* TokenStore.TokenStore
      yield* store.remove
      yield* Console.log(existed ? `Removed the token file ${file}` : `No token file at ${file}`)
    }).pipe(Effect.provide(NodeAmp.layerFileStore(file))))).pipe(Command.withDescription("Remove the token file"))

const json = Options.boolean("json").pipe(
  Options.withDescription(
    "Print one JSON object: has_token, expires_at, obtained_at, expires_in_seconds, age_seconds, is_expired, expires_soon"
  )
)

/** The JSON `status --json` prints: exactly these keys; times RFC 3339; null without a token. */
export interface StatusJson {
  readonly has_token: boolean
  readonly expires_at: string | null
  readonly obtained_at: string | null
  readonly expires_in_seconds: number | null
  readonly age_seconds: number | null
  readonly is_expired: boolean | null
  readonly expires_soon: boolean | null
}

/** `status --json`'s object for what the file holds (`None`: no token). */
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

const status = Command.make(
  "status",
  { ...common, json },
  (flags) =>
    withFlags(flags, (file) =>
      Effect.gen(function*() {
        // No network and no credentials: the file and the clock only.
        const store = yield* Effect.provide(TokenStore.TokenStore, NodeAmp.layerFileStore(file))
        const stored = yield* store.load
        const margin = yield* AmpConfig.refreshMargin
        const now = yield* Clock.currentTimeMillis
        const info = Option.map(stored, (data) => TokenInfo.make(data.withJwtExpiry(), now, margin))
        if (flags.json) {
          yield* Console.log(JSON.stringify(statusJson(info)))
        } else {
          yield* Console.log(Option.match(info, {
            onNone: () => `Token file: ${file}\nNo token.`,
            onSome: (info) =>
              [
                `Token file: ${file}`,
                `Expires at: ${DateTime.formatIso(info.expiresAt)} (${
                  info.isExpired ? "expired" : `in ${formatSeconds(info.expiresIn)}`
                })`,
                `Obtained at: ${DateTime.formatIso(info.obtainedAt)} (${formatSeconds(info.age)} ago)`,
                `Expired: ${info.isExpired ? "yes" : "no"}`,
                `Expires soon: ${info.expiresSoon ? "yes (the next use renews it)" : "no"}`
              ].join("\n")
          }))
        }
        if (Option.isNone(info) || info.value.isExpired) return yield* new Exit({ code: 1 })
      }))
).pipe(
  Command.withDescription(
    "Show what the token file holds, without any network call; exit 0 when it holds an unexpired token, 1 otherwise"
  )
)

/** The `amp-token` command and its subcommands. */
export const command = Command.make("amp-token", {}, () =>
  Effect.zipRight(
    Console.error("amp-token: choose a command: token, status, login, refresh or clear (see amp-token --help)"),
    new Exit({ code: 2 })
  )).pipe(
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
    default:
      return error.message
  }
}

/** `1d 2h 3m 4s`: whole seconds are precise enough for people. */
const formatSeconds = (duration: Duration.Duration): string => {
  const seconds = Math.floor(Duration.toSeconds(duration))
  return seconds === 0 ? "0s" : Duration.format(Duration.seconds(seconds))
}

const cliVersion = "0.1.0"

/**
 * Runs the CLI on `argv` (`process.argv`: runtime, script, arguments) and answers the exit
 * code. Everything it prints is already printed: output on stdout, logs and the failure line
 * on stderr. Logs at warning and above unless `--log-level` says otherwise.
 */
export const run = (argv: ReadonlyArray<string>): Effect.Effect<number, never, CliApp.CliApp.Environment> =>
  Command.run(command, { name: "amp-token", version: cliVersion })(argv).pipe(
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
    Logger.withMinimumLogLevel(LogLevel.Warning)
  )
