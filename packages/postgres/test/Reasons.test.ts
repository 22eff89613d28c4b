import { describe, expect, it } from "vitest"
import { reasonOf } from "../src/internal/postgresTokenStore.js"

const quiet = { secrets: [] }
const failed = (message: string, cause?: unknown) => Object.assign(new Error(message), { cause })

describe("the reason a store error quotes", () => {
  it("is the error's message, followed by its cause's when that says more", () => {
    expect(reasonOf(quiet, failed("query failed", new Error("ECONNRESET")))).toBe("query failed: ECONNRESET")
    expect(reasonOf(quiet, failed("timeout expired", new Error("timeout expired")))).toBe("timeout expired")
    expect(reasonOf(quiet, failed("connect failed"))).toBe("connect failed")
    expect(reasonOf(quiet, failed("connect failed", null))).toBe("connect failed")
    expect(reasonOf(quiet, failed("connect failed", "a text, no message"))).toBe("connect failed")
    expect(reasonOf(quiet, failed("connect failed", { code: "ECONNREFUSED" }))).toBe("connect failed")
    expect(reasonOf(quiet, failed("connect failed", new Error("")))).toBe("connect failed")
    expect(reasonOf(quiet, "not an object")).toBe("not an object")
    expect(reasonOf(quiet, null)).toBe("null")
  })

  it("never holds a secret, however often it appears", () => {
    expect(reasonOf({ secrets: ["s3cret", "s%33cret"] }, failed("user s3cret: no", new Error("s%33cret and s3cret"))))
      .toBe("user <redacted>: no: <redacted> and <redacted>")
  })

  it("is cut after 300 characters", () => {
    expect(reasonOf(quiet, failed("x".repeat(300)))).toBe("x".repeat(300))
    expect(reasonOf(quiet, failed("x".repeat(299) + "yz"))).toBe(`${"x".repeat(299)}y…`)
  })
})
