-- Every verified Stripe event, stored before it is acknowledged. `seq` is the order of receipt;
-- `created` is Stripe's own time (Unix seconds); other instants are Unix milliseconds (UTC).
CREATE TABLE webhook_events (
    seq          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    type         TEXT    NOT NULL,
    created      BIGINT  NOT NULL,
    api_version  TEXT,
    livemode     BOOLEAN NOT NULL,
    body         TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'applied', 'failed', 'skipped')),
    attempts     BIGINT  NOT NULL DEFAULT 0,
    last_error   TEXT,
    note         TEXT,
    received_at  BIGINT  NOT NULL,
    applied_at   BIGINT
);

CREATE INDEX webhook_events_by_status ON webhook_events (status, seq);
