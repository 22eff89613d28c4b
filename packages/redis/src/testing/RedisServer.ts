/**
 * A real `redis-server` for the tests, started by the tests themselves on a loopback port with
 * persistence off. Without one on the PATH (or `REDIS_SERVER`) the Redis tests are skipped with
 * a one-line reason, except in CI (`CI` set), where a missing server fails the run.
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

const binary = process.env.REDIS_SERVER ?? "redis-server"

/**
 * Why the Redis tests cannot run here, or `undefined` when they can.
 *
 * @since 0.1.0
 * @category utils
 */
export const unavailable: string | undefined = spawnSync(binary, ["--version"]).status === 0
  ? undefined
  : `${binary} is not installed (apt-get install redis-server, or brew install redis)`

if (unavailable !== undefined && (process.env.CI ?? "") !== "") {
  throw new Error(`CI never skips the Redis tests: ${unavailable}`)
}

let warned = false
/**
 * Prints the reason for skipping, once per test file.
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

/**
 * A free loopback port with nothing listening on it (for "Redis down at start").
 *
 * @since 0.1.0
 * @category utils
 */
export const unusedPort = () =>
  new Promise<number>((resolve, reject) => {
    const server = Net.createServer().once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as Net.AddressInfo
      server.close(() => resolve(port))
    })
  })

/**
 * A running redis-server: `stop` (SIGKILL: its data is gone), `restart` (a fresh one on the same
 * port: no data, no scripts), `pause` and `resume` (SIGSTOP, SIGCONT: connections stay open,
 * nothing answers), and `command` (one command on the test's own connection).
 *
 * @since 0.1.0
 * @category models
 */
export interface RedisServer {
  readonly url: string
  readonly stop: () => Promise<void>
  readonly restart: () => Promise<void>
  readonly pause: () => void
  readonly resume: () => void
  readonly command: (...args: Array<string>) => Promise<unknown>
}

/**
 * The server runs under a shell that kills it when its stdin, a pipe from this process, closes:
 * a test process that dies without closing its scopes takes its servers with it.
 */
const lifeline = `${JSON.stringify(binary)} "$@" & echo "pid $!"; read _; kill -9 $! 2>/dev/null; wait`

interface Running {
  readonly pid: number
  readonly wrapper: ChildProcess
}

const spawnServer = (port: number, dir: string) =>
  new Promise<Running>((resolve, reject) => {
    const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir]
    const wrapper = spawn("sh", ["-c", lifeline, "sh", ...args], { stdio: ["pipe", "pipe", "ignore"] })
    let output = ""
    const onData = (chunk: string) => {
      output += chunk
      const pid = /^pid (\d+)$/m.exec(output)?.[1]
      if (pid !== undefined && output.includes("Ready to accept connections")) {
        wrapper.stdout!.off("data", onData).resume()
        resolve({ pid: Number(pid), wrapper })
      }
    }
    wrapper.stdout!.setEncoding("utf8").on("data", onData)
    wrapper.once("exit", (code) =>
      reject(new Error(`redis-server exited (${code}) before it was ready: ${output.slice(-500)}`)))
  })

/** SIGKILLs the server and waits until the shell has reaped it (its port is free). */
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
  // A port found free may be taken before redis-server binds it, and one just freed may take
  // a moment: try again.
  const launch = async (fixed: number | undefined, attempt = 0): Promise<[number, Running]> => {
    const port = fixed ?? await unusedPort()
    return spawnServer(port, dir).then(
      (running) => [port, running],
      (error) => attempt < 4 ? launch(fixed, attempt + 1) : Promise.reject(error)
    )
  }
  const [port, first] = await launch(options?.port)
  let current = first
  const url = `redis://127.0.0.1:${port}`
  let inspector: ReturnType<typeof createClient> | undefined
  return {
    url,
    stop: async () => {
      inspector?.destroy()
      await kill(current)
      Fs.rmSync(dir, { recursive: true, force: true })
    },
    restart: async () => {
      await kill(current)
      current = (await launch(port))[1]
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
