/**
 * The consumer test: amp-effect as a stranger gets it.
 *
 * `pnpm pack`s every publishable package (after `pnpm build`), creates a project in the
 * system's temp directory — outside the workspace, so nothing resolves to the sources — and
 * `npm install`s the tarballs with effect and the platform packages from the registry. Then:
 *
 * 0. the pending changesets release no package at a major version no changeset asks for;
 * 1. the install printed no `ERESOLVE` and no peer dependency warning;
 * 2. `node app.mjs` (plain ESM, no loader) gets a token twice from the embedded mock server:
 *    one login, the second call served from memory;
 * 3. `tsc --noEmit` type-checks a TypeScript consumer (NodeNext, strict,
 *    exactOptionalPropertyTypes, target ES2020) without compiling any of the library's sources;
 * 4. the installed `amp-token` runs `--help`, `status --json` and `token` (against the mock
 *    server), and there is no tsx anywhere in the project; its code cache goes where
 *    `XDG_CACHE_HOME` says (here inside the project), is named for the Node running this test
 *    (the `node` on PATH, which the executable's `#!/usr/bin/env node` runs too), and later
 *    runs start from it;
 * 5. `@amp-effect/postgres` imports without loading its driver `@effect/sql-pg`, and once it is
 *    removed, `AMP_TOKEN_STORE=postgres` fails with the error that says what to install.
 *
 * It runs on the Node first on PATH: `.ci/run` runs it on the machine's and on the newest line.
 *
 * Usage: `pnpm test:consumer` (builds first). `--keep` leaves the project in place and prints
 * where it is. Prints what it checked, the tarballs' sizes and file lists, and its timings.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("..", import.meta.url))
const keep = process.argv.includes("--keep")
const started = Date.now()

/** The published packages, in dependency order. */
const packages = ["core", "node", "redis", "postgres", "cli"]
/** What a user installs beside them (the v3 line: npm's `latest` tags are Effect 4). */
const registryPackages = [
  "effect@^3.22.4",
  "@effect/platform@^0.97.2",
  "@effect/platform-node@^0.108.2",
  "@effect/experimental@^0.61.1",
  "@effect/sql@^0.52.1",
  "@effect/sql-pg@^0.53.0",
  "typescript@~5.9.3",
  "@types/node@^20"
]

const step = (text) => console.log(`\n▶ ${text}`)
const ok = (text) => console.log(`  ✓ ${text}`)
const fail = (text) => {
  console.error(`  ✗ ${text}`)
  process.exitCode = 1
  throw new Error(text)
}

/** Runs a command, returning its output; fails the test on a non-zero exit unless `allowFailure`. */
const run = (command, args, options = {}) => {
  const result = ChildProcess.spawnSync(command, args, {
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    ...options,
    env: { ...process.env, ...options.env }
  })
  if (result.error) fail(`${command} ${args.join(" ")}: ${result.error.message}`)
  if (result.status !== 0 && !options.allowFailure) {
    fail(`${command} ${args.join(" ")} exited ${result.status}\n${result.stdout}\n${result.stderr}`)
  }
  return result
}

const project = Fs.mkdtempSync(Path.join(Os.tmpdir(), "amp-effect-consumer-"))
const tarballs = Path.join(project, "tarballs")
Fs.mkdirSync(tarballs)

try {
  step("the release the pending changesets make")
  // changesets bumps a package *major* when a peer dependency of it leaves the peer's range,
  // which for 0.x versions and `^` ranges is every minor: the first release would be 1.0.0.
  // Only a changeset that says major may take a package past 0.x.
  const planFile = Path.join(project, "release-plan.json")
  run("pnpm", ["changeset", "status", "--output", planFile], { cwd: root })
  const plan = JSON.parse(Fs.readFileSync(planFile, "utf8"))
  const releases = plan.releases.filter(({ type }) => type !== "none")
  for (const release of releases) {
    const declared = plan.changesets.flatMap((changeset) => changeset.releases)
      .filter(({ name }) => name === release.name)
    if (release.type === "major" && !declared.some(({ type }) => type === "major")) {
      fail(`${release.name} would be released ${release.newVersion}, which no changeset asks for`)
    }
  }
  ok(
    `versions: ${
      releases.map(({ name, newVersion, oldVersion }) => `${name} ${oldVersion} → ${newVersion}`).join(", ")
    }`
  )

  step("build and pack")
  run("pnpm", ["build"], { cwd: root, stdio: "inherit" })
  const packed = packages.map((name) => {
    const dir = Path.join(root, "packages", name)
    const before = new Set(Fs.readdirSync(tarballs))
    run("pnpm", ["pack", "--pack-destination", tarballs], { cwd: dir })
    const file = Fs.readdirSync(tarballs).find((entry) => !before.has(entry))
    if (file === undefined) fail(`pnpm pack wrote no tarball for ${name}`)
    const tarball = Path.join(tarballs, file)
    const listing = run("tar", ["-tzvf", tarball]).stdout.trim().split("\n")
    const files = listing.map((line) => line.split(/\s+/).slice(5).join(" ").replace(/^package\//, ""))
    const manifest = JSON.parse(run("tar", ["-xzOf", tarball, "package/package.json"]).stdout)
    console.log(`  ${file}: ${(Fs.statSync(tarball).size / 1024).toFixed(1)} KiB packed, ${files.length} files`)
    for (const line of listing) {
      console.log(`    ${line.split(/\s+/).slice(2, 3).join("")}\t${line.split(/\s+/).slice(5).join(" ")}`)
    }
    for (const required of ["package.json", "README.md", "LICENSE"]) {
      if (!files.includes(required)) fail(`${file} lacks ${required}`)
    }
    const stray = files.filter((path) =>
      /(^|\/)(test|src)\//.test(path) || /tsconfig/.test(path) || /\.ts$/.test(path) && !/\.d\.ts$/.test(path)
    )
    if (stray.length > 0) fail(`${file} carries ${stray.join(", ")}`)
    for (const field of ["description", "keywords", "repository", "license", "engines"]) {
      if (manifest[field] === undefined) fail(`${file}: package.json has no ${field}`)
    }
    if (manifest.exports !== undefined && manifest.sideEffects !== false) {
      fail(`${file}: a library without sideEffects: false`)
    }
    const deps = JSON.stringify({ ...manifest.dependencies, ...manifest.peerDependencies })
    if (deps.includes("workspace:") || deps.includes("catalog:")) fail(`${file}: unresolved ${deps}`)
    ok(`${manifest.name}@${manifest.version}: dist, README, LICENSE, no tests, sources or tsconfig; deps ${deps}`)
    return tarball
  })

  step(`npm install the tarballs and ${registryPackages.join(" ")} into ${project}`)
  Fs.writeFileSync(
    Path.join(project, "package.json"),
    JSON.stringify({ name: "consumer", private: true, type: "module" }, null, 2)
  )
  const install = run("npm", ["install", "--no-audit", "--no-fund", ...packed, ...registryPackages], {
    cwd: project,
    // A clean cache view of warnings: npm prints peer trouble as `npm warn ERESOLVE` / `peer`.
    env: { npm_config_loglevel: "warn", npm_config_update_notifier: "false" }
  })
  const installOutput = `${install.stdout}\n${install.stderr}`
  const warnings = installOutput.split("\n").filter((line) =>
    /ERESOLVE|peer dep|peerDependenc|conflicting peer/i.test(line)
  )
  if (warnings.length > 0) fail(`npm install printed peer warnings:\n${warnings.join("\n")}`)
  ok("npm install: no ERESOLVE, no peer warning")
  if (Fs.existsSync(Path.join(project, "node_modules", "tsx"))) fail("tsx was installed")
  if (Fs.existsSync(Path.join(project, "node_modules", "@effect", "cli"))) fail("@effect/cli was installed")
  ok("no tsx and no @effect/cli in node_modules")

  step("node app.mjs: plain ESM, no loader")
  Fs.writeFileSync(
    Path.join(project, "app.mjs"),
    `import { TokenService } from "@amp-effect/core"
import { MockAmpServer, NodeAmp } from "@amp-effect/node"
import { ConfigProvider, Effect, Layer, Redacted } from "effect"

const program = Effect.gen(function*() {
  const server = yield* MockAmpServer.MockAmpServer.make()
  const env = new Map([
    ["AMP_API_BASE_URL", server.baseUrl],
    ["AMP_USERNAME", "mock_user"],
    ["AMP_PASSWORD", "mock_pass"]
  ])
  const [first, second] = yield* Effect.flatMap(TokenService.TokenService, (tokens) =>
    Effect.all([tokens.getToken, tokens.getToken])).pipe(
    Effect.provide(NodeAmp.layerConfig()),
    Effect.withConfigProvider(ConfigProvider.fromMap(env))
  )
  const counters = yield* server.counters
  return {
    same: Redacted.value(first) === Redacted.value(second),
    logins: counters.obtain,
    requests: counters.total,
    printed: String(first)
  }
})

// AMP_TOKEN_STORE=redis for a real account: NodeAmp loads the optional @amp-effect/redis, whose
// configuration then asks for AMP_REDIS_URL (a missing package would be named instead).
const redisChoice = Layer.build(NodeAmp.layerPolicyStore()).pipe(
  Effect.scoped,
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map([
    ["AMP_API_BASE_URL", "https://amp-test.blockstream.com/api"],
    ["AMP_USERNAME", "alice"],
    ["AMP_PASSWORD", "not-used"],
    ["AMP_TOKEN_STORE", "redis"]
  ]))),
  Effect.flip,
  Effect.map((error) => error.variable)
)

// The same for AMP_TOKEN_STORE=postgres: @amp-effect/postgres loaded, and it asks for AMP_POSTGRES_URL.
const postgresChoice = Layer.build(NodeAmp.layerPolicyStore()).pipe(
  Effect.scoped,
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map([
    ["AMP_API_BASE_URL", "https://amp-test.blockstream.com/api"],
    ["AMP_USERNAME", "alice"],
    ["AMP_PASSWORD", "not-used"],
    ["AMP_TOKEN_STORE", "postgres"]
  ]))),
  Effect.flip,
  Effect.map((error) => ({ variable: error.variable, message: error.message }))
)

const internal = await import("@amp-effect/core/internal/tokenFile").then(() => "importable", (error) => error.code)
const result = await Effect.runPromise(Effect.scoped(program))
const redis = await Effect.runPromise(redisChoice)
const postgres = await Effect.runPromise(postgresChoice)
console.log(JSON.stringify({ ...result, internal, redis, postgres }))
`
  )
  const app = JSON.parse(run("node", ["app.mjs"], { cwd: project }).stdout.trim().split("\n").at(-1))
  if (!(app.same && app.logins === 1 && app.requests === 1)) fail(`app.mjs: ${JSON.stringify(app)}`)
  if (app.printed !== "<redacted>") fail(`app.mjs printed the token: ${app.printed}`)
  if (app.internal !== "ERR_PACKAGE_PATH_NOT_EXPORTED") fail(`an internal module is ${app.internal}`)
  ok(
    `getToken twice: ${app.logins} login, ${app.requests} request in all, the second from memory; printed as ${app.printed}`
  )
  ok(`import("@amp-effect/core/internal/tokenFile"): ${app.internal}`)
  if (app.redis !== "AMP_REDIS_URL") fail(`AMP_TOKEN_STORE=redis did not load @amp-effect/redis: ${app.redis}`)
  ok("AMP_TOKEN_STORE=redis: NodeAmp loaded the optional @amp-effect/redis (which asked for AMP_REDIS_URL)")
  if (app.postgres.variable !== "AMP_POSTGRES_URL") {
    fail(`AMP_TOKEN_STORE=postgres did not load @amp-effect/postgres: ${app.postgres.message}`)
  }
  ok("AMP_TOKEN_STORE=postgres: NodeAmp loaded the optional @amp-effect/postgres (which asked for AMP_POSTGRES_URL)")

  step("import @amp-effect/postgres with @effect/sql-pg refused by a resolve hook")
  // The driver is loaded when a store opens its own pool, not at import: an application that
  // passes its own SqlClient (or never builds the store) never loads it.
  Fs.writeFileSync(
    Path.join(project, "no-sql-pg-hooks.mjs"),
    `export const resolve = (specifier, context, next) => {
  if (specifier === "@effect/sql-pg" || specifier.startsWith("@effect/sql-pg/")) {
    throw new Error(\`refused: \${specifier}\`)
  }
  return next(specifier, context)
}
`
  )
  Fs.writeFileSync(
    Path.join(project, "no-sql-pg.mjs"),
    `import { register } from "node:module"
register("./no-sql-pg-hooks.mjs", import.meta.url)
`
  )
  Fs.writeFileSync(
    Path.join(project, "postgres-import.mjs"),
    `const { PostgresTokenStore } = await import("@amp-effect/postgres")
// The hook does refuse the driver: without this, the check above could not fail.
const driver = await import("@effect/sql-pg/PgClient").then(() => "loaded", (error) => error.message)
console.log(JSON.stringify({ layerConfig: typeof PostgresTokenStore.layerConfig, driver }))
`
  )
  const hooked = run("node", ["--import", "./no-sql-pg.mjs", "postgres-import.mjs"], { cwd: project })
  const imported = JSON.parse(hooked.stdout.trim().split("\n").at(-1))
  if (imported.layerConfig !== "function" || imported.driver !== "refused: @effect/sql-pg/PgClient") {
    fail(`import("@amp-effect/postgres"): ${JSON.stringify(imported)}`)
  }
  ok("PostgresTokenStore.layerConfig is there, and @effect/sql-pg was not loaded at import")

  step("tsc --noEmit: NodeNext, strict, exactOptionalPropertyTypes, target ES2020")
  Fs.writeFileSync(
    Path.join(project, "tsconfig.json"),
    JSON.stringify(
      {
        compilerOptions: {
          module: "NodeNext",
          moduleResolution: "NodeNext",
          target: "ES2020",
          strict: true,
          exactOptionalPropertyTypes: true,
          noEmit: true,
          skipLibCheck: false,
          types: ["node"]
        },
        files: ["app.ts"]
      },
      null,
      2
    )
  )
  Fs.writeFileSync(
    Path.join(project, "app.ts"),
    `import { AmpClient, AmpConfig, TokenError, TokenService, TokenStore } from "@amp-effect/core"
import { MockAmpServer, NodeAmp } from "@amp-effect/node"
import { PostgresTokenStore } from "@amp-effect/postgres"
import { RedisTokenStore } from "@amp-effect/redis"
import { Config, Effect, Layer, Option, Redacted } from "effect"

const program: Effect.Effect<string, TokenError.AuthError | TokenError.TokenStoreError, TokenService.TokenService> =
  Effect.gen(function*() {
    const tokens = yield* TokenService.TokenService
    const token = yield* tokens.getToken
    const info = yield* tokens.getTokenInfo
    return Option.isSome(info) ? Redacted.value(token).slice(0, 4) : ""
  })

const live: Layer.Layer<TokenService.TokenService, unknown> = NodeAmp.layerConfig()
const withFile = NodeAmp.layerWithStore(NodeAmp.layerFileStore("/var/lib/app/token.json"))
const inMemory = NodeAmp.layerWithStore(TokenStore.layerMemory)
const client: Layer.Layer<AmpClient.AmpClient | TokenService.TokenService, unknown> = NodeAmp.layerClient()
const mock = TokenService.layerMock("test-token")
const server = MockAmpServer.MockAmpServer.make()
const fleet = NodeAmp.layerWithStore(RedisTokenStore.layerConfig())
const database = NodeAmp.layerWithStore(PostgresTokenStore.layerConfig())
const prefixed = NodeAmp.layerConfig(AmpConfig.nested("ISSUER"))
const renamed = NodeAmp.layerConfig({ retry: Config.nested(AmpConfig.retry, "AMP") })

export { client, database, fleet, inMemory, live, mock, prefixed, program, renamed, server, withFile }
`
  )
  const tsc = run(Path.join(project, "node_modules", ".bin", "tsc"), ["--noEmit", "--listFiles", "-p", "."], {
    cwd: project
  })
  const compiled = tsc.stdout.split("\n").filter((file) => file.includes("@amp-effect/"))
  const sources = compiled.filter((file) => !file.endsWith(".d.ts"))
  if (sources.length > 0) fail(`tsc compiled the library's sources: ${sources.join(", ")}`)
  if (compiled.length === 0) fail("tsc read nothing of @amp-effect: the check proves nothing")
  ok(`tsc --noEmit passed; of @amp-effect it read ${compiled.length} declaration files and no source`)

  step("the installed amp-token")
  const bin = Path.join(project, "node_modules", ".bin", "amp-token")
  const shebang = Fs.readFileSync(Fs.realpathSync(bin), "utf8").split("\n", 1)[0]
  if (shebang !== "#!/usr/bin/env node") fail(`amp-token starts with ${shebang}`)
  // The executable's code cache (see packages/cli/src/launcher.ts) inside the project.
  const cacheHome = Path.join(project, "cache")
  const help = run(bin, ["--help"], { cwd: project, env: { XDG_CACHE_HOME: cacheHome } })
  if (!help.stdout.includes("--token-file") || help.stdout.includes("\u001b[")) fail(`--help: ${help.stdout}`)
  ok("amp-token --help: plain text (stdout is a pipe)")

  // A mock AMP server in a process of its own, for the CLI to log in to.
  Fs.writeFileSync(
    Path.join(project, "server.mjs"),
    `import { MockAmpServer } from "@amp-effect/node"
import { Effect } from "effect"
Effect.runFork(Effect.scoped(Effect.gen(function*() {
  const server = yield* MockAmpServer.MockAmpServer.make()
  console.log(server.baseUrl)
  yield* Effect.async((resume) => void process.stdin.once("end", () => resume(Effect.void)).resume())
  console.log(JSON.stringify(yield* server.counters))
})))
`
  )
  const server = ChildProcess.spawn(process.execPath, ["server.mjs"], {
    cwd: project,
    stdio: ["pipe", "pipe", "inherit"]
  })
  const lines = []
  let pending
  server.stdout.setEncoding("utf8").on("data", (chunk) => {
    lines.push(...chunk.split("\n").filter((line) => line.length > 0))
    pending?.()
  })
  const nextLine = (index) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the mock server did not answer")), 60_000)
      const check = () => {
        if (lines.length > index) {
          clearTimeout(timer)
          resolve(lines[index])
        }
      }
      pending = check
      check()
    })
  const baseUrl = await nextLine(0)
  const file = Path.join(project, "token.json")
  const env = {
    AMP_API_BASE_URL: baseUrl,
    AMP_USERNAME: "mock_user",
    AMP_PASSWORD: "mock_pass",
    AMP_TOKEN_FILE: file,
    XDG_CACHE_HOME: cacheHome
  }
  const token = run(bin, ["token"], { cwd: project, env })
  const saved = JSON.parse(Fs.readFileSync(file, "utf8"))
  if (token.stdout !== `${saved.token}\n` || token.stderr !== "") fail(`amp-token token: ${JSON.stringify(token)}`)
  if ((Fs.statSync(file).mode & 0o777) !== 0o600) fail("token.json is not 0600")
  const caches = () => Fs.readdirSync(Path.join(cacheHome, "amp-token"))
  const written = caches()
  // cli-<bundle hash>-<Node>-<V8>-<arch>.cache (packages/cli/src/launcher.ts)
  const runtime = `-${process.version}-${process.versions.v8}-${process.arch}.cache`
  if (written.length !== 1 || !/^cli-[0-9a-f]{32}-/.test(written[0]) || !written[0].endsWith(runtime)) {
    fail(`code cache: ${written}, not cli-<hash>${runtime}`)
  }
  const cacheStats = Fs.statSync(Path.join(cacheHome, "amp-token", written[0]))
  const again = run(bin, ["token"], { cwd: project, env: { AMP_TOKEN_FILE: file, XDG_CACHE_HOME: cacheHome } })
  if (again.stdout !== token.stdout) fail("the second amp-token token did not print the saved token")
  const status = run(bin, ["status", "--json"], {
    cwd: project,
    env: { AMP_TOKEN_FILE: file, XDG_CACHE_HOME: cacheHome }
  })
  const parsed = JSON.parse(status.stdout)
  if (!(parsed.has_token === true && parsed.is_expired === false)) fail(`status --json: ${status.stdout}`)
  server.stdin.end()
  const counters = JSON.parse(await nextLine(1))
  if (counters.obtain !== 1 || counters.total !== 1) fail(`the server saw ${JSON.stringify(counters)}`)
  ok("amp-token token: printed the saved token (0600) and nothing else; again from the file with no credentials")
  ok(`amp-token status --json: ${status.stdout.trim()}`)
  const reused = Fs.statSync(Path.join(cacheHome, "amp-token", written[0]))
  if (caches().length !== 1 || reused.ino !== cacheStats.ino || reused.mtimeMs !== cacheStats.mtimeMs) {
    fail("the later runs did not start from the code cache (it was rewritten)")
  }
  const mode = (cacheStats.mode & 0o777).toString(8)
  ok(`code cache: ${written[0]} (${(cacheStats.size / 1024).toFixed(0)} KiB, mode ${mode}), used by the later runs`)
  ok(`the mock server saw ${counters.obtain} login in all`)

  step("AMP_TOKEN_STORE=postgres without @amp-effect/postgres installed")
  Fs.rmSync(Path.join(project, "node_modules", "@amp-effect", "postgres"), { recursive: true })
  Fs.writeFileSync(
    Path.join(project, "postgres-missing.mjs"),
    `import { NodeAmp } from "@amp-effect/node"
import { ConfigProvider, Effect, Layer } from "effect"

const error = await Layer.build(NodeAmp.layerPolicyStore()).pipe(
  Effect.scoped,
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map([
    ["AMP_USERNAME", "alice"],
    ["AMP_PASSWORD", "not-used"],
    ["AMP_TOKEN_STORE", "postgres"]
  ]))),
  Effect.flip,
  Effect.runPromise
)
console.log(JSON.stringify({ tag: error._tag, variable: error.variable, message: error.message }))
`
  )
  const missing = JSON.parse(run("node", ["postgres-missing.mjs"], { cwd: project }).stdout.trim().split("\n").at(-1))
  const hint = "install it with its driver (npm install @amp-effect/postgres @effect/sql @effect/sql-pg)"
  if (missing.variable !== "AMP_TOKEN_STORE" || !missing.message.includes(hint)) {
    fail(`without @amp-effect/postgres: ${JSON.stringify(missing)}`)
  }
  ok(`without the package: ${missing.message}`)

  console.log(`\nConsumer test passed on Node ${process.version} in ${((Date.now() - started) / 1000).toFixed(1)} s`)
} finally {
  if (keep) console.log(`(kept ${project})`)
  else Fs.rmSync(project, { recursive: true, force: true })
}
