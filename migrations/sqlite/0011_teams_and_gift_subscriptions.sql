-- Plans sold by the seat (the subscription item's quantity is the number of seats), and plans
-- that can be given: a one-off Stripe price and how many months it buys.
ALTER TABLE plans ADD COLUMN seats BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE plans ADD COLUMN gift_price TEXT;
ALTER TABLE plans ADD COLUMN gift_months INTEGER CHECK (gift_months IS NULL OR gift_months > 0);

-- A team: a subscription to a plan sold by the seat and the reader who owns it, its subscriber
-- until ownership moves. The owner holds one seat without a member row. Instants are Unix
-- milliseconds (UTC).
CREATE TABLE teams (
    subscription_id  TEXT    PRIMARY KEY,
    owner_id         TEXT    NOT NULL,
    -- Member rows now: the counter an addition checks and increments in one statement, so
    -- concurrent additions never seat more readers than the subscription has seats.
    members          INTEGER NOT NULL DEFAULT 0 CHECK (members >= 0),
    created_at       INTEGER NOT NULL
);
CREATE INDEX teams_by_owner ON teams (owner_id);

CREATE TABLE team_members (
    subscription_id  TEXT    NOT NULL REFERENCES teams (subscription_id) ON DELETE CASCADE,
    reader_id        TEXT    NOT NULL,
    added_at         INTEGER NOT NULL,
    PRIMARY KEY (subscription_id, reader_id)
);
CREATE INDEX team_members_by_reader ON team_members (reader_id);

-- Gift subscriptions bought through Checkout in payment mode. The code is kept encrypted
-- (AES-256-GCM; `code_sealed` is the nonce, then the ciphertext) until it is redeemed, and only
-- as its SHA-256 afterwards; the hash finds a code at redemption either way.
CREATE TABLE gift_subscriptions (
    id                  TEXT    PRIMARY KEY,
    checkout_session    TEXT    NOT NULL UNIQUE,
    buyer               TEXT    NOT NULL,
    plan_id             TEXT    NOT NULL,
    months              INTEGER NOT NULL CHECK (months > 0),
    code_hash           BLOB   NOT NULL UNIQUE CHECK (length(code_hash) = 32),
    code_sealed         BLOB,
    amount_total        INTEGER,
    currency            TEXT,
    purchased_at        INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    redeemed_by         TEXT,
    redeemed_at         INTEGER,
    grant_id            TEXT,
    CHECK ((redeemed_at IS NULL) = (code_sealed IS NOT NULL))
);
CREATE INDEX gift_subscriptions_by_buyer ON gift_subscriptions (buyer, purchased_at);

-- The gift subscription a grant redeems, if it redeems one: such a grant is shown as a `gift`
-- source, which does not let its reader give articles unless the operator allows it.
ALTER TABLE grants ADD COLUMN gift_subscription_id TEXT;
