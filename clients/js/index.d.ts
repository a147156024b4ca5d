// Types of @tollgate/paywall. The shapes of tollgate's answers follow its openapi.yaml.

/** The meter as an article token carries it, instants in Unix seconds. */
export interface Meter {
  used: number;
  limit: number;
  remaining: number;
  period_start: number;
  /** When a slot frees; null on a rolling window while nothing is counted. */
  resets_at: number | null;
}

/** The meter as `POST /v1/access` answers it, instants in RFC 3339. */
export interface DecisionMeter {
  used: number;
  limit: number;
  remaining: number;
  period_start: string;
  resets_at: string | null;
}

/** A verified token's claims. */
export interface Claims {
  iss: string;
  /** The reader id, or the device id when `sub_type` is `device`. */
  sub: string;
  sub_type?: "device";
  aud: string | string[];
  iat: number;
  nbf: number;
  exp: number;
  jti: string;
  /** `entitlements`: what the reader holds (`POST /v1/tokens`); `article`: one article unlocked. */
  scope: "entitlements" | "article";
  ent: string[];
  /** The article an `article` token unlocks. */
  art?: string;
  /** The meter, when a free view was counted or re-read. */
  meter?: Meter;
  /** The licence that admitted the reader by their address, in an article token. */
  lic?: string;
}

export type TokenRejectionCode =
  | "malformed"
  | "unknown_key"
  | "bad_signature"
  | "algorithm"
  | "expired"
  | "not_yet_valid"
  | "issuer"
  | "audience"
  | "claims"
  | "jwks_unavailable";

/** Why a token was refused. */
export class TokenRejectedError extends Error {
  readonly code: TokenRejectionCode;
  constructor(code: TokenRejectionCode, message: string, options?: { cause?: unknown });
}

export interface VerifierOptions {
  /** tollgate's `/.well-known/jwks.json`. */
  jwksUrl: string | URL;
  /** tollgate's `token_issuer` (default there: `tollgate`). */
  issuer: string;
  /** tollgate's `token_audience` (default there: `paywall`). */
  audience: string;
  /** Leeway on `exp` and `nbf`, in seconds. Default 5. */
  clockToleranceSec?: number;
  /**
   * Algorithms accepted. Default `['EdDSA', 'ES256']`. The JWKS decides which one a kid uses;
   * a token's own `alg` header never widens it.
   */
  algorithms?: string[];
  /**
   * Unknown kids trigger at most one JWKS refetch per this interval, which is also the wait
   * after a failed fetch. Default 30000.
   */
  minRefetchIntervalMs?: number;
  /**
   * Keys older than this are refreshed in the background; they keep serving if that fails.
   * Default 10 minutes.
   */
  cacheMaxAgeMs?: number;
  /** JWKS fetch timeout. Default 2000. */
  timeoutMs?: number;
  /** Default: the global fetch. */
  fetch?: typeof fetch;
}

export interface Verifier {
  /** The token's claims; rejects with TokenRejectedError. */
  verify(token: string): Promise<Claims>;
  /** The token's claims, or null when it is absent or refused: a bad cookie never throws. */
  verifyOrNull(token: string | null | undefined): Promise<Claims | null>;
}

/** A verifier of one tollgate's tokens. Runs in Node, edge runtimes and browsers. */
export function createVerifier(options: VerifierOptions): Verifier;

/**
 * Whether verified claims unlock an article. An entitlements token: when `ent` lists
 * `requires`. An article token: for its own article only (`art`, exactly), when `ent` lists
 * `requires` or `requires` is `articles` (what tollgate's meter unlocks by default).
 */
export function canRead(
  claims: Claims | null | undefined,
  options: { articleId: string; /** Default `articles`. */ requires?: string },
): boolean;

/**
 * The client's address: `X-Forwarded-For` walked from the right, starting at the socket peer,
 * up to the first address that is not a trusted proxy. The header is never read when the peer
 * is not a trusted proxy. Null when no peer address is known. An entry that is not an address
 * stops the walk at the trusted proxy that passed it on. IPv4-mapped IPv6 is answered as IPv4.
 */
export function clientAddress(
  request: {
    headers: Headers | Record<string, string | string[] | undefined>;
    socket?: { remoteAddress?: string };
    remoteAddress?: string;
  },
  options: { /** IPs or CIDR ranges, IPv4 and IPv6. */ trustedProxies: string[] },
): string | null;

/** A plan that grants what was required, offered with a refusal. */
export interface Offer {
  plan_id: string;
  name: string;
}

export interface PlanPrice {
  id: string;
  known: boolean;
  active: boolean | null;
  currency: string | null;
  unit_amount: number | null;
  recurring: { interval: "day" | "week" | "month" | "year"; interval_count: number } | null;
  nickname: string | null;
  product: string | null;
}

export interface Plan {
  id: string;
  name: string;
  stripe_prices: string[];
  prices: PlanPrice[];
  entitlements: string[];
  trial_days: number;
  allow_promotion_codes: boolean;
  archived: boolean;
  archived_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface EntitlementToken {
  token: string;
  expires_at: string;
  entitlements: string[];
}

export interface MergeResult {
  reader_id: string;
  device_id: string;
  moved: number;
  already_unlocked: number;
  left_over: number;
  meter: DecisionMeter;
}

/** What decide() concluded. */
export interface Outcome {
  allowed: boolean;
  /**
   * `token`: a valid entitlements token, no call made; `tollgate`: tollgate decided;
   * `offline`: tollgate could not be asked.
   */
  source: "token" | "tollgate" | "offline";
  /**
   * tollgate's reason when it decided (`entitled`, `licensed`, `metered`, `already_unlocked`,
   * `meter_exhausted`, `not_allowed`, `not_entitled`); `entitlement_token` or `article_token`
   * when a token allowed it; `tollgate_unavailable` when refused offline.
   */
  reason: string;
  /** The verified token that allowed it, if any. */
  claims: Claims | null;
  /** A new article token from tollgate, when it granted; keep it for offline re-reads. */
  articleToken: string | null;
  articleTokenExpiresAt: string | null;
  /** tollgate's meter, when it consulted it. */
  meter: DecisionMeter | null;
  /** When tollgate refused: the plans that would grant access. */
  offers: Offer[];
  /**
   * Given `gift`, why it did not open the article: `unknown`, `other_article`, `expired`,
   * `revoked` or `recipients_exhausted`. Absent when it did, or none was given.
   */
  giftStatus?: "unknown" | "other_article" | "expired" | "revoked" | "recipients_exhausted";
}

export interface AccessClientOptions {
  /** Where tollgate serves its API. */
  baseUrl: string | URL;
  /** A `service` key. Server-side only: never send it to a browser. */
  apiKey: string;
  /** Verifies the tokens decide() is given. */
  verifier: Verifier;
  /** Timeout of each call to tollgate, body included. Default 400. */
  timeoutMs?: number;
  /** Default: the global fetch. */
  fetch?: typeof fetch;
}

export interface DecideInput {
  /** A registered reader; give this or `deviceId`. */
  readerId?: string;
  /** An anonymous visitor's device. */
  deviceId?: string;
  articleId: string;
  /** The entitlement the article needs. Default `articles`. */
  requires?: string;
  /** The reader's token from `entitlementToken()`, e.g. from a cookie. */
  entitlementToken?: string | null;
  /** An article token tollgate granted for this article earlier, e.g. from a cookie. */
  articleToken?: string | null;
  /**
   * The reader's address, as `clientAddress()` found it, for tollgate's institutional licences.
   * Only a key created with `may_assert_ip` may send it; tollgate refuses it from others (403).
   */
  ip?: string | null;
  /** A gift link's code the reader came with (`POST /v1/gifts/articles` made it). */
  gift?: string | null;
}

export interface AccessClient {
  /**
   * May this reader read this article? Fails safe:
   * 1. a valid entitlements token of this reader that covers the article allows it, no call made;
   * 2. otherwise tollgate decides (`POST /v1/access`);
   * 3. when tollgate is unreachable, too slow, answers 5xx or 429: a valid article token of this
   *    reader for this article allows it, and anything else is refused. Nothing is metered or
   *    granted offline.
   * A 4xx from tollgate (a bad key or input) rejects with TollgateError.
   */
  decide(input: DecideInput): Promise<Outcome>;
  /** `POST /v1/tokens`: a token of what the reader holds, for the site's cookie. */
  entitlementToken(readerId: string): Promise<EntitlementToken>;
  /** `POST /v1/readers/{id}/merge`: a device's free views join the reader's meter. */
  merge(readerId: string, deviceId: string): Promise<MergeResult>;
  /** `GET /v1/plans`, archived plans left out. */
  plans(): Promise<Plan[]>;
}

/** A client of tollgate's API, for the site's server only: it holds the API key. */
export function createAccessClient(options: AccessClientOptions): AccessClient;

/** tollgate refused a request as malformed or unauthorised: a 4xx problem document. */
export class TollgateError extends Error {
  readonly status: number;
  /** tollgate's stable problem code, such as `invalid_api_key`. */
  readonly code: string;
  readonly detail: string;
  constructor(status: number, code: string, detail: string);
}

/** tollgate could not answer: unreachable, too slow, a 5xx, or over a rate limit (429). */
export class TollgateUnavailableError extends Error {
  /** The HTTP status, or null when no answer came. */
  readonly status: number | null;
  constructor(message: string, options?: { status?: number | null; cause?: unknown });
}
