// The finance story the dashboard test tells tollgate, as Stripe would: signed webhook events made
// from the real-shaped fixtures in tests/fixtures/stripe (read from the repository, with ids,
// amounts and times changed), over the three months before the current one (months -3, -2, -1,
// each event on a day in the middle of a month, 10:00 UTC, so no time zone moves it to another).
//
//   Ada    Digital monthly, EUR 9.99, from month -3; upgrades to Premium monthly (EUR 19.99) on
//          day 20 of month -2 (expansion), paying the prorated difference.
//   Ben    Digital monthly, EUR 9.99, from month -3; asks to cancel at the period's end in month
//          -2, and the subscription ends on day 8 of month -1 (churn).
//   Chloé  Digital monthly in USD, 10.99 plus 20 % tax, from month -3 (a second currency).
//   Dev    Premium yearly, EUR 199.00 paid up front on day 20 of month -3; EUR 50.00 of it
//          refunded on day 15 of month -2, in the middle of the year paid for.
//   Eve    Digital monthly, EUR 9.99, from month -2; disputes the first payment (opened day 18
//          of month -2, under review day 26, lost day 10 of month -1).
//   Frank  A subscription of a customer no reader is linked to: tollgate keeps it `failed`,
//          waiting for the customer, for the Operations page.

import fs from 'node:fs';
import path from 'node:path';

import { repoDir } from './harness.js';

const fixtures = path.join(repoDir, 'tests', 'fixtures', 'stripe');
const fixture = (name) => JSON.parse(fs.readFileSync(path.join(fixtures, `${name}.json`), 'utf8'));

export const PRICES = {
  digitalEur: { id: 'price_1DashDigitalEurM01', currency: 'eur', unit_amount: 999, interval: 'month', product: 'prod_DashDigital001', nickname: 'Digital, monthly' },
  digitalUsd: { id: 'price_1DashDigitalUsdM01', currency: 'usd', unit_amount: 1099, interval: 'month', product: 'prod_DashDigital001', nickname: 'Digital, monthly (USD)' },
  premiumEur: { id: 'price_1DashPremiumEurM01', currency: 'eur', unit_amount: 1999, interval: 'month', product: 'prod_DashPremium001', nickname: 'Premium, monthly' },
  premiumYear: { id: 'price_1DashPremiumEurY01', currency: 'eur', unit_amount: 19900, interval: 'year', product: 'prod_DashPremium001', nickname: 'Premium, yearly' },
};

export const PLANS = {
  digital: { name: 'Digital', stripe_prices: [PRICES.digitalEur.id, PRICES.digitalUsd.id], entitlements: ['articles'] },
  premium: { name: 'Premium', stripe_prices: [PRICES.premiumEur.id, PRICES.premiumYear.id], entitlements: ['articles', 'reports'] },
};

/** The first day of the month `offset` months from the current one (UTC), as `YYYY-MM`. */
export function monthFromNow(offset, now = new Date()) {
  const index = now.getUTCFullYear() * 12 + now.getUTCMonth() + offset;
  return `${Math.floor(index / 12)}-${String((index % 12) + 1).padStart(2, '0')}`;
}

/** Unix seconds of `day` (10:00 UTC) in the month `offset` months from the current one. */
export function at(offset, day, now = new Date()) {
  const [year, month] = monthFromNow(offset, now).split('-').map(Number);
  return Math.floor(Date.UTC(year, month - 1, day, 10) / 1000);
}

const plusMonth = (t) => {
  const d = new Date(t * 1000);
  return Math.floor(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours()) / 1000);
};
const plusYear = (t) => {
  const d = new Date(t * 1000);
  return Math.floor(Date.UTC(d.getUTCFullYear() + 1, d.getUTCMonth(), d.getUTCDate(), d.getUTCHours()) / 1000);
};

/** Makes events with ids that sort as they were made, and a run tag so reruns never collide. */
export function storyTeller(runTag) {
  let counter = 0;
  const event = (type, object, created, previousAttributes) => {
    counter += 1;
    const template = fixture('price.created');
    return {
      id: `evt_1Dash${runTag}${String(counter).padStart(6, '0')}`,
      object: 'event',
      api_version: template.api_version,
      created,
      data: previousAttributes ? { object, previous_attributes: previousAttributes } : { object },
      livemode: false,
      pending_webhooks: 1,
      request: { id: `req_Dash${runTag}${counter}`, idempotency_key: null },
      type,
    };
  };
  return { event, id: (prefix, name) => `${prefix}_1Dash${runTag}${name}` };
}

function priceObject(price) {
  const object = structuredClone(fixture('price.created').data.object);
  return Object.assign(object, {
    id: price.id,
    currency: price.currency,
    unit_amount: price.unit_amount,
    unit_amount_decimal: String(price.unit_amount),
    product: price.product,
    nickname: price.nickname,
    lookup_key: null,
    created: at(-4, 1),
    transform_quantity: null,
    recurring: { ...object.recurring, interval: price.interval, interval_count: 1 },
  });
}

function itemObject(subscription, itemId, price, periodStart, periodEnd) {
  const template = structuredClone(fixture('customer.subscription.created').data.object.items.data[0]);
  return Object.assign(template, {
    id: itemId,
    created: periodStart,
    current_period_start: periodStart,
    current_period_end: periodEnd,
    subscription,
    price: priceObject(price),
    plan: {
      active: true, amount: price.unit_amount, amount_decimal: String(price.unit_amount), billing_scheme: 'per_unit',
      created: at(-4, 1), currency: price.currency, id: price.id, interval: price.interval, interval_count: 1,
      livemode: false, metadata: {}, meter: null, nickname: price.nickname, object: 'plan', product: price.product,
      tiers_mode: null, transform_usage: null, trial_period_days: null, usage_type: 'licensed',
    },
  });
}

/** A subscription snapshot, from the customer.subscription.created fixture. */
function subscriptionObject(s) {
  const object = structuredClone(fixture('customer.subscription.created').data.object);
  const item = itemObject(s.id, s.itemId, s.price, s.periodStart, s.periodEnd);
  return Object.assign(object, {
    id: s.id,
    customer: s.customer,
    currency: s.price.currency,
    created: s.start,
    start_date: s.start,
    billing_cycle_anchor: s.start,
    billing_cycle_anchor_config: null,
    status: s.status ?? 'active',
    cancel_at: s.cancelAt ?? null,
    cancel_at_period_end: s.cancelAtPeriodEnd ?? false,
    canceled_at: s.canceledAt ?? null,
    ended_at: s.endedAt ?? null,
    cancellation_details: { comment: null, feedback: null, reason: s.canceledAt ? 'cancellation_requested' : null },
    metadata: s.reader ? { reader_id: s.reader } : {},
    items: { ...object.items, data: [item], url: `/v1/subscription_items?subscription=${s.id}` },
    latest_invoice: s.latestInvoice ?? null,
    next_pending_invoice_item_invoice: null,
    pause_collection: null,
    pending_invoice_item_interval: null,
    pending_update: null,
    transfer_data: null,
  });
}

/** A paid invoice, from the invoice.paid fixture; tax is exclusive (on top of the lines). */
function invoiceObject(inv) {
  const object = structuredClone(fixture('invoice.paid').data.object);
  const subtotal = inv.lines.reduce((total, line) => total + line.amount, 0);
  const tax = inv.tax ?? 0;
  const total = subtotal + tax;
  return Object.assign(object, {
    id: inv.id,
    customer: inv.customer,
    currency: inv.currency,
    amount_due: total,
    amount_paid: total,
    amount_overpaid: 0,
    amount_remaining: 0,
    billing_reason: inv.reason ?? 'subscription_cycle',
    created: inv.paidAt,
    due_date: null,
    effective_at: inv.paidAt,
    from_invoice: null,
    last_finalization_error: null,
    number: inv.number,
    parent: { ...object.parent, subscription_details: { metadata: {}, subscription: inv.subscription } },
    period_start: inv.paidAt,
    period_end: inv.paidAt,
    shipping_cost: null,
    status_transitions: { finalized_at: inv.paidAt, marked_uncollectible_at: null, paid_at: inv.paidAt, voided_at: null },
    subtotal,
    subtotal_excluding_tax: subtotal,
    total,
    total_excluding_tax: subtotal,
    total_taxes: tax ? [{
      amount: tax, tax_behavior: 'exclusive', tax_rate_details: { tax_rate: 'txr_1DashVat20Percent' },
      taxability_reason: 'standard_rated', taxable_amount: subtotal, type: 'tax_rate_details',
    }] : [],
    webhooks_delivered_at: inv.paidAt,
    lines: {
      ...object.lines,
      data: inv.lines.map((line, index) => {
        const template = structuredClone(object.lines.data[0]);
        return Object.assign(template, {
          id: `il_${inv.id.slice(3)}L${index}`,
          amount: line.amount,
          currency: inv.currency,
          description: line.description,
          invoice: inv.id,
          period: { start: line.start, end: line.end },
          parent: {
            ...template.parent,
            subscription_item_details: {
              ...template.parent.subscription_item_details,
              proration: line.proration ?? false,
              subscription: inv.subscription,
              subscription_item: line.item,
            },
          },
          pricing: { ...template.pricing, price_details: { price: line.price.id, product: line.price.product }, unit_amount_decimal: String(line.amount) },
          quantity: 1,
        });
      }),
      url: `/v1/invoices/${inv.id}/lines`,
    },
  });
}

function invoicePaymentObject(inv, paymentIntent) {
  const object = structuredClone(fixture('invoice_payment.paid').data.object);
  const total = inv.lines.reduce((sum, line) => sum + line.amount, 0) + (inv.tax ?? 0);
  return Object.assign(object, {
    id: `inpay_${inv.id.slice(3)}`,
    amount_paid: total,
    amount_requested: total,
    created: inv.paidAt,
    currency: inv.currency,
    invoice: inv.id,
    payment: { payment_intent: paymentIntent, type: 'payment_intent' },
    status_transitions: { canceled_at: null, paid_at: inv.paidAt },
  });
}

function refundedChargeObject({ charge, paymentIntent, customer, currency, amount, refundId, refunded, refundedAt, chargedAt }) {
  const object = structuredClone(fixture('charge.refunded').data.object);
  const [refund] = object.refunds.data;
  return Object.assign(object, {
    id: charge,
    amount,
    amount_captured: amount,
    amount_refunded: refunded,
    created: chargedAt,
    currency,
    customer,
    payment_intent: paymentIntent,
    refunded: refunded === amount,
    receipt_url: null,
    source: null,
    refunds: {
      ...object.refunds,
      data: [Object.assign(structuredClone(refund), {
        id: refundId, amount: refunded, charge, created: refundedAt, currency, payment_intent: paymentIntent,
      })],
      total_count: 1,
      url: `/v1/charges/${charge}/refunds`,
    },
  });
}

function disputeObject(fixtureName, { dispute, charge, paymentIntent, amount, currency, openedAt }) {
  const object = structuredClone(fixture(fixtureName).data.object);
  const [txn] = object.balance_transactions;
  return Object.assign(object, {
    id: dispute,
    amount,
    currency,
    charge,
    payment_intent: paymentIntent,
    created: openedAt,
    balance_transactions: [{
      ...txn, amount: -amount, net: -amount - txn.fee, created: openedAt, currency,
      description: `Chargeback withdrawal for ${charge}`, id: `txn_${dispute.slice(3)}`, source: dispute,
      available_on: openedAt + 2 * 86400,
    }],
    evidence_details: { ...object.evidence_details, due_by: openedAt + 7 * 86400 },
  });
}

/**
 * The whole story as a list of events in the order Stripe would send them, and what the test
 * needs to know of it.
 */
export function story(runTag) {
  const { event, id } = storyTeller(runTag);
  const events = [];
  const send = (type, object, created, previous) => events.push(event(type, object, created, previous));

  for (const price of Object.values(PRICES)) send('price.created', priceObject(price), at(-4, 1));

  /** A monthly or yearly subscriber: the subscription, then an invoice per period paid. */
  const subscribe = ({ name, reader, price, start, tax = 0, periods }) => {
    const customer = id('cus', name);
    const subscription = id('sub', name);
    const itemId = id('si', name);
    const next = price.interval === 'year' ? plusYear : plusMonth;
    const invoices = [];
    let periodStart = start;
    for (let n = 0; n < periods; n += 1) {
      const periodEnd = next(periodStart);
      invoices.push({
        id: id('in', `${name}${n + 1}`), customer, subscription, currency: price.currency, paidAt: periodStart, tax,
        number: `DASH-${name.toUpperCase()}-${n + 1}`, reason: n === 0 ? 'subscription_create' : 'subscription_cycle',
        lines: [{ amount: price.unit_amount, price, item: itemId, start: periodStart, end: periodEnd, description: `1 × ${price.nickname}` }],
      });
      periodStart = periodEnd;
    }
    const snapshot = { id: subscription, customer, reader, itemId, price, start, periodStart: start, periodEnd: next(start), latestInvoice: invoices[0]?.id };
    return { customer, subscription, itemId, invoices, snapshot, next };
  };

  const paid = (inv, paymentIntent) => {
    send('invoice.paid', invoiceObject(inv), inv.paidAt + 2);
    send('invoice_payment.paid', invoicePaymentObject(inv, paymentIntent), inv.paidAt + 3);
  };

  // Ada: Digital from day 5 of month -3; Premium from day 20 of month -2.
  const ada = subscribe({ name: 'Ada', reader: 'reader-ada', price: PRICES.digitalEur, start: at(-3, 5), periods: 2 });
  send('customer.subscription.created', subscriptionObject(ada.snapshot), ada.snapshot.start + 1);
  paid(ada.invoices[0], id('pi', 'Ada1'));
  paid(ada.invoices[1], id('pi', 'Ada2'));
  const upgradeAt = at(-2, 20);
  const adaPremium = { ...ada.snapshot, price: PRICES.premiumEur, periodStart: ada.invoices[1].lines[0].start, periodEnd: ada.invoices[1].lines[0].end };
  send('customer.subscription.updated', subscriptionObject({ ...adaPremium, latestInvoice: id('in', 'AdaUp') }), upgradeAt + 1,
    { items: subscriptionObject(ada.snapshot).items });
  const adaUpgrade = {
    id: id('in', 'AdaUp'), customer: ada.customer, subscription: ada.subscription, currency: 'eur', paidAt: upgradeAt,
    number: 'DASH-ADA-UP', reason: 'subscription_update',
    lines: [{ amount: 500, price: PRICES.premiumEur, item: ada.itemId, start: upgradeAt, end: adaPremium.periodEnd, proration: true, description: 'Remaining time on Premium after the upgrade' }],
  };
  paid(adaUpgrade, id('pi', 'AdaUp'));
  const adaRenewal = {
    id: id('in', 'Ada3'), customer: ada.customer, subscription: ada.subscription, currency: 'eur', paidAt: adaPremium.periodEnd,
    number: 'DASH-ADA-3', reason: 'subscription_cycle',
    lines: [{ amount: 1999, price: PRICES.premiumEur, item: ada.itemId, start: adaPremium.periodEnd, end: plusMonth(adaPremium.periodEnd), description: '1 × Premium, monthly' }],
  };
  paid(adaRenewal, id('pi', 'Ada3'));

  // Ben: Digital from day 8 of month -3; cancels at the period's end; gone on day 8 of month -1.
  const ben = subscribe({ name: 'Ben', reader: 'reader-ben', price: PRICES.digitalEur, start: at(-3, 8), periods: 2 });
  send('customer.subscription.created', subscriptionObject(ben.snapshot), ben.snapshot.start + 1);
  paid(ben.invoices[0], id('pi', 'Ben1'));
  paid(ben.invoices[1], id('pi', 'Ben2'));
  const benLast = ben.invoices[1].lines[0];
  const benCancelling = { ...ben.snapshot, periodStart: benLast.start, periodEnd: benLast.end, cancelAt: benLast.end, cancelAtPeriodEnd: true, canceledAt: at(-2, 25) };
  send('customer.subscription.updated', subscriptionObject(benCancelling), at(-2, 25), { cancel_at_period_end: false, cancel_at: null, canceled_at: null });
  send('customer.subscription.deleted', subscriptionObject({ ...benCancelling, status: 'canceled', endedAt: benLast.end }), benLast.end + 1);

  // Chloé: Digital in USD with 20 % tax, from day 12 of month -3.
  const chloe = subscribe({ name: 'Chloe', reader: 'reader-chloe', price: PRICES.digitalUsd, start: at(-3, 12), tax: 220, periods: 3 });
  send('customer.subscription.created', subscriptionObject(chloe.snapshot), chloe.snapshot.start + 1);
  chloe.invoices.forEach((inv, n) => paid(inv, id('pi', `Chloe${n + 1}`)));

  // Dev: Premium yearly from day 20 of month -3; EUR 50.00 refunded on day 15 of month -2.
  const dev = subscribe({ name: 'Dev', reader: 'reader-dev', price: PRICES.premiumYear, start: at(-3, 20), periods: 1 });
  send('customer.subscription.created', subscriptionObject(dev.snapshot), dev.snapshot.start + 1);
  paid(dev.invoices[0], id('pi', 'Dev1'));
  const devRefund = {
    charge: id('ch', 'Dev1'), paymentIntent: id('pi', 'Dev1'), customer: dev.customer, currency: 'eur', amount: 19900,
    refundId: id('re', 'Dev1'), refunded: 5000, refundedAt: at(-2, 15), chargedAt: dev.snapshot.start,
  };
  send('charge.refunded', refundedChargeObject(devRefund), devRefund.refundedAt + 1, { amount_refunded: 0, refunded: false });

  // Eve: Digital from day 2 of month -2; her first payment disputed, and the dispute lost.
  const eve = subscribe({ name: 'Eve', reader: 'reader-eve', price: PRICES.digitalEur, start: at(-2, 2), periods: 2 });
  send('customer.subscription.created', subscriptionObject(eve.snapshot), eve.snapshot.start + 1);
  paid(eve.invoices[0], id('pi', 'Eve1'));
  const dispute = { dispute: id('dp', 'Eve1'), charge: id('ch', 'Eve1'), paymentIntent: id('pi', 'Eve1'), amount: 999, currency: 'eur', openedAt: at(-2, 18) };
  send('charge.dispute.created', disputeObject('charge.dispute.created', dispute), at(-2, 18) + 5);
  send('charge.dispute.updated', disputeObject('charge.dispute.updated', dispute), at(-2, 26),
    { evidence_details: { has_evidence: false, submission_count: 0 } });
  paid(eve.invoices[1], id('pi', 'Eve2'));
  send('charge.dispute.closed', disputeObject('charge.dispute.closed.lost', dispute), at(-1, 10), { status: 'under_review' });

  // Frank: no reader is linked to his customer, so tollgate cannot apply this yet.
  const frank = subscribe({ name: 'Frank', reader: null, price: PRICES.digitalEur, start: at(-1, 15), periods: 0 });
  send('customer.subscription.created', subscriptionObject({ ...frank.snapshot, latestInvoice: null }), frank.snapshot.start + 1);
  const waiting = events[events.length - 1];

  return { events, waiting, customers: { ada, ben, chloe, dev, eve, frank }, months: [monthFromNow(-3), monthFromNow(-2), monthFromNow(-1)] };
}

