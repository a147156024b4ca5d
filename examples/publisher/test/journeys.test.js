// The reader's journeys through the site in a real browser (Debian's Chromium, driven by
// playwright-core), against a real tollgate and a fake Stripe. Each step checks what the reader
// sees, and where it matters the page source too.
//
//   CHROMIUM_PATH  the browser (default /usr/bin/chromium; never downloaded)
//   TOLLGATE_BIN   tollgate's binary (default: target/debug, then target/release, of this repo)

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { chromium } from 'playwright-core';

import { articles, weeklyReport } from '../src/content.js';
import { startFakeStripe } from './fake-stripe.js';
import {
  chromiumPath, createKey, freePort, siteDir, startSite, startTollgate, tollgateApi, tollgateBinary, waitFor,
} from './harness.js';

const SECRET_KEY = 'sk_test_51LedgerExampleFakeKey000000000000000000';
const WEBHOOK_SECRET = 'whsec_LedgerExampleJourneysSigningSecret01';
const MONTHLY = 'price_1LedgerAllAccessMonthly';
const YEARLY = 'price_1LedgerAllAccessYearly0';
const PERIOD_SECONDS = 6;
const EMAIL = 'ada.reader@example.com';
const screenshots = path.join(siteDir, 'screenshots');
const results = path.join(siteDir, 'test-results');

/** A sentence from the gated part of a piece, which must be on the page only when unlocked. */
const gated = (piece) => piece.paragraphs[piece.free + 1];
const teaser = (piece) => piece.paragraphs[0];

const processes = [];
let fake;
let browser;
let page;
let tmp;
let admin; // tollgate's API with the admin key
let tollgate;
let site;

before(async () => {
  const bin = tollgateBinary();
  const browserPath = chromiumPath();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'publisher-journeys-'));

  fake = await startFakeStripe({
    secretKey: SECRET_KEY,
    webhookSecret: WEBHOOK_SECRET,
    periodSeconds: PERIOD_SECONDS,
    webhookDelayMs: 1500,
    prices: {
      [MONTHLY]: { currency: 'eur', unit_amount: 999, interval: 'month', nickname: 'All Access, monthly', product: 'prod_LedgerAllAccess1', product_name: 'The Harbour Ledger All Access' },
      [YEARLY]: { currency: 'eur', unit_amount: 9900, interval: 'year', nickname: 'All Access, yearly', product: 'prod_LedgerAllAccess1', product_name: 'The Harbour Ledger All Access' },
    },
  });

  const sitePort = await freePort();
  const origin = `http://127.0.0.1:${sitePort}`;
  const settings = {
    TOLLGATE_DATABASE_URL: `sqlite://${path.join(tmp, 'tollgate.db')}`,
    TOLLGATE_STRIPE_API_BASE: `${fake.url}/`,
    TOLLGATE_STRIPE_SECRET_KEY: SECRET_KEY,
    TOLLGATE_STRIPE_WEBHOOK_SECRETS: WEBHOOK_SECRET,
    TOLLGATE_STRIPE_TIMEOUT: '5s',
    TOLLGATE_ALLOWED_REDIRECT_ORIGINS: origin,
    TOLLGATE_LOG_FORMAT: 'json',
    TOLLGATE_LOG_LEVEL: 'info,sqlx=warn',
  };
  const adminKey = await createKey(bin, settings, 'admin', 'journeys-admin');
  const serviceKey = await createKey(bin, settings, 'service', 'publisher-site');

  tollgate = await startTollgate(bin, settings);
  processes.push(tollgate);
  admin = tollgateApi(tollgate.url, adminKey);
  fake.setWebhookUrl(`${tollgate.url}/v1/webhooks/stripe`);

  // The plan, and its prices as Stripe announces them, so offers carry amounts.
  await admin('PUT', '/v1/plans/all-access', {
    name: 'All Access', stripe_prices: [MONTHLY, YEARLY], entitlements: ['articles', 'reports'],
  });
  for (const price of [MONTHLY, YEARLY]) {
    const delivered = await fake.announcePrice(price);
    assert.equal(delivered.status, 200, `price.created: ${delivered.answer}`);
  }
  const plan = await admin('GET', '/v1/plans/all-access');
  assert.deepEqual(plan.prices.map((p) => [p.known, p.unit_amount]), [[true, 999], [true, 9900]]);

  site = await startSite({
    SITE_TOLLGATE_URL: tollgate.url,
    SITE_TOLLGATE_API_KEY: serviceKey,
    SITE_ORIGIN: origin,
    SITE_PORT: String(sitePort),
    SITE_DATA_DIR: path.join(tmp, 'site-data'),
    SITE_DEV_OUTBOX: '1',
  });
  processes.push(site);

  browser = await chromium.launch({
    executablePath: browserPath,
    headless: true,
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
  });
  const context = await browser.newContext({ baseURL: origin, viewport: { width: 1000, height: 900 } });
  context.setDefaultTimeout(10_000);
  page = await context.newPage();
});

after(async () => {
  await browser?.close().catch(() => {});
  await fake?.settle().catch(() => {});
  for (const child of processes.reverse()) await child.stop().catch(() => {});
  await fake?.close().catch(() => {});
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// --- helpers

/** What the reader sees of the page's main part (rendered text only: hidden text is not in it). */
const visible = () => page.locator('main').innerText();

async function see(text, timeout = 10_000) {
  await page.getByText(text).first().waitFor({ state: 'visible', timeout });
}

async function open(piece) {
  const response = await page.goto(piece.path);
  assert.ok(response.ok(), `${piece.path} answered ${response.status()}`);
  await see(piece.title);
  return response;
}

/** The page as the browser received it. */
const source = () => page.content();

async function readsInFull(piece) {
  const text = await visible();
  assert.ok(text.includes(gated(piece)), `the gated part of ${piece.id} should be shown:\n${text}`);
  assert.equal(await page.locator('.paywalled').count(), 1);
  assert.equal(await page.locator('.offer').count(), 0, 'no offer beside a readable article');
}

async function isPaywalled(piece) {
  const text = await visible();
  assert.ok(text.includes(teaser(piece)), 'the teaser is shown');
  assert.ok(!text.includes(gated(piece)), `the gated part of ${piece.id} must not show`);
  assert.ok(!(await source()).includes(gated(piece)), `the gated part of ${piece.id} must not be in the HTML`);
  assert.equal(await page.locator('.paywalled').count(), 0);
}

function readerId() {
  const store = JSON.parse(fs.readFileSync(path.join(tmp, 'site-data', 'readers.json'), 'utf8'));
  const reader = Object.values(store.readers).find((r) => r.email === EMAIL);
  assert.ok(reader, 'the site stored the reader');
  return reader.id;
}

/** tollgate's count of POST /v1/access answers, from /metrics. */
async function accessCalls() {
  const metrics = await (await fetch(`${tollgate.url}/metrics`)).text();
  return metrics.split('\n')
    .filter((line) => line.startsWith('tollgate_http_requests_total{') && line.includes('endpoint="/v1/access"'))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

async function screenshot(name) {
  fs.mkdirSync(screenshots, { recursive: true });
  await page.screenshot({ path: path.join(screenshots, name), fullPage: true });
}

/** With JOURNEY_STEPS=1, every step's page is also saved in test-results/steps/. */
let step = 0;
async function snap(name) {
  if (process.env.JOURNEY_STEPS !== '1') return;
  const dir = path.join(results, 'steps');
  fs.mkdirSync(dir, { recursive: true });
  step += 1;
  await page.screenshot({ path: path.join(dir, `${String(step).padStart(2, '0')}-${name}.png`), fullPage: true });
}

async function onFailure(name, fn) {
  try {
    await fn();
  } catch (error) {
    fs.mkdirSync(results, { recursive: true });
    await page?.screenshot({ path: path.join(results, `${name}.png`), fullPage: true }).catch(() => {});
    const logs = processes.map((p) => `--- ${p.name}\n${p.tail(30)}`).join('\n');
    error.message += `\n(at ${page?.url()}; screenshot in test-results/${name}.png)\n${logs}`;
    throw error;
  }
}

const [first, second, third, fourth, fifth, sixth] = articles;

describe('a reader at The Harbour Ledger', () => {
  it('1. as an anonymous visitor sees the teaser and the registration offer, never the gated text', () =>
    onFailure('1-anonymous', async () => {
      await page.goto('/');
      await page.getByRole('link', { name: first.title }).click();
      await see(first.title);
      await see('Keep reading for free!');
      await see('Get instant access to the rest of this article as well as three free articles per month');
      await snap('anonymous-offer');
      assert.equal(await page.getByRole('button', { name: 'Register for free' }).count(), 1);
      await isPaywalled(first);

      // The page source as any client gets it, without the browser's cookies.
      const html = await (await fetch(`${site.url}${first.path}`)).text();
      assert.ok(html.includes(teaser(first)));
      assert.ok(!html.includes(gated(first)), 'gated text is not in the served HTML');
      const ld = JSON.parse(html.match(/<script type="application\/ld\+json">(.*?)<\/script>/s)[1]);
      assert.equal(ld.isAccessibleForFree, false);
      assert.equal(ld.hasPart.cssSelector, '.paywalled');
      assert.equal(ld.hasPart.isAccessibleForFree, false);

      const cookies = await page.context().cookies();
      const device = cookies.find((c) => c.name === 'ledger_device');
      assert.ok(device?.httpOnly && device.sameSite === 'Lax', 'an HttpOnly, SameSite=Lax device cookie');
    }));

  it('2. registers, reads three articles in full, meets the plans on the fourth; re-reading is free', () =>
    onFailure('2-metered', async () => {
      await open(first);
      await page.getByLabel('Your e-mail address').fill(EMAIL);
      await page.getByRole('button', { name: 'Register for free' }).click();
      await page.waitForURL(`**${first.path}`);
      await see('2 free articles left this month');
      await snap('registered-first-article');
      await readsInFull(first);
      assert.ok(await page.getByRole('link', { name: 'Account' }).isVisible(), 'signed in at once');

      await open(second);
      await see('1 free article left this month');
      await readsInFull(second);

      await open(third);
      await see('That was your last free article this month.');
      await readsInFull(third);

      await open(fourth);
      await see('You’ve read your 3 free articles this month');
      await isPaywalled(fourth);
      const plan = page.locator('.plan', { hasText: 'All Access' });
      await plan.waitFor();
      await see('€9.99 / month');
      await see('€99.00 / year');
      assert.equal(await plan.getByRole('button', { name: 'Subscribe' }).count(), 2);
      await screenshot('paywall.png');

      await open(first);
      await see('reading it again is free');
      await readsInFull(first);

      const view = await admin('GET', `/v1/readers/${readerId()}`);
      assert.equal(view.meter.used, 3);
      assert.equal(view.meter.remaining, 0);
    }));

  it('3. subscribes through Checkout, sees it activate, and reads everything without the meter', () =>
    onFailure('3-subscribe', async () => {
      const id = readerId();
      const usedBefore = (await admin('GET', `/v1/readers/${id}`)).meter.used;

      await open(fourth);
      await page.locator('.prices li', { hasText: '€9.99 / month' }).getByRole('button', { name: 'Subscribe' }).click();

      // The fake Stripe's hosted Checkout page.
      await page.waitForURL(`${fake.url}/c/pay/**`);
      await see('Subscribe to The Harbour Ledger All Access');
      await snap('checkout');
      await see('9.99 EUR');
      assert.equal(await page.getByLabel('Email').inputValue(), EMAIL, 'tollgate passed the address on');
      await page.getByRole('button', { name: 'Pay' }).click();

      // Back on the site before Stripe's webhooks have arrived: it waits for them.
      await page.waitForURL('**/subscribe/success?**');
      await see('Activating your subscription…');
      await snap('activating');
      await see(/You.re subscribed/, 20_000);
      await snap('subscribed');
      await fake.settle();
      assert.deepEqual(fake.deliveries.slice(-3).map((d) => [d.type, d.status]), [
        ['checkout.session.completed', 200],
        ['customer.subscription.created', 200],
        ['invoice.paid', 200],
      ]);
      const checkout = fake.seen.find((r) => r.path === '/v1/checkout/sessions');
      assert.equal(checkout.form.client_reference_id, id);
      assert.equal(checkout.form['line_items[0][price]'], MONTHLY);

      const callsBefore = await accessCalls();
      await page.getByRole('link', { name: 'Continue reading' }).click();
      await page.waitForURL(`**${fourth.path}`);
      await see('Subscriber access');
      await readsInFull(fourth);
      await screenshot('article.png');

      await open(fifth);
      await readsInFull(fifth);
      await open(weeklyReport);
      await readsInFull(weeklyReport);

      // The entitlements token in the cookie answered: no access call, no meter.
      assert.equal(await accessCalls(), callsBefore, 'a subscriber costs no POST /v1/access per article');
      const view = await admin('GET', `/v1/readers/${id}`);
      assert.equal(view.meter.used, usedBefore, 'the meter did not move');
      assert.deepEqual(view.entitlements.map((e) => e.name), ['articles', 'reports']);
      const ent = (await page.context().cookies()).find((c) => c.name === 'ledger_ent');
      assert.ok(ent?.httpOnly, 'the entitlements token is in an HttpOnly cookie');
    }));

  it('4. cancels in the portal: reads until the period ends, then meets the paywall again', () =>
    onFailure('4-cancel', async () => {
      await page.goto('/account');
      await see('renews automatically');
      await snap('account');
      await page.getByRole('button', { name: 'Manage subscription' }).click();

      await page.waitForURL(`${fake.url}/p/session/**`);
      await see('Current subscription');
      await snap('portal');
      await page.getByRole('button', { name: 'Cancel subscription' }).click();

      await page.waitForURL('**/account?from=portal');
      await see('Welcome back.');
      await see(/ends on/);
      await snap('account-after-cancel');
      const [subscription] = (await admin('GET', `/v1/readers/${readerId()}`)).subscriptions;
      assert.equal(subscription.cancel_at_period_end, true);
      const lapsesAt = Date.parse(subscription.lapses_at);
      assert.ok(lapsesAt > Date.now(), 'the period has not ended yet');

      // The token the site holds now expires with the period, not 15 minutes on.
      const ent = (await page.context().cookies()).find((c) => c.name === 'ledger_ent');
      assert.ok(ent, 'an entitlements token after the portal');
      assert.ok(ent.expires * 1000 <= lapsesAt + 1000, `cookie expires ${ent.expires}, period ends ${lapsesAt / 1000}`);

      // Right after cancelling, still a subscriber.
      await open(sixth);
      await readsInFull(sixth);
      assert.ok(Date.now() < lapsesAt, 'read before the period ended');

      // Once the period is over, the paywall is back (the meter was spent in journey 2).
      await waitFor('the paywall to return after the period ends', async () => {
        await open(sixth);
        return (await page.locator('.offer-plans').count()) === 1;
      }, { timeoutMs: (PERIOD_SECONDS + 20) * 1000, intervalMs: 500 });
      assert.ok(Date.now() >= lapsesAt, 'not before the period ended');
      await see('You’ve read your 3 free articles this month');
      await isPaywalled(sixth);
      await snap('paywall-after-period');
      const view = await admin('GET', `/v1/readers/${readerId()}`);
      assert.deepEqual(view.entitlements, []);
    }));

  it('5. logs out, signs in again by an e-mailed link, and finds the state as it was', () =>
    onFailure('5-signin', async () => {
      await page.getByRole('button', { name: 'Log out' }).first().click();
      await page.waitForURL((url) => url.pathname === '/');
      await see('Sign in');
      await open(first);
      await see('Keep reading for free!');
      await isPaywalled(first);

      // Typing a registered address into the registration form signs nobody in.
      await page.getByLabel('Your e-mail address').fill(EMAIL);
      await page.getByRole('button', { name: 'Register for free' }).click();
      await see('You already have an account');
      await snap('already-registered');
      assert.equal(await page.getByRole('link', { name: 'Account' }).count(), 0, 'still signed out');

      await page.goto('/signin');
      await page.getByLabel('Your e-mail address').fill(EMAIL);
      await page.getByRole('button', { name: 'Send me a sign-in link' }).click();
      await see('Check your inbox');
      await snap('check-inbox');
      assert.equal(await page.getByRole('link', { name: 'Account' }).count(), 0, 'still signed out');

      await page.goto('/dev/outbox');
      const mail = page.locator('.mail').first();
      await snap('outbox');
      assert.ok((await mail.innerText()).includes(EMAIL));
      const link = await mail.locator('a.mail-link').getAttribute('href');
      await mail.locator('a.mail-link').click();
      await see(`Sign in as ${EMAIL}?`);
      await snap('confirm-signin');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('link', { name: 'Account' }).waitFor();

      // The metered state is as it was: the first article is still unlocked, the meter spent.
      await open(first);
      await see('reading it again is free');
      await readsInFull(first);
      await open(fourth);
      await see('You’ve read your 3 free articles this month');
      await isPaywalled(fourth);
      await open(weeklyReport);
      await see('The weekly report is for subscribers');
      await snap('report-offer');
      await isPaywalled(weeklyReport);

      // The link worked once.
      await page.goto(link);
      await see('This sign-in link has expired');
      await snap('used-link');
    }));
});
