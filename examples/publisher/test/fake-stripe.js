// A stand-in for Stripe, for the browser journeys: the two API endpoints tollgate calls in the
// subscribe flow, a hosted Checkout page with a Pay button, a Billing Portal page with a Cancel
// button, and the signed webhooks a real checkout and cancellation send to tollgate.
//
// API (what tollgate's src/stripe/client sends):
//   POST /v1/checkout/sessions         form: mode=subscription, line_items[0][price], [quantity],
//                                      success_url, cancel_url, client_reference_id,
//                                      metadata[reader_id], subscription_data[metadata][reader_id],
//                                      [subscription_data[trial_period_days]], [customer] or
//                                      [customer_email], [allow_promotion_codes]; Idempotency-Key
//   POST /v1/billing_portal/sessions   form: customer, return_url
// Anything else is answered like Stripe answers an unknown URL (404 invalid_request_error).
//
// Pages (what the reader's browser sees):
//   GET  /c/pay/{session}              Checkout: the price, the e-mail, a Pay button
//   POST /c/pay/{session}              pays: redirects to success_url, then delivers
//                                      checkout.session.completed, customer.subscription.created
//                                      and invoice.paid (after `webhookDelayMs`, as Stripe's
//                                      deliveries race the reader's redirect)
//   GET  /p/session/{id}               Billing Portal: the subscription, a Cancel button
//   POST /p/session/{id}/cancel        cancels at period end: delivers
//                                      customer.subscription.updated, then redirects to return_url
//
// Events are the fixtures in test/fixtures (copied from tollgate's tests/fixtures/stripe), with
// ids, times, amounts, the customer and the reader filled in, signed as Stripe signs:
// `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
//
// The fake subscription's billing period is `periodSeconds` long and renews silently (no
// renewal events): what matters to tollgate is the period a cancellation ends with.

import { createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';

const fixture = (name) =>
  JSON.parse(fs.readFileSync(new URL(`./fixtures/${name}.json`, import.meta.url), 'utf8'));

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
function randomId(prefix, length = 14) {
  const bytes = randomBytes(length);
  return prefix + Array.from(bytes, (b) => ALPHABET[b % ALPHABET.length]).join('');
}
const now = () => Math.floor(Date.now() / 1000);
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

/** Signs a raw body as Stripe does. */
export function stripeSignature(secret, body, timestamp = now()) {
  const v1 = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return `t=${timestamp},v1=${v1}`;
}

/**
 * Starts the fake on a free loopback port.
 * @param {object} options
 * @param {string} options.secretKey      the `sk_test_...` tollgate must send
 * @param {string} options.webhookSecret  the `whsec_...` events are signed with
 * @param {Record<string, {currency: string, unit_amount: number, interval: string, nickname?: string, product: string, product_name: string}>} options.prices
 * @param {number} [options.periodSeconds]   length of a subscription's billing period
 * @param {number} [options.webhookDelayMs]  delay between the Pay redirect and the webhooks
 */
export async function startFakeStripe({ secretKey, webhookSecret, prices, periodSeconds = 6, webhookDelayMs = 1000 }) {
  const runTag = randomId('', 6);
  let eventCounter = 0;
  let invoiceCounter = 0;
  let webhookUrl = null;
  const sessions = new Map(); // cs_ id -> session
  const idempotent = new Map(); // Idempotency-Key -> [path, response]
  const portals = new Map(); // bps_ id -> { customer, return_url }
  const customers = new Map(); // cus_ id -> { email, reader_id }
  const subscriptions = new Map(); // sub_ id -> subscription object
  /** Every request tollgate made to the API, and every delivery made to tollgate. */
  const seen = [];
  const deliveries = [];
  const pending = new Set();

  const server = http.createServer((req, res) => {
    handle(req, res).catch((error) => {
      console.error('fake Stripe failed:', error);
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(error));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;

  async function handle(req, res) {
    const url = new URL(req.url, base);
    const body = await readBody(req);
    const form = new URLSearchParams(body);
    const path = url.pathname;

    if (path.startsWith('/v1/')) {
      seen.push({
        method: req.method,
        path,
        form: Object.fromEntries(form),
        idempotencyKey: req.headers['idempotency-key'] ?? null,
        stripeVersion: req.headers['stripe-version'] ?? null,
      });
      if (req.headers.authorization !== `Bearer ${secretKey}`) {
        return stripeError(res, 401, 'invalid_request_error', 'Invalid API Key provided.');
      }
      const key = req.headers['idempotency-key'];
      if (key && idempotent.has(key)) {
        const [earlierPath, earlier] = idempotent.get(key);
        if (earlierPath !== path) {
          return stripeError(res, 400, 'idempotency_error', 'Keys for idempotent requests can only be used for the same endpoint.');
        }
        return json(res, 200, earlier);
      }
      let answer;
      if (req.method === 'POST' && path === '/v1/checkout/sessions') answer = createCheckoutSession(form);
      else if (req.method === 'POST' && path === '/v1/billing_portal/sessions') answer = createPortalSession(form);
      else return stripeError(res, 404, 'invalid_request_error', `Unrecognized request URL (${req.method}: ${path}).`);
      if (answer.error) return stripeError(res, 400, 'invalid_request_error', answer.error, answer.param);
      if (key) idempotent.set(key, [path, answer]);
      return json(res, 200, answer);
    }

    let match;
    if ((match = path.match(/^\/c\/pay\/(cs_test_[A-Za-z0-9]+)$/))) {
      const session = sessions.get(match[1]);
      if (!session) return page(res, 404, 'Something went wrong', '<p>This checkout session does not exist.</p>');
      if (req.method === 'GET') return page(res, 200, 'Checkout', checkoutPage(session));
      if (req.method === 'POST') return pay(res, session, form.get('email'));
    }
    if ((match = path.match(/^\/p\/session\/(test_[A-Za-z0-9]+)(\/cancel)?$/))) {
      const portal = portals.get(match[1]);
      if (!portal) return page(res, 404, 'Something went wrong', '<p>This portal session does not exist.</p>');
      if (req.method === 'GET' && !match[2]) return page(res, 200, 'Billing', portalPage(portal, match[1]));
      if (req.method === 'POST' && match[2]) return cancel(res, portal, form.get('subscription'));
    }
    return page(res, 404, 'Not found', '<p>Nothing here.</p>');
  }

  // --- the API

  function createCheckoutSession(form) {
    if (form.get('mode') !== 'subscription') return { error: 'This fake only makes subscription sessions.', param: 'mode' };
    const priceId = form.get('line_items[0][price]');
    const price = prices[priceId];
    if (!price) return { error: `No such price: '${priceId}'`, param: 'line_items[0][price]' };
    for (const field of ['success_url', 'cancel_url']) {
      if (!/^https?:\/\//.test(form.get(field) ?? '')) return { error: `Invalid URL: ${field}`, param: field };
    }
    const customer = form.get('customer');
    if (customer && !customers.has(customer)) return { error: `No such customer: '${customer}'`, param: 'customer' };
    const id = randomId('cs_test_a1', 40);
    const session = {
      id,
      price: priceId,
      quantity: Number(form.get('line_items[0][quantity]') ?? 1),
      success_url: form.get('success_url'),
      cancel_url: form.get('cancel_url'),
      client_reference_id: form.get('client_reference_id'),
      metadata: { reader_id: form.get('metadata[reader_id]') },
      subscription_metadata: { reader_id: form.get('subscription_data[metadata][reader_id]') },
      trial_days: Number(form.get('subscription_data[trial_period_days]') ?? 0),
      allow_promotion_codes: form.get('allow_promotion_codes') === 'true' ? true : null,
      customer,
      customer_email: form.get('customer_email'),
      created: now(),
      expires_at: now() + 24 * 3600,
      status: 'open',
    };
    sessions.set(id, session);
    return checkoutSessionObject(session, { url: `${base}/c/pay/${id}` });
  }

  function createPortalSession(form) {
    const customer = form.get('customer');
    if (!customers.has(customer)) return { error: `No such customer: '${customer}'`, param: 'customer' };
    const id = randomId('test_', 24);
    const portal = { customer, return_url: form.get('return_url'), created: now() };
    portals.set(id, portal);
    return {
      id: randomId('bps_1'),
      object: 'billing_portal.session',
      configuration: 'bpc_1FakePortalConfig',
      created: portal.created,
      customer,
      flow: null,
      livemode: false,
      locale: null,
      on_behalf_of: null,
      return_url: portal.return_url,
      url: `${base}/p/session/${id}`,
    };
  }

  // --- Stripe objects, from the fixtures

  function priceObject(priceId) {
    const p = prices[priceId];
    const object = fixture('price.created').data.object;
    return {
      ...object,
      id: priceId,
      created: now() - 86400,
      currency: p.currency,
      unit_amount: p.unit_amount,
      unit_amount_decimal: String(p.unit_amount),
      nickname: p.nickname ?? null,
      product: p.product,
      lookup_key: null,
      recurring: { ...object.recurring, interval: p.interval, interval_count: 1 },
      transform_quantity: null,
    };
  }

  function checkoutSessionObject(session, overrides = {}) {
    const object = structuredClone(fixture('checkout.session.completed.subscription').data.object);
    const amount = prices[session.price].unit_amount * session.quantity;
    return {
      ...object,
      id: session.id,
      after_expiration: null,
      allow_promotion_codes: session.allow_promotion_codes,
      amount_subtotal: amount,
      amount_total: amount,
      cancel_url: session.cancel_url,
      client_reference_id: session.client_reference_id,
      collected_information: null,
      created: session.created,
      currency: prices[session.price].currency,
      currency_conversion: null,
      custom_text: { after_submit: null, shipping_address: null, submit: null, terms_of_service_acceptance: null },
      customer: session.customer ?? null,
      customer_details: null,
      customer_email: session.customer_email ?? null,
      expires_at: session.expires_at,
      invoice: null,
      metadata: session.metadata,
      payment_method_configuration_details: null,
      payment_status: 'unpaid',
      shipping_address_collection: null,
      shipping_cost: null,
      status: 'open',
      subscription: null,
      success_url: session.success_url,
      total_details: { amount_discount: 0, amount_shipping: 0, amount_tax: 0 },
      url: null,
      ...overrides,
    };
  }

  /** The billing period containing `at`, at least `margin` seconds from its end. */
  function periodAt(subscription, at, margin = 0) {
    const anchor = subscription.billing_cycle_anchor;
    let start = anchor + Math.floor((at - anchor) / periodSeconds) * periodSeconds;
    while (start + periodSeconds - at < margin) start += periodSeconds;
    return { start, end: start + periodSeconds };
  }

  function newSubscription(session, customer, invoiceId) {
    const object = structuredClone(fixture('customer.subscription.created').data.object);
    const created = now();
    const id = randomId('sub_1');
    const p = prices[session.price];
    const trialEnd = session.trial_days > 0 ? created + session.trial_days * 86400 : null;
    const item = object.items.data[0];
    return {
      ...object,
      id,
      billing_cycle_anchor: trialEnd ?? created,
      billing_cycle_anchor_config: null,
      billing_thresholds: null,
      cancel_at: null,
      cancel_at_period_end: false,
      canceled_at: null,
      cancellation_details: { comment: null, feedback: null, reason: null },
      created,
      currency: p.currency,
      customer,
      default_payment_method: randomId('pm_1'),
      ended_at: null,
      items: {
        ...object.items,
        data: [{
          ...item,
          id: randomId('si_'),
          billing_thresholds: null,
          created,
          current_period_start: created,
          current_period_end: trialEnd ?? created + periodSeconds,
          plan: {
            ...item.plan,
            id: session.price,
            active: true,
            amount: p.unit_amount,
            amount_decimal: String(p.unit_amount),
            billing_scheme: 'per_unit',
            created: created - 86400,
            currency: p.currency,
            interval: p.interval,
            interval_count: 1,
            livemode: false,
            nickname: p.nickname ?? null,
            product: p.product,
            transform_usage: null,
          },
          price: priceObject(session.price),
          quantity: session.quantity,
          subscription: id,
        }],
        url: `/v1/subscription_items?subscription=${id}`,
      },
      latest_invoice: invoiceId,
      metadata: session.subscription_metadata,
      next_pending_invoice_item_invoice: null,
      pause_collection: null,
      pending_invoice_item_interval: null,
      pending_update: null,
      start_date: created,
      status: trialEnd ? 'trialing' : 'active',
      transfer_data: null,
      trial_end: trialEnd,
      trial_start: trialEnd ? created : null,
    };
  }

  function paidInvoice(session, subscription, invoiceId, email) {
    const object = structuredClone(fixture('invoice.paid').data.object);
    const p = prices[session.price];
    const item = subscription.items.data[0];
    const amount = subscription.status === 'trialing' ? 0 : p.unit_amount * session.quantity;
    const at = subscription.created;
    const line = object.lines.data[0];
    return {
      ...object,
      id: invoiceId,
      account_country: 'IE',
      amount_due: amount,
      amount_overpaid: 0,
      amount_paid: amount,
      amount_remaining: 0,
      created: at,
      currency: p.currency,
      customer: subscription.customer,
      customer_email: email,
      due_date: null,
      effective_at: at,
      from_invoice: null,
      last_finalization_error: null,
      lines: {
        ...object.lines,
        data: [{
          ...line,
          amount,
          currency: p.currency,
          description: `${session.quantity} × ${p.product_name} (at ${(p.unit_amount / 100).toFixed(2)} ${p.currency.toUpperCase()} / ${p.interval})`,
          id: randomId('il_1'),
          invoice: invoiceId,
          parent: {
            ...line.parent,
            subscription_item_details: {
              ...line.parent.subscription_item_details,
              subscription: subscription.id,
              subscription_item: item.id,
            },
          },
          period: { start: item.current_period_start, end: item.current_period_end },
          pricing: { ...line.pricing, price_details: { price: session.price, product: p.product }, unit_amount_decimal: String(p.unit_amount) },
          quantity: session.quantity,
        }],
        url: `/v1/invoices/${invoiceId}/lines`,
      },
      number: `FAKE-${String(++invoiceCounter).padStart(4, '0')}`,
      parent: {
        ...object.parent,
        subscription_details: { metadata: subscription.metadata, subscription: subscription.id },
      },
      period_end: at,
      period_start: at,
      shipping_cost: null,
      status_transitions: { finalized_at: at, marked_uncollectible_at: null, paid_at: at, voided_at: null },
      subtotal: amount,
      subtotal_excluding_tax: amount,
      total: amount,
      total_excluding_tax: amount,
      webhooks_delivered_at: null,
    };
  }

  // --- events

  function event(type, object, previousAttributes) {
    const template = fixture('price.created');
    eventCounter += 1;
    return {
      // Increasing ids, so two events of one second still order as they were made.
      id: `evt_1Fake${runTag}${String(eventCounter).padStart(8, '0')}`,
      object: 'event',
      api_version: template.api_version,
      created: now(),
      data: previousAttributes ? { object, previous_attributes: previousAttributes } : { object },
      livemode: false,
      pending_webhooks: 1,
      request: { id: randomId('req_'), idempotency_key: null },
      type,
    };
  }

  /** POSTs one event to tollgate, signed; tries again on anything but a 2xx, as Stripe does. */
  async function deliver(evt) {
    if (!webhookUrl) throw new Error('the fake Stripe has no webhook endpoint yet');
    const body = JSON.stringify(evt, null, 2);
    let last;
    for (let attempt = 1; attempt <= 5; attempt += 1) {
      try {
        const response = await fetch(webhookUrl, {
          method: 'POST',
          headers: {
            'content-type': 'application/json; charset=utf-8',
            'user-agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)',
            'stripe-signature': stripeSignature(webhookSecret, body),
          },
          body,
        });
        last = { status: response.status, answer: await response.text() };
      } catch (error) {
        last = { status: null, answer: error.message };
      }
      if (last.status >= 200 && last.status < 300) break;
      await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
    }
    deliveries.push({ id: evt.id, type: evt.type, ...last });
    return last;
  }

  function deliverLater(events, delayMs) {
    const job = (async () => {
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      for (const evt of events) await deliver(evt);
    })();
    pending.add(job);
    job.finally(() => pending.delete(job));
  }

  // --- the pages' actions

  function pay(res, session, email) {
    if (session.status === 'open') {
      const customer = session.customer ?? randomId('cus_');
      const readerId = session.client_reference_id ?? session.metadata.reader_id;
      const customerEmail = email || session.customer_email || customers.get(customer)?.email || null;
      if (!customers.has(customer)) customers.set(customer, { email: customerEmail, reader_id: readerId });
      const invoiceId = randomId('in_1');
      const subscription = newSubscription(session, customer, invoiceId);
      subscriptions.set(subscription.id, subscription);
      Object.assign(session, { status: 'complete', customer, subscription: subscription.id, invoice: invoiceId });
      const completed = checkoutSessionObject(session, {
        customer,
        customer_creation: session.customer ? null : 'always',
        customer_details: {
          address: { city: null, country: 'IE', line1: null, line2: null, postal_code: null, state: null },
          business_name: null, email: customerEmail, individual_name: null, name: null, phone: null,
          tax_exempt: 'none', tax_ids: [],
        },
        invoice: invoiceId,
        payment_status: subscription.status === 'trialing' ? 'no_payment_required' : 'paid',
        status: 'complete',
        subscription: subscription.id,
      });
      deliverLater([
        event('checkout.session.completed', completed),
        event('customer.subscription.created', structuredClone(subscription)),
        event('invoice.paid', paidInvoice(session, subscription, invoiceId, customerEmail)),
      ], webhookDelayMs);
    }
    const success = session.success_url.replace('{CHECKOUT_SESSION_ID}', session.id);
    res.writeHead(303, { location: success });
    res.end();
  }

  async function cancel(res, portal, subscriptionId) {
    const subscription = subscriptions.get(subscriptionId);
    if (subscription && subscription.customer === portal.customer && !subscription.cancel_at_period_end) {
      const at = now();
      // The period the cancellation ends with: the current one, or the next if the current one
      // ends within 5 s (so a reader can still be seen reading after cancelling).
      const period = periodAt(subscription, at, 5);
      const item = subscription.items.data[0];
      const template = fixture('customer.subscription.updated.cancel_at_period_end').data;
      const previous = {
        ...template.previous_attributes,
        ...(item.current_period_end !== period.end
          ? { items: structuredClone(subscription.items) } : {}),
      };
      item.current_period_start = period.start;
      item.current_period_end = period.end;
      Object.assign(subscription, {
        cancel_at: period.end,
        cancel_at_period_end: true,
        canceled_at: at,
        cancellation_details: { ...template.object.cancellation_details, feedback: null },
      });
      // Delivered before the reader is sent back: in the real portal, the cancellation is
      // confirmed on the portal's own page and the reader returns later by a link.
      const delivered = await deliver(event('customer.subscription.updated', structuredClone(subscription), previous));
      if (!(delivered.status >= 200 && delivered.status < 300)) {
        return page(res, 502, 'Something went wrong', `<p>tollgate refused the event: ${esc(delivered.answer)}</p>`);
      }
    }
    res.writeHead(303, { location: portal.return_url });
    res.end();
  }

  // --- the hosted pages

  function checkoutPage(session) {
    const p = prices[session.price];
    const amount = `${(p.unit_amount / 100).toFixed(2)} ${p.currency.toUpperCase()}`;
    if (session.status !== 'open') {
      return `<p>This checkout is complete.</p><p><a href="${esc(session.success_url.replace('{CHECKOUT_SESSION_ID}', session.id))}">Return to the merchant</a></p>`;
    }
    return `
<p class="test">Test mode</p>
<h1>Subscribe to ${esc(p.product_name)}</h1>
<p class="amount">${esc(amount)} <span>per ${esc(p.interval)}</span></p>
${session.trial_days ? `<p>${session.trial_days} days free, then ${esc(amount)} per ${esc(p.interval)}</p>` : ''}
<form method="post">
  <label>Email <input name="email" type="email" value="${esc(session.customer_email ?? '')}"></label>
  <label>Card information <input name="card" value="4242 4242 4242 4242" readonly></label>
  <button type="submit">Pay</button>
</form>
<p><a href="${esc(session.cancel_url)}">← Back</a></p>`;
  }

  function portalPage(portal, id) {
    const rows = [...subscriptions.values()].filter((s) => s.customer === portal.customer && !s.ended_at);
    const items = rows.map((s) => {
      const item = s.items.data[0];
      const p = prices[item.price.id];
      const ends = new Date(item.current_period_end * 1000).toISOString();
      return `<li class="subscription">
  <h2>${esc(p.product_name)}</h2>
  <p>${(p.unit_amount / 100).toFixed(2)} ${esc(p.currency.toUpperCase())} per ${esc(p.interval)}</p>
  ${s.cancel_at_period_end
    ? `<p class="cancels">Cancels at ${esc(ends)}</p>`
    : `<p>Renews at ${esc(ends)}</p>
  <form method="post" action="/p/session/${esc(id)}/cancel">
    <input type="hidden" name="subscription" value="${esc(s.id)}">
    <button type="submit">Cancel subscription</button>
  </form>`}
</li>`;
    });
    return `
<p class="test">Test mode</p>
<h1>Current subscription</h1>
<ul>${items.join('\n') || '<li>No subscription.</li>'}</ul>
<p><a href="${esc(portal.return_url)}">← Return to the site</a></p>`;
  }

  return {
    url: base,
    /** Where events go: tollgate's /v1/webhooks/stripe. */
    setWebhookUrl(url) {
      webhookUrl = url;
    },
    /** Sends `price.created` for a price, as Stripe does when it is made in the dashboard. */
    announcePrice: (priceId) => deliver(event('price.created', priceObject(priceId))),
    seen,
    deliveries,
    subscriptions,
    /** Waits for webhook deliveries still under way. */
    settle: () => Promise.all([...pending]),
    async close() {
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      data += chunk;
      if (data.length > 1e6) req.destroy();
    });
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'request-id': randomId('req_') });
  res.end(JSON.stringify(body));
}

function stripeError(res, status, type, message, param) {
  json(res, status, { error: { type, message, ...(param ? { param } : {}) } });
}

function page(res, status, title, body) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)} · Stripe (fake)</title>
<style>
body { font-family: system-ui, 'DejaVu Sans', sans-serif; background: #f6f9fc; color: #30313d; margin: 0; }
main { max-width: 28rem; margin: 3rem auto; background: #fff; padding: 2rem; border-radius: 8px; box-shadow: 0 2px 8px rgba(0,0,0,.08); }
.test { display: inline-block; background: #ffde92; color: #a04000; font-size: .75rem; padding: .1rem .4rem; border-radius: 4px; }
.amount { font-size: 2rem; font-weight: 600; } .amount span { font-size: 1rem; color: #6a7383; }
label { display: block; margin: .8rem 0; font-size: .9rem; } input { display: block; width: 100%; padding: .5rem; margin-top: .3rem; box-sizing: border-box; }
button { width: 100%; padding: .7rem; background: #635bff; color: #fff; border: 0; border-radius: 6px; font-size: 1rem; margin-top: .5rem; }
ul { list-style: none; padding: 0; }
</style></head><body><main>${body}</main></body></html>`);
}
