/**
 * A real PostgreSQL server for tests and benches: initialised in a temp directory, started on a
 * random loopback port, stopped by its pid. Debian keeps the server binaries off the PATH
 * (`pg_config --bindir` names their folder); the server refuses to run as root, so as root it
 * runs as the `postgres` user the package creates. The superuser `postgres` has a random
 * password that TCP connections must give (scram-sha-256), so a test can check that no message
 * prints it.
 *
 * Without the server binaries the Postgres tests are skipped with a one-line reason, except in
 * CI (`CI` set), where a missing server fails the run: CI installs it.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"

/** The folder of `initdb` and `postgres`: `POSTGRES_BINDIR`, else what `pg_config` says. */
const bindir = process.env.POSTGRES_BINDIR ?? spawnSync("pg_config", ["--bindir"], { encoding: "utf8" }).stdout?.trim()

const found = bindir !== undefined && bindir !== "" && Fs.existsSync(Path.join(bindir, "postgres"))

/**
 * Why the Postgres tests cannot run here, or `undefined` when they can.
 *
 * @since 0.1.0
 * @category utils
 */
export const unavailable: string | undefined = found
  ? undefined
  : "the PostgreSQL server is not installed (apt-get install postgresql, or brew install postgresql)"

if (unavailable !== undefined && process.env.CI !== undefined && process.env.CI !== "") {
  throw new Error(`CI never skips the Postgres tests: ${unavailable}`)
}

/** As root, every server command runs as `postgres`: its uid and gid, for `spawn`. */
const owner = process.getuid?.() === 0
  ? {
    uid: Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" })),
    gid: Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }))
  }
  : undefined

/** A server binary's path. */
const binary = (name: string) => Path.join(bindir!, name)

/** A free TCP port on 127.0.0.1 (the kernel's choice; taken again by the server at once). */
const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address() as Net.AddressInfo
      server.close(() => resolve(address.port))
    })
  })

/**
 * A running PostgreSQL server.
 *
 * @since 0.1.0
 * @category models
 */
export interface PostgresServer {
  readonly port: number
  /** `postgres://postgres:<password>@127.0.0.1:<port>/postgres` */
  readonly url: string
  /** The superuser's password (in `url`), for tests that check it is never printed. */
  readonly password: string
  /** The postmaster's process id (changes with `restart`). */
  readonly pid: () => number
  /** Immediate shutdown (SIGQUIT), waiting for the exit; the data directory is removed. */
  readonly stop: () => Promise<void>
  /** Immediate shutdown and a start on the same port and data: every connection is cut. */
  readonly restart: () => Promise<void>
}

/**
 * The postmaster, started by a shell that stops it when its stdin, a pipe from this process,
 * closes: a test process that dies without closing its scopes takes its servers with it.
 */
interface Running {
  readonly pid: number
  readonly wrapper: ChildProcess
}

const lifeline = `"$0" "$@" & echo "pid $!"; read _; kill -QUIT $! 2>/dev/null; wait`

const spawnServer = (port: number, dir: string) =>
  new Promise<Running>((resolve, reject) => {
    const args = [
      "-D",
      Path.join(dir, "data"),
      "-p",
      String(port),
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      `unix_socket_directories=${dir}`,
      // A test server: nothing is worth an fsync.
      "-c",
      "fsync=off",
      "-c",
      "synchronous_commit=off",
      "-c",
      "full_page_writes=off",
      "-c",
      "max_connections=200"
    ]
    const wrapper = spawn("sh", ["-c", lifeline, binary("postgres"), ...args], {
      stdio: ["pipe", "pipe", "pipe"],
      ...owner
    })
    let output = ""
    const onData = (chunk: string) => {
      output += chunk
      const pid = /^pid (\d+)$/m.exec(output)?.[1]
      if (pid !== undefined && output.includes("ready to accept connections")) {
        wrapper.stdout!.off("data", onData)
        wrapper.stderr!.off("data", onData)
        wrapper.stdout!.resume()
        wrapper.stderr!.resume()
        resolve({ pid: Number(pid), wrapper })
      }
    }
    wrapper.stdout!.setEncoding("utf8").on("data", onData)
    wrapper.stderr!.setEncoding("utf8").on("data", onData)
    wrapper.once("exit", (code) =>
      reject(new Error(`postgres exited (${code}) before it was ready: ${output.slice(-500)}`)))
  })

/** Immediate shutdown by pid, waiting until the shell has reaped the server (its port is free). */
const kill = (running: Running) =>
  new Promise<void>((resolve) => {
    if (running.wrapper.exitCode !== null || running.wrapper.signalCode !== null) return resolve()
    running.wrapper.once("exit", () => resolve())
    try {
      process.kill(running.pid, "SIGQUIT")
    } catch {
      // already gone
    }
    running.wrapper.stdin!.end()
  })

/** Creates the cluster in `dir/data`, owned by the server's user, with `password` for TCP. */
const initdb = (dir: string, password: string) => {
  if (owner !== undefined) Fs.chownSync(dir, owner.uid, owner.gid)
  const pwfile = Path.join(dir, "pwfile")
  Fs.writeFileSync(pwfile, password, { mode: 0o600 })
  if (owner !== undefined) Fs.chownSync(pwfile, owner.uid, owner.gid)
  const args = [
    "-D",
    Path.join(dir, "data"),
    "-U",
    "postgres",
    "--auth-local=trust",
    "--auth-host=scram-sha-256",
    `--pwfile=${pwfile}`,
    "-E",
    "UTF8",
    "--no-sync",
    "--no-instructions"
  ]
  const result = spawnSync(binary("initdb"), args, { encoding: "utf8", ...owner })
  Fs.rmSync(pwfile, { force: true })
  if (result.status !== 0) throw new Error(`initdb failed: ${(result.stderr ?? "").slice(-500)}`)
}

/**
 * Starts a PostgreSQL server on a free loopback port, in a fresh data directory.
 *
 * @since 0.1.0
 * @category constructors
 */
export const start = async (): Promise<PostgresServer> => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "amp-postgres-"))
  const password = randomBytes(12).toString("hex")
  initdb(dir, password)
  const launch = async (fixed: number | undefined) => {
    // A port found free may be taken before the server binds it: try again.
    for (let attempt = 0;; attempt++) {
      const candidate = fixed ?? await freePort()
      try {
        return { port: candidate, running: await spawnServer(candidate, dir) }
      } catch (error) {
        if (attempt >= 4) throw error
      }
    }
  }
  const first = await launch(undefined)
  let current = first.running
  return {
    port: first.port,
    url: `postgres://postgres:${password}@127.0.0.1:${first.port}/postgres`,
    password,
    pid: () => current.pid,
    stop: async () => {
      await kill(current)
      Fs.rmSync(dir, { recursive: true, force: true })
    },
    restart: async () => {
      await kill(current)
      current = (await launch(first.port)).running
    }
  }
}

/**
 * A PostgreSQL server for the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const scoped = () =>
  Effect.acquireRelease(Effect.promise(() => start()), (server) => Effect.promise(() => server.stop()))

/**
 * A free loopback port with nothing listening on it (for "Postgres down at start").
 *
 * @since 0.1.0
 * @category utils
 */
export const unusedPort = freePort
