-- The Stripe mirror: customers linked to readers, subscriptions, invoices, payments and refunds,
-- and grants. Stripe's own times are Unix seconds; tollgate's instants are Unix milliseconds
-- (UTC). Every mirrored object remembers the version that wrote it (the creation time and id of
-- the event, or a reconcile) so that an older snapshot never overwrites a newer one.

-- Events that could not be applied yet are retried from `next_attempt_at` (Unix ms) on; one
-- that waits for a customer's reader is named here and retried as soon as the link arrives.
ALTER TABLE webhook_events ADD COLUMN next_attempt_at BIGINT;
ALTER TABLE webhook_events ADD COLUMN waiting_for TEXT;
CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX webhook_events_waiting ON webhook_events (waiting_for) WHERE waiting_for IS NOT NULL;

CREATE TABLE customers (
    id          TEXT    PRIMARY KEY,
    reader_id   TEXT,
    deleted_at  BIGINT,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX customers_by_reader ON customers (reader_id);

CREATE TABLE subscriptions (
    id                    TEXT    PRIMARY KEY,
    customer_id           TEXT    NOT NULL,
    status                TEXT    NOT NULL,
    currency              TEXT,
    created               BIGINT,
    current_period_start  BIGINT,
    current_period_end    BIGINT,
    cancel_at_period_end  BOOLEAN NOT NULL,
    cancel_at             BIGINT,
    canceled_at           BIGINT,
    ended_at              BIGINT,
    trial_end             BIGINT,
    past_due_since        BIGINT,
    version_created       BIGINT NOT NULL,
    version_source        TEXT    NOT NULL,
    fingerprint           TEXT    NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX subscriptions_by_customer ON subscriptions (customer_id);

CREATE TABLE subscription_items (
    subscription_id  TEXT    NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    item_id          TEXT    NOT NULL,
    price_id         TEXT    NOT NULL,
    quantity         BIGINT NOT NULL,
    position         BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, item_id)
);

-- Every snapshot that was applied, in order: how each subscription moved over time.
CREATE TABLE subscription_history (
    subscription_id  TEXT    NOT NULL,
    version_created  BIGINT NOT NULL,
    version_source   TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    items            TEXT    NOT NULL,
    recorded_at      BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, version_created, version_source)
);

CREATE TABLE invoices (
    id                TEXT    PRIMARY KEY,
    customer_id       TEXT,
    subscription_id   TEXT,
    status            TEXT    NOT NULL,
    currency          TEXT    NOT NULL,
    amount_due        BIGINT NOT NULL,
    amount_paid       BIGINT NOT NULL,
    subtotal          BIGINT NOT NULL,
    total             BIGINT NOT NULL,
    period_start      BIGINT,
    period_end        BIGINT,
    created           BIGINT,
    paid_at           BIGINT,
    billing_reason    TEXT,
    charge_id         TEXT,
    payment_intent_id TEXT,
    version_created   BIGINT NOT NULL,
    version_source    TEXT    NOT NULL,
    fingerprint           TEXT    NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX invoices_by_subscription ON invoices (subscription_id);
CREATE INDEX invoices_by_paid_at ON invoices (paid_at);

CREATE TABLE invoice_lines (
    invoice_id       TEXT    NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    line_id          TEXT    NOT NULL,
    position         BIGINT NOT NULL,
    price_id         TEXT,
    subscription_item_id TEXT,
    amount           BIGINT NOT NULL,
    discount_amount  BIGINT NOT NULL,
    currency         TEXT    NOT NULL,
    quantity         BIGINT,
    period_start     BIGINT,
    period_end       BIGINT,
    proration        BOOLEAN NOT NULL,
    description      TEXT,
    PRIMARY KEY (invoice_id, line_id)
);

-- How a payment (a payment intent or a charge) settled an invoice: refunds find their invoice
-- through it in API versions where a charge no longer names its invoice.
CREATE TABLE invoice_payments (
    id                 TEXT    PRIMARY KEY,
    invoice_id         TEXT    NOT NULL,
    payment_intent_id  TEXT,
    charge_id          TEXT,
    amount_paid        BIGINT,
    currency           TEXT,
    status             TEXT,
    fingerprint        TEXT    NOT NULL
);
CREATE INDEX invoice_payments_by_payment_intent ON invoice_payments (payment_intent_id);
CREATE INDEX invoice_payments_by_charge ON invoice_payments (charge_id);

CREATE TABLE refunds (
    id                 TEXT    PRIMARY KEY,
    charge_id          TEXT,
    payment_intent_id  TEXT,
    invoice_id         TEXT,
    amount             BIGINT NOT NULL,
    currency           TEXT    NOT NULL,
    status             TEXT,
    reason             TEXT,
    created            BIGINT NOT NULL,
    version_created    BIGINT NOT NULL,
    version_source     TEXT    NOT NULL,
    fingerprint           TEXT    NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX refunds_by_charge ON refunds (charge_id);
CREATE INDEX refunds_by_payment_intent ON refunds (payment_intent_id);
CREATE INDEX refunds_by_created ON refunds (created);

CREATE TABLE grants (
    id          TEXT    PRIMARY KEY,
    reader_id   TEXT    NOT NULL,
    expires_at  BIGINT NOT NULL,
    reason      TEXT    NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT,
    revoked_at  BIGINT
);
CREATE INDEX grants_by_reader ON grants (reader_id);

CREATE TABLE grant_entitlements (
    grant_id     TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    entitlement  TEXT NOT NULL,
    PRIMARY KEY (grant_id, entitlement)
);
