#!/usr/bin/env python3
"""A year of traffic for bench/storage: what a publisher with 100,000 registered readers stores.

  python3 bench/storage-data.py generate OUT_DIR --end UNIX_MS [--readers N]
      [--subscriber-share F] [--endpoints N] [--seed N]
      Writes one CSV per table (header row, empty field = NULL, bytes as \\x hex) in load order,
      covering the 365 days before --end.
  python3 bench/storage-data.py load-sqlite DB_FILE OUT_DIR
      Inserts the CSVs into a migrated SQLite database, in one transaction.
  python3 bench/storage-data.py sizes-sqlite DB_FILE
      Prints each table (with its indexes) as `table rows bytes`, one per line, from `dbstat`,
      then `(file) pages bytes` with the free pages apart.

What is generated:
- meter unlocks: each reader who is not a subscriber reads at a steady rate of 0.5 to 6
  articles a week (a few a week on average) and unlocks, each calendar month, the first three
  distinct articles read (the default meter); a subscriber unlocks nothing. They are written in
  the order they happened, as a server inserts them;
- Stripe events: subscribers (--subscriber-share, 3 %) start through Checkout over the year and
  renew monthly; each start and each renewal brings the events Stripe sends for it, the applied
  types (checkout.session.completed, customer.subscription.created/updated, invoice.paid,
  invoice.payment_succeeded, invoice_payment.paid) and the skipped ones (invoice.created,
  invoice.finalized, charge.succeeded, payment_intent.succeeded), with bodies of the size
  Stripe sends (the test fixtures, ids replaced); a few are failed, waiting for a customer;
- outbound events for each subscription change and paid invoice, each delivered to every
  endpoint (--endpoints, 2), nearly all delivered at once, a few failed;
- idempotency keys: one per checkout started (a third of them bought), kept 24 hours;
- dashboard sessions: finance staff signing in a few times a day, 8 hours each.
Instants are Unix milliseconds, as tollgate stores them.
"""

import argparse
import csv
import json
import os
import random
import sqlite3
import sys

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
FIXTURES = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "stripe")

TABLES = {
    "api_keys": "id name role key_hash hint created_at",
    "meter_unlocks": "audience subject article_id unlocked_at",
    "webhook_events": "id type created api_version livemode body status attempts last_error note "
    "received_at applied_at next_attempt_at waiting_for",
    "outbound_events": "id type at body",
    "webhook_deliveries": "id endpoint_id event_id status attempts last_status_code last_error "
    "last_attempt_at next_attempt_at delivered_at created_at",
    "idempotency_keys": "scope route key fingerprint state locked_until status content_type "
    "location body created_at expires_at",
    "dashboard_sessions": "id token_hash key_id created_at expires_at",
}
BLOBS = {"key_hash", "fingerprint", "token_hash", "body"}
BLOB_TABLES = {"api_keys", "idempotency_keys", "dashboard_sessions"}

# Per start and per renewal: (type, fixture whose body it is the size of, applied?).
START = [
    ("checkout.session.completed", "checkout.session.completed.subscription.json", True),
    ("customer.subscription.created", "customer.subscription.created.json", True),
]
RENEWAL = [
    ("invoice.created", "invoice.paid.json", False),
    ("invoice.finalized", "invoice.paid.json", False),
    ("invoice.paid", "invoice.paid.json", True),
    ("invoice.payment_succeeded", "invoice.paid.json", True),
    ("invoice_payment.paid", "invoice_payment.paid.json", True),
    ("charge.succeeded", "charge.refunded.json", False),
    ("payment_intent.succeeded", "charge.refunded.json", False),
    ("customer.subscription.updated", "customer.subscription.updated.renewal.json", True),
]


def hexbytes(rng, n):
    return "\\x" + rng.randbytes(n).hex()


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def rand_id(rng, prefix, n=24):
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return prefix + "".join(rng.choice(alphabet) for _ in range(n))


class Writer:
    def __init__(self, out):
        self.files = {}
        self.writers = {}
        self.counts = {}
        for table, columns in TABLES.items():
            f = open(os.path.join(out, f"{table}.csv"), "w", newline="")
            w = csv.writer(f)
            w.writerow(columns.split())
            self.files[table], self.writers[table], self.counts[table] = f, w, 0

    def row(self, table, *values):
        self.writers[table].writerow(["" if v is None else v for v in values])
        self.counts[table] += 1

    def close(self):
        for f in self.files.values():
            f.close()


def month_starts(start_ms, end_ms):
    """The first instant (UTC) of every calendar month that overlaps [start, end)."""
    import datetime as dt

    d = dt.datetime.fromtimestamp(start_ms / 1000, dt.timezone.utc).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    starts = []
    while int(d.timestamp() * 1000) < end_ms:
        starts.append(int(d.timestamp() * 1000))
        d = (d.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return starts


def generate(args):
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    end = args.end
    start = end - 365 * DAY_MS
    w = Writer(args.out)
    bodies = {name: fixture(name) for _, name, _ in START + RENEWAL}

    w.row("api_keys", "key_benchfinance", "bench finance", "finance", hexbytes(rng, 32), "bnch", start)

    # Meter unlocks, month by month, in the order they happened (as a server inserts them).
    months = month_starts(start, end)
    subscribers = set(rng.sample(range(args.readers), int(args.readers * args.subscriber_share)))
    readers = [
        (f"reader-{reader:06d}", rng.choice((0.5, 1, 2, 3, 4, 6)))
        for reader in range(args.readers)
        if reader not in subscribers
    ]
    for m, month in enumerate(months):
        month_end = months[m + 1] if m + 1 < len(months) else month + 31 * DAY_MS
        lo, hi = max(month, start), min(month_end, end)
        if hi <= lo:
            continue
        unlocks = []
        for subject, weekly in readers:
            expected = weekly * (hi - lo) / (7 * DAY_MS)
            views = sorted(rng.uniform(lo, hi) for _ in range(int(expected) + (rng.random() < expected % 1)))
            seen = []
            for at in views:
                article = f"{rng.randrange(2025, 2027)}/{rng.randrange(1, 13):02d}/story-{rng.randrange(40_000):05d}"
                if article in seen:
                    continue
                seen.append(article)
                unlocks.append((int(at), subject, article))
                if len(seen) == 3:
                    break
        unlocks.sort()
        for at, subject, article in unlocks:
            w.row("meter_unlocks", "registered", subject, article, at)

    # Stripe events and outbound events, in the order they happened.
    events = []
    for reader in sorted(subscribers):
        began = rng.randrange(start - 330 * DAY_MS, end - DAY_MS)
        customer = rand_id(rng, "cus_", 14)
        if began >= start:
            for kind, name, applied in START:
                events.append((began + rng.randrange(5_000), kind, name, applied, customer))
        renewal = began + 30 * DAY_MS
        while renewal < end:
            if renewal >= start:
                for kind, name, applied in RENEWAL:
                    events.append((renewal + rng.randrange(60_000), kind, name, applied, customer))
            renewal += 30 * DAY_MS
    events.sort()
    outbound = []
    for at, kind, name, applied, customer in events:
        event_id = rand_id(rng, "evt_")
        body = bodies[name]
        failed = applied and rng.random() < 0.0005
        status = "failed" if failed else ("applied" if applied else "skipped")
        w.row(
            "webhook_events",
            event_id,
            kind,
            at // 1000,
            "2025-08-27.basil",
            "0",
            body,
            status,
            1 if applied else 0,
            f"customer {customer} is not linked to a reader yet" if failed else None,
            None if applied else f"tollgate does not apply {kind} events",
            at,
            at + 40 if applied and not failed else None,
            None,
            customer if failed else None,
        )
        if kind in ("customer.subscription.created", "customer.subscription.updated", "invoice.paid"):
            outbound.append((at + 50, "subscription.updated" if kind != "invoice.paid" else "invoice.paid"))
            if kind == "customer.subscription.created":
                outbound.append((at + 60, "entitlements.changed"))
    for at, kind in outbound:
        message = rand_id(rng, "msg_")
        data = {"type": kind, "timestamp": at, "data": {"reader_id": f"reader-{rng.randrange(args.readers):06d}",
                                                        "subscription_id": rand_id(rng, "sub_", 14),
                                                        "status": "active", "entitlements": ["articles"]}}
        w.row("outbound_events", message, kind, at, json.dumps(data))
        for endpoint in range(args.endpoints):
            failed = rng.random() < 0.002
            attempts = 6 if failed else 1
            last = at + (3 * DAY_MS if failed else 300)
            w.row(
                "webhook_deliveries",
                rand_id(rng, "dlv_"),
                f"whe_bench{endpoint}",
                message,
                "failed" if failed else "delivered",
                attempts,
                503 if failed else 200,
                "the endpoint answered 503" if failed else None,
                last,
                None,
                None if failed else last,
                at,
            )

    # Idempotency keys of checkouts, and dashboard sessions.
    checkouts = len(subscribers) * 3 * 365 // 330
    for _ in range(checkouts):
        at = rng.randrange(start, end)
        w.row("idempotency_keys", "key_benchservice", "POST /v1/checkout/sessions", rand_id(rng, "", 32),
              hexbytes(rng, 32), "done", at + 120_000, 201, "application/json", None,
              "\\x" + json.dumps({"url": "https://checkout.stripe.com/c/pay/" + rand_id(rng, "cs_live_", 58)}).encode().hex(),
              at, at + 24 * HOUR_MS)
    day = start
    while day < end:
        for _ in range(rng.randrange(2, 7)):
            at = day + rng.randrange(7 * HOUR_MS, 18 * HOUR_MS)
            w.row("dashboard_sessions", rand_id(rng, "ses_"), hexbytes(rng, 32), "key_benchfinance",
                  at, at + 8 * HOUR_MS)
        day += DAY_MS
    w.close()
    print(json.dumps(w.counts), file=sys.stderr)


def load_sqlite(args):
    db = sqlite3.connect(args.db, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("BEGIN")
    csv.field_size_limit(1 << 24)
    for table in TABLES:
        with open(os.path.join(args.out, f"{table}.csv"), newline="") as f:
            r = csv.reader(f)
            columns = next(r)
            blob = [c in BLOBS and table in BLOB_TABLES for c in columns]
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"

            def values(row):
                return [
                    None if v == "" else (bytes.fromhex(v[2:]) if b else v)
                    for v, b in zip(row, blob)
                ]

            db.executemany(sql, (values(row) for row in r))
    db.execute("COMMIT")
    db.close()


def sizes_sqlite(args):
    db = sqlite3.connect(args.db)
    names = [t for t in TABLES if t != "api_keys"]
    for table in names:
        (rows,) = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
        (size,) = db.execute(
            "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name = ? OR name IN "
            "(SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = ?)",
            (table, table),
        ).fetchone()
        print(table, rows, size)
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    (free,) = db.execute("PRAGMA freelist_count").fetchone()
    (page,) = db.execute("PRAGMA page_size").fetchone()
    print("(file)", pages, pages * page, "free", free * page)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(required=True)
    g = sub.add_parser("generate")
    g.add_argument("out")
    g.add_argument("--end", type=int, required=True)
    g.add_argument("--readers", type=int, default=100_000)
    g.add_argument("--subscriber-share", type=float, default=0.03)
    g.add_argument("--endpoints", type=int, default=2)
    g.add_argument("--seed", type=int, default=19)
    g.set_defaults(func=generate)
    s = sub.add_parser("load-sqlite")
    s.add_argument("db")
    s.add_argument("out")
    s.set_defaults(func=load_sqlite)
    s = sub.add_parser("sizes-sqlite")
    s.add_argument("db")
    s.set_defaults(func=sizes_sqlite)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
