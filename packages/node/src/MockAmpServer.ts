/**
 * An embedded, in-process mock of the Blockstream AMP API, over TCP.
 *
 * It serves `@amp-effect/core`'s fake AMP (`MockAmp`: the routes, tokens, faults and counters)
 * through `NodeHttpServer` on `127.0.0.1` and an ephemeral port, so the code under test talks
 * to it exactly as it would talk to AMP: over TCP, with the `Authorization: token <jwt>` scheme
 * and JWT-shaped tokens carrying `iat` / `exp`. Tests can script faults (error statuses, rate
 * limiting, malformed bodies, delays, hung or reset connections), read exact request counters
 * and revoke every issued token. Tests that need no socket can use `MockAmp.layerHttpClient`
 * from `@amp-effect/core` instead: the same mock, in memory.
 *
 * @since 0.1.0
 */
import { MockAmp } from "@amp-effect/core"
import { HttpServerRequest } from "@effect/platform"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import { Context, Effect, Layer } from "effect"
import type { Scope } from "effect"
import * as Http from "node:http"

/**
 * Constructors for the scripted faults (`MockAmp.MockFault`). Over a socket, `Reset` really
 * resets the TCP connection and `Hang` keeps it open until the client gives up or the server's
 * scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const MockFault: typeof MockAmp.MockFault = MockAmp.MockFault

// -----------------------------------------------------------------------------
// Service
// -----------------------------------------------------------------------------

/**
 * A mock Blockstream AMP API server, running for the lifetime of a `Scope`.
 *
 * Use {@link make} when you want the service value directly (e.g. inside `it.scoped`), or
 * {@link layer} to provide it to a program. The server's notion of "now" and its delays follow
 * the `Clock` of the fiber that created it, so under `TestClock` issued tokens and their expiry
 * move with `TestClock.adjust`.
 *
 * @since 0.1.0
 * @category tags
 */
export class MockAmpServer extends Context.Tag("@amp-effect/node/MockAmpServer")<
  MockAmpServer,
  MockAmpServer.Service
>() {
  /** The credentials accepted when none are configured. */
  static readonly defaultCredentials = MockAmp.defaultCredentials

  /** Starts a mock server in the current `Scope` (see the module's {@link make}). */
  static readonly make = (options?: MockAmp.MockAmpOptions): Effect.Effect<MockAmpServer.Service, never, Scope.Scope> =>
    make(options)

  /** A layer running one mock server for the lifetime of the layer (see the module's {@link layer}). */
  static readonly layer = (options?: MockAmp.MockAmpOptions): Layer.Layer<MockAmpServer> => layer(options)
}

/**
 * The types of the `MockAmpServer` service.
 *
 * @since 0.1.0
 * @category models
 */
export declare namespace MockAmpServer {
  /**
   * A running server: where it listens, and the mock's controls (counters, request log,
   * scripted faults, token lifetime and latency, issued tokens, revocation).
   *
   * @since 0.1.0
   * @category models
   */
  export interface Service extends MockAmp.MockAmp.Controls {
    /** Base URL of the API, e.g. `"http://127.0.0.1:41234/api"` (no trailing slash). */
    readonly baseUrl: string
    /** The port the server listens on. */
    readonly port: number
  }
}

/**
 * Starts a mock server on `127.0.0.1` (ephemeral port) in the current `Scope`. Closing the
 * scope closes the server and every open connection, including hung ones.
 *
 * @example
 * ```ts
 * import { MockAmpServer } from "@amp-effect/node"
 * import { Effect } from "effect"
 *
 * // A server for the length of the scope; any HTTP client reaches it on 127.0.0.1.
 * const program = Effect.scoped(
 *   Effect.gen(function*() {
 *     const server = yield* MockAmpServer.make()
 *     const response = yield* Effect.promise(() => fetch(`${server.baseUrl}/info`))
 *     const counters = yield* server.counters
 *     console.log(response.status, counters.info)
 *     // Output: 200 1
 *   })
 * )
 *
 * Effect.runPromise(program)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options?: MockAmp.MockAmpOptions): Effect.Effect<MockAmpServer.Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const mock = yield* MockAmp.make(options)
    const server = Http.createServer()
    // A deep accept backlog so bursts of thousands of connections are not dropped
    const httpServer = yield* NodeHttpServer.make(() => server, { host: "127.0.0.1", port: 0, backlog: 4096 }).pipe(
      Effect.orDie
    )
    // Runs before NodeHttpServer's own close (finalizers run in reverse order), which would wait
    // for hung and keep-alive connections forever: stop accepting, then cut every connection.
    yield* Effect.addFinalizer(() =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
        server.closeAllConnections()
      })
    )
    yield* httpServer.serve(mock.app.pipe(Effect.catchTag("ConnectionReset", resetConnection))).pipe(
      // The mock plays a remote server: its requests make no spans in the tests' tracer
      Effect.withTracerEnabled(false)
    )
    if (httpServer.address._tag !== "TcpAddress") {
      return yield* Effect.dieMessage("MockAmpServer: server is not bound to a TCP port")
    }
    const port = httpServer.address.port
    const { app: _app, baseUrl: _baseUrl, httpClient: _httpClient, ...controls } = mock
    const service: MockAmpServer.Service = { ...controls, baseUrl: `http://127.0.0.1:${port}/api`, port }
    return service
  })

/** A `Reset` fault over a socket: an RST instead of an answer, then wait for the close to interrupt us. */
const resetConnection = () =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    NodeHttpServerRequest.toIncomingMessage(request).socket.resetAndDestroy()
    // The server interrupts a request whose connection closed without an answer
    return Effect.interruptible(Effect.never)
  })

/**
 * A layer running one mock server for the lifetime of the layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: MockAmp.MockAmpOptions): Layer.Layer<MockAmpServer> =>
  Layer.scoped(MockAmpServer, make(options))
