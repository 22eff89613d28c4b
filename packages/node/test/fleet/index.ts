/**
 * The fleet tests' harness, shared by the Redis and Postgres store packages as
 * `@amp-effect/node/test/fleet`: a workspace-only entry (not in `publishConfig.exports`, not in
 * the tarball), so that their tests reach it by package name, never by a relative path.
 */

/** The child side of a fleet test: a replica process serving a `TokenService` over a store. */
export * as FleetReplica from "./FleetReplica.js"

/** The parent side of a fleet test: replicas started as processes and driven one command at a time. */
export * as FleetReplicas from "./FleetReplicas.js"
