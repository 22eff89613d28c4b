import { describe, expect, it } from "@effect/vitest"
import { NoTokenToRefresh } from "../src/TokenError.js"

describe("NoTokenToRefresh", () => {
  it("says why there is nothing to refresh", () => {
    expect(new NoTokenToRefresh({ reason: "expired" }).message).toBe(
      "The current AMP token has expired and cannot be refreshed: obtain a new one"
    )
    expect(new NoTokenToRefresh({ reason: "no token" }).message).toBe(
      "There is no AMP token to refresh: obtain one first"
    )
  })
})
