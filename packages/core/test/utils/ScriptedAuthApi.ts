/**
 * A scripted `AuthApi` for tests: counts calls, issues JWT-shaped tokens whose `exp` follows
 * `Clock` (so `TestClock` drives expiry), and fails on demand.
 */
import { Duration, Effect, Layer, Redacted } from "effect"
import * as AuthApi from "../../src/AuthApi.js"
import * as MockAmp from "../../src/MockAmp.js"
import type * as TokenError from "../../src/TokenError.js"

/** A JWT-shaped token with the given payload (signature is junk: nobody verifies it here). */
export const jwt = (payload: Record<string, unknown>): string => MockAmp.jwt(payload)

export interface Script {
  obtainCalls: number
  refreshCalls: number
  /** Tokens presented to `refresh`, in order. */
  readonly refreshedFrom: Array<string>
  /** Every token issued, in order. */
  readonly issued: Array<string>
  /** Lifetime (exp − now) of issued tokens. */
  lifetime: Duration.Duration
  /** How long each call takes (use `TestClock.adjust` to let it finish). */
  latency: Duration.Duration
  /** Failures consumed one per call, before any token is issued. */
  readonly obtainFailures: Array<TokenError.AuthError>
  readonly refreshFailures: Array<TokenError.AuthError>
}

export const make = (): { readonly script: Script; readonly layer: Layer.Layer<AuthApi.AuthApi> } => {
  const script: Script = {
    obtainCalls: 0,
    refreshCalls: 0,
    refreshedFrom: [],
    issued: [],
    lifetime: Duration.hours(1),
    latency: Duration.zero,
    obtainFailures: [],
    refreshFailures: []
  }
  const issue = Effect.gen(function*() {
    const token = yield* MockAmp.mintToken({ lifetime: script.lifetime, jti: script.issued.length })
    script.issued.push(token)
    return Redacted.make(token)
  })
  const call = (failures: Array<TokenError.AuthError>) =>
    Effect.zipRight(
      Effect.sleep(script.latency),
      Effect.suspend(() => {
        const failure = failures.shift()
        return failure === undefined ? issue : Effect.fail(failure)
      })
    )
  const api = AuthApi.AuthApi.of({
    obtain: Effect.suspend(() => {
      script.obtainCalls++
      return call(script.obtainFailures)
    }),
    refresh: (token) =>
      Effect.suspend(() => {
        script.refreshCalls++
        script.refreshedFrom.push(Redacted.value(token))
        return call(script.refreshFailures)
      })
  })
  return { script, layer: Layer.succeed(AuthApi.AuthApi, api) }
}
