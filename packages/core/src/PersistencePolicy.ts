/**
 * Whether tokens are written to disk, decided from configuration alone, as the Rust client's
 * design document says:
 *
 * 1. A mock environment never persists, whatever else is set: a username or password
 *    containing "mock" (any case), or a base URL on localhost / 127.0.0.0/8 / `[::1]` or with
 *    "mock" anywhere in it. This keeps test runs from leaving `token.json` files behind.
 * 2. Otherwise `AMP_TOKEN_PERSISTENCE=true` or `AMP_TESTS=live` turns persistence on.
 * 3. Otherwise it is off.
 *
 * Code that supplies a `TokenStore` layer itself is not subject to this policy.
 *
 * @since 0.1.0
 */
import { Option, Redacted } from "effect"
import type { AmpConfig, Credentials } from "./AmpConfig.js"

/** True when the credentials or the base URL say "this is a mock". */
export const isMockEnvironment = (credentials: Credentials): boolean => {
  const mentionsMock = (text: string) => text.toLowerCase().includes("mock")
  return mentionsMock(credentials.username) ||
    mentionsMock(Redacted.value(credentials.password)) ||
    mentionsMock(credentials.baseUrl) ||
    isLoopbackUrl(credentials.baseUrl)
}

/** True for URLs whose host is `localhost` (or a subdomain of it), 127.0.0.0/8 or `[::1]`. */
export const isLoopbackUrl = (url: string): boolean => {
  if (!URL.canParse(url)) return false
  const host = new URL(url).hostname.toLowerCase()
  return host === "localhost" || host.endsWith(".localhost") || host === "[::1]" ||
    /^127(\.\d{1,3}){3}$/.test(host)
}

/** The policy: should tokens obtained with this configuration be saved to `tokenFile`? */
export const shouldPersist = (config: AmpConfig): boolean =>
  !isMockEnvironment(config) &&
  (config.tokenPersistence || Option.exists(config.tests, (mode) => mode.trim().toLowerCase() === "live"))
