// What the dashboard's browser test needs around it, beyond what the JavaScript tests share
// (tests/js/harness.js: tollgate's binary, keys, `tollgate serve`, waiting): a client for its
// API, signed Stripe webhooks, and a stand-in for Stripe's API that a reconcile can read.

import { createHmac } from 'node:crypto';
import http from 'node:http';
import path from 'node:path';

import { repoDir } from '../../tests/js/harness.js';

export {
  Child, chromiumPath, createKey, repoDir, startTollgate, tollgateBinary, waitFor,
} from '../../tests/js/harness.js';

export const dashboardDir = path.join(repoDir, 'dashboard');

/**
 * A client for tollgate's API with one key: `(method, path, body?)` answers
 * `{status, headers, text, json}` whatever the status; `.ok(...)` throws on a non-2xx.
 */
export function tollgateApi(baseUrl, key) {
  const send = async (method, pathname, body) => {
    const response = await fetch(`${baseUrl}${pathname}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // CSV, or nothing
    }
    return { status: response.status, headers: response.headers, text, json };
  };
  send.ok = async (method, pathname, body) => {
    const answer = await send(method, pathname, body);
    if (answer.status < 200 || answer.status > 299) {
      throw new Error(`${method} ${pathname} answered ${answer.status}: ${answer.text}`);
    }
    return answer.json ?? answer.text;
  };
  return send;
}

/** Signs a raw body as Stripe does: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. */
export function stripeSignature(secret, body, timestamp = Math.floor(Date.now() / 1000)) {
  const v1 = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return `t=${timestamp},v1=${v1}`;
}

/** POSTs one Stripe event to tollgate's webhook endpoint, signed; answers status and body. */
export async function deliverEvent(baseUrl, secret, event) {
  const body = JSON.stringify(event, null, 2);
  const response = await fetch(`${baseUrl}/v1/webhooks/stripe`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json; charset=utf-8',
      'user-agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)',
      'stripe-signature': stripeSignature(secret, body),
    },
    body,
  });
  return { status: response.status, answer: await response.text() };
}

/**
 * A stand-in for Stripe's API that a reconcile can read: every list is empty. It answers the
 * `GET /v1/<resource>` lists tollgate's reconcile reads, and Stripe's 404 for anything else;
 * but the paths in `missing` get a web server's HTML 404, as from an API without that list.
 */
export async function startEmptyStripe(secretKey, { missing = [] } = {}) {
  const seen = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://stripe.invalid');
    seen.push(`${req.method} ${url.pathname}`);
    const send = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json', 'request-id': `req_dash${seen.length}` });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${secretKey}`) {
      return send(401, { error: { type: 'invalid_request_error', message: 'Invalid API Key provided.' } });
    }
    if (missing.includes(url.pathname)) {
      res.writeHead(404, { 'content-type': 'text/html' });
      return res.end('<!DOCTYPE html><html><body><h1>Not Found</h1></body></html>');
    }
    if (req.method === 'GET' && /^\/v1\/[a-z_]+$/.test(url.pathname)) {
      return send(200, { object: 'list', data: [], has_more: false, url: url.pathname });
    }
    return send(404, { error: { type: 'invalid_request_error', message: `Unrecognized request URL (${req.method}: ${url.pathname}).` } });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    seen,
    async close() {
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
