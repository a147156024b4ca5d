// canRead on claims as tollgate writes them.

import assert from "node:assert/strict";
import { test } from "node:test";

import { canRead } from "@tollgate/paywall";

const claims = (scope, ent, art) => ({ scope, ent, ...(art === undefined ? {} : { art }) });

test("an entitlements token unlocks any article whose entitlement it lists", () => {
  const subscriber = claims("entitlements", ["articles", "newsletters:regional"]);
  assert.equal(canRead(subscriber, { articleId: "2026/a" }), true);
  assert.equal(
    canRead(subscriber, { articleId: "2026/b", requires: "newsletters:regional" }),
    true,
  );
  assert.equal(canRead(subscriber, { articleId: "2026/a", requires: "reports" }), false);
  assert.equal(canRead(claims("entitlements", []), { articleId: "2026/a" }), false);
});

test("an article token unlocks exactly its own article", () => {
  const metered = claims("article", [], "2026/a");
  assert.equal(canRead(metered, { articleId: "2026/a" }), true);
  assert.equal(canRead(metered, { articleId: "2026/a/" }), false);
  assert.equal(canRead(metered, { articleId: "2026/A" }), false);
  assert.equal(canRead(metered, { articleId: "2026/b" }), false);
});

test("an article token counts for another entitlement only when it lists it", () => {
  assert.equal(
    canRead(claims("article", [], "r/1"), { articleId: "r/1", requires: "reports" }),
    false,
  );
  assert.equal(
    canRead(claims("article", ["reports"], "r/1"), { articleId: "r/1", requires: "reports" }),
    true,
  );
});

test("no claims, or claims of another scope, unlock nothing", () => {
  assert.equal(canRead(null, { articleId: "2026/a" }), false);
  assert.equal(canRead(undefined, { articleId: "2026/a" }), false);
  assert.equal(canRead(claims("admin", ["articles"], "2026/a"), { articleId: "2026/a" }), false);
});
