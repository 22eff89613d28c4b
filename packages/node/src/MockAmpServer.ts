/**
 * `@amp-effect/core`'s fake AMP (`MockAmp`) served by `NodeHttpServer` on `127.0.0.1`, for code
 * that needs a real socket. Here a `Reset` fault resets the TCP connection and a `Hang` holds it
 * until the client gives up or the server's scope closes.
 *
 * @since 0.1.0
 */
import { MockAmp } from "@amp-effect/core"
import { HttpServerRequest } from "@effect/platform"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import { Context, Effect, Layer, type Scope } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

/**
 * Constructors for the scripted faults (`MockAmp.MockFault`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const MockFault: typeof MockAmp.MockFault = MockAmp.MockFault

/**
 * Starts a mock server on `127.0.0.1` in the current `Scope`, whose close cuts every connection.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options?: MockAmp.MockAmpOptions): Effect.Effect<MockAmpServer.Service, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { app, baseUrl: _baseUrl, httpClient: _httpClient, ...controls } = yield* MockAmp.make(options)
    const server = Http.createServer()
    // A deep accept backlog so that bursts of thousands of connections are not dropped
    const http = yield* Effect.orDie(NodeHttpServer.make(() => server, { host: "127.0.0.1", port: 0, backlog: 4096 }))
    // Runs first: NodeHttpServer's own close waits for hung and keep-alive connections forever
    yield* Effect.addFinalizer(() =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
        server.closeAllConnections()
      })
    )
    // A `Reset` fault: an RST instead of an answer; the server then interrupts the request
    const reset = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      NodeHttpServerRequest.toIncomingMessage(request).socket.resetAndDestroy()
      return Effect.interruptible(Effect.never)
    })
    // The mock plays a remote server: its requests make no spans in the tests' tracer
    yield* http.serve(Effect.catchTag(app, "ConnectionReset", () => reset)).pipe(Effect.withTracerEnabled(false))
    // Listening on a host and port, never a pipe: the address is a TCP one
    const { port } = server.address() as AddressInfo
    return { ...controls, baseUrl: `http://127.0.0.1:${port}/api`, port }
  })

/**
 * A layer running one mock server for the lifetime of the layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: MockAmp.MockAmpOptions): Layer.Layer<MockAmpServer> =>
  Layer.scoped(MockAmpServer, make(options))

/**
 * A mock AMP server for the lifetime of a `Scope`; its time is the `Clock` of the fiber that made it.
 *
 * @since 0.1.0
 * @category tags
 */
export class MockAmpServer
  extends Context.Tag("@amp-effect/node/MockAmpServer")<MockAmpServer, MockAmpServer.Service>()
{
  /** The credentials accepted when none are configured. */
  static readonly defaultCredentials = MockAmp.defaultCredentials
  /** The module's {@link make}. */
  static readonly make = make
  /** The module's {@link layer}. */
  static readonly layer = layer
}

/**
 * The types of the `MockAmpServer` service.
 *
 * @since 0.1.0
 * @category models
 */
export declare namespace MockAmpServer {
  /**
   * A running server: where it listens, and the mock's controls.
   *
   * @since 0.1.0
   * @category models
   */
  export interface Service extends MockAmp.MockAmp.Controls {
    /** Base URL of the API, e.g. `"http://127.0.0.1:41234/api"` (no trailing slash). */
    readonly baseUrl: string
    readonly port: number
  }
}
