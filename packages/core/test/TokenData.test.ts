import { describe, expect, it } from "@effect/vitest"
import { DateTime, Duration, Either, Option, Redacted } from "effect"
import * as AmpHttp from "../src/internal/ampHttp.js"
import * as Jwt from "../src/Jwt.js"
import * as TokenData from "../src/TokenData.js"
import { jwt } from "./utils/ScriptedAuthApi.js"

const rustFile = `{
  "token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDQxOTY4MDB9.c2ln",
  "expires_at": "2024-01-02T12:00:00.123456789Z",
  "obtained_at": "2024-01-01T12:00:00.123456789Z"
}`

describe("TokenData", () => {
  it("reads the Rust client's file (nine fractional digits)", () => {
    const data = Either.getOrThrow(TokenData.decodeFile(rustFile))
    expect(DateTime.formatIso(data.expiresAt)).toBe("2024-01-02T12:00:00.123Z")
    expect(DateTime.formatIso(data.obtainedAt)).toBe("2024-01-01T12:00:00.123Z")
    expect(Redacted.value(data.token)).toMatch(/^eyJ0eXAi/)
  })

  it("reads offsets, lower-case separators and whole seconds", () => {
    const file = (at: string) => JSON.stringify({ token: "t", expires_at: at, obtained_at: "2024-01-01T00:00:00Z" })
    const at = (text: string) => DateTime.formatIso(Either.getOrThrow(TokenData.decodeFile(file(text))).expiresAt)
    expect(at("2024-01-02T14:00:00+02:00")).toBe("2024-01-02T12:00:00.000Z")
    expect(at("2024-01-02t12:00:00.5z")).toBe("2024-01-02T12:00:00.500Z")
    expect(at("2024-01-02T12:00:00Z")).toBe("2024-01-02T12:00:00.000Z")
    // RFC 3339 allows a space for the T.
    expect(at("2024-01-02 12:00:00Z")).toBe("2024-01-02T12:00:00.000Z")
  })

  it("says what is wrong with a time that is not RFC 3339", () => {
    const result = TokenData.decodeFile(
      JSON.stringify({ token: "t", expires_at: "tomorrow", obtained_at: "2024-01-01T00:00:00Z" })
    )
    expect(Either.isLeft(result) && result.left.message).toContain("expected an RFC 3339 timestamp")
  })

  it("a stored token follows the one token rule: printable ASCII, no whitespace, at most 8 KiB", () => {
    const file = (token: string) =>
      JSON.stringify({ token, expires_at: "2024-01-02T00:00:00Z", obtained_at: "2024-01-01T00:00:00Z" })
    const problem = (token: string) =>
      Either.match(TokenData.decodeFile(file(token)), { onLeft: (error) => error.message, onRight: () => "ok" })
    expect(problem("t".repeat(TokenData.maxTokenBytes))).toBe("ok")
    expect(problem("t".repeat(TokenData.maxTokenBytes + 1))).toContain("token of 8193 bytes, over the 8192-byte limit")
    expect(problem("é".repeat(8193))).toContain("token of 16386 bytes, over the 8192-byte limit")
    for (const bad of ["sec ret", "sec\u0000ret", "secrét"]) {
      expect(problem(bad)).toContain("expected printable ASCII without whitespace")
      expect(problem(bad)).not.toContain("sec")
    }
    expect(problem("!~")).toBe("ok")
  })

  it("withJwtExpiry keeps the very same data when the token has no exp", () => {
    const data = Either.getOrThrow(TokenData.decodeFile(rustFile.replace(/"token": "[^"]*"/, "\"token\": \"opaque\"")))
    expect(data.withJwtExpiry()).toBe(data)
  })

  it("writes the seed's format with exactly the three fields", () => {
    const data = Either.getOrThrow(TokenData.decodeFile(rustFile))
    const written = JSON.parse(TokenData.encodeFile(data))
    expect(Object.keys(written).sort()).toEqual(["expires_at", "obtained_at", "token"])
    expect(written.expires_at).toBe("2024-01-02T12:00:00.123Z")
    expect(Either.isRight(TokenData.decodeFile(TokenData.encodeFile(data)))).toBe(true)
    expect(TokenData.encodeFile(data).endsWith("}\n")).toBe(true)
  })

  const bad: ReadonlyArray<readonly [string, string]> = [
    ["not JSON", "{ token: "],
    ["an array", "[]"],
    ["a missing field", JSON.stringify({ token: "t", expires_at: "2024-01-02T12:00:00Z" })],
    [
      "a non-RFC 3339 time",
      JSON.stringify({ token: "t", expires_at: "tomorrow", obtained_at: "2024-01-01T00:00:00Z" })
    ],
    [
      "an impossible date",
      JSON.stringify({ token: "t", expires_at: "2024-13-45T12:00:00Z", obtained_at: "2024-01-01T00:00:00Z" })
    ],
    [
      "a token with a newline",
      JSON.stringify({ token: "a\nb", expires_at: "2024-01-02T12:00:00Z", obtained_at: "2024-01-01T00:00:00Z" })
    ],
    [
      "an empty token",
      JSON.stringify({ token: "", expires_at: "2024-01-02T12:00:00Z", obtained_at: "2024-01-01T00:00:00Z" })
    ]
  ]
  for (const [name, text] of bad) {
    it(`refuses ${name}`, () => {
      expect(Either.isLeft(TokenData.decodeFile(text))).toBe(true)
    })
  }

  it("never shows the token when printed", () => {
    const data = Either.getOrThrow(TokenData.decodeFile(rustFile))
    expect(String(data)).not.toContain("eyJ0eXAi")
    expect(JSON.stringify(data)).not.toContain("eyJ0eXAi")
  })

  it("takes the expiry from the JWT's exp, else obtained + 24 h", () => {
    const obtained = DateTime.unsafeMake("2024-01-01T00:00:00Z")
    const withExp = TokenData.TokenData.fromToken(Redacted.make(jwt({ exp: 1704070800 })), obtained)
    expect(DateTime.formatIso(withExp.expiresAt)).toBe("2024-01-01T01:00:00.000Z")
    const withoutExp = TokenData.TokenData.fromToken(Redacted.make(jwt({ sub: "x" })), obtained)
    expect(DateTime.formatIso(withoutExp.expiresAt)).toBe("2024-01-02T00:00:00.000Z")
    const opaque = TokenData.TokenData.fromToken(Redacted.make("opaque-token"), obtained)
    expect(DateTime.distanceDuration(opaque.obtainedAt, opaque.expiresAt)).toEqual(Duration.hours(24))
  })
})

describe("Jwt.expiry", () => {
  it("reads exp in seconds", () => {
    expect(Option.map(Jwt.expiry(jwt({ exp: 1704196800 })), DateTime.formatIso)).toEqual(
      Option.some("2024-01-02T12:00:00.000Z")
    )
  })
  const unreadable: ReadonlyArray<readonly [string, string]> = [
    ["two parts", "abc.def"],
    ["a payload that is not base64url JSON", "a.%%%.c"],
    ["a string exp", jwt({ exp: "soon" })],
    ["a numeric string exp", jwt({ exp: "1704196800" })],
    ["an exp of zero", jwt({ exp: 0 })],
    ["a negative exp", jwt({ exp: -5 })],
    ["no exp", jwt({ sub: "x" })],
    ["a JSON array payload", `a.${Buffer.from("[1]").toString("base64url")}.c`]
  ]
  for (const [name, token] of unreadable) {
    it(`gives None for ${name}`, () => {
      expect(Jwt.expiry(token)).toEqual(Option.none())
    })
  }
})

describe("describeCause", () => {
  it("names the cause and the cause's cause, or nothing", () => {
    const refused = new Error("fetch failed", { cause: new Error("connect ECONNREFUSED 127.0.0.1:9") })
    expect(AmpHttp.describeCause({ cause: refused })).toBe("fetch failed: connect ECONNREFUSED 127.0.0.1:9")
    expect(AmpHttp.describeCause({ cause: new Error("socket hang up") })).toBe("socket hang up")
    expect(AmpHttp.describeCause({ cause: "not an error" })).toBe("")
  })
})

describe("cleanText", () => {
  it("replaces every occurrence of a secret, folds whitespace and cuts long text", () => {
    expect(AmpHttp.cleanText("bad  pass: hunter22\n hunter22", ["hunter22"])).toBe("bad pass: <redacted> <redacted>")
    expect(AmpHttp.cleanText("x".repeat(300), []).length).toBe(201)
    expect(AmpHttp.cleanText("x".repeat(200), [])).toBe("x".repeat(200))
    expect(AmpHttp.cleanText("Transport error (POST http://x)", ["p"])).toBe("Transport error (POST http://x)")
    expect(AmpHttp.cleanText("a pass b", ["pass", "  "])).toBe("a <redacted> b")
  })
})
