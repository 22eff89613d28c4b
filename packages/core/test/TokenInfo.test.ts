import { describe, expect, it } from "@effect/vitest"
import { DateTime, Duration, Redacted } from "effect"
import { TokenData } from "../src/TokenData.js"
import * as TokenInfo from "../src/TokenInfo.js"

const obtainedAt = Date.UTC(2024, 0, 1)
const expiresAt = obtainedAt + 24 * 3600_000
const data = new TokenData({
  token: Redacted.make("t"),
  obtainedAt: DateTime.unsafeMake(obtainedAt),
  expiresAt: DateTime.unsafeMake(expiresAt)
})
const margin = Duration.minutes(5)

describe("TokenInfo.make", () => {
  it("age and time left, never negative", () => {
    const info = TokenInfo.make(data, obtainedAt + 3_600_000, margin)
    expect(Duration.toMillis(info.age)).toBe(3_600_000)
    expect(Duration.toMillis(info.expiresIn)).toBe(23 * 3_600_000)
    expect([info.isExpired, info.expiresSoon]).toEqual([false, false])
    const early = TokenInfo.make(data, obtainedAt - 1_000, margin)
    expect(Duration.toMillis(early.age)).toBe(0)
    const late = TokenInfo.make(data, expiresAt + 1_000, margin)
    expect(Duration.toMillis(late.expiresIn)).toBe(0)
    expect([late.isExpired, late.expiresSoon]).toEqual([true, false])
  })

  it("expiresSoon from exactly the margin before expiry until expiry", () => {
    const at = (now: number) => {
      const info = TokenInfo.make(data, now, margin)
      return [info.isExpired, info.expiresSoon]
    }
    expect(at(expiresAt - 300_001)).toEqual([false, false])
    expect(at(expiresAt - 300_000)).toEqual([false, true])
    expect(at(expiresAt - 1)).toEqual([false, true])
    expect(at(expiresAt)).toEqual([true, false])
  })
})
