-- Unlocks a batch of meter requests in one statement, so a batch costs the access path one round
-- trip however many requests it holds. Item i asks to unlock articles[i] at nows[i] for the
-- subject (audiences[i], subjects[i]), whose window counts every unlock from counts_from[i] on
-- and allows limits[i] of them. (Unlocks later than nows[i] count too: a request that waited
-- behind a later one, or came from an instance whose clock is behind, must still see it.) Callers pass the items in ascending lock_keys order, so two batches
-- never wait for each other's locks in a cycle.
--
-- Each item takes its subject's transaction-scoped advisory lock before counting. The function
-- is VOLATILE, so under READ COMMITTED every statement in it takes a fresh snapshot: the count
-- that follows the lock sees every unlock committed by whoever held the lock before. The locks
-- are released when the caller's transaction (usually this statement alone) commits.
--
-- Returns one row per item: its position (1-based, as given), the outcome ('unlocked',
-- 'already_unlocked' or 'exhausted'), and the meter's usage after it (count, oldest unlock).
CREATE FUNCTION tollgate_unlock(
    lock_keys BIGINT[],
    audiences TEXT[],
    subjects TEXT[],
    articles TEXT[],
    counts_from BIGINT[],
    nows BIGINT[],
    limits BIGINT[]
) RETURNS TABLE (item INTEGER, outcome TEXT, used BIGINT, oldest BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    locked BIGINT;
    seen BIGINT;
BEGIN
    FOR i IN 1 .. coalesce(array_length(lock_keys, 1), 0) LOOP
        IF locked IS DISTINCT FROM lock_keys[i] THEN
            PERFORM pg_advisory_xact_lock(lock_keys[i]);
            locked := lock_keys[i];
        END IF;
        SELECT COUNT(*), MIN(u.unlocked_at), COUNT(CASE WHEN u.article_id = articles[i] THEN 1 END)
            INTO used, oldest, seen
            FROM meter_unlocks u
            WHERE u.audience = audiences[i] AND u.subject = subjects[i]
                AND u.unlocked_at >= counts_from[i];
        item := i;
        IF seen > 0 THEN
            outcome := 'already_unlocked';
        ELSIF used >= limits[i] THEN
            outcome := 'exhausted';
        ELSE
            INSERT INTO meter_unlocks (audience, subject, article_id, unlocked_at)
                VALUES (audiences[i], subjects[i], articles[i], nows[i]);
            outcome := 'unlocked';
            used := used + 1;
            oldest := LEAST(coalesce(oldest, nows[i]), nows[i]);
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;
