/**
 * The fake AMP behind `MockAmp`: its state, its routes as an `HttpApp`, and the in-memory
 * `HttpClient` over them.
 *
 * @internal
 */
import {
  FetchHttpClient,
  HttpClient,
  HttpIncomingMessage,
  HttpRouter,
  HttpServerRequest,
  HttpServerResponse
} from "@effect/platform"
import type { HttpApp } from "@effect/platform"
import { Clock, Data, Duration, Effect, Either, Encoding, Option, Schema } from "effect"

// -----------------------------------------------------------------------------
// Models (documented where `MockAmp` exports them)
// -----------------------------------------------------------------------------

/**
 * Configuration of a mock. Every field is optional.
 */
export interface MockAmpOptions {
  /** Username accepted by `POST /user/obtain_token`. Defaults to `"mock_user"`. */
  readonly username?: string | undefined
  /** Password accepted by `POST /user/obtain_token`. Defaults to `"mock_pass"`. */
  readonly password?: string | undefined
  /**
   * How long an issued token stays valid. Defaults to 24 hours. The JWT's `exp` claim is the
   * expiry in whole seconds, rounded down, so it is never later than the moment the mock starts
   * rejecting the token.
   */
  readonly tokenLifetime?: Duration.DurationInput | undefined
  /** When `false`, issued tokens carry no `exp` claim (they still expire). Defaults to `true`. */
  readonly issueExp?: boolean | undefined
  /** Extra delay before every obtain / refresh answer. Defaults to zero. */
  readonly latency?: Duration.DurationInput | undefined
  /** The assets served by `GET /assets/`, in list order. Defaults to `mockAssets`. */
  readonly assets?: ReadonlyArray<MockAsset> | undefined
}

/**
 * A scripted misbehaviour, consumed by exactly one request to the endpoint it was scripted for
 * (see `Controls.script`).
 *
 * - `Status`: answer with that status, body (default `{"detail": <reason>}`) and extra headers.
 * - `Delay`: wait (on the mock's `Clock`), then answer normally. Other requests are not blocked.
 * - `Hang`: never answer; the request stays open until the client gives up (its timeout, or it
 *   goes away) or, over a socket, the server's scope closes.
 * - `Malformed`: answer with that raw body as `application/json` (status 200 unless given).
 * - `Reset`: drop the connection without answering. The in-memory client fails with the
 *   transport error a client would see (`RequestError`, reason `"Transport"`); over a socket
 *   the connection is really reset.
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

/** Constructors for `MockFault`s. */
export interface MockFaults {
  /** Answer with `status`, optionally with a raw body and extra headers. */
  readonly status: (
    status: number,
    options?: { readonly body?: string | undefined; readonly headers?: Readonly<Record<string, string>> | undefined }
  ) => MockFault
  /** `429 Too Many Requests`, with a `Retry-After` header when one is given. */
  readonly rateLimited: (retryAfter?: string | undefined) => MockFault
  /** Wait `duration` on the mock's `Clock`, then answer normally. */
  readonly delay: (duration: Duration.DurationInput) => MockFault
  /** Never answer. */
  readonly hang: MockFault
  /** Answer with a raw (by default unparsable) body, status 200 unless given. */
  readonly malformed: (body?: string, status?: number) => MockFault
  /** Drop the connection without answering. */
  readonly reset: MockFault
}

/**
 * The endpoints of the mock, as used by `Controls.script` and
 * `MockAmpCounters`. `"assets"` covers both the list and the single-asset route.
 */
export type MockEndpoint = "obtain" | "refresh" | "info" | "assets" | "changelog"

/**
 * Requests received since start (or the last reset). Faulted requests count too;
 * `unauthorized` counts the 401 answers of the authentication check and `total` counts every
 * request, including unknown paths.
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
 * One request as the mock received it, in the request log (see
 * `Controls.requests`).
 */
export interface MockRequest {
  /** The endpoint it was routed to; `undefined` for an unknown path (answered 404). */
  readonly endpoint: MockEndpoint | undefined
  readonly method: string
  /** The full URL: as the client sent it in memory; from the `Host` header over a socket. */
  readonly url: string
  /** The `Authorization` header as sent (it carries the token), or `undefined`. */
  readonly authorization: string | undefined
}

/**
 * An asset served by `GET /assets/`.
 */
export interface MockAsset {
  readonly asset_uuid: string
  readonly asset_id: string
  readonly name: string
  readonly ticker: string | null
  readonly precision: number
  readonly domain: string | null
  readonly is_registered: boolean
  readonly is_authorized: boolean
  readonly is_locked: boolean
}

/**
 * What `mintToken` puts in a token.
 */
export interface MintOptions {
  /** The `sub` claim. Defaults to `"mock_user"`. */
  readonly subject?: string | undefined
  /** The token's lifetime from now: `exp` is `now + lifetime` in whole seconds, rounded down. Defaults to 24 hours. */
  readonly lifetime?: Duration.DurationInput | undefined
  /** When `false`, no `exp` claim. Defaults to `true`. */
  readonly exp?: boolean | undefined
  /** The `jti` claim. Defaults to a random UUID, which makes every token unique. */
  readonly jti?: string | number | undefined
}

/**
 * What a test reads and changes on a fake AMP, however it is reached (in memory or over a
 * socket).
 */
export interface Controls {
  /** A snapshot of the request counters. */
  readonly counters: Effect.Effect<MockAmpCounters>
  /** Sets every counter back to zero and empties the request log. */
  readonly resetCounters: Effect.Effect<void>
  /** Every request received since start (or the last reset), oldest first. */
  readonly requests: Effect.Effect<ReadonlyArray<MockRequest>>
  /**
   * Appends faults to the endpoint's queue. Each request to that endpoint consumes the next
   * fault in order; once the queue is empty the endpoint behaves normally again.
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
  /** Makes every token issued so far answer 401, as if revoked server-side. Later ones are valid. */
  readonly revokeAll: Effect.Effect<void>
  /** Makes one token answer 401 from now on. */
  readonly revoke: (token: string) => Effect.Effect<void>
}

/**
 * The controls, and how to reach the mock: its routes as an `HttpApp`, and an in-memory
 * `HttpClient` with the base URL to use it with.
 */
export interface Service extends Controls {
  /**
   * The routes as an `HttpApp`, to serve on any platform. It fails only with
   * `ConnectionReset`, when a `Reset` fault is played.
   */
  readonly app: HttpApp.Default<ConnectionReset>
  /** An `HttpClient` that hands every request to `app` in memory: no socket, any host. */
  readonly httpClient: HttpClient.HttpClient
  /** A base URL for the in-memory client: `"http://amp.mock.invalid/api"`. */
  readonly baseUrl: string
}

// -----------------------------------------------------------------------------
// Constants and faults
// -----------------------------------------------------------------------------

export const defaultCredentials = { username: "mock_user", password: "mock_pass" } as const

/** Where the in-memory client pretends the API is; `.invalid` can never resolve. */
const memoryBaseUrl = "http://amp.mock.invalid/api"

/** Upper bound of an obtain_token body; anything larger is not a login. */
const maxBodyBytes = 64 * 1024

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

const changelog = {
  "mock-1.0": { added: ["user/obtain_token", "user/refresh-token", "assets", "info", "changelog"] }
} as const

export const MockFault: MockFaults = {
  status: (status, options) => ({ _tag: "Status", status, body: options?.body, headers: options?.headers }),
  rateLimited: (retryAfter) => ({
    _tag: "Status",
    status: 429,
    body: JSON.stringify({ detail: "Request was throttled." }),
    headers: retryAfter === undefined ? {} : { "retry-after": retryAfter }
  }),
  delay: (duration) => ({ _tag: "Delay", duration }),
  hang: { _tag: "Hang" },
  malformed: (body = "{\"token\":", status) => ({ _tag: "Malformed", body, status }),
  reset: { _tag: "Reset" }
}

export class ConnectionReset extends Data.TaggedError("ConnectionReset") {
  override get message() {
    return "The mock AMP dropped the connection (a scripted Reset fault)"
  }
}

// -----------------------------------------------------------------------------
// Tokens
// -----------------------------------------------------------------------------

const jwtHeader = Encoding.encodeBase64Url(JSON.stringify({ typ: "JWT", alg: "HS256" }))
const jwtSignature = Encoding.encodeBase64Url("mock-amp: not a signature")

export const jwt = (payload: Readonly<Record<string, unknown>>): string =>
  `${jwtHeader}.${Encoding.encodeBase64Url(JSON.stringify(payload))}.${jwtSignature}`

/** The one place tokens are minted: `exp` never later than `now + lifetime`. */
const mintAt = (nowMillis: number, options: MintOptions): string => {
  const lifetimeMillis = Duration.toMillis(Duration.decode(options.lifetime ?? Duration.hours(24)))
  const iat = Math.floor(nowMillis / 1000)
  const exp = Math.floor((nowMillis + lifetimeMillis) / 1000)
  const claims = { sub: options.subject ?? defaultCredentials.username, iat }
  const jti = options.jti ?? globalThis.crypto.randomUUID()
  return jwt(options.exp === false ? { ...claims, jti } : { ...claims, exp, jti })
}

export const mintToken = (options: MintOptions = {}): Effect.Effect<string> =>
  Effect.map(Clock.currentTimeMillis, (nowMillis) => mintAt(nowMillis, options))

// -----------------------------------------------------------------------------
// Answers
// -----------------------------------------------------------------------------

/** Reason phrases for the default body of a `Status` fault. */
const reasons: Readonly<Record<number, string>> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout"
}

/** An answer with a raw body, `application/json` unless `headers` say otherwise. */
const answer = (
  status: number,
  body: string,
  headers: Readonly<Record<string, string>> = {}
): HttpServerResponse.HttpServerResponse => {
  // Lower-cased so that they replace the defaults instead of being sent twice
  const merged: Record<string, string> = { "content-type": "application/json" }
  for (const [name, value] of Object.entries(headers)) merged[name.toLowerCase()] = value
  // These statuses carry no body (a web `Response` refuses one)
  return status === 204 || status === 205 || status === 304
    ? HttpServerResponse.empty({ status, headers: merged })
    : HttpServerResponse.text(body, { status, headers: merged })
}

const json = (status: number, body: unknown, headers?: Readonly<Record<string, string>>) =>
  answer(status, JSON.stringify(body), headers)

const notFound = json(404, { detail: "Not found." })

const Credentials = Schema.parseJson(Schema.Struct({ username: Schema.String, password: Schema.String }))
const decodeJson = Schema.decodeUnknownEither(Schema.parseJson())
const decodeCredentials = Schema.decodeUnknownEither(Credentials)

// -----------------------------------------------------------------------------
// The mock
// -----------------------------------------------------------------------------

interface IssuedToken {
  readonly subject: string
  readonly seq: number
  readonly expiresAtMillis: number
}

type Authentication =
  | { readonly _tag: "Authenticated"; readonly subject: string }
  | { readonly _tag: "Rejected"; readonly detail: string }

const endpointMethods: Readonly<Record<MockEndpoint, string>> = {
  obtain: "POST",
  refresh: "GET",
  info: "GET",
  assets: "GET",
  changelog: "GET"
}

/**
 * Everything the mock knows. JS is single-threaded and nothing below yields mid-update, so plain
 * mutable state gives exact counters even under thousands of concurrent requests.
 */
interface State {
  readonly username: string
  readonly password: string
  readonly issueExp: boolean
  readonly assets: ReadonlyArray<MockAsset>
  tokenLifetime: Duration.Duration
  latency: Duration.Duration
  readonly counters: { -readonly [K in keyof MockAmpCounters]: number }
  requests: Array<MockRequest>
  readonly faults: Record<MockEndpoint, Array<MockFault>>
  readonly issued: Map<string, IssuedToken>
  readonly revoked: Set<string>
  nextSeq: number
  /** Tokens with a sequence number below this were revoked by `revokeAll`. */
  revokedBelow: number
}

const initialState = (options: MockAmpOptions): State => ({
  username: options.username ?? defaultCredentials.username,
  password: options.password ?? defaultCredentials.password,
  issueExp: options.issueExp ?? true,
  assets: options.assets ?? mockAssets,
  tokenLifetime: Duration.decode(options.tokenLifetime ?? Duration.hours(24)),
  latency: Duration.decode(options.latency ?? Duration.zero),
  counters: { obtain: 0, refresh: 0, info: 0, assets: 0, changelog: 0, unauthorized: 0, total: 0 },
  requests: [],
  faults: { obtain: [], refresh: [], info: [], assets: [], changelog: [] },
  issued: new Map(),
  revoked: new Set(),
  nextSeq: 0,
  revokedBelow: 0
})

export const make = (options: MockAmpOptions = {}): Effect.Effect<Service> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const state = initialState(options)
    // AMP is served by Django REST framework: paths work with or without the trailing slash
    const routes = yield* HttpRouter.toHttpApp(router(state)).pipe(
      HttpRouter.withRouterConfig({ ignoreTrailingSlash: true, ignoreDuplicateSlashes: true })
    )
    const app: HttpApp.Default<ConnectionReset> = Effect.suspend(() => {
      state.counters.total++
      return routes.pipe(
        Effect.catchTag("RouteNotFound", (error) => {
          record(state, error.request, undefined)
          return Effect.succeed(notFound)
        })
      )
    }).pipe(
      // "Now" and delays follow the Clock of the fiber that made the mock, wherever it is served
      Effect.withClock(clock)
    )
    return { app, httpClient: yield* toHttpClient(app), baseUrl: memoryBaseUrl, ...controls(state) }
  })

/** The routes of the AMP API the mock serves. */
const router = (state: State) =>
  HttpRouter.empty.pipe(
    HttpRouter.all("/api/user/obtain_token", route(state, "obtain", (request) => obtainToken(state, request))),
    HttpRouter.all(
      "/api/user/refresh-token",
      route(state, "refresh", (request) => withAuth(state, request, (subject) => issueToken(state, subject)))
    ),
    HttpRouter.all("/api/info", route(state, "info", () => Effect.succeed(json(200, { version: "mock-1.0" })))),
    HttpRouter.all(
      "/api/changelog",
      route(state, "changelog", (request) => withAuth(state, request, () => Effect.succeed(json(200, changelog))))
    ),
    HttpRouter.all(
      "/api/assets",
      route(state, "assets", (request) => withAuth(state, request, () => Effect.succeed(json(200, state.assets))))
    ),
    HttpRouter.all(
      "/api/assets/:uuid",
      route(state, "assets", (request) =>
        Effect.flatMap(HttpRouter.params, ({ uuid }) =>
          withAuth(state, request, () => {
            const asset = state.assets.find((candidate) => candidate.asset_uuid === uuid)
            return Effect.succeed(asset === undefined ? notFound : json(200, asset))
          })))
    )
  )

/**
 * One endpoint: count it and take its next fault at once (so faults are consumed in arrival
 * order), then latency, the fault, the method check and AMP's normal answer.
 */
const route = <E, R>(
  state: State,
  endpoint: MockEndpoint,
  normal: (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    state.counters[endpoint]++
    record(state, request, endpoint)
    const fault = state.faults[endpoint].shift()
    if ((endpoint === "obtain" || endpoint === "refresh") && Duration.toMillis(state.latency) > 0) {
      yield* Effect.sleep(state.latency)
    }
    if (fault !== undefined) {
      const faulted = yield* playFault(fault)
      if (Option.isSome(faulted)) return faulted.value
    }
    if (request.method !== endpointMethods[endpoint]) {
      return json(405, { detail: `Method "${request.method}" not allowed.` })
    }
    return yield* normal(request)
  })

const record = (
  state: State,
  request: HttpServerRequest.HttpServerRequest,
  endpoint: MockEndpoint | undefined
) => {
  const url = /^[a-z][a-z0-9+.-]*:/i.test(request.originalUrl)
    ? request.originalUrl
    : Option.match(HttpServerRequest.toURL(request), { onNone: () => request.url, onSome: String })
  state.requests.push({ endpoint, method: request.method, url, authorization: request.headers["authorization"] })
}

/** Plays a fault: `Some` answer instead of the normal one, `None` to answer normally. */
const playFault = (
  fault: MockFault
): Effect.Effect<Option.Option<HttpServerResponse.HttpServerResponse>, ConnectionReset> => {
  switch (fault._tag) {
    case "Status":
      return Effect.succeedSome(
        answer(fault.status, fault.body ?? JSON.stringify({ detail: reasons[fault.status] ?? "Error" }), fault.headers)
      )
    case "Malformed":
      return Effect.succeedSome(answer(fault.status ?? 200, fault.body))
    case "Reset":
      return Effect.fail(new ConnectionReset())
    case "Hang":
      return Effect.never
    case "Delay":
      return Effect.as(Effect.sleep(fault.duration), Option.none())
  }
}

/** `POST /user/obtain_token`: DRF's answers to a bad body or wrong credentials, else a token. */
const obtainToken = (state: State, request: HttpServerRequest.HttpServerRequest) => {
  if (Number(request.headers["content-length"] ?? 0) > maxBodyBytes) {
    return Effect.succeed(json(413, { detail: "Request too large." }))
  }
  return request.text.pipe(
    HttpIncomingMessage.withMaxBodySize(Option.some(maxBodyBytes)),
    Effect.either,
    Effect.flatMap((body) => {
      // A body sent without a Content-Length (chunked, or in memory) is measured once read.
      if (Either.isRight(body) && body.right.length > maxBodyBytes) {
        return Effect.succeed(json(413, { detail: "Request too large." }))
      }
      if (Either.isLeft(body) || Either.isLeft(decodeJson(body.right))) {
        return Effect.succeed(json(400, { detail: "JSON parse error - request body is not valid JSON." }))
      }
      const credentials = decodeCredentials(body.right)
      if (Either.isLeft(credentials)) {
        return Effect.succeed(json(400, {
          username: ["This field is required."],
          password: ["This field is required."]
        }))
      }
      if (credentials.right.username !== state.username || credentials.right.password !== state.password) {
        return Effect.succeed(json(400, { non_field_errors: ["Unable to log in with provided credentials."] }))
      }
      return issueToken(state, state.username)
    })
  )
}

const issueToken = (state: State, subject: string) =>
  Effect.map(Clock.currentTimeMillis, (nowMillis) => {
    const token = mintAt(nowMillis, { subject, lifetime: state.tokenLifetime, exp: state.issueExp })
    state.issued.set(token, {
      subject,
      seq: state.nextSeq++,
      expiresAtMillis: nowMillis + Duration.toMillis(state.tokenLifetime)
    })
    return json(200, { token })
  })

/** Runs `onAuthenticated` for a valid token, or answers 401. */
const withAuth = <E>(
  state: State,
  request: HttpServerRequest.HttpServerRequest,
  onAuthenticated: (subject: string) => Effect.Effect<HttpServerResponse.HttpServerResponse, E>
) =>
  Effect.flatMap(Clock.currentTimeMillis, (nowMillis) => {
    const auth = authenticate(state, request, nowMillis)
    if (auth._tag === "Authenticated") return onAuthenticated(auth.subject)
    state.counters.unauthorized++
    return Effect.succeed(json(401, { detail: auth.detail }, { "www-authenticate": "Token" }))
  })

/** Django REST framework's TokenAuthentication: keyword `token` (not `Bearer`), then the token. */
const authenticate = (
  state: State,
  request: HttpServerRequest.HttpServerRequest,
  nowMillis: number
): Authentication => {
  const [keyword, credential, ...rest] = (request.headers["authorization"] ?? "").trim().split(/\s+/)
  if (keyword === undefined || keyword.toLowerCase() !== "token") {
    return { _tag: "Rejected", detail: "Authentication credentials were not provided." }
  }
  if (credential === undefined || rest.length > 0) {
    return { _tag: "Rejected", detail: "Invalid token header." }
  }
  const token = state.issued.get(credential)
  if (
    token === undefined || token.seq < state.revokedBelow || state.revoked.has(credential) ||
    nowMillis >= token.expiresAtMillis
  ) {
    return { _tag: "Rejected", detail: "Invalid token." }
  }
  return { _tag: "Authenticated", subject: token.subject }
}

/** What a test does with the mock: read its counters, script faults, revoke tokens. */
const controls = (state: State): Omit<Service, "app" | "httpClient" | "baseUrl"> => ({
  counters: Effect.sync(() => ({ ...state.counters })),
  resetCounters: Effect.sync(() => {
    for (const key of Object.keys(state.counters) as Array<keyof State["counters"]>) state.counters[key] = 0
    state.requests = []
  }),
  requests: Effect.sync(() => state.requests.slice()),
  script: (endpoint, ...scripted) => Effect.sync(() => void state.faults[endpoint].push(...scripted)),
  clearScript: Effect.sync(() => {
    for (const queue of Object.values(state.faults)) queue.length = 0
  }),
  setTokenLifetime: (lifetime) => Effect.sync(() => void (state.tokenLifetime = Duration.decode(lifetime))),
  setLatency: (duration) => Effect.sync(() => void (state.latency = Duration.decode(duration))),
  issuedTokens: Effect.sync(() => Array.from(state.issued.keys())),
  revokeAll: Effect.sync(() => void (state.revokedBelow = state.nextSeq)),
  revoke: (token) => Effect.sync(() => void state.revoked.add(token))
})

// -----------------------------------------------------------------------------
// In-memory client
// -----------------------------------------------------------------------------

/**
 * `FetchHttpClient` with a `fetch` that hands the web `Request` to `app` instead of a socket:
 * the platform's own request encoding, and only the path matters. A `Reset` fault rejects, as
 * `fetch` does when a server drops the connection; an aborted request interrupts the app.
 */
const toHttpClient = (app: HttpApp.Default<ConnectionReset>) =>
  Effect.map(Effect.provide(HttpClient.HttpClient, FetchHttpClient.layer), (client) => {
    const fetch: typeof globalThis.fetch = (input, init) =>
      Effect.runPromise(
        app.pipe(
          Effect.provideService(
            HttpServerRequest.HttpServerRequest,
            HttpServerRequest.fromWeb(new Request(input, init))
          ),
          Effect.map(HttpServerResponse.toWeb),
          Effect.either
        ),
        { signal: init?.signal ?? undefined }
      ).then(Either.getOrThrowWith((reset) => reset))
    return HttpClient.transformResponse(client, Effect.provideService(FetchHttpClient.Fetch, fetch))
  })
