/**
 * The child side of a fleet test: a replica process serving a `TokenService` over a store.
 *
 * @since 0.1.0
 */
export * as FleetReplica from "./FleetReplica.js"

/**
 * The parent side of a fleet test: replicas started as processes and driven one command at a time.
 *
 * @since 0.1.0
 */
export * as FleetReplicas from "./FleetReplicas.js"
