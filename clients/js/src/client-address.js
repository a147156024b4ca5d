// The address of the client behind the site's own proxies, for per-reader limits and logs.
// Pure JS (ipaddr.js parses and matches addresses), so it runs on edge runtimes too.

import ipaddr from "ipaddr.js";

/**
 * Walks `X-Forwarded-For` from the right, starting at the socket peer, and answers the first
 * address that is not a trusted proxy: every hop right of it was added by a proxy we trust, and
 * anything left of it was written by the client and proves nothing.
 *
 * - A peer that is not a trusted proxy is the client; its header is never read.
 * - No peer address (none given, or unreadable): null, since nothing can be vouched for.
 * - An entry that is not an address (garbage, `unknown`, an obfuscated name) stops the walk,
 *   and the answer is the trusted proxy that passed it on: the last address known good.
 * - Every hop trusted: the leftmost one, the farthest back the chain goes.
 *
 * Entries may carry ports (`1.2.3.4:80`, `[2001:db8::1]:443`) and spaces; IPv4-mapped IPv6
 * addresses (`::ffff:1.2.3.4`) are read, and answered, as IPv4.
 */
export function clientAddress(request, { trustedProxies }) {
  const trusted = ranges(trustedProxies);
  const isTrusted = (address) =>
    trusted.some(([range, bits]) => address.kind() === range.kind() && address.match(range, bits));

  let current = parseAddress(request.socket?.remoteAddress ?? request.remoteAddress);
  if (current === null) return null;
  const hops = header(request.headers, "x-forwarded-for")?.split(",") ?? [];
  while (isTrusted(current) && hops.length > 0) {
    const next = parseAddress(hops.pop());
    if (next === null) break;
    current = next;
  }
  return current.toString();
}

// Parsed once per list: sites pass the same configured array on every request.
const parsedLists = new WeakMap();

function ranges(list) {
  if (!Array.isArray(list)) {
    throw new TypeError("trustedProxies is a list of IP addresses and CIDR ranges");
  }
  let parsed = parsedLists.get(list);
  if (parsed === undefined) {
    parsed = list.map(parseRange);
    parsedLists.set(list, parsed);
  }
  return parsed;
}

function parseRange(text) {
  const match = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(String(text).trim());
  const address = match === null ? null : parseHost(match[1]);
  const full = address?.kind() === "ipv4" ? 32 : 128;
  // A mapped range (::ffff:10.0.0.0/104) is the IPv4 range it covers, as addresses are.
  const offset = address?.kind() === "ipv4" && match[1].includes(":") ? 96 : 0;
  const bits = match?.[2] === undefined ? full : Number(match[2]) - offset;
  if (address === null || bits < 0 || bits > full) {
    throw new TypeError(`trustedProxies: ${text} is not an IP address or CIDR range`);
  }
  return [address, bits];
}

// An address as a proxy writes it, port and brackets allowed; null when it is not one.
function parseAddress(text) {
  if (typeof text !== "string") return null;
  const host = text.trim();
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(host);
  if (bracketed) return parseHost(bracketed[1]);
  if (/^[\d.]+:\d+$/.test(host)) return parseHost(host.slice(0, host.indexOf(":")));
  return parseHost(host);
}

function parseHost(host) {
  if (host.includes(":")) {
    if (!ipaddr.IPv6.isValid(host)) return null;
    const address = ipaddr.IPv6.parse(host);
    return address.isIPv4MappedAddress() ? address.toIPv4Address() : address;
  }
  // Only dotted quads: ipaddr.js would also take `127.1` or `0x7f.0.0.1`, which no proxy writes.
  return ipaddr.IPv4.isValidFourPartDecimal(host) ? ipaddr.IPv4.parse(host) : null;
}

// One header from a fetch `Headers` or a Node headers object; repeated headers join with commas.
function header(headers, name) {
  if (!headers) return undefined;
  if (typeof headers.get === "function") return headers.get(name) ?? undefined;
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : headers[key];
  return Array.isArray(value) ? value.join(",") : value;
}
