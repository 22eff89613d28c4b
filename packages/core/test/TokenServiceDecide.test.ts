/**
 * `decide`, the token service's whole policy of who renews, who shares whose result and who
 * waits, as a table: mode × state × time → decision.
 */
import { describe, expect, it } from "@effect/vitest"
import { DateTime, Deferred, FiberId, Redacted } from "effect"
import * as internal from "../src/internal/tokenService.js"
import { TokenData } from "../src/TokenData.js"

/** A token expiring at 2000 ms, to be renewed from 1500 ms. */
const current = (token: string): internal.Current => ({
  data: new TokenData({
    token: Redacted.make(token),
    obtainedAt: DateTime.unsafeMake(0),
    expiresAt: DateTime.unsafeMake(2000)
  }),
  expiresAt: 2000,
  refreshAt: 1500
})

const t = current("token-t")
const u = current("token-u")

/** Instants against `t` and `u`. */
const valid = 1000
const inMargin = 1600
const expired = 2500

const idle = (current: internal.Current | undefined): internal.Idle => ({ _tag: "Idle", current })
/** A renewal under way, started by `kind`, with `current` in memory (`t` unless given, `null` for none). */
const renewing = (kind: internal.Mode["_tag"], current: internal.Current | null = t): internal.Renewing => ({
  _tag: "Renewing",
  current: current ?? undefined,
  kind,
  outcome: Deferred.unsafeMake(FiberId.none)
})
const clearing = (): internal.Clearing => ({
  _tag: "Clearing",
  current: undefined,
  done: Deferred.unsafeMake(FiberId.none)
})

const auto: internal.Mode = { _tag: "Auto" }
const rejected = (current: internal.Current): internal.Mode => ({ _tag: "Rejected", token: current.data.token })
/** An explicit call on its first look (`behind` undefined), or after waiting for `behind`. */
const explicit = (tag: "Obtain" | "Refresh" | "RefreshOnly", behind?: internal.Busy): internal.Mode => ({
  _tag: tag,
  queuedBehind: behind
})

/** The decision expected; `Share` and `Queue` name the work of the state they are made in. */
type Expected =
  | { readonly _tag: "Serve"; readonly current: internal.Current }
  | { readonly _tag: "Start" }
  | { readonly _tag: "Share" }
  | { readonly _tag: "Queue" }
  | { readonly _tag: "Refuse"; readonly reason: "no token" | "expired" }

const serve = (current: internal.Current): Expected => ({ _tag: "Serve", current })
const start: Expected = { _tag: "Start" }
const share: Expected = { _tag: "Share" }
const queue: Expected = { _tag: "Queue" }
const refuse = (reason: "no token" | "expired"): Expected => ({ _tag: "Refuse", reason })

/** A state that some explicit call waited for before the one in the row started. */
const earlier = renewing("Auto")

const table: ReadonlyArray<readonly [string, internal.Mode, internal.State, number, Expected]> = [
  // getToken: the token in memory while it is outside the margin; else one renewal for all.
  ["Auto, no token", auto, idle(undefined), valid, start],
  ["Auto, valid token", auto, idle(t), valid, serve(t)],
  ["Auto, token in the margin", auto, idle(t), inMargin, start],
  ["Auto, token expired", auto, idle(t), expired, start],
  ["Auto, valid token while renewing", auto, renewing("Obtain"), valid, serve(t)],
  ["Auto, token in the margin while getToken renews", auto, renewing("Auto"), inMargin, share],
  ["Auto, no token while obtainToken renews", auto, renewing("Obtain", null), valid, share],
  ["Auto, token expired while renewRejected renews", auto, renewing("Rejected"), expired, share],
  ["Auto, token in the margin while forceRefresh renews", auto, renewing("Refresh"), inMargin, share],
  ["Auto, while refreshToken renews (it has no login fallback)", auto, renewing("RefreshOnly"), inMargin, queue],
  ["Auto, while clearing", auto, clearing(), valid, queue],

  // renewRejected: a renewal only while the rejected token is current (or nothing valid is).
  ["Rejected, the rejected token is current", rejected(t), idle(t), valid, start],
  ["Rejected, already replaced by a valid token", rejected(t), idle(u), valid, serve(u)],
  ["Rejected, replaced by a token in the margin", rejected(t), idle(u), inMargin, serve(u)],
  ["Rejected, replaced by an expired token", rejected(t), idle(u), expired, start],
  ["Rejected, no token", rejected(t), idle(undefined), valid, start],
  ["Rejected, while getToken renews the rejected token", rejected(t), renewing("Auto", t), valid, share],
  ["Rejected, while obtainToken renews the rejected token", rejected(t), renewing("Obtain", t), valid, share],
  ["Rejected, already replaced, while renewing", rejected(t), renewing("Auto", u), valid, serve(u)],
  ["Rejected, while refreshToken renews", rejected(t), renewing("RefreshOnly", t), valid, queue],
  ["Rejected, while clearing", rejected(t), clearing(), valid, queue],

  // obtainToken: always a login of its own, or one that started after the call.
  ["Obtain, valid token", explicit("Obtain"), idle(t), valid, start],
  ["Obtain, no token", explicit("Obtain"), idle(undefined), valid, start],
  ["Obtain, first look, while getToken renews", explicit("Obtain"), renewing("Auto"), inMargin, queue],
  ["Obtain, first look, while obtainToken renews", explicit("Obtain"), renewing("Obtain"), valid, queue],
  ["Obtain, after waiting, a later login", explicit("Obtain", earlier), renewing("Obtain"), valid, share],
  ["Obtain, after waiting, a later forced refresh", explicit("Obtain", earlier), renewing("Refresh"), valid, queue],
  ["Obtain, after waiting, a later getToken renewal", explicit("Obtain", earlier), renewing("Auto"), inMargin, queue],
  ["Obtain, after waiting, a later renewRejected", explicit("Obtain", earlier), renewing("Rejected"), valid, queue],
  ["Obtain, after waiting, a later refreshToken", explicit("Obtain", earlier), renewing("RefreshOnly"), valid, queue],
  [
    "Obtain, after waiting for a clear, a later login",
    explicit("Obtain", clearing()),
    renewing("Obtain"),
    valid,
    share
  ],
  ["Obtain, while clearing", explicit("Obtain"), clearing(), valid, queue],

  // forceRefresh: a renewal of its own, or a login or forced refresh that started after the call.
  ["Refresh, valid token", explicit("Refresh"), idle(t), valid, start],
  ["Refresh, token expired", explicit("Refresh"), idle(t), expired, start],
  ["Refresh, first look, while forceRefresh renews", explicit("Refresh"), renewing("Refresh"), valid, queue],
  ["Refresh, first look, while obtainToken renews", explicit("Refresh"), renewing("Obtain"), valid, queue],
  ["Refresh, after waiting, a later login", explicit("Refresh", earlier), renewing("Obtain"), valid, share],
  ["Refresh, after waiting, a later forced refresh", explicit("Refresh", earlier), renewing("Refresh"), valid, share],
  ["Refresh, after waiting, a later getToken renewal", explicit("Refresh", earlier), renewing("Auto"), inMargin, queue],
  ["Refresh, after waiting, a later refreshToken", explicit("Refresh", earlier), renewing("RefreshOnly"), valid, queue],
  ["Refresh, while clearing", explicit("Refresh"), clearing(), valid, queue],

  // refreshToken: a refresh of an unexpired token, never a login.
  ["RefreshOnly, no token", explicit("RefreshOnly"), idle(undefined), valid, refuse("no token")],
  ["RefreshOnly, token expired", explicit("RefreshOnly"), idle(t), expired, refuse("expired")],
  ["RefreshOnly, valid token", explicit("RefreshOnly"), idle(t), valid, start],
  ["RefreshOnly, token in the margin", explicit("RefreshOnly"), idle(t), inMargin, start],
  [
    "RefreshOnly, first look, while refreshToken renews",
    explicit("RefreshOnly"),
    renewing("RefreshOnly"),
    valid,
    queue
  ],
  [
    "RefreshOnly, after waiting, a later refreshToken",
    explicit("RefreshOnly", earlier),
    renewing("RefreshOnly"),
    valid,
    share
  ],
  ["RefreshOnly, after waiting, a later login", explicit("RefreshOnly", earlier), renewing("Obtain"), valid, queue],
  [
    "RefreshOnly, after waiting, a later forced refresh",
    explicit("RefreshOnly", earlier),
    renewing("Refresh"),
    valid,
    queue
  ],
  ["RefreshOnly, while clearing", explicit("RefreshOnly"), clearing(), valid, queue]
]

describe("TokenService decide", () => {
  it.each(table)("%s", (_, mode, state, now, expected) => {
    const decision = internal.decide(mode, state, now)
    expect(decision._tag).toBe(expected._tag)
    // The payloads by identity: the very token in memory, the very renewal under way.
    if (decision._tag === "Serve" && expected._tag === "Serve") expect(decision.current).toBe(expected.current)
    if (decision._tag === "Share") {
      expect(decision.outcome).toBe(state._tag === "Renewing" ? state.outcome : "not renewing")
    }
    if (decision._tag === "Queue") expect(decision.behind).toBe(state)
    if (decision._tag === "Refuse" && expected._tag === "Refuse") expect(decision.reason).toBe(expected.reason)
  })

  it("an explicit call never shares the renewal it waited for, even if it is still announced", () => {
    const waitedFor = renewing("Obtain")
    for (const tag of ["Obtain", "Refresh", "RefreshOnly"] as const) {
      const same = renewing(tag)
      expect(internal.decide(explicit(tag, same), same, valid)._tag).toBe("Queue")
      expect(internal.decide(explicit(tag, waitedFor), waitedFor, valid)._tag).toBe("Queue")
    }
  })

  it("covers every mode against every kind of state", () => {
    const modes = new Set(table.map(([, mode]) => mode._tag))
    expect(modes).toEqual(new Set(["Auto", "Rejected", "Obtain", "Refresh", "RefreshOnly"]))
    for (const mode of modes) {
      const states = new Set(table.filter(([, m]) => m._tag === mode).map(([, , state]) => state._tag))
      expect(states, mode).toEqual(new Set(["Idle", "Renewing", "Clearing"]))
    }
  })
})
