/**
 * The contract suite every token store runs, with `@effect/vitest`.
 *
 * @since 0.1.0
 */
export * as TokenStoreContract from "./TokenStoreContract.js"

/**
 * Log lines captured while a test runs.
 *
 * @since 0.1.0
 */
export * as LogCapture from "./LogCapture.js"

/**
 * Spans recorded while a test runs.
 *
 * @since 0.1.0
 */
export * as SpanCapture from "./SpanCapture.js"
