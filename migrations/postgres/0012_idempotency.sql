-- Answers to POSTs that carried an `Idempotency-Key`, per API key and request path, kept for
-- replay until `expires_at` (Unix milliseconds). A row is `running` while its request is being
-- served (until `locked_until`, after which a retry may take it over: its process died) and
-- `done` once its answer is kept. Secrets in answers are blanked before they are kept.
CREATE TABLE idempotency_keys (
    scope         TEXT    NOT NULL,
    route         TEXT    NOT NULL,
    key           TEXT    NOT NULL,
    fingerprint   BYTEA   NOT NULL CHECK (length(fingerprint) = 32),
    state         TEXT    NOT NULL CHECK (state IN ('running', 'done')),
    locked_until  BIGINT NOT NULL,
    status        BIGINT,
    content_type  TEXT,
    location      TEXT,
    body          BYTEA,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    PRIMARY KEY (scope, route, key)
);
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);
