-- Events sent to the publisher's other services (Standard Webhooks). Instants are Unix
-- milliseconds.

-- Where events go. `secret` signs every delivery; after a rotation `previous_secret` signs too,
-- until `previous_secret_expires_at`. `failing_since` is the first failure of the current run
-- of failed attempts (none while the last attempt succeeded); after a failure the endpoint is
-- left alone until `paused_until`, when the failed delivery's retry is due.
CREATE TABLE webhook_endpoints (
    id                          TEXT    PRIMARY KEY,
    url                         TEXT    NOT NULL,
    description                 TEXT    NOT NULL,
    enabled                     BOOLEAN NOT NULL,
    disabled_reason             TEXT,
    secret                      TEXT    NOT NULL,
    previous_secret             TEXT,
    previous_secret_expires_at  INTEGER,
    failing_since               INTEGER,
    paused_until                INTEGER,
    created_at                  INTEGER NOT NULL,
    updated_at                  INTEGER NOT NULL
);

-- The event types an endpoint receives; `*` for all.
CREATE TABLE webhook_endpoint_types (
    endpoint_id  TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_type   TEXT NOT NULL,
    PRIMARY KEY (endpoint_id, event_type)
);

-- Every event, written in the transaction of the change it announces (the outbox), with the
-- exact body every delivery carries. Ids are time-ordered.
CREATE TABLE outbound_events (
    id    TEXT    PRIMARY KEY,
    type  TEXT    NOT NULL,
    at    INTEGER NOT NULL,
    body  TEXT    NOT NULL
);
CREATE INDEX outbound_events_by_time ON outbound_events (at, id);

-- One event to one endpoint. A pending delivery is attempted at `next_attempt_at`; claiming it
-- moves that instant, and `claimed_until`, to the end of a lease, so that no two dispatchers
-- attempt it at once. `endpoint_id` has no foreign key: deleting an endpoint deletes its
-- deliveries, and one a concurrent change wrote meanwhile names no endpoint and is never sent.
CREATE TABLE webhook_deliveries (
    id                TEXT    PRIMARY KEY,
    endpoint_id       TEXT    NOT NULL,
    event_id          TEXT    NOT NULL REFERENCES outbound_events (id),
    status            TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts          INTEGER NOT NULL,
    last_status_code  INTEGER,
    last_error        TEXT,
    last_attempt_at   INTEGER,
    next_attempt_at   INTEGER,
    claimed_until     INTEGER,
    delivered_at      INTEGER,
    created_at        INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (event_id);

-- What each reader was last announced to hold (sorted entitlement names as JSON), and how many
-- changes were announced for them.
CREATE TABLE entitlement_announcements (
    reader_id     TEXT    PRIMARY KEY,
    entitlements  TEXT    NOT NULL,
    sequence      INTEGER NOT NULL,
    announced_at  INTEGER NOT NULL
);

-- Readers whose entitlements must be looked at again from `due_at`: written in the transaction
-- of every change that can move them, and scheduled for the next instant one of their sources
-- lapses. Claiming one moves `due_at` to the end of a lease.
CREATE TABLE entitlement_checks (
    reader_id  TEXT    PRIMARY KEY,
    cause      TEXT    NOT NULL,
    due_at     INTEGER NOT NULL
);
CREATE INDEX entitlement_checks_due ON entitlement_checks (due_at);

-- Every reader who holds or held something before announcements began is looked at once, to
-- record what they hold without announcing it (`baseline`), so that their later changes, by a
-- write or by time, are announced from the truth.
INSERT INTO entitlement_checks (reader_id, cause, due_at)
SELECT reader_id, 'baseline', 0 FROM customers WHERE reader_id IS NOT NULL
UNION SELECT reader_id, 'baseline', 0 FROM grants
UNION SELECT reader_id, 'baseline', 0 FROM licence_members
UNION SELECT reader_id, 'baseline', 0 FROM team_members
UNION SELECT owner_id, 'baseline', 0 FROM teams;
