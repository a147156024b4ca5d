-- Erased readers: one tombstone per reader, by pseudonym (an HMAC of the reader id under a key
-- the database does not hold). Their Stripe customers stay linked to the pseudonym, so that
-- later events and reconciles apply to it and never link the reader again. Instants are Unix
-- milliseconds (UTC).
CREATE TABLE reader_erasures (
    pseudonym         TEXT    PRIMARY KEY,
    erased_at         BIGINT  NOT NULL,
    -- The Stripe customers linked to the reader when they were erased, as a JSON array.
    stripe_customers  TEXT    NOT NULL
);

-- `reader.erased` events name the reader, and are deleted once delivered: the purge finds them
-- here without reading every event.
CREATE INDEX outbound_events_erasure_notices ON outbound_events (id) WHERE type = 'reader.erased';
