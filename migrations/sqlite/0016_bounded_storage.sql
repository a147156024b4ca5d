-- Bounded storage: what the storage purge deletes, and the indexes it finds it by, so that each
-- of its batches reads only the rows it removes.

-- A Stripe event whose body was dropped keeps its row (id, type, status, times), so that a
-- redelivery is still recognised; `body` is then empty and `body_dropped_at` says when.
ALTER TABLE webhook_events ADD COLUMN body_dropped_at BIGINT;
CREATE INDEX webhook_events_body_kept ON webhook_events (received_at)
    WHERE body_dropped_at IS NULL AND status IN ('applied', 'skipped');

-- Unlocks no meter window can reach any more, by age.
CREATE INDEX meter_unlocks_by_time ON meter_unlocks (unlocked_at);

-- Delivered and failed deliveries, by their last attempt.
CREATE INDEX webhook_deliveries_by_outcome ON webhook_deliveries (status, last_attempt_at);

-- Dashboard sessions past their end.
CREATE INDEX dashboard_sessions_by_expiry ON dashboard_sessions (expires_at);
