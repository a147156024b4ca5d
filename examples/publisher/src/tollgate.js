// The few tollgate calls @tollgate/paywall leaves to the site: the reader view, Stripe Checkout
// and the Billing Portal. They run on the site's server with its `service` key, which never
// reaches the browser. Failures are the library's errors: TollgateError for a 4xx (with tollgate's
// problem `code`), TollgateUnavailableError when tollgate cannot answer.

import { randomUUID } from 'node:crypto';

import { TollgateError, TollgateUnavailableError } from '@tollgate/paywall';

export function createSiteClient({ baseUrl, apiKey, timeoutMs = 10_000 }) {
  async function call(method, path, body, headers = {}) {
    let response;
    try {
      response = await fetch(`${baseUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${apiKey}`,
          accept: 'application/json',
          ...(body ? { 'content-type': 'application/json' } : {}),
          ...headers,
        },
        body: body ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      throw new TollgateUnavailableError(`${method} ${path} failed: ${error.message}`, { cause: error });
    }
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // a body that is not JSON is reported below by its status
    }
    if (response.status >= 500) {
      throw new TollgateUnavailableError(`${method} ${path} answered ${response.status} ${json?.code ?? ''}`, {
        status: response.status,
      });
    }
    if (!response.ok) {
      throw new TollgateError(response.status, json?.code ?? `http_${response.status}`, json?.detail ?? text.slice(0, 500));
    }
    return json;
  }

  return {
    /** GET /v1/readers/{id}: entitlements, subscriptions and the meter. */
    reader: (readerId) => call('GET', `/v1/readers/${encodeURIComponent(readerId)}`),

    /**
     * POST /v1/checkout/sessions: a Stripe Checkout Session for `planId`. The idempotency key
     * makes a double-submitted form land on the same session.
     */
    checkout: ({ readerId, planId, price, email, successUrl, cancelUrl, idempotencyKey }) =>
      call(
        'POST',
        '/v1/checkout/sessions',
        {
          reader_id: readerId,
          plan_id: planId,
          success_url: successUrl,
          cancel_url: cancelUrl,
          ...(email ? { email } : {}),
          ...(price ? { price } : {}),
        },
        { 'idempotency-key': idempotencyKey ?? randomUUID() },
      ),

    /** POST /v1/portal/sessions: the Billing Portal for the reader's Stripe customer. */
    portal: ({ readerId, returnUrl }) =>
      call('POST', '/v1/portal/sessions', { reader_id: readerId, return_url: returnUrl }, {
        'idempotency-key': randomUUID(),
      }),
  };
}
