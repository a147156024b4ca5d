// What the journeys need beyond what the JavaScript tests share (tests/js/harness.js: tollgate's
// binary, keys, `tollgate serve`, Chromium, waiting): the site, a free port, an admin client.

import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';

import { Child, repoDir, waitFor } from '../../../tests/js/harness.js';

export {
  chromiumPath, createKey, startTollgate, tollgateBinary, waitFor,
} from '../../../tests/js/harness.js';

export const siteDir = path.join(repoDir, 'examples', 'publisher');

/** Starts the site (`node src/server.js`) and waits for /healthz. */
export async function startSite(env) {
  const child = new Child('site', spawn(process.execPath, ['src/server.js'], {
    cwd: siteDir,
    env: { ...process.env, NODE_ENV: 'development', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  const url = `http://127.0.0.1:${env.SITE_PORT}`;
  try {
    await waitFor('the site to listen', async () => {
      if (!child.running()) throw new Error(`the site exited:\n${child.tail()}`);
      const response = await fetch(`${url}/healthz`).catch(() => null);
      return response?.ok ?? false;
    }, { timeoutMs: 15_000, intervalMs: 50 });
  } catch (error) {
    await child.stop();
    throw error;
  }
  child.url = url;
  return child;
}

/** A port free on loopback right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A small JSON client for tollgate's admin calls the test makes. */
export function tollgateApi(baseUrl, key) {
  return async (method, pathname, body) => {
    const response = await fetch(`${baseUrl}${pathname}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${pathname} answered ${response.status}: ${text}`);
    return text ? JSON.parse(text) : null;
  };
}
