-- Every verified Stripe event, stored before it is acknowledged. `seq` is the order of receipt;
-- `created` is Stripe's own time (Unix seconds); other instants are Unix milliseconds (UTC).
CREATE TABLE webhook_events (
    seq          INTEGER PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    type         TEXT    NOT NULL,
    created      INTEGER NOT NULL,
    api_version  TEXT,
    livemode     BOOLEAN NOT NULL,
    body         TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'applied', 'failed', 'skipped')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    note         TEXT,
    received_at  INTEGER NOT NULL,
    applied_at   INTEGER
);

CREATE INDEX webhook_events_by_status ON webhook_events (status, seq);
