/** @internal */
import { HttpClient, HttpClientError, HttpClientResponse } from "@effect/platform"
import { type HttpApp, HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Chunk, Clock, Data, Duration, Effect, Either, Encoding, HashMap, Match, Option, Ref, Schema } from "effect"
import type * as AmpClient from "../AmpClient.js"

export interface MockAmpOptions {
  /** Username accepted by `POST /user/obtain_token`. Defaults to `"mock_user"`. */
  readonly username?: string | undefined
  /** Password accepted by `POST /user/obtain_token`. Defaults to `"mock_pass"`. */
  readonly password?: string | undefined
  /** How long an issued token stays valid. Defaults to 24 hours. */
  readonly tokenLifetime?: Duration.DurationInput | undefined
  /** Extra delay before every obtain / refresh answer. Defaults to zero. */
  readonly latency?: Duration.DurationInput | undefined
  /** The assets served by `GET /assets/`, in list order. Defaults to `mockAssets`. */
  readonly assets?: ReadonlyArray<MockAsset> | undefined
}

type StatusOptions = {
  readonly body?: string | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
}

export type MockFault =
  | ({ readonly _tag: "Status"; readonly status: number } & StatusOptions)
  | { readonly _tag: "Delay"; readonly duration: Duration.DurationInput }
  | { readonly _tag: "Hang" }
  | { readonly _tag: "Reset" }

export type MockEndpoint = "obtain" | "refresh" | "info" | "assets" | "changelog"

export interface MockRequest {
  /** The endpoint it was routed to; `undefined` for an unknown path (answered 404). */
  readonly endpoint: MockEndpoint | undefined
  readonly method: string
  /** The full URL: as the client sent it in memory; from the `Host` header over a socket. */
  readonly url: string
  /** The `Authorization` header as sent (it carries the token), or `undefined`. */
  readonly authorization: string | undefined
}

export type MockAsset = typeof AmpClient.Asset.Encoded

export interface MintOptions {
  /** The `sub` claim. Defaults to `"mock_user"`. */
  readonly subject?: string | undefined
  /** `exp` is now plus this, in whole seconds rounded down. Defaults to 24 hours. */
  readonly lifetime?: Duration.DurationInput | undefined
  /** The `jti` claim. Defaults to a random UUID, which makes every token unique. */
  readonly jti?: string | number | undefined
}

export interface Controls {
  /** Requests received since start (or the last reset), by endpoint. */
  readonly counters: Effect.Effect<{ readonly [K in MockEndpoint | "unauthorized" | "total"]: number }>
  /** Sets every counter back to zero and empties the request log. */
  readonly resetCounters: Effect.Effect<void>
  /** Every request received since start (or the last reset), oldest first. */
  readonly requests: Effect.Effect<ReadonlyArray<MockRequest>>
  /** Appends faults to the endpoint's queue: each request to it plays the next one, in order. */
  readonly script: (endpoint: MockEndpoint, ...faults: ReadonlyArray<MockFault>) => Effect.Effect<void>
  /** Changes the lifetime of tokens issued from now on. */
  readonly setTokenLifetime: (lifetime: Duration.DurationInput) => Effect.Effect<void>
  /** Every token issued so far, oldest first. */
  readonly issuedTokens: Effect.Effect<ReadonlyArray<string>>
  /** Makes every token issued so far answer 401, as if revoked server-side. Later ones are valid. */
  readonly revokeAll: Effect.Effect<void>
  /** Makes one token answer 401 from now on. */
  readonly revoke: (token: string) => Effect.Effect<void>
}

export interface Service extends Controls {
  /** The routes, to serve on any platform. Fails only with `ConnectionReset` (a `Reset` fault). */
  readonly app: HttpApp.Default<ConnectionReset>
  /** An `HttpClient` that runs `app` in memory: no socket, any host, `Uint8Array` bodies. */
  readonly httpClient: HttpClient.HttpClient
  /** A base URL for the in-memory client: `"http://amp.mock.invalid/api"`. */
  readonly baseUrl: string
}

export const defaultCredentials = { username: "mock_user", password: "mock_pass" } as const

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

export const MockFault = {
  /** Answer with `status`, optionally with a raw body and extra headers. */
  status: (status: number, options?: StatusOptions): MockFault => ({ _tag: "Status", status, ...options }),
  /** `429 Too Many Requests`, with a `Retry-After` header when one is given. */
  rateLimited: (retryAfter?: string): MockFault => ({
    _tag: "Status",
    status: 429,
    body: JSON.stringify({ detail: "Request was throttled." }),
    headers: retryAfter === undefined ? {} : { "retry-after": retryAfter }
  }),
  /** Wait `duration` on the mock's `Clock`, then answer normally. */
  delay: (duration: Duration.DurationInput): MockFault => ({ _tag: "Delay", duration }),
  /** Never answer. */
  hang: { _tag: "Hang" } as const,
  /** Answer with a raw (by default unparsable) body as `application/json`, status 200 unless given. */
  malformed: (body = "{\"token\":", status = 200): MockFault => ({ _tag: "Status", status, body }),
  /** Drop the connection without answering. */
  reset: { _tag: "Reset" } as const
}

export class ConnectionReset extends Data.TaggedError("ConnectionReset") {
  override get message() {
    return "The mock AMP dropped the connection (a scripted Reset fault)"
  }
}

const jwtHeader = Encoding.encodeBase64Url(JSON.stringify({ typ: "JWT", alg: "HS256" }))
const jwtSignature = Encoding.encodeBase64Url("mock-amp: not a signature")

export const jwt = (payload: Readonly<Record<string, unknown>>): string =>
  `${jwtHeader}.${Encoding.encodeBase64Url(JSON.stringify(payload))}.${jwtSignature}`

/** The one place tokens are minted: `exp` rounds down, so it is never later than the real expiry. */
const mintAt = (nowMillis: number, options: MintOptions): string =>
  jwt({
    sub: options.subject ?? defaultCredentials.username,
    iat: Math.floor(nowMillis / 1000),
    exp: Math.floor((nowMillis + Duration.toMillis(options.lifetime ?? "24 hours")) / 1000),
    jti: options.jti ?? globalThis.crypto.randomUUID()
  })

export const mintToken = (options: MintOptions = {}): Effect.Effect<string> =>
  Effect.map(Clock.currentTimeMillis, (nowMillis) => mintAt(nowMillis, options))

type Faults = Readonly<Record<MockEndpoint, ReadonlyArray<MockFault>>>

/** What changes as requests come; the counters are counted from the request log. */
const makeState = (tokenLifetime: Duration.DurationInput) =>
  Effect.all({
    requests: Ref.make(Chunk.empty<MockRequest>()),
    unauthorized: Ref.make(0),
    faults: Ref.make<Faults>({ obtain: [], refresh: [], info: [], assets: [], changelog: [] }),
    tokenLifetime: Ref.make(Duration.decode(tokenLifetime)),
    issued: Ref.make(Chunk.empty<string>()),
    // The expiry of every issued token not revoked
    valid: Ref.make(HashMap.empty<string, number>())
  })

interface Mock extends Effect.Effect.Success<ReturnType<typeof makeState>> {
  readonly username: string
  readonly password: string
  readonly latency: Duration.Duration
  readonly assets: ReadonlyArray<MockAsset>
}

type Answer<E, R> = Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>

const json = (status: number, body: unknown) => HttpServerResponse.unsafeJson(body, { status })

const notFound = json(404, { detail: "Not found." })

/** What a fault does: `Some` answer instead of the normal one, `None` to answer normally. */
const play = Match.typeTags<MockFault>()({
  Status: ({ body, headers, status }) => {
    // A header given in any case replaces the default (`Headers` lower-cases them in order)
    const options = { status, headers: { "content-type": "application/json", ...headers } }
    // These statuses carry no body (a web `Response` refuses one)
    return Effect.succeedSome(
      [204, 205, 304].includes(status)
        ? HttpServerResponse.empty(options)
        : HttpServerResponse.text(body ?? JSON.stringify({ detail: `HTTP ${status}` }), options)
    )
  },
  Delay: ({ duration }) => Effect.as(Effect.sleep(duration), Option.none()),
  Hang: () => Effect.never,
  Reset: () => Effect.fail(new ConnectionReset())
})

const log = (mock: Mock, request: HttpServerRequest.HttpServerRequest, endpoint?: MockEndpoint) => {
  // In memory the client's own URL; over a socket, the path on the `Host` header
  const url = new URL(request.originalUrl, `http://${request.headers["host"]}`).href
  const entry = { endpoint, method: request.method, url, authorization: request.headers["authorization"] }
  return Ref.update(mock.requests, Chunk.append(entry))
}

/**
 * One endpoint: its next fault taken (before the request is counted: a test that saw the count
 * knows it), latency for logins, the fault, the method, the token (not for obtain, info), the answer.
 */
const route = <E, R>(mock: Mock, endpoint: MockEndpoint, answer: Answer<E, R>) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const fault = yield* Ref.modify(mock.faults, (faults) => {
      const [next, ...rest] = faults[endpoint]
      return [Option.fromNullable(next), { ...faults, [endpoint]: rest }]
    })
    yield* log(mock, request, endpoint)
    if ((endpoint === "obtain" || endpoint === "refresh") && !Duration.isZero(mock.latency)) {
      yield* Effect.sleep(mock.latency)
    }
    const faulted = Option.isSome(fault) ? yield* play(fault.value) : Option.none()
    if (Option.isSome(faulted)) return faulted.value
    if (request.method !== (endpoint === "obtain" ? "POST" : "GET")) {
      return json(405, { detail: `Method "${request.method}" not allowed.` })
    }
    const refused = endpoint === "obtain" || endpoint === "info" ? undefined : yield* refusal(mock, request)
    if (refused === undefined) return yield* answer
    yield* Ref.update(mock.unauthorized, (n) => n + 1)
    return HttpServerResponse.setHeader(json(401, { detail: refused }), "www-authenticate", "Token")
  })

/** Django REST framework's TokenAuthentication (keyword `token`, not `Bearer`): why it refuses a request. */
const refusal = (mock: Mock, request: HttpServerRequest.HttpServerRequest) =>
  Effect.gen(function*() {
    const [keyword, token, ...rest] = (request.headers["authorization"] ?? "").split(/\s+/)
    if (keyword?.toLowerCase() !== "token") return "Authentication credentials were not provided."
    if (token === undefined || rest.length > 0) return "Invalid token header."
    const expiresAt = HashMap.get(yield* Ref.get(mock.valid), token)
    if (Option.isNone(expiresAt) || (yield* Clock.currentTimeMillis) >= expiresAt.value) return "Invalid token."
  })

const Credentials = Schema.Struct({ username: Schema.String, password: Schema.String })

/** `POST /user/obtain_token`: Django REST framework's 400s for a bad body or wrong credentials. */
const obtainToken = (mock: Mock) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    // Anything larger is not a login. The text read here is kept for the decoding below.
    if ((yield* Effect.orElseSucceed(request.text, () => "")).length > 64 * 1024) {
      return json(413, { detail: "Request too large." })
    }
    const credentials = yield* Effect.either(HttpServerRequest.schemaBodyJson(Credentials))
    if (Either.isLeft(credentials)) {
      return credentials.left._tag === "RequestError"
        ? json(400, { detail: "JSON parse error - request body is not valid JSON." })
        : json(400, { username: ["This field is required."], password: ["This field is required."] })
    }
    if (credentials.right.username !== mock.username || credentials.right.password !== mock.password) {
      return json(400, { non_field_errors: ["Unable to log in with provided credentials."] })
    }
    return yield* issueToken(mock)
  })

const issueToken = (mock: Mock) =>
  Effect.gen(function*() {
    const nowMillis = yield* Clock.currentTimeMillis
    const lifetime = yield* Ref.get(mock.tokenLifetime)
    const token = mintAt(nowMillis, { subject: mock.username, lifetime })
    yield* Ref.update(mock.issued, Chunk.append(token))
    yield* Ref.update(mock.valid, HashMap.set(token, nowMillis + Duration.toMillis(lifetime)))
    return json(200, { token })
  })

const asset = (mock: Mock) =>
  Effect.map(HttpRouter.params, ({ uuid }) => {
    const found = mock.assets.find((candidate) => candidate.asset_uuid === uuid)
    return found === undefined ? notFound : json(200, found)
  })

const changelog = { "mock-1.0": { added: ["user/obtain_token", "user/refresh-token", "assets", "info", "changelog"] } }

const router = (mock: Mock) =>
  HttpRouter.empty.pipe(
    HttpRouter.all("/api/user/obtain_token", route(mock, "obtain", obtainToken(mock))),
    HttpRouter.all("/api/user/refresh-token", route(mock, "refresh", issueToken(mock))),
    HttpRouter.all("/api/info", route(mock, "info", Effect.succeed(json(200, { version: "mock-1.0" })))),
    HttpRouter.all("/api/changelog", route(mock, "changelog", Effect.succeed(json(200, changelog)))),
    HttpRouter.all("/api/assets", route(mock, "assets", Effect.succeed(json(200, mock.assets)))),
    HttpRouter.all("/api/assets/:uuid", route(mock, "assets", asset(mock)))
  )

const controls = (mock: Mock): Controls => ({
  counters: Effect.zipWith(Ref.get(mock.requests), Ref.get(mock.unauthorized), (requests, unauthorized) => {
    const counters = { obtain: 0, refresh: 0, info: 0, assets: 0, changelog: 0, unauthorized, total: requests.length }
    for (const { endpoint } of requests) {
      if (endpoint !== undefined) counters[endpoint]++
    }
    return counters
  }),
  resetCounters: Effect.zipRight(Ref.set(mock.requests, Chunk.empty()), Ref.set(mock.unauthorized, 0)),
  requests: Effect.map(Ref.get(mock.requests), Chunk.toReadonlyArray),
  script: (endpoint, ...more) =>
    Ref.update(mock.faults, (faults) => ({ ...faults, [endpoint]: [...faults[endpoint], ...more] })),
  setTokenLifetime: (lifetime) => Ref.set(mock.tokenLifetime, Duration.decode(lifetime)),
  issuedTokens: Effect.map(Ref.get(mock.issued), Chunk.toReadonlyArray),
  revokeAll: Ref.set(mock.valid, HashMap.empty()),
  revoke: (token) => Ref.update(mock.valid, HashMap.remove(token))
})

export const make = (options: MockAmpOptions = {}): Effect.Effect<Service> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const mock: Mock = {
      ...(yield* makeState(options.tokenLifetime ?? "24 hours")),
      username: options.username ?? defaultCredentials.username,
      password: options.password ?? defaultCredentials.password,
      latency: Duration.decode(options.latency ?? Duration.zero),
      assets: options.assets ?? mockAssets
    }
    // AMP is served by Django REST framework: paths work with or without the trailing slash
    const routes = yield* HttpRouter.toHttpApp(router(mock)).pipe(
      HttpRouter.withRouterConfig({ ignoreTrailingSlash: true, ignoreDuplicateSlashes: true })
    )
    const app: HttpApp.Default<ConnectionReset> = routes.pipe(
      Effect.catchTag("RouteNotFound", ({ request }) => Effect.as(log(mock, request), notFound)),
      // "Now" and delays follow the Clock of the fiber that made the mock, wherever it is served
      Effect.withClock(clock)
    )
    return { app, httpClient: toHttpClient(app), baseUrl: "http://amp.mock.invalid/api", ...controls(mock) }
  })

/** Runs `app` in the calling fiber; a `Reset` is what a client sees when the server drops the connection. */
const toHttpClient = (app: HttpApp.Default<ConnectionReset>) =>
  HttpClient.make((request, url) => {
    const body = request.body._tag === "Uint8Array" ? request.body.body : null
    const web = new Request(url, { method: request.method, headers: request.headers, body })
    return app.pipe(
      Effect.provideService(HttpServerRequest.HttpServerRequest, HttpServerRequest.fromWeb(web)),
      Effect.map((response) => HttpClientResponse.fromWeb(request, HttpServerResponse.toWeb(response))),
      Effect.catchTag("ConnectionReset", (cause) =>
        new HttpClientError.RequestError({ request, reason: "Transport", cause }))
    )
  })
