// clientAddress: who is behind the site's proxies, and what cannot be spoofed.

import assert from "node:assert/strict";
import { test } from "node:test";

import { clientAddress } from "@tollgate/paywall";

const trustedProxies = ["10.0.0.0/8", "2001:db8:ffff::/48"];
const request = (peer, forwardedFor) => ({
  socket: { remoteAddress: peer },
  headers: forwardedFor === undefined ? {} : { "x-forwarded-for": forwardedFor },
});
const address = (peer, forwardedFor, proxies = trustedProxies) =>
  clientAddress(request(peer, forwardedFor), { trustedProxies: proxies });

test("an untrusted peer is the client, whatever X-Forwarded-For says", () => {
  assert.equal(address("203.0.113.9", "198.51.100.7"), "203.0.113.9");
  assert.equal(address("203.0.113.9", "10.0.0.1, 198.51.100.7"), "203.0.113.9");
});

test("through trusted proxies, the first untrusted address from the right is the client", () => {
  assert.equal(address("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.1"), "198.51.100.7");
  assert.equal(address("10.0.0.2", "198.51.100.7"), "198.51.100.7");
});

test("a chain of trusted proxies only answers the farthest one", () => {
  assert.equal(address("10.0.0.2", "10.0.0.5, 10.0.0.1"), "10.0.0.5");
  assert.equal(address("10.0.0.2"), "10.0.0.2");
});

test("IPv6 CIDR ranges are matched", () => {
  assert.equal(address("2001:db8:ffff::5", "2001:db8:1::9, 2001:db8:ffff:1::1"), "2001:db8:1::9");
  assert.equal(address("2001:db8:fffe::5", "198.51.100.7"), "2001:db8:fffe::5");
});

test("IPv4-mapped IPv6 addresses are read and answered as IPv4", () => {
  assert.equal(address("::ffff:10.0.0.2", "::ffff:198.51.100.7"), "198.51.100.7");
  assert.equal(address("::ffff:203.0.113.9", "198.51.100.7"), "203.0.113.9");
  assert.equal(address("10.0.0.2", "198.51.100.7", ["::ffff:10.0.0.0/104"]), "198.51.100.7");
});

test("ports, brackets and spaces around entries are allowed", () => {
  assert.equal(address("10.0.0.2", " 1.1.1.1 ,198.51.100.7:5555 ,  "), "10.0.0.2");
  assert.equal(address("10.0.0.2", " 1.1.1.1 ,198.51.100.7:5555 "), "198.51.100.7");
  assert.equal(address("10.0.0.2", "1.1.1.1,  [2001:db8::7]:443"), "2001:db8::7");
  assert.equal(address("10.0.0.2", "1.1.1.1,\t[2001:db8:ffff::1], 2001:db8:ffff::2"), "1.1.1.1");
});

test("garbage stops the walk at the trusted proxy that passed it on", () => {
  assert.equal(address("10.0.0.2", "198.51.100.7, garbage"), "10.0.0.2");
  assert.equal(address("10.0.0.2", "198.51.100.7, unknown, 10.0.0.1"), "10.0.0.1");
  for (const odd of ["127.1", "0x7f.0.0.1", "256.1.1.1", "1.2.3.4.5", "::gg", "[::1", "_hidden"]) {
    assert.equal(address("10.0.0.2", `198.51.100.7, ${odd}`), "10.0.0.2", odd);
  }
});

test("fetch Headers and repeated Node headers are both read", () => {
  const headers = new Headers({ "X-Forwarded-For": "6.6.6.6, 198.51.100.7" });
  assert.equal(
    clientAddress({ headers, remoteAddress: "10.0.0.2" }, { trustedProxies }),
    "198.51.100.7",
  );
  const repeated = {
    headers: { "x-forwarded-for": ["6.6.6.6", "198.51.100.7"] },
    socket: { remoteAddress: "10.0.0.2" },
  };
  assert.equal(clientAddress(repeated, { trustedProxies }), "198.51.100.7");
});

test("without a peer address there is no client address", () => {
  assert.equal(
    clientAddress({ headers: { "x-forwarded-for": "198.51.100.7" } }, { trustedProxies }),
    null,
  );
  assert.equal(address("not-an-address", "198.51.100.7"), null);
});

test("a trusted proxy that is not an address or range is a configuration error", () => {
  for (const bad of ["10.0.0.0/33", "nope", "10.0.0.1:80", "2001:db8::/129"]) {
    assert.throws(() => address("10.0.0.2", undefined, [bad]), TypeError, bad);
  }
});
