// What the JavaScript tests beside tollgate (the example site's journeys, the dashboard's browser
// test) share: finding tollgate's binary (built beforehand, never built here) and Debian's
// Chromium, making keys, starting `tollgate serve` and the processes around it, killed at exit
// whatever happened, and waiting on conditions with a deadline. Node's own modules only.

import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/** The repository this file is in. */
export const repoDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

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
export class Child {
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
