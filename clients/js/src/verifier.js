// Verifies tollgate's tokens offline against its JWKS. Web Crypto only (through jose) and the
// global fetch, so it runs in Node, edge runtimes and browsers alike.

import { importJWK, jwtVerify } from "jose";

/** Why a token was refused; `code` is stable, the message is for logs. */
export class TokenRejectedError extends Error {
  constructor(code, message, options) {
    super(message, options);
    this.name = "TokenRejectedError";
    this.code = code;
  }
}

const SCOPES = new Set(["entitlements", "article"]);

/** A verifier for one tollgate's tokens; see index.d.ts for the options. */
export function createVerifier(options) {
  const {
    jwksUrl,
    issuer,
    audience,
    clockToleranceSec = 5,
    algorithms = ["EdDSA", "ES256"],
    minRefetchIntervalMs = 30_000,
    cacheMaxAgeMs = 10 * 60_000,
    timeoutMs = 2_000,
    fetch: fetchImpl = globalThis.fetch,
  } = options ?? {};
  if (!jwksUrl || !issuer || !audience) {
    throw new TypeError("createVerifier needs jwksUrl, issuer and audience");
  }
  const keys = keyStore({
    url: new URL(jwksUrl),
    algorithms,
    minRefetchIntervalMs,
    cacheMaxAgeMs,
    timeoutMs,
    fetchImpl,
  });

  // jose asks for the key once it has checked the token's alg against `algorithms`; the key's
  // own JWK must name that same alg, so a token cannot pick another allowed algorithm for it.
  async function keyFor(header) {
    if (typeof header.kid !== "string") {
      throw new TokenRejectedError("unknown_key", "the token names no key (kid)");
    }
    const entry = await keys.find(header.kid);
    if (entry === undefined) {
      throw new TokenRejectedError("unknown_key", `no published key has kid ${header.kid}`);
    }
    if (entry.alg !== header.alg) {
      throw new TokenRejectedError(
        "algorithm",
        `key ${header.kid} is an ${entry.alg} key; the token says ${header.alg}`,
      );
    }
    return entry.key;
  }

  async function verify(token) {
    if (typeof token !== "string" || token === "") {
      throw new TokenRejectedError("malformed", "a token is a non-empty string");
    }
    let payload;
    try {
      ({ payload } = await jwtVerify(token, keyFor, {
        algorithms,
        issuer,
        audience,
        clockTolerance: clockToleranceSec,
        requiredClaims: ["sub", "iat", "nbf", "exp", "jti", "scope", "ent"],
      }));
    } catch (error) {
      throw rejection(error);
    }
    checkShape(payload);
    return payload;
  }

  async function verifyOrNull(token) {
    if (token === null || token === undefined || token === "") return null;
    try {
      return await verify(token);
    } catch (error) {
      if (error instanceof TokenRejectedError) return null;
      throw error;
    }
  }

  return { verify, verifyOrNull };
}

/**
 * The published keys, by kid, imported once per fetch.
 *
 * - The first verification fetches the JWKS; until that succeeds every token is refused
 *   (`jwks_unavailable`), and a failed fetch is not retried for `minRefetchIntervalMs`.
 * - Keys older than `cacheMaxAgeMs` are refreshed in the background while they go on serving,
 *   and they keep serving when tollgate cannot be reached: an outage must not lock out readers
 *   whose tokens are still valid.
 * - An unknown kid (a rotation, or a forged token) triggers at most one refetch per
 *   `minRefetchIntervalMs`, so a flood of made-up kids cannot hammer tollgate; tokens that
 *   arrive while a fetch is under way wait for it.
 */
function keyStore({ url, algorithms, minRefetchIntervalMs, cacheMaxAgeMs, timeoutMs, fetchImpl }) {
  let keys = null;
  let loadedAt = -Infinity;
  let attemptedAt = -Infinity;
  let unknownKidAt = -Infinity;
  let pending = null;

  function load() {
    if (pending === null) {
      attemptedAt = Date.now();
      pending = fetchKeys(url, algorithms, timeoutMs, fetchImpl)
        .then((fetched) => {
          keys = fetched;
          loadedAt = Date.now();
        })
        .finally(() => {
          pending = null;
        });
    }
    return pending;
  }

  async function find(kid) {
    const now = Date.now();
    let fresh = false;
    if (keys === null) {
      if (pending === null && now - attemptedAt < minRefetchIntervalMs) {
        throw new TokenRejectedError("jwks_unavailable", "the JWKS could not be fetched lately");
      }
      try {
        await load();
      } catch (cause) {
        throw new TokenRejectedError("jwks_unavailable", `fetching ${url} failed`, { cause });
      }
      fresh = true;
    } else if (now - loadedAt >= cacheMaxAgeMs && now - attemptedAt >= minRefetchIntervalMs) {
      load().catch(() => {});
    }
    let entry = keys.get(kid);
    if (entry === undefined && !fresh) {
      // Join a fetch under way (the first tokens after a rotation arrive together), or start
      // one when the interval allows.
      let refetch = pending;
      if (refetch === null && now - unknownKidAt >= minRefetchIntervalMs) {
        unknownKidAt = now;
        refetch = load();
      }
      if (refetch !== null) {
        // A failed refetch leaves the keys we had; the kid stays unknown.
        await refetch.catch(() => {});
        entry = keys.get(kid);
      }
    }
    return entry;
  }

  return { find };
}

// Keeps only signing keys that name an allowed algorithm: the JWKS, not the token, says which
// algorithm a key is for (tollgate sets `alg` on every key).
async function fetchKeys(url, algorithms, timeoutMs, fetchImpl) {
  const response = await fetchImpl(url, {
    headers: { accept: "application/jwk-set+json, application/json" },
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!response.ok) {
    throw new Error(`the JWKS answered ${response.status}`);
  }
  const body = await response.json();
  if (!Array.isArray(body?.keys)) {
    throw new Error("the JWKS has no keys array");
  }
  const keys = new Map();
  for (const jwk of body.keys) {
    const usable =
      typeof jwk?.kid === "string" &&
      algorithms.includes(jwk.alg) &&
      (jwk.use === undefined || jwk.use === "sig");
    if (!usable) continue;
    try {
      keys.set(jwk.kid, { alg: jwk.alg, key: await importJWK(jwk, jwk.alg) });
    } catch {
      // A key this runtime cannot import cannot verify anything; the others still can.
    }
  }
  return keys;
}

// jose's errors carry a stable `code`; claim failures also name the claim.
function rejection(error) {
  if (error instanceof TokenRejectedError) return error;
  const code = {
    ERR_JWT_EXPIRED: "expired",
    ERR_JWS_SIGNATURE_VERIFICATION_FAILED: "bad_signature",
    ERR_JOSE_ALG_NOT_ALLOWED: "algorithm",
    ERR_JOSE_NOT_SUPPORTED: "algorithm",
    ERR_JWS_INVALID: "malformed",
    ERR_JWT_INVALID: "malformed",
    ERR_JWT_CLAIM_VALIDATION_FAILED: claimCode(error),
  }[error?.code];
  if (code === undefined) return error;
  return new TokenRejectedError(code, error.message, { cause: error });
}

function claimCode(error) {
  if (error?.claim === "nbf" && error.reason === "check_failed") return "not_yet_valid";
  if (error?.claim === "iss") return "issuer";
  if (error?.claim === "aud") return "audience";
  return "claims";
}

// The signature proves tollgate wrote the claims; this proves they are the claims a site reads.
function checkShape(claims) {
  const ok =
    typeof claims.sub === "string" &&
    (claims.sub_type === undefined || claims.sub_type === "device") &&
    typeof claims.jti === "string" &&
    SCOPES.has(claims.scope) &&
    Array.isArray(claims.ent) &&
    claims.ent.every((name) => typeof name === "string") &&
    (claims.scope !== "article" || typeof claims.art === "string");
  if (!ok) {
    throw new TokenRejectedError("claims", "the token's claims are not tollgate's");
  }
}
