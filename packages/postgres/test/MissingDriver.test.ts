import { Cause, Effect, Exit, Redacted } from "effect"
import { describe, expect, it, vi } from "vitest"
import * as PostgresTokenStore from "../src/PostgresTokenStore.js"

// As an installation without the optional peer dependency (or a bundle without its file).
vi.mock("@effect/sql-pg/PgClient", () => {
  throw new Error("no driver in this installation")
})

describe("PostgresTokenStore without @effect/sql-pg", () => {
  it("is built; its first operation is a defect that says which package to install, and why it failed", async () => {
    const exit = await Effect.runPromiseExit(Effect.scoped(Effect.flatMap(
      PostgresTokenStore.makeUrl({
        url: Redacted.make("postgres://app:pw@127.0.0.1:1/app"),
        account: { baseUrl: "https://amp.example/api", username: "svc" }
      }),
      (store) => store.load
    )))
    expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
    const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
    expect(defect).toBeInstanceOf(Error)
    // Followed by the import's own message (vitest words it), not the error's `String` form.
    expect((defect as Error).message).toMatch(
      /^PostgresTokenStore needs @effect\/sql-pg \(npm install @effect\/sql-pg\): \S/
    )
    expect((defect as Error).message).not.toContain("): Error:")
  })
})
