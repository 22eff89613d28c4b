/**
 * A real `redis-server` for the tests: started by the tests themselves on a random loopback
 * port with persistence off, stopped by its pid.
 *
 * Without `redis-server` on the PATH the Redis tests are skipped with a one-line reason, except
 * in CI (`CI` set), where a missing server fails the run: CI installs it.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { createClient } from "redis"

/** The server binary: `redis-server` on the PATH, or `REDIS_SERVER` (a path, or `valkey-server`). */
const binary = process.env.REDIS_SERVER ?? "redis-server"

const found = spawnSync(binary, ["--version"], { encoding: "utf8" })

/**
 * Why the Redis tests cannot run here, or `undefined` when they can.
 *
 * @since 0.1.0
 * @category utils
 */
export const unavailable: string | undefined = found.status === 0
  ? undefined
  : `${binary} is not installed (apt-get install redis-server, or brew install redis)`

if (unavailable !== undefined && process.env.CI !== undefined && process.env.CI !== "") {
  throw new Error(`CI never skips the Redis tests: ${unavailable}`)
}

let warned = false
/**
 * Prints the reason for skipping once per test file.
 *
 * @since 0.1.0
 * @category utils
 */
export const warnIfSkipped = () => {
  if (unavailable !== undefined && !warned) {
    warned = true
    console.warn(`Skipping the Redis tests: ${unavailable}`)
  }
}

/** A free TCP port on 127.0.0.1 (the kernel's choice; taken again by redis-server at once). */
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
 * A running redis-server.
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisServer {
  readonly port: number
  readonly url: string
  /** The current process id (changes with `restart`). */
  readonly pid: () => number
  /** SIGKILL, waiting for the exit; nothing is persisted, so its data is gone. */
  readonly stop: () => Promise<void>
  /** Stops it and starts a fresh one on the same port: no data, no scripts. */
  readonly restart: () => Promise<void>
  /** SIGSTOP: the connections stay open, nothing answers. */
  readonly pause: () => void
  /** SIGCONT. */
  readonly resume: () => void
  /** Runs one command on the test's own connection (not while paused). */
  readonly command: (...args: Array<string>) => Promise<unknown>
}

/**
 * A running redis-server, started through a small shell that holds a lifeline: the shell reads
 * its stdin, which is a pipe from this process, and kills the server when the pipe closes. So a
 * test process that dies without closing its scopes (a test timed out, a worker killed) takes
 * its servers with it instead of leaving them running.
 */
interface Running {
  readonly pid: number
  readonly wrapper: ChildProcess
}

const lifeline = `${JSON.stringify(binary)} "$@" & echo "pid $!"; read _; kill -9 $! 2>/dev/null; wait`

const spawnServer = (port: number, dir: string) =>
  new Promise<Running>((resolve, reject) => {
    const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir]
    const wrapper = spawn("sh", ["-c", lifeline, "sh", ...args], { stdio: ["pipe", "pipe", "pipe"] })
    let output = ""
    const onData = (chunk: string) => {
      output += chunk
      const pid = /^pid (\d+)$/m.exec(output)?.[1]
      if (pid !== undefined && output.includes("Ready to accept connections")) {
        wrapper.stdout!.off("data", onData)
        wrapper.stdout!.resume()
        resolve({ pid: Number(pid), wrapper })
      }
    }
    wrapper.stdout!.setEncoding("utf8").on("data", onData)
    wrapper.stderr!.resume()
    wrapper.once("exit", (code) =>
      reject(new Error(`redis-server exited (${code}) before it was ready: ${output.slice(-500)}`)))
  })

/** SIGKILLs the server by its pid and waits until the shell has reaped it (its port is free). */
const kill = (running: Running) =>
  new Promise<void>((resolve) => {
    if (running.wrapper.exitCode !== null || running.wrapper.signalCode !== null) return resolve()
    running.wrapper.once("exit", () => resolve())
    try {
      process.kill(running.pid, "SIGKILL")
    } catch {
      // already gone
    }
    running.wrapper.stdin!.end()
  })

/**
 * Starts a redis-server on a free loopback port (or on `port`), persistence off.
 *
 * @since 0.1.0
 * @category constructors
 */
export const start = async (options?: { readonly port?: number }): Promise<RedisServer> => {
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "amp-redis-"))
  const launch = async (fixed: number | undefined) => {
    // A port found free may be taken before redis-server binds it, and a port just freed may
    // take a moment: try again.
    for (let attempt = 0;; attempt++) {
      const candidate = fixed ?? await freePort()
      try {
        return { port: candidate, running: await spawnServer(candidate, dir) }
      } catch (error) {
        if (attempt >= 4) throw error
      }
    }
  }
  const first = await launch(options?.port)
  const port = first.port
  let current = first.running
  const url = `redis://127.0.0.1:${port}`
  // One connection for the test's own commands, reconnecting after a restart.
  let inspector: ReturnType<typeof createClient> | undefined
  return {
    port,
    url,
    pid: () => current.pid,
    stop: async () => {
      inspector?.destroy()
      await kill(current)
      Fs.rmSync(dir, { recursive: true, force: true })
    },
    restart: async () => {
      await kill(current)
      current = (await launch(port)).running
    },
    pause: () => process.kill(current.pid, "SIGSTOP"),
    resume: () => process.kill(current.pid, "SIGCONT"),
    command: async (...args) => {
      if (inspector === undefined) {
        inspector = createClient({ url })
        inspector.on("error", () => {})
        await inspector.connect()
      }
      return inspector.sendCommand(args)
    }
  }
}

/**
 * A redis-server for the scope of a test.
 *
 * @since 0.1.0
 * @category constructors
 */
export const scoped = (options?: { readonly port?: number }) =>
  Effect.acquireRelease(Effect.promise(() => start(options)), (server) => Effect.promise(() => server.stop()))

/**
 * A free loopback port with nothing listening on it (for "Redis down at start").
 *
 * @since 0.1.0
 * @category utils
 */
export const unusedPort = freePort
