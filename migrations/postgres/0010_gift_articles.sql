-- Gift links: a reader shares one article with a few people. Only the SHA-256 of a link's code
-- is kept. Instants are Unix milliseconds (UTC).
CREATE TABLE gift_links (
    id              TEXT    PRIMARY KEY,
    code_hash       BYTEA   NOT NULL UNIQUE CHECK (length(code_hash) = 32),
    giver           TEXT    NOT NULL,
    article_id      TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    expires_at      BIGINT  NOT NULL,
    revoked_at      BIGINT,
    max_recipients  BIGINT  NOT NULL CHECK (max_recipients > 0),
    -- The counter a redemption checks and increments in one statement, so that concurrent
    -- redemptions never open the article for more people than `max_recipients`.
    recipients      BIGINT  NOT NULL DEFAULT 0 CHECK (recipients >= 0)
);
CREATE INDEX gift_links_by_giver ON gift_links (giver, created_at);

-- Who a link opened its article for: a reader (`registered:<id>`) or a device
-- (`anonymous:<id>`), once each.
CREATE TABLE gift_redemptions (
    gift_id   TEXT    NOT NULL REFERENCES gift_links (id),
    recipient TEXT    NOT NULL,
    first_at  BIGINT  NOT NULL,
    PRIMARY KEY (gift_id, recipient)
);
