/**
 * An embedded, in-process mock of the Blockstream AMP API.
 *
 * It is a real HTTP server bound to `127.0.0.1` on an ephemeral port, so the
 * code under test talks to it exactly as it would talk to AMP: over TCP, with
 * the `Authorization: token <jwt>` scheme and JWT-shaped tokens carrying
 * `iat` / `exp`. Tests can script faults (error statuses, rate limiting,
 * malformed bodies, delays, hung or reset connections), read exact request
 * counters and revoke every issued token.
 *
 * @since 0.1.0
 */
import { Cause, Clock, Context, Data, Duration, Effect, Either, FiberSet, Layer, Option, Schema } from "effect"
import type { Scope } from "effect"
import { randomBytes, randomUUID } from "node:crypto"
import * as Http from "node:http"

// -----------------------------------------------------------------------------
// Public types
// -----------------------------------------------------------------------------

/**
 * Configuration of a {@link MockAmpServer}. Every field is optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface MockAmpServerOptions {
  /** Username accepted by `POST /user/obtain_token`. Defaults to `"mock_user"`. */
  readonly username?: string | undefined
  /** Password accepted by `POST /user/obtain_token`. Defaults to `"mock_pass"`. */
  readonly password?: string | undefined
  /**
   * How long an issued token stays valid. Defaults to 24 hours. The JWT `exp`
   * claim is `iat` plus the lifetime in whole seconds (rounded down), so it is
   * never later than the moment the server starts rejecting the token.
   */
  readonly tokenLifetime?: Duration.DurationInput | undefined
  /** When `false`, issued tokens carry no `exp` claim. Defaults to `true`. */
  readonly issueExp?: boolean | undefined
  /** Extra delay before every obtain / refresh answer. Defaults to zero. */
  readonly latency?: Duration.DurationInput | undefined
}

/**
 * A scripted misbehaviour, consumed by exactly one request to the endpoint it
 * was scripted for (see {@link MockAmpServer.Service.script}).
 *
 * - `Status`: answer with that status, body (default `{"detail": <reason>}`)
 *   and extra headers.
 * - `Delay`: wait, then answer normally. Other requests are not blocked.
 * - `Hang`: never answer; the request stays open until the client gives up or
 *   the server's scope closes.
 * - `Malformed`: answer with that raw body as `application/json` (status 200
 *   unless given).
 * - `Reset`: drop the connection without answering (a transport error for the
 *   client).
 *
 * @since 0.1.0
 * @category models
 */
export type MockFault =
  | {
    readonly _tag: "Status"
    readonly status: number
    readonly body?: string | undefined
    readonly headers?: Readonly<Record<string, string>> | undefined
  }
  | { readonly _tag: "Delay"; readonly duration: Duration.DurationInput }
  | { readonly _tag: "Hang" }
  | { readonly _tag: "Malformed"; readonly body: string; readonly status?: number | undefined }
  | { readonly _tag: "Reset" }

const hang: MockFault = { _tag: "Hang" }
const reset: MockFault = { _tag: "Reset" }

/**
 * Constructors for {@link MockFault}s. Plain object literals work just as well.
 *
 * @since 0.1.0
 * @category constructors
 */
export const MockFault = {
  /** Answer with `status`, optionally with a raw body and extra headers. */
  status: (
    status: number,
    options?: { readonly body?: string | undefined; readonly headers?: Readonly<Record<string, string>> | undefined }
  ): MockFault => ({ _tag: "Status", status, body: options?.body, headers: options?.headers }),
  /** `429 Too Many Requests`, with a `Retry-After` header when one is given. */
  rateLimited: (retryAfter?: string | undefined): MockFault => ({
    _tag: "Status",
    status: 429,
    body: JSON.stringify({ detail: "Request was throttled." }),
    headers: retryAfter === undefined ? {} : { "retry-after": retryAfter }
  }),
  /** Wait `duration`, then answer normally. */
  delay: (duration: Duration.DurationInput): MockFault => ({ _tag: "Delay", duration }),
  /** Never answer. */
  hang,
  /** Answer with a raw (typically unparsable) body, status 200 by default. */
  malformed: (body = "{\"token\":", status?: number): MockFault => ({ _tag: "Malformed", body, status }),
  /** Drop the connection without answering. */
  reset
} as const

/**
 * The endpoints of the mock, as used by {@link MockAmpServer.Service.script}
 * and {@link MockAmpCounters}. `"assets"` covers both the list and the
 * single-asset route.
 *
 * @since 0.1.0
 * @category models
 */
export type MockEndpoint = "obtain" | "refresh" | "info" | "assets" | "changelog"

/**
 * Requests received since start (or the last reset). Faulted requests count
 * too; `unauthorized` counts the 401 answers of the authentication check and
 * `total` counts every request, including unknown paths.
 *
 * @since 0.1.0
 * @category models
 */
export interface MockAmpCounters {
  readonly obtain: number
  readonly refresh: number
  readonly info: number
  readonly assets: number
  readonly changelog: number
  readonly unauthorized: number
  readonly total: number
}

/**
 * A fixed asset served by `GET /assets/`.
 *
 * @since 0.1.0
 * @category models
 */
export interface MockAsset {
  readonly asset_uuid: string
  readonly asset_id: string
  readonly name: string
  readonly ticker: string
  readonly precision: number
  readonly domain: string
  readonly is_registered: boolean
  readonly is_authorized: boolean
  readonly is_locked: boolean
}

/**
 * The assets every mock server serves, in list order.
 *
 * @since 0.1.0
 * @category constants
 */
export const mockAssets: ReadonlyArray<MockAsset> = [
  {
    asset_uuid: "3d5bfb4a-6c1e-4f5e-9a0b-2f7c8d1e0a11",
    asset_id: "5ac9f65c0efcc4775e0baec4ec03abdde22473cd3cf33c0419ca290e0751b225",
    name: "Mock Security One",
    ticker: "MSO",
    precision: 0,
    domain: "mock.example.com",
    is_registered: true,
    is_authorized: true,
    is_locked: false
  },
  {
    asset_uuid: "9b2e4c7d-1a3f-4e6b-8c5d-7e0f1a2b3c44",
    asset_id: "ce091c998b83c78bb71a632313ba3760f1763d9cfcffae02258ffa9865a37bd2",
    name: "Mock Bond Two",
    ticker: "MBT",
    precision: 2,
    domain: "mock.example.com",
    is_registered: false,
    is_authorized: true,
    is_locked: true
  }
]

/**
 * A mock Blockstream AMP API server, running for the lifetime of a `Scope`.
 *
 * Use {@link MockAmpServer.make} when you want the service value directly
 * (e.g. inside `it.scoped`), or {@link MockAmpServer.layer} to provide it to a
 * program. The server's notion of "now" and its delays follow the `Clock` of
 * the fiber that created it, so under `TestClock` issued tokens and their
 * expiry move with `TestClock.adjust`.
 *
 * @since 0.1.0
 * @category tags
 */
export class MockAmpServer extends Context.Tag("@amp-effect/node/MockAmpServer")<
  MockAmpServer,
  MockAmpServer.Service
>() {
  /** The credentials accepted when none are configured. */
  static readonly defaultCredentials = { username: "mock_user", password: "mock_pass" } as const

  /**
   * Starts a mock server on `127.0.0.1` (ephemeral port) in the current
   * `Scope`. Closing the scope closes the server and every open connection,
   * including hung ones.
   */
  static readonly make: (
    options?: MockAmpServerOptions
  ) => Effect.Effect<MockAmpServer.Service, never, Scope.Scope> = (options) => make(options ?? {})

  /** A layer running one mock server for the lifetime of the layer. */
  static readonly layer = (options?: MockAmpServerOptions): Layer.Layer<MockAmpServer> =>
    Layer.scoped(MockAmpServer, make(options ?? {}))
}

/**
 * @since 0.1.0
 */
export declare namespace MockAmpServer {
  /**
   * @since 0.1.0
   * @category models
   */
  export interface Service {
    /** Base URL of the API, e.g. `"http://127.0.0.1:41234/api"` (no trailing slash). */
    readonly baseUrl: string
    /** The port the server listens on. */
    readonly port: number
    /** A snapshot of the request counters. */
    readonly counters: Effect.Effect<MockAmpCounters>
    /** Sets every counter back to zero. */
    readonly resetCounters: Effect.Effect<void>
    /**
     * Appends faults to the endpoint's queue. Each request to that endpoint
     * consumes the next fault in order; once the queue is empty the endpoint
     * behaves normally again.
     */
    readonly script: (endpoint: MockEndpoint, ...faults: ReadonlyArray<MockFault>) => Effect.Effect<void>
    /** Drops every fault not consumed yet. */
    readonly clearScript: Effect.Effect<void>
    /** Changes the lifetime of tokens issued from now on. */
    readonly setTokenLifetime: (lifetime: Duration.DurationInput) => Effect.Effect<void>
    /** Changes the delay added before every obtain / refresh answer. */
    readonly setLatency: (latency: Duration.DurationInput) => Effect.Effect<void>
    /** Every token issued so far, oldest first (for leak checks). */
    readonly issuedTokens: Effect.Effect<ReadonlyArray<string>>
    /**
     * Makes every token issued so far answer 401, as if revoked server-side.
     * Tokens issued afterwards are valid.
     */
    readonly revokeAll: Effect.Effect<void>
  }
}

// -----------------------------------------------------------------------------
// Internals
// -----------------------------------------------------------------------------

/** Upper bound of an obtain_token body; anything larger is not a login. */
const maxBodyBytes = 64 * 1024

/** Path prefix of the API, mirroring AMP's `https://amp.blockstream.com/api`. */
const apiPrefix = "/api"

/** Methods each endpoint answers; anything else gets DRF's 405. */
const endpointMethods: Readonly<Record<MockEndpoint, string>> = {
  obtain: "POST",
  refresh: "GET",
  info: "GET",
  assets: "GET",
  changelog: "GET"
}

const changelog = {
  "mock-1.0": { added: ["user/obtain_token", "user/refresh-token", "assets", "info", "changelog"] }
} as const

type Route =
  | { readonly endpoint: Exclude<MockEndpoint, "assets"> }
  | { readonly endpoint: "assets"; readonly assetUuid: string | undefined }

/** Maps a request URL to an endpoint; `undefined` means 404. */
const matchRoute = (url: string | undefined): Route | undefined => {
  const path = (url ?? "/").split("?", 1)[0]!
  if (!path.startsWith(apiPrefix + "/")) return undefined
  // AMP is served by Django REST framework: accept paths with or without the trailing slash
  const segments = path.slice(apiPrefix.length + 1).split("/").filter((segment) => segment.length > 0)
  switch (segments.join("/")) {
    case "user/obtain_token":
      return { endpoint: "obtain" }
    case "user/refresh-token":
      return { endpoint: "refresh" }
    case "info":
      return { endpoint: "info" }
    case "changelog":
      return { endpoint: "changelog" }
    case "assets":
      return { endpoint: "assets", assetUuid: undefined }
  }
  if (segments.length === 2 && segments[0] === "assets") {
    // Compared raw: asset UUIDs need no decoding, and a bad `%` escape must not throw here
    return { endpoint: "assets", assetUuid: segments[1]! }
  }
  return undefined
}

const Credentials = Schema.Struct({ username: Schema.String, password: Schema.String })
const decodeJson = Schema.decodeUnknownEither(Schema.parseJson())
const decodeCredentials = Schema.decodeUnknownEither(Credentials)

class RequestBodyError extends Data.TaggedError("RequestBodyError")<{
  readonly reason: "TooLarge" | "Aborted"
}> {}

/** Collects a request body as UTF-8, bounded by {@link maxBodyBytes}. */
const readBody = (req: Http.IncomingMessage): Effect.Effect<string, RequestBodyError> =>
  Effect.async((resume) => {
    const chunks: Array<Buffer> = []
    let size = 0
    const cleanup = () => {
      req.off("data", onData)
      req.off("end", onEnd)
      req.off("error", onAborted)
      req.off("close", onAborted)
    }
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > maxBodyBytes) {
        cleanup()
        resume(Effect.fail(new RequestBodyError({ reason: "TooLarge" })))
      } else {
        chunks.push(chunk)
      }
    }
    const onEnd = () => {
      cleanup()
      resume(Effect.succeed(Buffer.concat(chunks).toString("utf8")))
    }
    const onAborted = () => {
      cleanup()
      resume(Effect.fail(new RequestBodyError({ reason: "Aborted" })))
    }
    if (req.destroyed) return onAborted()
    req.on("data", onData)
    req.on("end", onEnd)
    req.on("error", onAborted)
    req.on("close", onAborted)
    return Effect.sync(cleanup)
  })

/** Completes when the response's connection is gone or the response is done. */
const awaitClose = (res: Http.ServerResponse): Effect.Effect<void> =>
  Effect.async((resume) => {
    const onClose = () => resume(Effect.void)
    if (!canAnswer(res)) return onClose()
    res.once("close", onClose)
    return Effect.sync(() => res.off("close", onClose))
  })

/** Whether an answer can still be written (the client may have gone away meanwhile). */
const canAnswer = (res: Http.ServerResponse): boolean =>
  !res.headersSent && !res.destroyed && res.socket !== null && !res.socket.destroyed

const sendRaw = (
  res: Http.ServerResponse,
  status: number,
  body: string,
  headers: Readonly<Record<string, string>> = {}
): void => {
  if (!canAnswer(res)) return
  // Lower-case the extra headers so they replace the defaults instead of being sent twice
  const merged: Record<string, string | number> = {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body)
  }
  for (const [name, value] of Object.entries(headers)) merged[name.toLowerCase()] = value
  res.writeHead(status, merged)
  res.end(body)
}

const sendJson = (
  res: Http.ServerResponse,
  status: number,
  body: unknown,
  headers?: Readonly<Record<string, string>>
): void => sendRaw(res, status, JSON.stringify(body), headers)

const base64UrlJson = (value: unknown): string => Buffer.from(JSON.stringify(value), "utf8").toString("base64url")

const jwtHeader = base64UrlJson({ typ: "JWT", alg: "HS256" })

interface IssuedToken {
  readonly subject: string
  readonly seq: number
  readonly expiresAtMillis: number
}

type Authentication =
  | { readonly _tag: "Authenticated"; readonly subject: string }
  | { readonly _tag: "Rejected"; readonly detail: string }

const make = Effect.fnUntraced(function*(options: MockAmpServerOptions) {
  const username = options.username ?? MockAmpServer.defaultCredentials.username
  const password = options.password ?? MockAmpServer.defaultCredentials.password
  const issueExp = options.issueExp ?? true
  let tokenLifetime = Duration.decode(options.tokenLifetime ?? Duration.hours(24))
  let latency = Duration.decode(options.latency ?? Duration.zero)

  // JS is single-threaded and nothing below yields mid-update, so plain mutable
  // state gives exact counters even under thousands of concurrent requests.
  const counters = { obtain: 0, refresh: 0, info: 0, assets: 0, changelog: 0, unauthorized: 0, total: 0 }
  const faults: Record<MockEndpoint, Array<MockFault>> = {
    obtain: [],
    refresh: [],
    info: [],
    assets: [],
    changelog: []
  }
  const issued = new Map<string, IssuedToken>()
  let nextSeq = 0
  // Tokens with a sequence number below this were revoked by `revokeAll`
  let revokedBelow = 0

  const issueToken = (subject: string, nowMillis: number): string => {
    const lifetimeMillis = Duration.toMillis(tokenLifetime)
    const iat = Math.floor(nowMillis / 1000)
    const payload = issueExp
      ? { sub: subject, iat, exp: iat + Math.floor(lifetimeMillis / 1000), jti: randomUUID() }
      : { sub: subject, iat, jti: randomUUID() }
    // The signature is random: nobody verifies it, it only has to look like one
    const token = `${jwtHeader}.${base64UrlJson(payload)}.${randomBytes(32).toString("base64url")}`
    issued.set(token, { subject, seq: nextSeq++, expiresAtMillis: nowMillis + lifetimeMillis })
    return token
  }

  const authenticate = (req: Http.IncomingMessage, nowMillis: number): Authentication => {
    const [keyword, credential, ...rest] = (req.headers.authorization ?? "").trim().split(/\s+/)
    // Same answers as Django REST framework's TokenAuthentication (keyword `token`, not `Bearer`)
    if (keyword === undefined || keyword.toLowerCase() !== "token") {
      return { _tag: "Rejected", detail: "Authentication credentials were not provided." }
    }
    if (credential === undefined || rest.length > 0) {
      return { _tag: "Rejected", detail: "Invalid token header." }
    }
    const token = issued.get(credential)
    if (token === undefined || token.seq < revokedBelow || nowMillis >= token.expiresAtMillis) {
      return { _tag: "Rejected", detail: "Invalid token." }
    }
    return { _tag: "Authenticated", subject: token.subject }
  }

  /** Runs `onAuthenticated` for a valid token, or answers 401. */
  const withAuth = (
    req: Http.IncomingMessage,
    res: Http.ServerResponse,
    onAuthenticated: (subject: string, nowMillis: number) => void
  ): Effect.Effect<void> =>
    Effect.map(Clock.currentTimeMillis, (nowMillis) => {
      const auth = authenticate(req, nowMillis)
      if (auth._tag === "Authenticated") return onAuthenticated(auth.subject, nowMillis)
      counters.unauthorized++
      sendJson(res, 401, { detail: auth.detail }, { "www-authenticate": "Token" })
    })

  const obtainToken = Effect.fnUntraced(function*(req: Http.IncomingMessage, res: Http.ServerResponse) {
    const body = yield* readBody(req)
    const json = decodeJson(body)
    if (Either.isLeft(json)) {
      return sendJson(res, 400, { detail: "JSON parse error - request body is not valid JSON." })
    }
    const credentials = decodeCredentials(json.right)
    if (Either.isLeft(credentials)) {
      return sendJson(res, 400, {
        username: ["This field is required."],
        password: ["This field is required."]
      })
    }
    if (credentials.right.username !== username || credentials.right.password !== password) {
      return sendJson(res, 400, { non_field_errors: ["Unable to log in with provided credentials."] })
    }
    const nowMillis = yield* Clock.currentTimeMillis
    sendJson(res, 200, { token: issueToken(username, nowMillis) })
  })

  /** Plays a fault; `true` means the request should still be answered normally. */
  const playFault = (res: Http.ServerResponse, fault: MockFault): Effect.Effect<boolean> => {
    switch (fault._tag) {
      case "Status": {
        const body = fault.body ?? JSON.stringify({ detail: Http.STATUS_CODES[fault.status] ?? "Error" })
        return Effect.as(Effect.sync(() => sendRaw(res, fault.status, body, fault.headers)), false)
      }
      case "Malformed":
        return Effect.as(Effect.sync(() => sendRaw(res, fault.status ?? 200, fault.body)), false)
      case "Reset":
        return Effect.as(Effect.sync(() => res.socket?.resetAndDestroy()), false)
      case "Hang":
        return Effect.as(awaitClose(res), false)
      case "Delay":
        return Effect.as(Effect.sleep(fault.duration), true)
    }
  }

  /** The single routing function: faults first, then AMP's normal behaviour. */
  const respond = Effect.fnUntraced(
    function*(req: Http.IncomingMessage, res: Http.ServerResponse, route: Route, fault: MockFault | undefined) {
      if ((route.endpoint === "obtain" || route.endpoint === "refresh") && Duration.toMillis(latency) > 0) {
        yield* Effect.sleep(latency)
      }
      if (fault !== undefined && !(yield* playFault(res, fault))) return
      if (req.method !== endpointMethods[route.endpoint]) {
        return sendJson(res, 405, { detail: `Method "${req.method}" not allowed.` })
      }
      switch (route.endpoint) {
        case "info":
          return sendJson(res, 200, { version: "mock-1.0" })
        case "obtain":
          return yield* obtainToken(req, res)
        case "refresh":
          return yield* withAuth(
            req,
            res,
            (subject, nowMillis) => sendJson(res, 200, { token: issueToken(subject, nowMillis) })
          )
        case "changelog":
          return yield* withAuth(req, res, () => sendJson(res, 200, changelog))
        case "assets": {
          const { assetUuid } = route
          return yield* withAuth(req, res, () => {
            if (assetUuid === undefined) return sendJson(res, 200, mockAssets)
            const asset = mockAssets.find((candidate) => candidate.asset_uuid === assetUuid)
            return asset === undefined ? sendJson(res, 404, { detail: "Not found." }) : sendJson(res, 200, asset)
          })
        }
      }
    },
    (effect, _req, res) =>
      Effect.catchAllCause(effect, (cause) =>
        Effect.sync(() => {
          if (Cause.isInterruptedOnly(cause)) return
          const failure = Cause.failureOption(cause)
          // A client that went away mid-body needs no answer; a defect is a bug in the mock
          if (Option.isSome(failure)) {
            if (failure.value.reason === "TooLarge") sendJson(res, 413, { detail: "Request too large." })
            return
          }
          sendJson(res, 500, { detail: "Mock server error." })
        }))
  )

  // Forked request fibers inherit this fiber's runtime (and so its Clock), and
  // are interrupted when the scope closes.
  const run = yield* FiberSet.makeRuntime<never>()

  const onRequest = (req: Http.IncomingMessage, res: Http.ServerResponse): void => {
    // Count and dequeue synchronously so faults are consumed in arrival order
    counters.total++
    const route = matchRoute(req.url)
    if (route === undefined) return sendJson(res, 404, { detail: "Not found." })
    counters[route.endpoint]++
    run(respond(req, res, route, faults[route.endpoint].shift()))
  }

  const server = yield* Effect.acquireRelease(
    Effect.async<Http.Server>((resume) => {
      const server = Http.createServer(onRequest)
      server.once("error", (error) => resume(Effect.die(error)))
      // A deep accept backlog so bursts of thousands of connections are not dropped
      server.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
        // `close` only stops accepting; hung and keep-alive connections must be cut too
        server.closeAllConnections()
      })
  )

  const address = server.address()
  if (address === null || typeof address === "string") {
    return yield* Effect.dieMessage("MockAmpServer: server is not bound to a TCP port")
  }
  const port = address.port

  const service: MockAmpServer.Service = {
    baseUrl: `http://127.0.0.1:${port}${apiPrefix}`,
    port,
    counters: Effect.sync(() => ({ ...counters })),
    resetCounters: Effect.sync(() => {
      for (const key of Object.keys(counters) as Array<keyof typeof counters>) counters[key] = 0
    }),
    script: (endpoint, ...scripted) => Effect.sync(() => void faults[endpoint].push(...scripted)),
    clearScript: Effect.sync(() => {
      for (const queue of Object.values(faults)) queue.length = 0
    }),
    setTokenLifetime: (lifetime) => Effect.sync(() => void (tokenLifetime = Duration.decode(lifetime))),
    setLatency: (duration) => Effect.sync(() => void (latency = Duration.decode(duration))),
    issuedTokens: Effect.sync(() => Array.from(issued.keys())),
    revokeAll: Effect.sync(() => void (revokedBelow = nextSeq))
  }
  return service
})
