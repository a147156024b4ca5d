// `npm start`: the site, configured by SITE_* environment variables (see README.md).

import { serve } from '@hono/node-server';

import { createApp } from './app.js';
import { loadConfig } from './config.js';

let config;
try {
  config = loadConfig();
} catch (error) {
  console.error(error.message);
  process.exit(2);
}

const app = createApp(config);
const server = serve({ fetch: app.fetch, hostname: config.host, port: config.port }, (info) => {
  console.error(`site listening address=${info.address}:${info.port} origin=${config.origin} tollgate=${config.tollgateUrl}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
