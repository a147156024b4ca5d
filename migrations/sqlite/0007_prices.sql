-- Stripe prices, from `price.*` events, the prices subscription items carry, and reconciles:
-- what a plan's offers cost and how often they bill. Amount, currency and cycle never change
-- in Stripe; `active` and the nickname do, so the newest version (as for subscriptions) wins.
CREATE TABLE prices (
    id               TEXT    PRIMARY KEY,
    product          TEXT,
    active           BOOLEAN NOT NULL,
    currency         TEXT    NOT NULL,
    unit_amount      INTEGER,
    recurring_interval TEXT,
    recurring_count  INTEGER,
    nickname         TEXT,
    version_created  INTEGER  NOT NULL,
    version_source   TEXT    NOT NULL,
    updated_at       INTEGER  NOT NULL
);
