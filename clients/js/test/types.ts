// Compiled by `npm run typecheck`, never run: index.d.ts describes the API as a site uses it.

import {
  canRead,
  clientAddress,
  createAccessClient,
  createVerifier,
  TokenRejectedError,
  TollgateError,
  TollgateUnavailableError,
  type AccessClient,
  type Claims,
  type Outcome,
  type Verifier,
} from "@tollgate/paywall";

const verifier: Verifier = createVerifier({
  jwksUrl: new URL("https://tollgate.example/.well-known/jwks.json"),
  issuer: "tollgate",
  audience: "paywall",
  minRefetchIntervalMs: 30_000,
});
const client: AccessClient = createAccessClient({
  baseUrl: "https://tollgate.example/",
  apiKey: "tgk_…",
  verifier,
});

export async function page(cookie: string | undefined, articleId: string): Promise<string> {
  const claims: Claims | null = await verifier.verifyOrNull(cookie);
  const hint: boolean = canRead(claims, { articleId });
  const outcome: Outcome = await client.decide({
    readerId: "reader-42",
    articleId,
    entitlementToken: cookie,
  });
  const offers: string[] = outcome.offers.map((offer) => offer.name);
  const meter: number | undefined = outcome.meter?.remaining;
  const resets: number | null | undefined = outcome.claims?.meter?.resets_at;
  const plans: string[] = (await client.plans()).map((plan) => plan.id);
  const { token, expires_at } = await client.entitlementToken("reader-42");
  const moved: number = (await client.merge("reader-42", "device-1")).moved;
  return JSON.stringify({ hint, offers, meter, resets, plans, token, expires_at, moved });
}

export function why(error: unknown): string {
  if (error instanceof TokenRejectedError) return error.code;
  if (error instanceof TollgateError) return `${error.status} ${error.code} ${error.detail}`;
  if (error instanceof TollgateUnavailableError)
    return `unavailable ${error.status ?? "no answer"}`;
  return "unknown";
}

export const who: string | null = clientAddress(
  { headers: new Headers(), remoteAddress: "10.0.0.2" },
  { trustedProxies: ["10.0.0.0/8"] },
);
