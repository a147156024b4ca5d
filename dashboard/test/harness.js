// What the dashboard's browser test needs around it: tollgate (a binary built beforehand, never
// built here) on a temporary SQLite database, its keys, signed Stripe webhooks, a stand-in for
// Stripe's API that a reconcile can read, and waiting on conditions with a deadline.
// Patterned on examples/publisher/test/harness.js; nothing is imported from there.

import { execFile, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
export const dashboardDir = path.resolve(here, '..');
export const repoDir = path.resolve(dashboardDir, '..');

/** tollgate's binary: $TOLLGATE_BIN, else target/debug, else target/release of this repository. */
export function tollgateBinary() {
  const candidates = process.env.TOLLGATE_BIN
    ? [path.resolve(process.env.TOLLGATE_BIN)]
    : [path.join(repoDir, 'target', 'debug', 'tollgate'), path.join(repoDir, 'target', 'release', 'tollgate')];
  for (const candidate of candidates) {
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // try the next
    }
  }
  throw new Error(
    `no tollgate binary at ${candidates.join(' or ')}: build it first (cargo build, in the repository root) ` +
      'or point TOLLGATE_BIN at one. The tests never build it.',
  );
}

/** The browser: $CHROMIUM_PATH or Debian's /usr/bin/chromium, never one downloaded. */
export function chromiumPath() {
  const candidate = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
  try {
    fs.accessSync(candidate, fs.constants.X_OK);
    return candidate;
  } catch {
    throw new Error(`no browser at ${candidate}: install Debian's (apt-get install -y chromium) or set CHROMIUM_PATH`);
  }
}

/** The environment for tollgate: ours, without any TOLLGATE_* or DATABASE_URL of the caller's. */
function tollgateEnv(settings) {
  const env = {};
  for (const [name, value] of Object.entries(process.env)) {
    // tollgate refuses unknown TOLLGATE_* variables (TOLLGATE_BIN is one) and reads DATABASE_URL.
    if (!name.startsWith('TOLLGATE_') && name !== 'DATABASE_URL') env[name] = value;
  }
  return { ...env, ...settings };
}

/** Runs `tollgate keys create` (with `extra` arguments) and answers the key it prints. */
export async function createKey(bin, settings, role, name, extra = []) {
  const { stdout } = await promisify(execFile)(bin, ['keys', 'create', '--role', role, '--name', name, ...extra], {
    env: tollgateEnv(settings),
    timeout: 30_000,
  });
  const key = stdout.trim();
  if (!/^tgk_[0-9a-f]{64}$/.test(key)) throw new Error(`tollgate keys create printed ${JSON.stringify(stdout)}`);
  return key;
}

/** Every process started here, killed at exit whatever happened. */
const children = new Set();
process.on('exit', () => {
  for (const child of children) if (child.running()) child.proc.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => process.exit(130));
}

/** A process we started, its output kept for a failure's report. */
class Child {
  constructor(name, proc) {
    this.name = name;
    this.proc = proc;
    children.add(this);
    this.output = '';
    this.exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
    for (const stream of [proc.stdout, proc.stderr]) {
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => {
        this.output += chunk;
        if (this.output.length > 400_000) this.output = this.output.slice(-200_000);
      });
    }
  }

  running() {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** SIGTERM, then SIGKILL if it has not gone within `graceMs`. */
  async stop(graceMs = 3000) {
    if (!this.running()) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.running() && this.proc.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
    children.delete(this);
  }

  tail(lines = 40) {
    return this.output.split('\n').slice(-lines).join('\n');
  }
}

/** Starts `tollgate serve` on a free loopback port and waits until it is ready. */
export async function startTollgate(bin, settings) {
  const child = new Child('tollgate', spawn(bin, ['serve'], {
    env: tollgateEnv({ TOLLGATE_BIND: '127.0.0.1:0', ...settings }),
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  let address = null;
  try {
    await waitFor('tollgate to listen', async () => {
      if (!child.running()) throw new Error(`tollgate exited:\n${child.tail()}`);
      address ??= listeningAddress(child.output);
      if (!address) return false;
      const response = await fetch(`http://${address}/readyz`).catch(() => null);
      return response?.ok ?? false;
    }, { timeoutMs: 30_000, intervalMs: 50 });
  } catch (error) {
    await child.stop();
    throw error;
  }
  child.url = `http://${address}`;
  return child;
}

/** The address in tollgate's "listening" log line, JSON or pretty. */
function listeningAddress(log) {
  for (const line of log.split('\n')) {
    if (!line.includes('listening')) continue;
    const match = line.match(/address\W{1,3}((?:\d{1,3}\.){3}\d{1,3}:\d+)/);
    if (match) return match[1];
  }
  return null;
}

/**
 * Polls `check` until it answers something truthy (which is returned), or fails after
 * `timeoutMs` naming what it waited for. An exception thrown by `check` ends the wait at once.
 */
export async function waitFor(what, check, { timeoutMs = 10_000, intervalMs = 250 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await check();
    if (result) return result;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

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
 * `GET /v1/<resource>` lists tollgate's reconcile reads, and Stripe's 404 for anything else.
 */
export async function startEmptyStripe(secretKey) {
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
