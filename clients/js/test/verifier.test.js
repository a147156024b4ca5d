// The verifier against tokens a real tollgate signs, and forgeries made from them.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { exportSPKI, importJWK, SignJWT } from "jose";

import { canRead, createVerifier } from "@tollgate/paywall";
import { api, startTollgate } from "./support/tollgate.js";
import { assemble, countingFetch, parts } from "./support/tokens.js";

let tollgate;
before(async () => {
  tollgate = await startTollgate();
});
after(() => tollgate?.stop());

const verifierOf = (server, options = {}) =>
  createVerifier({ jwksUrl: server.jwksUrl, issuer: "tollgate", audience: "paywall", ...options });
const service = (method, path, body) =>
  api(tollgate.baseUrl, tollgate.serviceKey, method, path, body);
const entitlementsToken = async (readerId) =>
  (await service("POST", "v1/tokens", { reader_id: readerId })).token;
const articleToken = async (readerId, articleId) =>
  (await service("POST", "v1/access", { reader_id: readerId, article_id: articleId })).token;
const rejected = (code) => ({ name: "TokenRejectedError", code });

test("fresh entitlements and article tokens verify, and canRead follows their scope", async () => {
  const verifier = verifierOf(tollgate);

  const entitlements = await verifier.verify(await entitlementsToken("subscriber"));
  assert.equal(entitlements.scope, "entitlements");
  assert.equal(entitlements.sub, "subscriber");
  assert.deepEqual(entitlements.ent, ["articles"]);
  assert.equal(canRead(entitlements, { articleId: "2026/any-article" }), true);
  assert.equal(
    canRead(entitlements, { articleId: "2026/any-article", requires: "reports" }),
    false,
  );

  const article = await verifier.verify(await articleToken("reader-fresh", "2026/budget"));
  assert.equal(article.scope, "article");
  assert.equal(article.art, "2026/budget");
  assert.equal(article.meter.used, 1);
  assert.equal(canRead(article, { articleId: "2026/budget" }), true);
  assert.equal(canRead(article, { articleId: "2026/budget-2" }), false);
  assert.equal(canRead(article, { articleId: "2026/budget", requires: "reports" }), false);
});

test("after a rotation, old-key tokens still verify and the new kid is fetched for", async () => {
  const fetch = countingFetch();
  const verifier = verifierOf(tollgate, { fetch });
  const old = await entitlementsToken("subscriber");
  await verifier.verify(old);

  await api(tollgate.baseUrl, tollgate.adminKey, "POST", "v1/admin/signing-keys/rotate");
  const fresh = await entitlementsToken("subscriber");

  assert.notEqual(parts(fresh).header.kid, parts(old).header.kid);
  // The first tokens of a new key tend to arrive together: all wait for the one refetch.
  const verified = await Promise.all([fresh, fresh, fresh].map((t) => verifier.verify(t)));
  assert.deepEqual(
    verified.map((claims) => claims.sub),
    ["subscriber", "subscriber", "subscriber"],
  );
  assert.equal((await verifier.verify(old)).sub, "subscriber");
  assert.equal(fetch.calls.length, 2, "one fetch at first, one for the new kid");
});

test("a tampered payload is refused as a bad signature", async () => {
  const { header, payload, signature } = parts(await articleToken("reader-tamper", "2026/a"));
  const forged = assemble(header, { ...payload, art: "2026/b" }, signature);
  await assert.rejects(verifierOf(tollgate).verify(forged), rejected("bad_signature"));
});

test("alg none is refused", async () => {
  const { header, payload } = parts(await entitlementsToken("reader-none"));
  const forged = assemble({ ...header, alg: "none" }, { ...payload, ent: ["articles"] }, "");
  await assert.rejects(verifierOf(tollgate).verify(forged), rejected("algorithm"));
});

test("an HS256 token keyed with the public key is refused", async () => {
  const { header, payload } = parts(await entitlementsToken("reader-hs256"));
  const jwks = await (await fetch(tollgate.jwksUrl)).json();
  const jwk = jwks.keys.find((key) => key.kid === header.kid);
  const secrets = [
    new TextEncoder().encode(await exportSPKI(await importJWK(jwk, jwk.alg))),
    Buffer.from(jwk.x, "base64url"),
    new TextEncoder().encode(JSON.stringify(jwk)),
  ];
  for (const secret of secrets) {
    const forged = await new SignJWT({ ...payload, ent: ["articles"] })
      .setProtectedHeader({ alg: "HS256", typ: "JWT", kid: header.kid })
      .sign(secret);
    await assert.rejects(verifierOf(tollgate).verify(forged), rejected("algorithm"));
  }
});

test("a token naming another allowed algorithm than its key's is refused", async () => {
  const { header, payload, signature } = parts(await entitlementsToken("reader-alg"));
  const other = header.alg === "EdDSA" ? "ES256" : "EdDSA";
  const forged = assemble({ ...header, alg: other }, payload, signature);
  await assert.rejects(verifierOf(tollgate).verify(forged), rejected("algorithm"));
});

test("a wrong audience or issuer is refused", async () => {
  const token = await entitlementsToken("subscriber");
  await assert.rejects(
    verifierOf(tollgate, { audience: "other-site" }).verify(token),
    rejected("audience"),
  );
  await assert.rejects(
    verifierOf(tollgate, { issuer: "other-issuer" }).verify(token),
    rejected("issuer"),
  );
});

test("an expired token is refused, and within the clock tolerance still verifies", async () => {
  const shortLived = await startTollgate({ TOLLGATE_ENTITLEMENT_TOKEN_TTL: "1s" });
  try {
    const { token } = await api(shortLived.baseUrl, shortLived.serviceKey, "POST", "v1/tokens", {
      reader_id: "subscriber",
    });
    const { exp } = parts(token).payload;
    // Past exp by more than a second, well within the default 5 s tolerance.
    await new Promise((resolve) => setTimeout(resolve, (exp + 1.2) * 1000 - Date.now()));
    await assert.rejects(
      verifierOf(shortLived, { clockToleranceSec: 0 }).verify(token),
      rejected("expired"),
    );
    assert.equal((await verifierOf(shortLived).verify(token)).sub, "subscriber");
  } finally {
    await shortLived.stop();
  }
});

test("a flood of unknown kids makes at most one JWKS refetch", async () => {
  const fetch = countingFetch();
  const verifier = verifierOf(tollgate, { fetch });
  const token = await entitlementsToken("subscriber");
  await verifier.verify(token);
  const { header, payload, signature } = parts(token);

  const forged = Array.from({ length: 50 }, () =>
    assemble({ ...header, kid: crypto.randomUUID() }, payload, signature),
  );
  const results = await Promise.allSettled(forged.map((t) => verifier.verify(t)));
  for (const t of forged.slice(0, 10)) {
    results.push(...(await Promise.allSettled([verifier.verify(t)])));
  }

  assert.ok(results.every((r) => r.status === "rejected" && r.reason.code === "unknown_key"));
  assert.ok(fetch.calls.length <= 2, `${fetch.calls.length} JWKS fetches`);
});

test("garbage is refused as malformed, and verifyOrNull answers null", async () => {
  const verifier = verifierOf(tollgate);
  for (const garbage of ["", "abc", "a.b.c", "eyJhbGciOiJFZERTQSJ9.e30"]) {
    await assert.rejects(verifier.verify(garbage), rejected("malformed"));
    assert.equal(await verifier.verifyOrNull(garbage), null);
  }
  assert.equal(await verifier.verifyOrNull(undefined), null);
  assert.equal(await verifier.verifyOrNull(null), null);
});

test("without a reachable JWKS, tokens are refused as jwks_unavailable", async () => {
  const token = await entitlementsToken("subscriber");
  const verifier = createVerifier({
    jwksUrl: "http://127.0.0.1:9/.well-known/jwks.json",
    issuer: "tollgate",
    audience: "paywall",
  });
  await assert.rejects(verifier.verify(token), rejected("jwks_unavailable"));
  assert.equal(await verifier.verifyOrNull(token), null);
});

test("the JWKS, and nothing else tollgate serves, allows any origin", async () => {
  const origin = { origin: "https://www.example.com" };
  const jwks = await fetch(tollgate.jwksUrl, { headers: origin });
  assert.equal(jwks.headers.get("access-control-allow-origin"), "*");
  for (const [path, key] of [["healthz"], ["v1/plans", tollgate.serviceKey]]) {
    const headers = key ? { ...origin, authorization: `Bearer ${key}` } : origin;
    const response = await fetch(new URL(path, tollgate.baseUrl), { headers });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("access-control-allow-origin"), null, path);
  }
});
