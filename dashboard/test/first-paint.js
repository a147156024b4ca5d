// Times the dashboard on a running tollgate: from navigation to each report page's tables filled
// with data, in Chromium, signed in with a finance key. Not a test (nothing is asserted): the
// report benchmark runs it over a large history (`DASHBOARD=1 bash bench/reports`).
//
//   node test/first-paint.js http://127.0.0.1:8080 tgk_...
//
// Prints one line per page: the milliseconds from navigation (or from clicking its link) until
// the page shows its data. The MRR page's time is the dashboard's first paint with data.

import { chromium } from 'playwright-core';

import { chromiumPath } from './harness.js';

const [baseUrl, key] = process.argv.slice(2);
if (!baseUrl || !key) {
  console.error('usage: node test/first-paint.js BASE_URL FINANCE_KEY');
  process.exit(2);
}
const TIMEOUT = 300_000;

const browser = await chromium.launch({ executablePath: chromiumPath(), headless: true });
try {
  const context = await browser.newContext({ baseURL: baseUrl, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  await page.goto('/dashboard/');
  await page.fill('#signin-key', key);
  const signedIn = Date.now();
  await page.press('#signin-key', 'Enter');
  await page.locator('[data-page="mrr"][data-state="ready"]').waitFor();
  console.log(`mrr (after sign-in)        ${Date.now() - signedIn} ms`);
  // A fresh load of the page, signed in: what a person sees on opening it again.
  const started = Date.now();
  await page.reload();
  await page.locator('[data-page="mrr"][data-state="ready"]').waitFor();
  const mark = await page.evaluate(() => performance.getEntriesByName('dashboard:first-data')[0]?.startTime);
  console.log(`mrr (first paint, reload)  ${Math.round(mark ?? Date.now() - started)} ms`);
  for (const name of ['revenue', 'subscribers', 'licences']) {
    const clicked = Date.now();
    await page.click(`a[data-route="${name}"]`);
    await page.locator(`[data-page="${name}"][data-state="ready"]`).waitFor();
    console.log(`${name.padEnd(26)} ${Date.now() - clicked} ms`);
  }
} finally {
  await browser.close();
}
