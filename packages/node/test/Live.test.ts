/**
 * Against the real AMP API. Runs only with `AMP_TESTS=live` and real credentials in
 * `AMP_USERNAME` / `AMP_PASSWORD` (and optionally `AMP_API_BASE_URL`); skipped otherwise.
 * Uses its own temporary token file, never `./token.json`.
 */
import { TokenService } from "@amp-effect/core"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Redacted } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as NodeAmp from "../src/NodeAmp.js"

const live = process.env.AMP_TESTS === "live" && !!process.env.AMP_USERNAME && !!process.env.AMP_PASSWORD

describe.skipIf(!live)("live AMP API", () => {
  it.live("obtains, persists, reloads and refreshes a real token", () =>
    Effect.gen(function*() {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "amp-live-"))
      const file = Path.join(dir, "token.json")
      const layer = NodeAmp.layerWithStore(NodeAmp.layerFileStore(file))
      try {
        const first = yield* Effect.flatMap(TokenService.TokenService, (s) => s.getToken).pipe(Effect.provide(layer))
        expect(Fs.statSync(file).mode & 0o777).toBe(0o600)
        const info = yield* Effect.flatMap(TokenService.TokenService, (s) => Effect.zipLeft(s.getTokenInfo, s.getToken))
          .pipe(Effect.provide(layer))
        expect(Option.map(info, (i) => i.isExpired)).toEqual(Option.some(false))
        const refreshed = yield* Effect.flatMap(TokenService.TokenService, (s) => s.refreshToken).pipe(
          Effect.provide(layer)
        )
        expect(Redacted.value(refreshed)).not.toBe(Redacted.value(first))
      } finally {
        Fs.rmSync(dir, { recursive: true, force: true })
      }
    }), 120_000)
})
