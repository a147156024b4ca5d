-- Plans: Stripe prices mapped to entitlements. Instants are Unix milliseconds (UTC).
CREATE TABLE plans (
    id                     TEXT    PRIMARY KEY,
    name                   TEXT    NOT NULL,
    trial_days             INTEGER NOT NULL CHECK (trial_days >= 0),
    allow_promotion_codes  BOOLEAN NOT NULL,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    archived_at            INTEGER
);

-- A price belongs to at most one plan: the primary key enforces it under any concurrency.
CREATE TABLE plan_prices (
    price_id  TEXT    PRIMARY KEY,
    plan_id   TEXT    NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    UNIQUE (plan_id, position)
);

CREATE TABLE plan_entitlements (
    plan_id      TEXT NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    entitlement  TEXT NOT NULL,
    PRIMARY KEY (plan_id, entitlement)
);
