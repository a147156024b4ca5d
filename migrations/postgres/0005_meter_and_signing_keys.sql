-- Free articles unlocked, one row per unlock. A meter counts the rows of its subject inside its
-- window; the access path serialises the check and the insert per subject (see the store).
CREATE TABLE meter_unlocks (
    audience TEXT NOT NULL,
    subject TEXT NOT NULL,
    article_id TEXT NOT NULL,
    unlocked_at BIGINT NOT NULL,
    -- The device an unlock was merged from, when a reader's meter took it over.
    merged_from TEXT
);

CREATE INDEX meter_unlocks_by_subject ON meter_unlocks (audience, subject, unlocked_at);

-- Token signing keys that tollgate generated. Exactly one is current (is_current = 1, unique);
-- retired keys stay published until every token they signed has expired.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    private_key_pem TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT,
    is_current INTEGER UNIQUE CHECK (is_current = 1)
);
