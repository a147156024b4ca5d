-- What the finance dashboard and its reports need: disputes mirrored from Stripe, the refunds of
-- an invoice found by it, dashboard sessions, and each reconcile run. Instants are Unix seconds
-- where Stripe gave them, Unix milliseconds where tollgate made them (`updated_at`,
-- `*_at` of sessions and reconcile runs).

-- A dispute of a charge, as its latest event or reconcile says. `closed_at` is when it was first
-- seen closed (the creation time of the event that closed it), the instant a lost dispute
-- counts against revenue.
CREATE TABLE disputes (
    id                 TEXT    PRIMARY KEY,
    charge_id          TEXT,
    payment_intent_id  TEXT,
    invoice_id         TEXT,
    amount             BIGINT  NOT NULL,
    currency           TEXT    NOT NULL,
    reason             TEXT,
    status             TEXT    NOT NULL,
    created            BIGINT  NOT NULL,
    closed_at          BIGINT,
    version_created    BIGINT  NOT NULL,
    version_source     TEXT    NOT NULL,
    fingerprint        TEXT    NOT NULL,
    updated_at         BIGINT  NOT NULL
);
CREATE INDEX disputes_by_created ON disputes (created);
CREATE INDEX disputes_by_charge ON disputes (charge_id);
CREATE INDEX disputes_by_payment_intent ON disputes (payment_intent_id);
CREATE INDEX disputes_lost_by_close ON disputes (closed_at) WHERE status = 'lost';

-- Recognised revenue reads the refunds of each invoice, and the tax in a gift's payment.
CREATE INDEX refunds_by_invoice ON refunds (invoice_id);
ALTER TABLE gift_subscriptions ADD COLUMN amount_tax BIGINT;

-- Read-only sessions of the finance dashboard, opened with a finance or admin key: the token is
-- stored only as its SHA-256 hash. A session dies at `expires_at`, when it is revoked, or when
-- the key it came from is revoked.
CREATE TABLE dashboard_sessions (
    id          TEXT    PRIMARY KEY,
    token_hash  BYTEA    NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    key_id      TEXT    NOT NULL REFERENCES api_keys (id),
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX dashboard_sessions_by_key ON dashboard_sessions (key_id);

-- Each reconcile with Stripe, whatever it came to: the operations page shows the latest.
CREATE TABLE stripe_sync_runs (
    id           TEXT    PRIMARY KEY,
    source       TEXT    NOT NULL,
    started_at   BIGINT  NOT NULL,
    finished_at  BIGINT  NOT NULL,
    outcome      TEXT    NOT NULL,
    report       TEXT,
    error        TEXT
);
CREATE INDEX stripe_sync_runs_by_start ON stripe_sync_runs (started_at);

-- A number that grows with every change of what finance reports are computed from (the mirror,
-- the plans), in the change's own transaction: a report computed at one value stays right until
-- it grows, so the dashboard's reports are kept computed ahead of requests.
CREATE TABLE report_generation (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    generation  BIGINT  NOT NULL
);
INSERT INTO report_generation (id, generation) VALUES (1, 0);
