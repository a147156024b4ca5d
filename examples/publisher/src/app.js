// The site: routes, cookies and the paywall decision for each page view.
//
// Cookies (all HttpOnly, SameSite=Lax, Secure when SITE_ORIGIN is https):
//   ledger_session  the signed-in reader's session (a random secret; the store keeps its hash)
//   ledger_device   an anonymous visitor's device id, which tollgate meters as `device_id`
//   ledger_ent      a subscriber's entitlements token from tollgate, kept until it expires, so a
//                   subscriber's article views need no call to tollgate
//   ledger_art      an article token, one per article: each is scoped to its article's path, so
//                   the browser sends only the one for the page it asks for

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';

import { Hono } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import {
  TollgateError,
  clientAddress,
  createAccessClient,
  createVerifier,
} from '@tollgate/paywall';

import { allPiecePaths, findArticle, weeklyReport } from './content.js';
import { Store, normaliseEmail } from './store.js';
import { createSiteClient } from './tollgate.js';
import * as views from './views.js';

const SESSION = 'ledger_session';
const DEVICE = 'ledger_device';
const ENT = 'ledger_ent';
const ART = 'ledger_art';

const DEVICE_ID = /^d_[0-9a-f]{32}$/;
const PLAN_ID = /^[a-z0-9][a-z0-9_:-]{0,63}$/;
const PRICE_ID = /^(price|plan)_[A-Za-z0-9_]{1,200}$/;
const ATTEMPT = /^[0-9a-f]{32}$/;
const PLANS_CACHE_MS = 30_000;
const MAILS_PER_WINDOW = 5;
const MAIL_WINDOW_MS = 15 * 60_000;

const STATIC = {
  '/static/site.css': ['text/css; charset=utf-8', 'site.css'],
  '/static/activate.js': ['text/javascript; charset=utf-8', 'activate.js'],
};

/** A same-site path to go back to after a form, or `/`: never another origin. */
export function safeNext(value) {
  const next = typeof value === 'string' ? value : '';
  return /^\/(?![/\\])[A-Za-z0-9\-._~/%?=&]{0,300}$/.test(next) ? next : '/';
}

const secondsUntil = (iso) => Math.floor((Date.parse(iso) - Date.now()) / 1000);

/**
 * The site as a Hono app.
 * @param {import('./config.js').Config} config
 */
export function createApp(config, { store = new Store(config.dataDir), log = defaultLog } = {}) {
  const verifier = createVerifier({
    jwksUrl: `${config.tollgateUrl}/.well-known/jwks.json`,
    issuer: config.tokenIssuer,
    audience: config.tokenAudience,
  });
  const access = createAccessClient({ baseUrl: config.tollgateUrl, apiKey: config.apiKey, verifier });
  const site = createSiteClient({ baseUrl: config.tollgateUrl, apiKey: config.apiKey });
  const cookie = { httpOnly: true, sameSite: 'Lax', secure: config.origin.startsWith('https:'), path: '/' };
  const staticFiles = Object.fromEntries(Object.entries(STATIC).map(([route, [type, file]]) => [
    route, [type, fs.readFileSync(new URL(`../public/${file}`, import.meta.url))],
  ]));

  const app = new Hono();

  // --- every response: no framing, no sniffing, scripts only from here, nothing cached shared.
  app.use('*', async (c, next) => {
    await next();
    c.header('Content-Security-Policy',
      "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'");
    c.header('X-Content-Type-Options', 'nosniff');
    c.header('X-Frame-Options', 'DENY');
    c.header('Referrer-Policy', 'same-origin');
    // Pages differ by reader (and carry gated text only for those allowed): never cache them shared.
    if (!c.res.headers.has('Cache-Control')) c.header('Cache-Control', 'private, no-store');
  });

  // --- CSRF: every form is a same-origin POST; anything else is refused before it acts.
  app.use('*', async (c, next) => {
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD') {
      const origin = c.req.header('origin') ?? refererOrigin(c.req.header('referer'));
      if (origin !== config.origin) {
        log('refused a cross-origin', c.req.method, c.req.path, 'from', origin ?? '(no Origin)');
        return c.html(views.messagePage({
          title: 'Request refused',
          reader: null,
          message: 'This form must be sent from this site. Go back, reload the page and try again.',
        }), 403);
      }
    }
    await next();
  });

  // --- who is reading
  app.use('*', async (c, next) => {
    c.set('reader', store.sessionReader(getCookie(c, SESSION)));
    await next();
  });

  // --- cookies

  /** The anonymous visitor's device id, given one on the first visit. */
  function deviceId(c) {
    const existing = getCookie(c, DEVICE);
    if (existing && DEVICE_ID.test(existing)) return existing;
    const id = `d_${randomBytes(16).toString('hex')}`;
    setCookie(c, DEVICE, id, { ...cookie, maxAge: 365 * 24 * 3600 });
    return id;
  }

  /** Keeps an entitlements token until its `exp`, or drops the cookie when it grants nothing. */
  function keepEntitlementToken(c, issued) {
    const maxAge = secondsUntil(issued.expires_at);
    if (issued.entitlements.length === 0 || maxAge <= 0) {
      deleteCookie(c, ENT, cookie);
    } else {
      setCookie(c, ENT, issued.token, { ...cookie, maxAge });
    }
  }

  /** A fresh entitlements token from tollgate into the cookie; what the reader holds. */
  async function refreshEntitlementToken(c, reader) {
    const issued = await access.entitlementToken(reader.id);
    keepEntitlementToken(c, issued);
    return issued.entitlements;
  }

  function dropReaderCookies(c) {
    deleteCookie(c, ENT, cookie);
    for (const path of allPiecePaths()) deleteCookie(c, ART, { ...cookie, path });
  }

  /** Signs `reader` in on this browser and moves the device's free views to their meter. */
  async function startSession(c, reader) {
    store.endSession(getCookie(c, SESSION));
    dropReaderCookies(c);
    const session = store.createSession(reader.id);
    setCookie(c, SESSION, session.secret, { ...cookie, maxAge: session.maxAgeSec });
    const device = getCookie(c, DEVICE);
    if (device && DEVICE_ID.test(device)) {
      try {
        const merged = await access.merge(reader.id, device);
        log('merged device', device, 'into', reader.id, `moved=${merged.moved} left_over=${merged.left_over}`);
      } catch (error) {
        // The reader keeps their own meter; the device's unlocks stay with the device.
        log('merge failed for', reader.id, error.message);
      }
    }
  }

  // --- plans, for prices beside the offers

  let plansCache = { at: 0, plans: null };
  async function currentPlans() {
    if (plansCache.plans && Date.now() - plansCache.at < PLANS_CACHE_MS) return plansCache.plans;
    try {
      plansCache = { at: Date.now(), plans: await access.plans() };
    } catch (error) {
      log('plans unavailable:', error.message);
    }
    return plansCache.plans;
  }

  // --- sign-in mails, rate limited per address and per client

  const mailLog = new Map();
  function mayMail(key) {
    const now = Date.now();
    const recent = (mailLog.get(key) ?? []).filter((t) => now - t < MAIL_WINDOW_MS);
    if (recent.length >= MAILS_PER_WINDOW) return false;
    recent.push(now);
    mailLog.set(key, recent);
    if (mailLog.size > 10_000) {
      for (const [k, times] of mailLog) if (times.every((t) => now - t >= MAIL_WINDOW_MS)) mailLog.delete(k);
    }
    return true;
  }

  function sendSigninLink(reader, next) {
    const token = store.createSigninLink(reader.id);
    const link = `${config.origin}/signin/verify?token=${token}&next=${encodeURIComponent(next)}`;
    const mail = {
      to: reader.email,
      subject: 'Your sign-in link for The Harbour Ledger',
      text: `Hello,\n\nFollow this link to sign in to The Harbour Ledger. It works once, within 15 minutes:\n\n${link}\n\nIf you did not ask to sign in, you can ignore this mail.\n`,
      link,
    };
    if (config.devOutbox) {
      store.sendMail(mail);
      log('sign-in mail for', reader.id, 'recorded in /dev/outbox');
    } else {
      // A real deployment sends `mail` with its mailer here.
      log('sign-in mail for', reader.id, 'not sent: no mailer is configured (SITE_DEV_OUTBOX is off)');
    }
  }

  // --- pages

  app.get('/', (c) => c.html(views.homePage({ reader: c.get('reader') })));

  app.get('/articles/:id', async (c) => {
    const piece = findArticle(c.req.param('id'));
    if (!piece) return notFound(c);
    return showPiece(c, piece);
  });

  app.get(weeklyReport.path, (c) => showPiece(c, weeklyReport));

  /**
   * One article view. @tollgate/paywall's decide() lets a valid entitlements token through with
   * no call; otherwise tollgate decides (and meters); when tollgate cannot answer, a valid article
   * token for this very article keeps it readable.
   */
  async function showPiece(c, piece) {
    const reader = c.get('reader');
    const device = reader ? undefined : deviceId(c);
    const entToken = reader ? getCookie(c, ENT) : undefined;
    const artToken = getCookie(c, ART);
    let decision = null;
    let notice = null;
    try {
      decision = await access.decide({
        ...(reader ? { readerId: reader.id } : { deviceId: device }),
        articleId: piece.id,
        requires: piece.requires,
        entitlementToken: entToken,
        articleToken: artToken,
      });
    } catch (error) {
      // A 4xx: the site's key or request is wrong. Fail closed, and say so in the log.
      log('access decision failed for', piece.id, error.message);
      notice = 'Something went wrong on our side. Please try again in a moment.';
    }
    if (decision?.source === 'offline' && !decision.allowed) {
      notice = 'Our subscription service is briefly unavailable. Please try again in a moment.';
    }

    if (decision?.source === 'tollgate' && decision.allowed && decision.articleToken) {
      const maxAge = secondsUntil(decision.articleTokenExpiresAt);
      if (maxAge > 0) setCookie(c, ART, decision.articleToken, { ...cookie, path: piece.path, maxAge });
    }
    if (reader && decision?.source === 'tollgate' && decision.reason === 'entitled') {
      // A subscriber: from now on their token answers, until it expires.
      await refreshEntitlementToken(c, reader).catch((error) => log('token refresh failed:', error.message));
    } else if (entToken && decision?.source !== 'token' && !(await verifier.verifyOrNull(entToken))) {
      deleteCookie(c, ENT, cookie); // expired or no longer verifiable: stop sending it
    }

    const plans = decision && !decision.allowed && reader && !notice ? await currentPlans() : null;
    return c.html(views.piecePage({
      piece,
      reader,
      decision,
      plans,
      notice,
      origin: config.origin,
      attempt: randomBytes(16).toString('hex'),
    }), notice && !decision?.allowed ? 503 : 200);
  }

  // --- registration and sign-in

  app.get('/register', (c) => {
    const next = safeNext(c.req.query('next'));
    if (c.get('reader')) return c.redirect(next, 303);
    return c.html(views.registerPage({ reader: null, next }));
  });

  app.post('/register', async (c) => {
    const form = await c.req.parseBody();
    const next = safeNext(form.next);
    const email = normaliseEmail(form.email);
    if (!email) {
      return c.html(views.registerPage({
        reader: c.get('reader'), next, email: String(form.email ?? '').slice(0, 254),
        error: 'Please enter a valid e-mail address, such as you@example.com.',
      }), 400);
    }
    const existing = store.readerByEmail(email);
    if (existing) {
      // Typing an address never signs anyone in: the owner gets a link instead.
      if (mayMail(`email:${email}`) && mayMail(`ip:${clientIp(c)}`)) sendSigninLink(existing, next);
      return c.html(views.messagePage({
        title: 'You already have an account',
        reader: c.get('reader'),
        message: [`We’ve e-mailed a sign-in link to ${email}. It works once, within 15 minutes.`],
        links: devOutboxLink(),
      }));
    }
    const reader = store.createReader(email);
    log('registered', reader.id);
    await startSession(c, reader);
    return c.redirect(next, 303);
  });

  app.get('/signin', (c) => c.html(views.signinPage({ reader: c.get('reader'), next: safeNext(c.req.query('next')) })));

  app.post('/signin', async (c) => {
    const form = await c.req.parseBody();
    const next = safeNext(form.next);
    const email = normaliseEmail(form.email);
    if (!email) {
      return c.html(views.signinPage({
        reader: c.get('reader'), next, email: String(form.email ?? '').slice(0, 254),
        error: 'Please enter a valid e-mail address.',
      }), 400);
    }
    if (!mayMail(`email:${email}`) || !mayMail(`ip:${clientIp(c)}`)) {
      return c.html(views.messagePage({
        title: 'Too many sign-in links',
        reader: c.get('reader'),
        message: 'We have sent several links already. Please use the latest one, or try again in a few minutes.',
      }), 429);
    }
    const reader = store.readerByEmail(email);
    if (reader) sendSigninLink(reader, next);
    // The same answer either way, so the form does not tell who has an account.
    return c.html(views.messagePage({
      title: 'Check your inbox',
      reader: c.get('reader'),
      message: [`If ${email} has an account with us, we’ve sent it a sign-in link.`, 'The link works once, within 15 minutes.'],
      links: devOutboxLink(),
    }));
  });

  // A GET only shows a button: mail scanners that prefetch links cannot use the link up. (The
  // site-wide Referrer-Policy `same-origin` keeps the token in this URL from leaving the site.)
  app.get('/signin/verify', (c) => {
    const token = c.req.query('token') ?? '';
    const reader = store.peekSigninLink(token);
    if (!reader) return expiredLink(c);
    return c.html(views.signinConfirmPage({
      reader: c.get('reader'), email: reader.email, token, next: safeNext(c.req.query('next')),
    }));
  });

  app.post('/signin/verify', async (c) => {
    const form = await c.req.parseBody();
    const reader = store.consumeSigninLink(String(form.token ?? ''));
    if (!reader) return expiredLink(c);
    log('signed in', reader.id);
    await startSession(c, reader);
    return c.redirect(safeNext(form.next), 303);
  });

  app.post('/logout', (c) => {
    store.endSession(getCookie(c, SESSION));
    deleteCookie(c, SESSION, cookie);
    dropReaderCookies(c);
    return c.redirect('/', 303);
  });

  // --- subscribing

  app.post('/subscribe', async (c) => {
    const form = await c.req.parseBody();
    const next = safeNext(form.next);
    const reader = c.get('reader');
    if (!reader) return c.redirect(`/register?next=${encodeURIComponent(next)}`, 303);
    const planId = String(form.plan_id ?? '');
    const price = form.price ? String(form.price) : undefined;
    if (!PLAN_ID.test(planId) || (price && !PRICE_ID.test(price))) return c.redirect(next, 303);
    const attempt = ATTEMPT.test(String(form.attempt)) ? form.attempt : randomBytes(16).toString('hex');
    try {
      const session = await site.checkout({
        readerId: reader.id,
        planId,
        price,
        email: reader.email,
        successUrl: `${config.origin}/subscribe/success?session_id={CHECKOUT_SESSION_ID}&next=${encodeURIComponent(next)}`,
        cancelUrl: `${config.origin}${next}`,
        // The same Subscribe button pressed twice lands on one Checkout Session.
        idempotencyKey: `checkout-${reader.id}-${attempt}-${price ?? planId}`,
      });
      log('checkout', session.id, 'for', reader.id, 'plan', planId);
      return c.redirect(session.url, 303);
    } catch (error) {
      if (error instanceof TollgateError && error.code === 'already_subscribed') {
        await refreshEntitlementToken(c, reader).catch(() => {});
        return c.redirect('/account?notice=already_subscribed', 303);
      }
      log('checkout failed for', reader.id, error.message);
      return c.html(views.messagePage({
        title: 'We couldn’t start the checkout',
        reader,
        message: 'Nothing was charged. Please go back and try again in a moment.',
        links: [{ href: next, text: 'Back to the article' }],
      }), 502);
    }
  });

  // Stripe sends the reader here after paying; the subscription arrives by webhook, maybe later.
  app.get('/subscribe/success', (c) => {
    const next = safeNext(c.req.query('next'));
    const reader = c.get('reader');
    if (!reader) return c.redirect(`/signin?next=${encodeURIComponent(c.req.path)}`, 303);
    return c.html(views.activatingPage({ reader, next }));
  });

  // Polled by the activating page: does tollgate say the reader holds `articles` yet? When it
  // does, the fresh entitlements token goes into the cookie at once.
  app.get('/subscribe/status', async (c) => {
    const reader = c.get('reader');
    if (!reader) return c.json({ subscribed: false, error: 'not_signed_in' }, 401);
    try {
      const entitlements = await refreshEntitlementToken(c, reader);
      return c.json({ subscribed: entitlements.includes('articles'), entitlements });
    } catch (error) {
      log('status check failed for', reader.id, error.message);
      return c.json({ subscribed: false, error: 'unavailable' }, 503);
    }
  });

  // --- the account page, and the Billing Portal

  const NOTICES = {
    portal: 'Welcome back. Your subscription details below are up to date.',
    already_subscribed: 'You are already subscribed. You can change your subscription in the billing portal.',
    no_customer: 'You have no subscription to manage yet.',
  };

  app.get('/account', async (c) => {
    const reader = c.get('reader');
    if (!reader) return c.redirect('/signin?next=%2Faccount', 303);
    // Coming back from the portal (or just looking): what the reader holds may have changed,
    // so the entitlements token is replaced by a fresh one, whose expiry tollgate caps at the
    // first lapse of what it lists, e.g. a subscription now set to end with its period.
    const [view, , plans] = await Promise.all([
      site.reader(reader.id).catch((error) => {
        log('reader view failed for', reader.id, error.message);
        return null;
      }),
      refreshEntitlementToken(c, reader).catch((error) => {
        deleteCookie(c, ENT, cookie); // unsure what they hold: let tollgate decide per article
        log('token refresh failed for', reader.id, error.message);
      }),
      currentPlans(),
    ]);
    const notice = NOTICES[c.req.query('from') === 'portal' ? 'portal' : c.req.query('notice')] ?? null;
    return c.html(views.accountPage({ reader, view, plans, notice }));
  });

  app.post('/account/portal', async (c) => {
    const reader = c.get('reader');
    if (!reader) return c.redirect('/signin?next=%2Faccount', 303);
    try {
      const portal = await site.portal({ readerId: reader.id, returnUrl: `${config.origin}/account?from=portal` });
      return c.redirect(portal.url, 303);
    } catch (error) {
      if (error instanceof TollgateError && error.status === 404) return c.redirect('/account?notice=no_customer', 303);
      log('portal failed for', reader.id, error.message);
      return c.html(views.messagePage({
        title: 'The billing portal is unavailable',
        reader,
        message: 'Please try again in a moment.',
        links: [{ href: '/account', text: 'Back to your account' }],
      }), 502);
    }
  });

  // --- development outbox

  if (config.devOutbox) {
    app.get('/dev/outbox', (c) => c.html(views.outboxPage({ reader: c.get('reader'), mails: store.outbox })));
  }

  // --- the rest

  app.get('/healthz', (c) => c.text('ok'));

  for (const [route, [type, body]] of Object.entries(staticFiles)) {
    app.get(route, (c) => c.body(body, 200, { 'content-type': type, 'cache-control': 'public, max-age=300' }));
  }

  app.notFound(notFound);
  app.onError((error, c) => {
    log('error on', c.req.method, c.req.path, error.stack ?? error);
    return c.html(views.messagePage({
      title: 'Something went wrong', reader: null, message: 'Please try again in a moment.',
    }), 500);
  });

  function notFound(c) {
    return c.html(views.messagePage({
      title: 'Page not found', reader: c.get('reader') ?? null, message: 'There is nothing at this address.',
      links: [{ href: '/', text: 'Front page' }],
    }), 404);
  }

  function expiredLink(c) {
    return c.html(views.messagePage({
      title: 'This sign-in link has expired',
      reader: c.get('reader'),
      message: 'Each link works once, within 15 minutes. Ask for a new one.',
      links: [{ href: '/signin', text: 'Send me a new link' }],
    }), 400);
  }

  function devOutboxLink() {
    return config.devOutbox ? [{ href: '/dev/outbox', text: 'Development: open the outbox' }] : [];
  }

  function clientIp(c) {
    const incoming = c.env?.incoming;
    return (incoming && clientAddress(incoming, { trustedProxies: config.trustedProxies })) ?? 'unknown';
  }

  return app;
}

function refererOrigin(referer) {
  if (!referer) return undefined;
  try {
    return new URL(referer).origin;
  } catch {
    return undefined;
  }
}

function defaultLog(...parts) {
  console.error(new Date().toISOString(), ...parts);
}
