/**
 * The parent side of the fleet tests against a replica speaking the protocol by hand
 * (`fixtures/protocolReplica.mjs`): what the Redis and Postgres fleet tests rely on without
 * being able to see it fail (a leak found, an error answer, a replica gone).
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Scope } from "effect"
import * as Fs from "node:fs"
import { fileURLToPath } from "node:url"
import { FleetReplicas } from "./fleet/index.js"

const script = fileURLToPath(new URL("fixtures/protocolReplica.mjs", import.meta.url))

// A variable of the developer's shell that no replica must see.
process.env.AMP_FLEET_PARENT = "parent"

describe("FleetReplicas", () => {
  it.scopedLive("a replica: its own directory, the env given, answers in order, its warnings", () =>
    Effect.gen(function*() {
      const replica = yield* FleetReplicas.start(script, { AMP_GIVEN: "given" })
      const [dir] = (yield* replica.send("where")).token!.split(" ")
      expect((yield* replica.send("where")).token).toBe(`${dir} ${dir} ${dir}`)
      expect(yield* FleetReplicas.tokens([replica], "env AMP_GIVEN")).toEqual(["given"])
      expect((yield* replica.send("env AMP_FLEET_PARENT")).token).toBeNull()
      const answers = yield* Effect.all(["a", "b", "c"].map((word) => replica.send(`echo ${word}`)), {
        concurrency: "unbounded"
      })
      expect(answers.map((answer) => answer.token)).toEqual(["a", "b", "c"])
      expect(replica.warnings()).toEqual(["careful"])
      expect(Fs.existsSync(dir!)).toBe(true)
      return dir!
    }).pipe(Effect.scoped, Effect.map((dir) => expect(Fs.existsSync(dir)).toBe(false))))

  it.scopedLive("tokens dies on an error answer", () =>
    Effect.gen(function*() {
      const replicas = yield* FleetReplicas.startMany(script, 2, {})
      const exit = yield* Effect.exit(FleetReplicas.tokens(replicas, "fail"))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
    }))

  it.scopedLive("printedTokens: a token in a log line is found, one only in answers is not", () =>
    Effect.gen(function*() {
      const replica = yield* FleetReplicas.start(script, {})
      const server = { issuedTokens: Effect.succeed(["h.logged.s", "h.answered.s"]) }
      yield* replica.send("echo h.answered.s")
      expect(yield* FleetReplicas.printedTokens([replica], server)).toEqual([])
      yield* replica.send("log logged")
      expect(yield* FleetReplicas.printedTokens([replica], server)).toEqual(["h.logged.s"])
    }))

  it.scopedLive("a replica killed: a pending command and a later one die", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const replica = yield* Scope.extend(FleetReplicas.start(script, {}), scope)
      replica.process.kill("SIGSTOP")
      const pending = yield* Effect.fork(replica.send("echo late"))
      yield* Scope.close(scope, Exit.void)
      expect(Exit.isFailure(yield* Fiber.await(pending))).toBe(true)
      expect(Exit.isFailure(yield* Effect.exit(replica.send("echo after")))).toBe(true)
    }))
})
