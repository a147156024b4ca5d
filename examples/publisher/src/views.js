// The pages. Hono's `html` template escapes every interpolated value unless it is itself a
// template result (or passed through `raw`, which only the JSON-LD block is), so no reader input,
// e-mail address or tollgate answer can inject markup.

import { html, raw } from 'hono/html';

import { SITE_NAME, articles, weeklyReport } from './content.js';

/** The page frame. `reader` is the signed-in reader or null. */
export function layout({ title, reader, body, head = '' }) {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title ? `${title} · ${SITE_NAME}` : SITE_NAME}</title>
<link rel="stylesheet" href="/static/site.css">
${head}
</head>
<body>
<header class="masthead">
  <a class="brand" href="/">${SITE_NAME}</a>
  <nav>
    <a href="/">Latest</a>
    <a href="${weeklyReport.path}">Weekly report</a>
    ${reader
      ? html`<a href="/account">Account</a>
        <form class="inline" method="post" action="/logout"><button class="link" type="submit">Log out</button></form>`
      : html`<a href="/signin">Sign in</a> <a class="button compact" href="/register">Register</a>`}
  </nav>
</header>
<main>
${body}
</main>
<footer class="site-footer">
  <p>${SITE_NAME} is an invented publication: the example site of tollgate, with a metered paywall.</p>
</footer>
</body>
</html>`;
}

const dateFormat = new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC' });
export const formatDate = (iso) => dateFormat.format(new Date(iso));

const dateTimeFormat = new Intl.DateTimeFormat('en-GB', {
  day: 'numeric', month: 'long', year: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', timeZone: 'UTC', timeZoneName: 'short',
});
export const formatDateTime = (iso) => dateTimeFormat.format(new Date(iso));

/** "€9.99 / month" from a tollgate plan price, or null when tollgate does not know its amount. */
export function formatPrice(price) {
  if (!price?.known || price.unit_amount == null || !price.currency) return null;
  const currency = price.currency.toUpperCase();
  let formatter;
  try {
    formatter = new Intl.NumberFormat('en-IE', { style: 'currency', currency });
  } catch {
    return `${price.unit_amount} ${currency}`;
  }
  const digits = formatter.resolvedOptions().maximumFractionDigits;
  const amount = formatter.format(price.unit_amount / 10 ** digits);
  const recurring = price.recurring;
  if (!recurring) return amount;
  const n = recurring.interval_count;
  return n === 1 ? `${amount} / ${recurring.interval}` : `${amount} / ${n} ${recurring.interval}s`;
}

export function homePage({ reader }) {
  return layout({
    title: '',
    reader,
    body: html`
<section class="front">
  <h1 class="visually-hidden">Latest</h1>
  <ul class="river">
    ${articles.map((a) => html`<li class="teaser">
      <p class="section">${a.section}</p>
      <h2><a href="${a.path}">${a.title}</a></h2>
      <p class="dek">${a.dek}</p>
      <p class="byline">${a.author} · ${formatDate(a.published)}</p>
    </li>`)}
  </ul>
  <aside class="report-promo">
    <p class="section">For subscribers</p>
    <h2><a href="${weeklyReport.path}">${weeklyReport.title}</a></h2>
    <p>${weeklyReport.dek}</p>
  </aside>
</section>`,
  });
}

/** schema.org markup for a paywalled article: Google's "subscription and paywalled content". */
function jsonLd(piece, origin) {
  const data = {
    '@context': 'https://schema.org',
    '@type': piece.kind === 'report' ? 'Report' : 'NewsArticle',
    headline: piece.title,
    description: piece.dek,
    datePublished: piece.published,
    url: `${origin}${piece.path}`,
    author: { '@type': piece.kind === 'report' ? 'Organization' : 'Person', name: piece.author },
    publisher: { '@type': 'Organization', name: SITE_NAME },
    isAccessibleForFree: false,
    hasPart: { '@type': 'WebPageElement', isAccessibleForFree: false, cssSelector: '.paywalled' },
  };
  // `<` escaped so that no string can close the script element.
  const json = JSON.stringify(data).replace(/</g, '\\u003c');
  return html`<script type="application/ld+json">${raw(json)}</script>`;
}

const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

/** The line above an article about the reader's free articles. */
function meterHint(decision) {
  if (!decision?.allowed) return '';
  const meter = decision.meter;
  if (decision.reason === 'entitled' || decision.source === 'token') {
    return html`<p class="meter meter-subscriber">Subscriber access. Thank you for supporting independent journalism.</p>`;
  }
  if (!meter) return '';
  const left = meter.remaining;
  const unlocked = decision.reason === 'already_unlocked'
    ? 'You unlocked this article earlier this month, so reading it again is free. ' : '';
  const text = left === 0
    ? `${unlocked}That was your last free article this month.`
    : `${unlocked}${plural(left, 'free article', 'free articles')} left this month.`;
  return html`<p class="meter">${text}</p>`;
}

function registerOffer(piece) {
  const forReport = piece.kind === 'report';
  return html`<section class="offer offer-register" aria-labelledby="offer-title">
  <h2 id="offer-title">${forReport ? 'The weekly report is for subscribers' : 'Keep reading for free!'}</h2>
  <p>${forReport
    ? 'Register for free, then subscribe to read the weekly report and every article.'
    : 'Get instant access to the rest of this article as well as three free articles per month.'}</p>
  ${registerForm({ next: piece.path })}
  <p class="small">Already registered? <a href="/signin?next=${encodeURIComponent(piece.path)}">Sign in</a></p>
</section>`;
}

export function registerForm({ next, email = '', error = '' }) {
  return html`<form class="register" method="post" action="/register">
    <input type="hidden" name="next" value="${next}">
    <label for="register-email">Your e-mail address</label>
    <div class="row">
      <input id="register-email" name="email" type="email" required autocomplete="email" value="${email}" placeholder="you@example.com">
      <button type="submit">Register for free</button>
    </div>
    ${error ? html`<p class="error" role="alert">${error}</p>` : ''}
  </form>`;
}

/** The plans that would unlock `piece`, each price with a Subscribe button. */
function plansOffer(piece, decision, plans, attempt) {
  const meter = decision?.meter;
  const forReport = piece.kind === 'report';
  const heading = forReport
    ? 'The weekly report is for subscribers'
    : meter && meter.limit > 0
      ? `You’ve read your ${plural(meter.limit, 'free article', 'free articles')} this month`
      : 'Subscribe to keep reading';
  const resets = !forReport && meter?.resets_at
    ? html` Your free articles come back on ${formatDate(meter.resets_at)}.` : '';
  const offers = decision?.offers ?? [];
  const rows = offers.map((offer) => {
    const plan = plans?.find((p) => p.id === offer.plan_id);
    const prices = plan ? plan.prices.filter((p) => p.active !== false) : [];
    const options = prices.length ? prices : [{ id: null }];
    return html`<li class="plan">
      <h3>${offer.name}</h3>
      ${plan ? html`<p class="includes">Includes ${plan.entitlements.join(' and ')}</p>` : ''}
      <ul class="prices">
        ${options.map((price) => html`<li>
          <span class="price">${formatPrice(price) ?? 'Price shown at checkout'}</span>
          <form method="post" action="/subscribe">
            <input type="hidden" name="plan_id" value="${offer.plan_id}">
            ${price.id ? html`<input type="hidden" name="price" value="${price.id}">` : ''}
            <input type="hidden" name="next" value="${piece.path}">
            <input type="hidden" name="attempt" value="${attempt}">
            <button type="submit">Subscribe</button>
          </form>
        </li>`)}
      </ul>
    </li>`;
  });
  return html`<section class="offer offer-plans" aria-labelledby="offer-title">
  <h2 id="offer-title">${heading}</h2>
  <p>Subscribe to keep reading.${resets}</p>
  ${rows.length
    ? html`<ul class="plans">${rows}</ul>`
    : html`<p>No subscription is on sale right now.</p>`}
</section>`;
}

/**
 * An article or the weekly report. The gated paragraphs are rendered only when `decision.allowed`;
 * otherwise the page has the teaser and an offer, and the rest is not in the HTML at all.
 */
export function piecePage({ piece, reader, decision, plans, origin, attempt, notice }) {
  const allowed = Boolean(decision?.allowed);
  const free = piece.paragraphs.slice(0, piece.free);
  const gated = piece.paragraphs.slice(piece.free);
  let offer = '';
  if (!allowed) {
    offer = notice
      ? html`<section class="offer offer-unavailable"><h2>We can’t check your access right now</h2><p>${notice}</p></section>`
      : reader ? plansOffer(piece, decision, plans, attempt) : registerOffer(piece);
  }
  return layout({
    title: piece.title,
    reader,
    head: jsonLd(piece, origin),
    body: html`
<article class="story ${piece.kind}">
  <p class="section">${piece.section}</p>
  <h1>${piece.title}</h1>
  <p class="dek">${piece.dek}</p>
  <p class="byline">${piece.kind === 'report' ? '' : 'By '}${piece.author} · ${formatDate(piece.published)}</p>
  ${meterHint(decision)}
  <div class="body">
    ${free.map((p) => html`<p>${p}</p>`)}
    ${allowed ? html`<div class="paywalled">${gated.map((p) => html`<p>${p}</p>`)}</div>` : ''}
  </div>
  ${offer}
</article>`,
  });
}

export function messagePage({ title, reader, message, links = [], status = 'info' }) {
  return layout({
    title,
    reader,
    body: html`<section class="panel ${status}">
  <h1>${title}</h1>
  ${[].concat(message).map((m) => html`<p>${m}</p>`)}
  ${links.length ? html`<p class="links">${links.map((l) => html`<a href="${l.href}">${l.text}</a>`)}</p>` : ''}
</section>`,
  });
}

export function registerPage({ reader, next, email, error }) {
  return layout({
    title: 'Register',
    reader,
    body: html`<section class="panel">
  <h1>Register for free</h1>
  <p>Three free articles every month, and the option to subscribe for everything.</p>
  ${registerForm({ next, email, error })}
  <p class="small">Already registered? <a href="/signin?next=${encodeURIComponent(next)}">Sign in with a link by e-mail</a></p>
</section>`,
  });
}

export function signinPage({ reader, next, email = '', error = '' }) {
  return layout({
    title: 'Sign in',
    reader,
    body: html`<section class="panel">
  <h1>Sign in</h1>
  <p>Enter the address you registered with, and we’ll e-mail you a link that signs you in.</p>
  <form method="post" action="/signin">
    <input type="hidden" name="next" value="${next}">
    <label for="signin-email">Your e-mail address</label>
    <div class="row">
      <input id="signin-email" name="email" type="email" required autocomplete="email" value="${email}">
      <button type="submit">Send me a sign-in link</button>
    </div>
    ${error ? html`<p class="error" role="alert">${error}</p>` : ''}
  </form>
</section>`,
  });
}

export function signinConfirmPage({ reader, email, token, next }) {
  return layout({
    title: 'Sign in',
    reader,
    body: html`<section class="panel">
  <h1>Sign in as ${email}?</h1>
  <p>This link works once. Press the button to sign in on this device.</p>
  <form method="post" action="/signin/verify">
    <input type="hidden" name="token" value="${token}">
    <input type="hidden" name="next" value="${next}">
    <button type="submit">Sign in</button>
  </form>
</section>`,
  });
}

export function activatingPage({ reader, next }) {
  return layout({
    title: 'Activating your subscription',
    reader,
    head: html`<script src="/static/activate.js" defer></script>`,
    body: html`<section class="panel activation" id="activation" data-status-url="/subscribe/status" data-next="${next}">
  <div class="pending">
    <h1>Activating your subscription…</h1>
    <p>Thank you! We are waiting for Stripe to confirm your subscription. This usually takes a few seconds.</p>
    <p class="spinner" aria-hidden="true"></p>
    <noscript><p><a href="/subscribe/success?next=${encodeURIComponent(next)}">Check again</a></p></noscript>
  </div>
  <div class="done" hidden>
    <h1>You’re subscribed</h1>
    <p>Welcome aboard. Every article and the weekly report are open to you now.</p>
    <p class="links">
      <a class="button" href="${next}">Continue reading</a>
      <a href="${weeklyReport.path}">Read the weekly report</a>
      <a href="/">All the latest</a>
    </p>
  </div>
  <div class="slow" hidden>
    <h1>Still activating…</h1>
    <p>This is taking longer than usual. Your payment is safe; your subscription will appear on your <a href="/account">account page</a> as soon as Stripe confirms it.</p>
  </div>
</section>`,
  });
}

export function accountPage({ reader, view, plans, notice }) {
  const planName = (item) => plans?.find((p) => p.id === item.plan_id)?.name ?? item.plan_id ?? item.price;
  const meter = view?.meter;
  const articlesHeld = view?.entitlements?.find((e) => e.name === 'articles');
  const live = (view?.subscriptions ?? []).filter((s) => s.good_standing);
  return layout({
    title: 'Your account',
    reader,
    body: html`<section class="panel account">
  <h1>Your account</h1>
  ${notice ? html`<p class="notice" role="status">${notice}</p>` : ''}
  <p>Signed in as <strong>${reader.email}</strong>.</p>
  ${view === null ? html`<p class="error">We can’t show your subscription right now. Please try again in a moment.</p>` : ''}
  ${live.length
    ? html`<h2>Your subscription</h2>
      <ul class="subscriptions">${live.map((s) => html`<li>
        ${s.items.map(planName).join(', ')}:
        ${s.lapses_at ? html`<strong class="ends">ends on ${formatDateTime(s.lapses_at)}</strong>` : html`<strong>renews automatically</strong>`}
      </li>`)}</ul>`
    : view ? html`<p>You have no subscription.${articlesHeld ? '' : ' Open any article to see the offers.'}</p>` : ''}
  ${view?.entitlements?.length
    ? html`<p>You can read: ${view.entitlements.map((e) => e.name).join(', ')}.</p>` : ''}
  ${meter && !articlesHeld
    ? html`<p class="meter">Free articles this month: ${meter.used} of ${meter.limit} used.</p>` : ''}
  ${view?.stripe_customer_id
    ? html`<form method="post" action="/account/portal"><button type="submit">Manage subscription</button></form>` : ''}
  <form method="post" action="/logout"><button class="secondary" type="submit">Log out</button></form>
</section>`,
  });
}

export function outboxPage({ reader, mails }) {
  return layout({
    title: 'Development outbox',
    reader,
    body: html`<section class="panel outbox">
  <h1>Development outbox</h1>
  <p class="small">Mails the site would have sent, newest first. Only in development (<code>SITE_DEV_OUTBOX</code>).</p>
  ${mails.length === 0 ? html`<p>No mail yet.</p>` : ''}
  ${mails.map((m) => html`<article class="mail">
    <p><strong>To:</strong> ${m.to}<br><strong>Subject:</strong> ${m.subject}<br><strong>Sent:</strong> ${m.sent_at}</p>
    <pre>${m.text}</pre>
    ${m.link ? html`<p><a class="mail-link" href="${m.link}">${m.link}</a></p>` : ''}
  </article>`)}
</section>`,
  });
}
