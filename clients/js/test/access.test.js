// decide() and the rest of the access client against a real tollgate, then against one that is
// failing, hanging or gone.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, test } from "node:test";

import { createAccessClient, createVerifier, TollgateError } from "@tollgate/paywall";
import { startTollgate } from "./support/tollgate.js";
import { countingFetch } from "./support/tokens.js";

const TIMEOUT_MS = 400;
// Generous: this checks that nothing hangs, not how fast anything is.
const DID_NOT_HANG_MS = TIMEOUT_MS + 2_000;

let tollgate;
let verifier;
let client;
before(async () => {
  tollgate = await startTollgate();
  verifier = verifierOf(tollgate);
  client = clientOf(tollgate.baseUrl);
});
after(() => tollgate?.stop());

function verifierOf(server, options = {}) {
  return createVerifier({
    jwksUrl: server.jwksUrl,
    issuer: "tollgate",
    audience: "paywall",
    ...options,
  });
}

function clientOf(baseUrl, options = {}) {
  return createAccessClient({
    baseUrl,
    apiKey: tollgate.serviceKey,
    verifier,
    timeoutMs: TIMEOUT_MS,
    ...options,
  });
}

// A stand-in for tollgate on loopback: `answer(request, response)` handles every request.
async function withServer(answer, run) {
  const server = createServer(answer);
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    return await run(`http://127.0.0.1:${server.address().port}/`);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

async function timed(promise) {
  const started = performance.now();
  const value = await promise;
  return { value, ms: performance.now() - started };
}

test("a gift code opens its article through decide(), and says why it does not elsewhere", async () => {
  await tollgate.admin("POST", "v1/readers/giver/grants", {
    entitlements: ["articles"],
    expires_at: "2099-01-01T00:00:00Z",
    reason: "test giver",
  });
  const { code } = await tollgate.admin("POST", "v1/gifts/articles", {
    reader_id: "giver",
    article_id: "gifted",
  });
  const opened = await client.decide({ readerId: "friend", articleId: "gifted", gift: code });
  assert.equal(opened.reason, "gift");
  assert.equal(opened.allowed, true);
  assert.equal(opened.giftStatus, undefined);
  const elsewhere = await client.decide({ readerId: "friend", articleId: "other", gift: code });
  assert.equal(elsewhere.reason, "metered");
  assert.equal(elsewhere.giftStatus, "other_article");
});

test("a reader at a licensed address is let in by licence when the key may assert addresses", async () => {
  const licence = await tollgate.admin("POST", "v1/licences", {
    name: "University of Example",
    entitlements: ["articles"],
    ip_ranges: ["192.0.2.0/24"],
    expires_at: "2099-01-01T00:00:00Z",
  });
  const { key } = await tollgate.admin("POST", "v1/keys", {
    role: "service",
    name: "campus site",
    may_assert_ip: true,
  });
  const campus = clientOf(tollgate.baseUrl, { apiKey: key });
  const outcome = await campus.decide({ readerId: "on-campus", articleId: "a-1", ip: "192.0.2.7" });
  assert.equal(outcome.source, "tollgate");
  assert.equal(outcome.reason, "licensed");
  assert.equal(outcome.allowed, true);
  const claims = await verifier.verify(outcome.articleToken);
  assert.equal(claims.lic, licence.id);
  // The site's ordinary key may not assert an address: a mistake to fix, not a refusal.
  await assert.rejects(
    client.decide({ readerId: "on-campus", articleId: "a-2", ip: "192.0.2.7" }),
    (error) => error instanceof TollgateError && error.code === "ip_assertion_not_allowed",
  );
});

test("a subscriber with an entitlements token is let in without a call to tollgate", async () => {
  const fetch = countingFetch();
  const counted = clientOf(tollgate.baseUrl, { fetch, verifier: verifierOf(tollgate, { fetch }) });
  const { token } = await counted.entitlementToken("subscriber");
  await counted.decide({
    readerId: "subscriber",
    articleId: "2026/warm-up",
    entitlementToken: token,
  });
  fetch.calls.length = 0;

  const outcome = await counted.decide({
    readerId: "subscriber",
    articleId: "2026/budget",
    entitlementToken: token,
  });

  assert.deepEqual(
    {
      allowed: outcome.allowed,
      source: outcome.source,
      reason: outcome.reason,
      sub: outcome.claims.sub,
    },
    { allowed: true, source: "token", reason: "entitlement_token", sub: "subscriber" },
  );
  assert.deepEqual(fetch.calls, []);
});

test("another reader's entitlements token does not let a reader in", async () => {
  const { token } = await client.entitlementToken("subscriber");
  const outcome = await client.decide({
    readerId: "reader-borrower",
    articleId: "2026/borrowed",
    entitlementToken: token,
  });
  assert.equal(outcome.source, "tollgate");
  assert.equal(outcome.reason, "metered");
});

test("a metered reader is granted three articles and refused the fourth, with offers", async () => {
  for (const n of [1, 2, 3]) {
    const outcome = await client.decide({ readerId: "reader-metered", articleId: `2026/m${n}` });
    assert.deepEqual(
      {
        allowed: outcome.allowed,
        source: outcome.source,
        reason: outcome.reason,
        used: outcome.meter.used,
      },
      { allowed: true, source: "tollgate", reason: "metered", used: n },
    );
    const claims = await verifier.verify(outcome.articleToken);
    assert.equal(claims.art, `2026/m${n}`);
    assert.ok(Date.parse(outcome.articleTokenExpiresAt) > Date.now());
  }

  const refused = await client.decide({ readerId: "reader-metered", articleId: "2026/m4" });

  assert.equal(refused.allowed, false);
  assert.equal(refused.source, "tollgate");
  assert.equal(refused.reason, "meter_exhausted");
  assert.equal(refused.articleToken, null);
  assert.equal(refused.meter.remaining, 0);
  assert.deepEqual(refused.offers, [{ plan_id: "all-access", name: "All access" }]);
});

test("tollgate's 4xx answers reject with TollgateError", async () => {
  await assert.rejects(client.decide({ readerId: "not a reader id!", articleId: "2026/x" }), {
    name: "TollgateError",
    status: 422,
    code: "invalid_body",
  });
  const badKey = clientOf(tollgate.baseUrl, { apiKey: `tgk_${"0".repeat(64)}` });
  const error = await badKey
    .decide({ readerId: "reader-key", articleId: "2026/x" })
    .catch((e) => e);
  assert.ok(error instanceof TollgateError);
  assert.deepEqual([error.status, error.code], [401, "invalid_api_key"]);
});

test("entitlementToken, merge and plans answer as tollgate does", async () => {
  const issued = await client.entitlementToken("subscriber");
  assert.deepEqual(issued.entitlements, ["articles"]);
  assert.equal((await verifier.verify(issued.token)).sub, "subscriber");

  const device = await client.decide({ deviceId: "device-1", articleId: "2026/anon" });
  assert.deepEqual([device.allowed, device.reason], [false, "not_allowed"]);
  const merged = await client.merge("reader-merge", "device-1");
  assert.deepEqual(
    [merged.reader_id, merged.device_id, merged.moved],
    ["reader-merge", "device-1", 0],
  );

  await tollgate.admin("PUT", "v1/plans/retired", {
    name: "Retired",
    stripe_prices: ["price_test_retired"],
    entitlements: ["articles"],
  });
  await tollgate.admin("POST", "v1/plans/retired/archive");
  assert.deepEqual(
    (await client.plans()).map((plan) => plan.id),
    ["all-access"],
  );
});

test("a tollgate answering 5xx or 429 is treated as unreachable", async () => {
  const { articleToken } = await client.decide({ readerId: "reader-5xx", articleId: "2026/kept" });
  const { token: entitlementToken } = await client.entitlementToken("subscriber");
  for (const status of [500, 503, 429]) {
    await withServer(
      (_, response) =>
        response.writeHead(status, { "content-type": "application/problem+json" }).end("{}"),
      async (baseUrl) => {
        const failing = clientOf(baseUrl);
        const kept = await failing.decide({
          readerId: "reader-5xx",
          articleId: "2026/kept",
          articleToken,
        });
        assert.deepEqual(
          [kept.allowed, kept.source, kept.reason],
          [true, "offline", "article_token"],
          `${status}`,
        );
        const other = await failing.decide({
          readerId: "reader-5xx",
          articleId: "2026/other",
          articleToken,
        });
        assert.deepEqual(
          [other.allowed, other.source, other.reason],
          [false, "offline", "tollgate_unavailable"],
        );
        const subscriber = await failing.decide({
          readerId: "subscriber",
          articleId: "2026/other",
          entitlementToken,
        });
        assert.deepEqual([subscriber.allowed, subscriber.source], [true, "token"]);
      },
    );
  }
});

test("an article token counts offline only for its own reader", async () => {
  const { articleToken } = await client.decide({
    readerId: "reader-owner",
    articleId: "2026/owned",
  });
  await withServer(
    (_, response) => response.writeHead(503).end(),
    async (baseUrl) => {
      const outcome = await clientOf(baseUrl).decide({
        readerId: "reader-other",
        articleId: "2026/owned",
        articleToken,
      });
      assert.deepEqual([outcome.allowed, outcome.reason], [false, "tollgate_unavailable"]);
    },
  );
});

test("a tollgate that does not answer is given up on within the timeout", async () => {
  await withServer(
    () => {},
    async (baseUrl) => {
      const { value, ms } = await timed(
        clientOf(baseUrl).decide({ readerId: "reader-hang", articleId: "2026/h" }),
      );
      assert.deepEqual(
        [value.allowed, value.source, value.reason],
        [false, "offline", "tollgate_unavailable"],
      );
      assert.ok(ms < DID_NOT_HANG_MS, `took ${ms} ms`);
    },
  );
});

test("with tollgate stopped, tokens still decide and nothing hangs", async () => {
  const { token: entitlementToken } = await client.entitlementToken("subscriber");
  const { articleToken } = await client.decide({
    readerId: "reader-offline",
    articleId: "2026/read",
  });
  // Keys past their cache age go on serving while the JWKS cannot be fetched.
  const stale = verifierOf(tollgate, { cacheMaxAgeMs: 0 });
  await stale.verify(articleToken);

  await tollgate.stop();

  const subscriber = await timed(
    client.decide({ readerId: "subscriber", articleId: "2026/new", entitlementToken }),
  );
  assert.deepEqual([subscriber.value.allowed, subscriber.value.source], [true, "token"]);

  const read = await timed(
    client.decide({ readerId: "reader-offline", articleId: "2026/read", articleToken }),
  );
  assert.deepEqual(
    [read.value.allowed, read.value.source, read.value.reason],
    [true, "offline", "article_token"],
  );

  const unread = await timed(
    client.decide({ readerId: "reader-offline", articleId: "2026/unread", articleToken }),
  );
  assert.deepEqual(
    [unread.value.allowed, unread.value.source, unread.value.reason],
    [false, "offline", "tollgate_unavailable"],
  );
  for (const { ms } of [subscriber, read, unread]) assert.ok(ms < DID_NOT_HANG_MS, `took ${ms} ms`);

  assert.equal((await stale.verify(articleToken)).art, "2026/read");
});
