// The site's server talking to tollgate: access decisions that fail safe, tokens, merges and
// plans. Server-side only: it holds an API key, which must never reach a browser.

import { canRead } from "./can-read.js";

/** tollgate refused a request as malformed or unauthorised (a 4xx problem document). */
export class TollgateError extends Error {
  constructor(status, code, detail) {
    super(`tollgate answered ${status} ${code}: ${detail}`);
    this.name = "TollgateError";
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

/** tollgate could not answer: unreachable, too slow, a 5xx, or over a rate limit (429). */
export class TollgateUnavailableError extends Error {
  constructor(message, { status = null, cause } = {}) {
    super(message, { cause });
    this.name = "TollgateUnavailableError";
    this.status = status;
  }
}

/** A client for one tollgate; see index.d.ts for the options and the fail-safe rule. */
export function createAccessClient(options) {
  const {
    baseUrl,
    apiKey,
    verifier,
    timeoutMs = 400,
    fetch: fetchImpl = globalThis.fetch,
  } = options ?? {};
  if (!baseUrl || !apiKey || !verifier) {
    throw new TypeError("createAccessClient needs baseUrl, apiKey and verifier");
  }
  // Paths are joined relative to the base, so a base with a path prefix keeps it.
  const base = new URL(baseUrl);
  if (!base.pathname.endsWith("/")) base.pathname += "/";

  async function call(method, path, body) {
    const url = new URL(path, base);
    let response;
    let answer;
    try {
      response = await fetchImpl(url, {
        method,
        headers: {
          authorization: `Bearer ${apiKey}`,
          accept: "application/json",
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      // The timeout covers the body too: a server that stalls mid-answer is unavailable.
      answer = await response.text();
    } catch (cause) {
      throw new TollgateUnavailableError(`${method} ${url.pathname} failed: ${cause?.message}`, {
        cause,
      });
    }
    const { status } = response;
    // A 429 is not the site's mistake: like an outage, it is answered from tokens alone.
    if (status >= 500 || status === 429) {
      throw new TollgateUnavailableError(`${method} ${url.pathname} answered ${status}`, {
        status,
      });
    }
    const parsed = parseJson(answer);
    if (status >= 400) {
      throw new TollgateError(status, parsed?.code ?? `http_${status}`, parsed?.detail ?? answer);
    }
    if (parsed === undefined) {
      throw new TollgateUnavailableError(`${method} ${url.pathname} answered ${status}, not JSON`, {
        status,
      });
    }
    return parsed;
  }

  async function decide(input) {
    const { readerId, deviceId, articleId, requires, entitlementToken, articleToken, ip, gift } =
      input;
    if (Boolean(readerId) === Boolean(deviceId) || !articleId) {
      throw new TypeError("decide needs articleId and exactly one of readerId and deviceId");
    }
    const subject = readerId ? { id: readerId, device: false } : { id: deviceId, device: true };
    const rule = { articleId, requires };

    // Only readers hold entitlements tokens; a device's would be a forgery or a mix-up.
    const entitlements = readerId ? await verifyFor(entitlementToken, subject) : null;
    if (canRead(entitlements, rule)) {
      return fromToken("token", "entitlement_token", entitlements);
    }

    let decision;
    try {
      decision = await call("POST", "v1/access", {
        ...(readerId ? { reader_id: readerId } : { device_id: deviceId }),
        article_id: articleId,
        ...(requires === undefined ? {} : { requires }),
        ...(ip ? { ip } : {}),
        ...(gift ? { gift } : {}),
      });
    } catch (error) {
      if (!(error instanceof TollgateUnavailableError)) throw error;
      // Offline, only what tollgate already granted counts: the entitlements token was
      // weighed above, so what is left is an article token for this very article.
      const article = await verifyFor(articleToken, subject);
      if (canRead(article, rule)) return fromToken("offline", "article_token", article);
      return {
        allowed: false,
        source: "offline",
        reason: "tollgate_unavailable",
        claims: null,
        articleToken: null,
        articleTokenExpiresAt: null,
        meter: null,
        offers: [],
      };
    }
    return {
      allowed: decision.granted,
      source: "tollgate",
      reason: decision.reason,
      claims: null,
      articleToken: decision.token,
      articleTokenExpiresAt: decision.token_expires_at,
      meter: decision.meter,
      offers: decision.offers,
      ...(decision.gift_status ? { giftStatus: decision.gift_status } : {}),
    };
  }

  // A token counts only for the subject it was issued to.
  async function verifyFor(token, subject) {
    const claims = await verifier.verifyOrNull(token);
    if (claims === null || claims.sub !== subject.id) return null;
    return (claims.sub_type === "device") === subject.device ? claims : null;
  }

  return {
    decide,
    entitlementToken: (readerId) => call("POST", "v1/tokens", { reader_id: readerId }),
    merge: (readerId, deviceId) =>
      call("POST", `v1/readers/${encodeURIComponent(readerId)}/merge`, { device_id: deviceId }),
    plans: async () => (await call("GET", "v1/plans")).items.filter((plan) => !plan.archived),
  };
}

function fromToken(source, reason, claims) {
  return {
    allowed: true,
    source,
    reason,
    claims,
    articleToken: null,
    articleTokenExpiresAt: null,
    meter: null,
    offers: [],
  };
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
