/**
 * Where tokens are kept, decided from configuration alone, as the Rust client's design
 * document says, extended with `AMP_TOKEN_STORE`:
 *
 * 1. A mock environment never persists, whatever else is set (`AMP_TOKEN_STORE` included): a
 *    username or password containing "mock" (any case), or a base URL on localhost /
 *    127.0.0.0/8 / `[::1]` or with "mock" anywhere in it. This keeps test runs from leaving
 *    `token.json` files (or Redis keys) behind.
 * 2. Otherwise `AMP_TOKEN_STORE`, when set, names the store: `file`, `redis` or `memory` is
 *    that store (naming a store asks for it: no `AMP_TOKEN_PERSISTENCE=true` is needed, and
 *    `AMP_TOKEN_PERSISTENCE=false` does not turn it off), `none` is none (even with
 *    `AMP_TOKEN_PERSISTENCE=true`).
 * 3. Otherwise `AMP_TOKEN_PERSISTENCE=true` or `AMP_TESTS=live` picks the file store
 *    (`AMP_TOKEN_FILE`).
 * 4. Otherwise no store.
 *
 * Code that supplies a `TokenStore` layer itself is not subject to this policy.
 *
 * @since 0.1.0
 */
import { Option, Redacted } from "effect"
import type { AmpConfig, Credentials, StoreKind } from "./AmpConfig.js"

/**
 * True when the credentials or the base URL say "this is a mock".
 *
 * @since 0.1.0
 * @category predicates
 */
export const isMockEnvironment = (credentials: Credentials): boolean => {
  const mentionsMock = (text: string) => text.toLowerCase().includes("mock")
  return mentionsMock(credentials.username) ||
    mentionsMock(Redacted.value(credentials.password)) ||
    mentionsMock(credentials.baseUrl) ||
    isLoopbackUrl(credentials.baseUrl)
}

/**
 * True for URLs whose host is `localhost` (or a subdomain of it), 127.0.0.0/8 or `[::1]`
 * (also as an IPv4-mapped IPv6 address, `[::ffff:127.0.0.1]`).
 *
 * @since 0.1.0
 * @category predicates
 */
export const isLoopbackUrl = (url: string): boolean => {
  if (!URL.canParse(url)) return false
  // The URL parser normalises addresses: `127.1` → `127.0.0.1`, `[::ffff:127.0.0.1]` → `[::ffff:7f00:1]`.
  const host = new URL(url).hostname.toLowerCase()
  return host === "localhost" || host.endsWith(".localhost") || host === "[::1]" ||
    /^127(\.\d{1,3}){3}$/.test(host) || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(host)
}

/**
 * The store the policy picks and what decided it:
 *
 * - `"mock"`: a mock environment (the store is `none`);
 * - `"AMP_TOKEN_STORE"`: the variable named the store;
 * - `"AMP_TOKEN_PERSISTENCE"` or `"AMP_TESTS=live"`: asked for persistence (the store is `file`);
 * - `"default"`: nothing asked for a store (the store is `none`).
 *
 * @since 0.1.0
 * @category models
 */
export interface StoreChoice {
  readonly store: StoreKind
  readonly reason: "mock" | "AMP_TOKEN_STORE" | "AMP_TOKEN_PERSISTENCE" | "AMP_TESTS=live" | "default"
}

/**
 * The policy: which store keeps the tokens obtained with this configuration (see the module's
 * documentation for the rules).
 *
 * @example
 * ```ts
 * import { AmpConfig, PersistencePolicy } from "@amp-effect/core"
 * import { ConfigProvider, Effect } from "effect"
 *
 * // The store a process with these variables would use.
 * const storeFor = (env: Record<string, string>) =>
 *   AmpConfig.load.pipe(
 *     Effect.map(PersistencePolicy.chooseStore),
 *     Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))),
 *     Effect.runSync
 *   )
 *
 * console.log(storeFor({ AMP_USERNAME: "svc-issuer", AMP_PASSWORD: "s3cret", AMP_TOKEN_PERSISTENCE: "true" }))
 * // Output: { store: 'file', reason: 'AMP_TOKEN_PERSISTENCE' }
 * console.log(storeFor({ AMP_USERNAME: "mock_user", AMP_PASSWORD: "mock_pass", AMP_TOKEN_STORE: "redis" }))
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

/**
 * Whether tokens obtained with this configuration are kept in a store (`chooseStore` picks
 * one other than `none`).
 *
 * @since 0.1.0
 * @category predicates
 */
export const shouldPersist = (config: AmpConfig): boolean => chooseStore(config).store !== "none"
