-- API keys. Only the SHA-256 of a key is kept; instants are Unix milliseconds (UTC).
CREATE TABLE api_keys (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    role        TEXT    NOT NULL CHECK (role IN ('admin', 'service', 'finance')),
    key_hash    BYTEA   NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    hint        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    created_by  TEXT    REFERENCES api_keys (id),
    revoked_at  BIGINT
);
