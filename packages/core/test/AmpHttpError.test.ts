import { describe, expect, it } from "@effect/vitest"
import { Duration } from "effect"
import { ApiError, AuthError, isAmpHttpError, isTransient } from "../src/AmpHttpError.js"

const auth = (fields: Omit<ConstructorParameters<typeof AuthError>[0], "endpoint">) =>
  new AuthError({ endpoint: "obtain_token", ...fields })
const api = (fields: Omit<ConstructorParameters<typeof ApiError>[0], "method" | "path">) =>
  new ApiError({ method: "GET", path: "/assets", ...fields })

describe("AmpHttpError", () => {
  it("words every reason, with the status and detail only when there are some", () => {
    expect(auth({ reason: "InvalidCredentials" }).message).toBe("AMP rejected the username or password")
    expect(auth({ reason: "InvalidCredentials", status: 400, detail: "bad login" }).message).toBe(
      "AMP rejected the username or password (HTTP 400): bad login"
    )
    expect(auth({ reason: "InvalidCredentials", status: 401, detail: "" }).message).toBe(
      "AMP rejected the username or password (HTTP 401)"
    )
    expect(auth({ reason: "RefreshRejected", status: 401 }).message).toBe("AMP refused to refresh the token (HTTP 401)")
    expect(auth({ reason: "NotFound", status: 404 }).message).toMatch(
      /^AMP has no obtain_token endpoint at the configured URL \(HTTP 404\): check AMP_API_BASE_URL/
    )
    expect(auth({ reason: "NotFound", detail: "https://x/api/user/obtain_token" }).message).toMatch(
      /^AMP has no obtain_token endpoint at https:\/\/x\/api\/user\/obtain_token: check/
    )
    expect(api({ reason: "Unauthorized", status: 401 }).message).toBe(
      "AMP rejected GET /assets (HTTP 401) even with a renewed token"
    )
    expect(auth({ reason: "RateLimited" }).message).toBe("AMP rate limited obtain_token (HTTP 429, no Retry-After)")
    expect(auth({ reason: "RateLimited", retryAfter: Duration.seconds(7) }).message).toBe(
      "AMP rate limited obtain_token (HTTP 429): the server asks to wait 7s"
    )
    expect(auth({ reason: "RequestTimeout" }).message).toBe(
      "AMP obtain_token did not answer within the request timeout"
    )
    expect(auth({ reason: "RequestTimeout", timeout: Duration.seconds(10) }).message).toBe(
      "AMP obtain_token did not answer within 10s"
    )
    expect(auth({ reason: "ServerError", status: 503 }).message).toBe(
      "AMP obtain_token failed on the server side (HTTP 503)"
    )
    expect(auth({ reason: "TransportError", detail: "ECONNREFUSED" }).message).toBe(
      "AMP obtain_token is unreachable: ECONNREFUSED"
    )
    expect(auth({ reason: "MalformedResponse" }).message).toBe("AMP obtain_token answered with an unexpected body")
    expect(auth({ reason: "MalformedResponse", status: 200, detail: "no token" }).message).toBe(
      "AMP obtain_token answered HTTP 200 with an unexpected body: no token"
    )
    expect(api({ reason: "StatusCode", status: 418 }).message).toBe("AMP GET /assets answered HTTP 418")
    expect(api({ reason: "InvalidRequest", detail: "bad URL" }).message).toBe("Could not send GET /assets: bad URL")
  })

  it("words each reason without the facts it lacks", () => {
    expect(auth({ reason: "Redirected" }).message).toBe(
      "AMP obtain_token answered, a redirect to no Location: AMP does not redirect, so it was not followed and " +
        "nothing was sent there (check AMP_API_BASE_URL)"
    )
    expect(api({ reason: "StatusCode", status: 404, detail: "Not found." }).message).toBe(
      "AMP GET /assets answered HTTP 404: Not found."
    )
    expect(api({ reason: "StatusCode" }).message).toBe("AMP GET /assets answered")
    expect(api({ reason: "Unauthorized" }).message).toBe("AMP rejected GET /assets even with a renewed token")
    expect(api({ reason: "InvalidRequest" }).message).toBe("Could not send GET /assets")
    expect(auth({ reason: "TransportError" }).message).toBe("AMP obtain_token is unreachable")
    expect(auth({ reason: "ServerError" }).message).toBe("AMP obtain_token failed on the server side")
    expect(auth({ reason: "RefreshRejected" }).message).toBe("AMP refused to refresh the token")
  })

  it("isTransient: 5xx, no answer, timeouts and 429 only", () => {
    for (const reason of ["ServerError", "TransportError", "RequestTimeout", "RateLimited"] as const) {
      expect(isTransient(auth({ reason })), reason).toBe(true)
    }
    for (
      const reason of [
        "InvalidCredentials",
        "RefreshRejected",
        "NotFound",
        "MalformedResponse",
        "InvalidRequest",
        "Redirected"
      ] as const
    ) {
      expect(isTransient(auth({ reason })), reason).toBe(false)
    }
    expect(isTransient(api({ reason: "Unauthorized" }))).toBe(false)
    expect(isTransient(api({ reason: "StatusCode" }))).toBe(false)
  })

  it("isAmpHttpError: only the two AMP errors", () => {
    expect(isAmpHttpError(auth({ reason: "ServerError" }))).toBe(true)
    expect(isAmpHttpError(api({ reason: "ServerError" }))).toBe(true)
    expect(isAmpHttpError(new Error("other"))).toBe(false)
    expect(isAmpHttpError({ _tag: "TokenStoreError" })).toBe(false)
  })
})
