// Configuration comes from the environment only, under the SITE_ prefix. (tollgate refuses
// unknown TOLLGATE_* variables of its own, so the site never uses that prefix.)

import path from 'node:path';

/**
 * @typedef {object} Config
 * @property {string} tollgateUrl     base URL of tollgate, e.g. http://127.0.0.1:8080
 * @property {string} apiKey          a tollgate key with the `service` role
 * @property {string} origin          the site's public origin, e.g. https://news.example
 * @property {number} port            the port to listen on (0: any free port)
 * @property {string} host            the address to listen on
 * @property {string} dataDir         where the reader store is kept
 * @property {boolean} devOutbox      whether /dev/outbox shows the mails the site "sent" (development only)
 * @property {string} tokenIssuer     the `iss` of tollgate's tokens
 * @property {string} tokenAudience   the `aud` of tollgate's tokens
 * @property {string[]} trustedProxies addresses of reverse proxies whose X-Forwarded-For is believed
 */

/** Reads the configuration from `env`; throws with every problem listed. */
export function loadConfig(env = process.env) {
  const problems = [];
  const required = (name) => {
    const value = env[name];
    if (value === undefined || value === '') problems.push(`${name} is required`);
    return value ?? '';
  };

  const tollgateUrl = required('SITE_TOLLGATE_URL').replace(/\/+$/, '');
  const apiKey = required('SITE_TOLLGATE_API_KEY');
  const origin = required('SITE_ORIGIN').replace(/\/+$/, '');

  for (const [name, value] of [['SITE_TOLLGATE_URL', tollgateUrl], ['SITE_ORIGIN', origin]]) {
    if (!value) continue;
    try {
      const url = new URL(value);
      if (!['http:', 'https:'].includes(url.protocol)) problems.push(`${name} must be an http(s) URL`);
      if (name === 'SITE_ORIGIN' && url.origin !== value) {
        problems.push(`SITE_ORIGIN must be an origin only (scheme, host, port), like ${url.origin}`);
      }
    } catch {
      problems.push(`${name} is not a URL: ${value}`);
    }
  }

  const portText = env.SITE_PORT ?? '3000';
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) problems.push(`SITE_PORT is not a port: ${portText}`);

  // Off unless asked for: whoever can read the outbox can sign in as any reader.
  const devOutbox = parseFlag(env.SITE_DEV_OUTBOX, false, 'SITE_DEV_OUTBOX', problems);

  if (problems.length) {
    throw new Error(`the site's configuration is incomplete:\n  - ${problems.join('\n  - ')}`);
  }
  return {
    tollgateUrl,
    apiKey,
    origin,
    port,
    host: env.SITE_HOST || '127.0.0.1',
    dataDir: path.resolve(env.SITE_DATA_DIR || 'data'),
    devOutbox,
    tokenIssuer: env.SITE_TOKEN_ISSUER || 'tollgate',
    tokenAudience: env.SITE_TOKEN_AUDIENCE || 'paywall',
    trustedProxies: (env.SITE_TRUSTED_PROXIES || '').split(',').map((s) => s.trim()).filter(Boolean),
  };
}

function parseFlag(value, fallback, name, problems) {
  if (value === undefined || value === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(value.toLowerCase())) return true;
  if (['0', 'false', 'no', 'off'].includes(value.toLowerCase())) return false;
  problems.push(`${name} must be 1 or 0, not ${value}`);
  return fallback;
}
