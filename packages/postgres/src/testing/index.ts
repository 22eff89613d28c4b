/**
 * A real PostgreSQL on a loopback port, started and stopped by the tests themselves.
 *
 * @since 0.1.0
 */
export * as PostgresServer from "./PostgresServer.js"
