/**
 * Where tokens are kept, decided from configuration alone (the Rust client's rules, extended
 * with `AMP_TOKEN_STORE`):
 *
 * 1. A mock environment never persists, whatever else is set: a username or password containing
 *    "mock" (any case), or a base URL on a loopback host or with "mock" in it. Test runs leave no
 *    `token.json`, Redis key or Postgres row behind.
 * 2. Otherwise `AMP_TOKEN_STORE`, when set, names the store, whatever `AMP_TOKEN_PERSISTENCE` says.
 * 3. Otherwise `AMP_TOKEN_PERSISTENCE=true` or `AMP_TESTS=live` picks the file (`AMP_TOKEN_FILE`).
 * 4. Otherwise no store.
 *
 * Code that supplies a `TokenStore` layer itself is not subject to this policy.
 *
 * @since 0.1.0
 */
import { Option, Redacted } from "effect"
import type { AmpConfig, Credentials, StoreKind } from "./AmpConfig.js"

/** True when the credentials or the base URL say "this is a mock". */
const isMockEnvironment = (credentials: Credentials): boolean => {
  const mentionsMock = (text: string) => text.toLowerCase().includes("mock")
  return mentionsMock(credentials.username) ||
    mentionsMock(Redacted.value(credentials.password)) ||
    mentionsMock(credentials.baseUrl) ||
    isLoopbackUrl(credentials.baseUrl)
}

/** True for a host `localhost` (or under it), 127.0.0.0/8 or `[::1]` (IPv4-mapped too). */
const isLoopbackUrl = (url: string): boolean => {
  if (!URL.canParse(url)) return false
  // The URL parser normalises addresses: `127.1` → `127.0.0.1`, `[::ffff:127.0.0.1]` → `[::ffff:7f00:1]`.
  const host = new URL(url).hostname.toLowerCase()
  return host === "localhost" || host.endsWith(".localhost") || host === "[::1]" ||
    /^127(\.\d{1,3}){3}$/.test(host) || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(host)
}

/**
 * The store the policy picks, and the rule that picked it.
 *
 * @since 0.1.0
 * @category models
 */
export interface StoreChoice {
  readonly store: StoreKind
  readonly reason: "mock" | "AMP_TOKEN_STORE" | "AMP_TOKEN_PERSISTENCE" | "AMP_TESTS=live" | "default"
}

/**
 * The policy: which store keeps the tokens obtained with this configuration.
 *
 * @example
 * ```ts
 * import { AmpConfig, PersistencePolicy } from "@amp-effect/core"
 * import { ConfigProvider, Effect } from "effect"
 *
 * const storeFor = (env: Record<string, string>) =>
 *   AmpConfig.load.pipe(
 *     Effect.map(PersistencePolicy.chooseStore),
 *     Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))),
 *     Effect.runSync
 *   )
 *
 * console.log(storeFor({ AMP_USERNAME: "svc-issuer", AMP_PASSWORD: "s3cret", AMP_TOKEN_PERSISTENCE: "true" }))
 * // Output: { store: 'file', reason: 'AMP_TOKEN_PERSISTENCE' }
 * console.log(storeFor({ AMP_USERNAME: "mock_user", AMP_PASSWORD: "mock_pass", AMP_TOKEN_STORE: "postgres" }))
 * // Output: { store: 'none', reason: 'mock' }
 * ```
 *
 * @since 0.1.0
 * @category utils
 */
export const chooseStore = (config: AmpConfig): StoreChoice => {
  if (isMockEnvironment(config)) return { store: "none", reason: "mock" }
  if (Option.isSome(config.tokenStore)) return { store: config.tokenStore.value, reason: "AMP_TOKEN_STORE" }
  if (config.tokenPersistence) return { store: "file", reason: "AMP_TOKEN_PERSISTENCE" }
  if (Option.exists(config.tests, (mode) => mode.trim().toLowerCase() === "live")) {
    return { store: "file", reason: "AMP_TESTS=live" }
  }
  return { store: "none", reason: "default" }
}
