-- Every admin write, through the API or the command line, appended in the write's own
-- transaction. Ids are time-ordered (`aud_` and a UUIDv7), so pages follow them. `changes` is
-- JSON without secrets. Nothing in the API updates or deletes a row.
CREATE TABLE audit_log (
    id          TEXT    PRIMARY KEY,
    at          INTEGER NOT NULL,
    key_id      TEXT,
    role        TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    request_id  TEXT,
    changes     TEXT    NOT NULL
);
CREATE INDEX audit_log_by_action ON audit_log (action, id);
CREATE INDEX audit_log_by_target ON audit_log (target, id);
