-- The Stripe mirror: customers linked to readers, subscriptions, invoices, payments and refunds,
-- and grants. Stripe's own times are Unix seconds; tollgate's instants are Unix milliseconds
-- (UTC). Every mirrored object remembers the version that wrote it (the creation time and id of
-- the event, or a reconcile) so that an older snapshot never overwrites a newer one.

-- Events that could not be applied yet are retried from `next_attempt_at` (Unix ms) on; one
-- that waits for a customer's reader is named here and retried as soon as the link arrives.
ALTER TABLE webhook_events ADD COLUMN next_attempt_at INTEGER;
ALTER TABLE webhook_events ADD COLUMN waiting_for TEXT;
CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX webhook_events_waiting ON webhook_events (waiting_for) WHERE waiting_for IS NOT NULL;

CREATE TABLE customers (
    id          TEXT    PRIMARY KEY,
    reader_id   TEXT,
    deleted_at  INTEGER,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX customers_by_reader ON customers (reader_id);

CREATE TABLE subscriptions (
    id                    TEXT    PRIMARY KEY,
    customer_id           TEXT    NOT NULL,
    status                TEXT    NOT NULL,
    currency              TEXT,
    created               INTEGER,
    current_period_start  INTEGER,
    current_period_end    INTEGER,
    cancel_at_period_end  BOOLEAN NOT NULL,
    cancel_at             INTEGER,
    canceled_at           INTEGER,
    ended_at              INTEGER,
    trial_end             INTEGER,
    past_due_since        INTEGER,
    version_created       INTEGER NOT NULL,
    version_source        TEXT    NOT NULL,
    fingerprint           TEXT    NOT NULL,
    updated_at            INTEGER NOT NULL
);
CREATE INDEX subscriptions_by_customer ON subscriptions (customer_id);

CREATE TABLE subscription_items (
    subscription_id  TEXT    NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    item_id          TEXT    NOT NULL,
    price_id         TEXT    NOT NULL,
    quantity         INTEGER NOT NULL,
    position         INTEGER NOT NULL,
    PRIMARY KEY (subscription_id, item_id)
);

-- Every snapshot that was applied, in order: how each subscription moved over time.
CREATE TABLE subscription_history (
    subscription_id  TEXT    NOT NULL,
    version_created  INTEGER NOT NULL,
    version_source   TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    items            TEXT    NOT NULL,
    recorded_at      INTEGER NOT NULL,
    PRIMARY KEY (subscription_id, version_created, version_source)
);

CREATE TABLE invoices (
    id                TEXT    PRIMARY KEY,
    customer_id       TEXT,
    subscription_id   TEXT,
    status            TEXT    NOT NULL,
    currency          TEXT    NOT NULL,
    amount_due        INTEGER NOT NULL,
    amount_paid       INTEGER NOT NULL,
    subtotal          INTEGER NOT NULL,
    total             INTEGER NOT NULL,
    period_start      INTEGER,
    period_end        INTEGER,
    created           INTEGER,
    paid_at           INTEGER,
    billing_reason    TEXT,
    charge_id         TEXT,
    payment_intent_id TEXT,
    version_created   INTEGER NOT NULL,
    version_source    TEXT    NOT NULL,
    fingerprint           TEXT    NOT NULL,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX invoices_by_subscription ON invoices (subscription_id);
CREATE INDEX invoices_by_paid_at ON invoices (paid_at);

CREATE TABLE invoice_lines (
    invoice_id       TEXT    NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
    line_id          TEXT    NOT NULL,
    position         INTEGER NOT NULL,
    price_id         TEXT,
    subscription_item_id TEXT,
    amount           INTEGER NOT NULL,
    discount_amount  INTEGER NOT NULL,
    currency         TEXT    NOT NULL,
    quantity         INTEGER,
    period_start     INTEGER,
    period_end       INTEGER,
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
    amount_paid        INTEGER,
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
    amount             INTEGER NOT NULL,
    currency           TEXT    NOT NULL,
    status             TEXT,
    reason             TEXT,
    created            INTEGER NOT NULL,
    version_created    INTEGER NOT NULL,
    version_source     TEXT    NOT NULL,
    fingerprint           TEXT    NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX refunds_by_charge ON refunds (charge_id);
CREATE INDEX refunds_by_payment_intent ON refunds (payment_intent_id);
CREATE INDEX refunds_by_created ON refunds (created);

CREATE TABLE grants (
    id          TEXT    PRIMARY KEY,
    reader_id   TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL,
    reason      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT,
    revoked_at  INTEGER
);
CREATE INDEX grants_by_reader ON grants (reader_id);

CREATE TABLE grant_entitlements (
    grant_id     TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    entitlement  TEXT NOT NULL,
    PRIMARY KEY (grant_id, entitlement)
);
