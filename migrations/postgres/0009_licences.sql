-- Institutional licences. Instants are Unix milliseconds (UTC). A deleted licence keeps its row
-- (marked `deleted_at`) so that its usage stays in past reports.
CREATE TABLE licences (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    seats       BIGINT  CHECK (seats IS NULL OR seats > 0),
    -- Readers enrolled by e-mail domain now: the counter a seat claim checks and increments in
    -- one statement, so concurrent claims never enrol more than `seats`.
    members     BIGINT  NOT NULL DEFAULT 0 CHECK (members >= 0),
    starts_at   BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL CHECK (expires_at > starts_at),
    created_at  BIGINT  NOT NULL,
    created_by  TEXT,
    deleted_at  BIGINT
);

CREATE TABLE licence_entitlements (
    licence_id   TEXT NOT NULL REFERENCES licences (id) ON DELETE CASCADE,
    entitlement  TEXT NOT NULL,
    PRIMARY KEY (licence_id, entitlement)
);

-- Each range with its first and last address as 16-byte keys (IPv4 in its IPv4-mapped form), so
-- that one comparison finds a range holding an address, whichever family either was written in.
CREATE TABLE licence_ip_ranges (
    licence_id     TEXT NOT NULL REFERENCES licences (id) ON DELETE CASCADE,
    cidr           TEXT NOT NULL,
    first_address  BYTEA NOT NULL CHECK (length(first_address) = 16),
    last_address   BYTEA NOT NULL CHECK (length(last_address) = 16),
    PRIMARY KEY (licence_id, cidr)
);
CREATE INDEX licence_ip_ranges_by_address ON licence_ip_ranges (first_address, last_address);

CREATE TABLE licence_email_domains (
    licence_id  TEXT NOT NULL REFERENCES licences (id) ON DELETE CASCADE,
    domain      TEXT NOT NULL,
    PRIMARY KEY (licence_id, domain)
);
CREATE INDEX licence_email_domains_by_domain ON licence_email_domains (domain);

-- Seats taken by e-mail domain, with their history: a removed member's row stays, ended.
CREATE TABLE licence_members (
    id          TEXT    PRIMARY KEY,
    licence_id  TEXT    NOT NULL REFERENCES licences (id) ON DELETE CASCADE,
    reader_id   TEXT    NOT NULL,
    domain      TEXT    NOT NULL,
    joined_at   BIGINT  NOT NULL,
    removed_at  BIGINT
);
CREATE UNIQUE INDEX licence_members_current ON licence_members (licence_id, reader_id)
    WHERE removed_at IS NULL;
CREATE INDEX licence_members_by_reader ON licence_members (reader_id) WHERE removed_at IS NULL;

-- Articles opened under a licence, once per reader (or device), article and month: the usage
-- report's own rows, apart from the meter's unlocks, so pruning those never changes a report.
CREATE TABLE licence_openings (
    licence_id  TEXT    NOT NULL,
    month       TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    article_id  TEXT    NOT NULL,
    first_at    BIGINT  NOT NULL,
    PRIMARY KEY (licence_id, month, subject, article_id)
);

-- Whether a key may tell tollgate the address a reader reads from (`ip`), which can admit them
-- under a licence: an admin's choice when the key is made.
ALTER TABLE api_keys ADD COLUMN may_assert_ip BOOLEAN NOT NULL DEFAULT FALSE;
