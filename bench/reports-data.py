#!/usr/bin/env python3
"""Synthetic billing history for bench/reports: the Stripe mirror of a publisher after two years.

  python3 bench/reports-data.py generate OUT_DIR --end 2026-11-01 [--months 24] [--invoices N]
      [--subscriptions N] [--refunds N] [--seed N]
      Writes one CSV per table (header row, empty field = NULL, booleans 0/1) in load order, and
      expected.json: what the revenue report must total over the window, per currency, and
      what the recognised revenue report must bill and refund.
  python3 bench/reports-data.py load-sqlite DB_FILE OUT_DIR
      Inserts the CSVs into a migrated SQLite database, in one transaction.
  python3 bench/reports-data.py rows FILE
      Prints the rows of a report answer (JSON `rows`, or CSV lines after the header).
  python3 bench/reports-data.py check-revenue FILE EXPECTED_JSON
      Fails unless a revenue answer (JSON or CSV) totals gross, tax, refunds, net and invoices per
      currency as expected.json says.

What is generated (the window is the `--months` whole months before `--end`, UTC):
- 3 plans (basic, premium, pro), each with a monthly and a yearly price in eur and usd, and two
  one-off `merch` prices in no plan (other products on the Stripe account);
- subscriptions, created from 6 months before the window to its last week, each with 2 to 4
  snapshots in subscription_history: trialing -> active (40 %), upgrades and downgrades between
  two prices, past_due (recovered, still, or ending in cancellation) and cancellations (~20 %);
- one customer per subscription (with a reader), some coming back after a cancellation;
- paid invoices (one line each) at every billing period of a subscription inside the window,
  a 20 % coupon (discount = subtotal / 5) on ~10 % of subscriptions, tax (20 % on eur, 8 % on
  half the usd ones), plus ~2 % one-off merch invoices; trimmed at random to exactly --invoices;
- refunds: ~4 % with no invoice, the others of random paid invoices (full or half), ~5 % failed
  or canceled, some pending.
Stripe's times are Unix seconds; tollgate's own (updated_at, recorded_at, created_at) are
milliseconds.
"""

import argparse
import bisect
import csv
import datetime as dt
import json
import os
import random
import sqlite3
import sys

DAY = 86400

PLANS = [
    # id, name, entitlements, monthly eur/usd, yearly eur/usd (minor units), share
    ("basic", "Basic", ["articles"], (499, 599), (4990, 5990), 0.50),
    ("premium", "Premium", ["articles", "newsletter"], (999, 1199), (9990, 11990), 0.35),
    ("pro", "Pro", ["articles", "newsletter", "archive"], (1999, 2399), (19990, 23990), 0.15),
]
CURRENCIES = ("eur", "usd")

# Load order, and the columns of each CSV (the table's columns of the same name).
TABLES = {
    "plans": "id name trial_days allow_promotion_codes created_at updated_at archived_at",
    "plan_prices": "price_id plan_id position",
    "plan_entitlements": "plan_id entitlement",
    "prices": "id product active currency unit_amount recurring_interval recurring_count nickname "
    "version_created version_source updated_at",
    "customers": "id reader_id deleted_at updated_at",
    "subscriptions": "id customer_id status currency created current_period_start "
    "current_period_end cancel_at_period_end cancel_at canceled_at ended_at trial_end "
    "past_due_since version_created version_source fingerprint updated_at",
    "subscription_items": "subscription_id item_id price_id quantity position",
    "subscription_history": "subscription_id version_created version_source status items "
    "recorded_at",
    "invoices": "id customer_id subscription_id status currency amount_due amount_paid subtotal "
    "total period_start period_end created paid_at billing_reason charge_id payment_intent_id "
    "version_created version_source fingerprint updated_at tax discount price_id",
    "invoice_lines": "invoice_id line_id position price_id subscription_item_id amount "
    "discount_amount currency quantity period_start period_end proration description",
    "refunds": "id charge_id payment_intent_id invoice_id amount currency status reason created "
    "version_created version_source fingerprint updated_at",
}


def ts(d):
    return int(d.replace(tzinfo=dt.timezone.utc).timestamp())


def add_months(t, n, cache={}):
    """Unix seconds `t` plus `n` calendar months (the day clipped to the month's last)."""
    key = (t, n)
    if key in cache:
        return cache[key]
    d = dt.datetime.fromtimestamp(t, dt.timezone.utc)
    y, m = divmod(d.month - 1 + n, 12)
    y += d.year
    m += 1
    last = [31, 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28, 31, 30, 31, 30,
            31, 31, 30, 31, 30, 31][m - 1]
    r = int(d.replace(year=y, month=m, day=min(d.day, last)).timestamp())
    if len(cache) < 1_000_000:
        cache[key] = r
    return r


def fp(n):
    """A fingerprint-shaped value (64 hex digits): the content hash tollgate would store."""
    return "%064x" % ((n * 0x9E3779B97F4A7C15) & ((1 << 256) - 1))


def price_id(plan, interval, currency):
    return f"price_{plan}_{interval}ly_{currency}"


class Writer:
    def __init__(self, out):
        self.files = {}
        self.writers = {}
        self.counts = {}
        for table, cols in TABLES.items():
            f = open(os.path.join(out, table + ".csv"), "w", newline="")
            w = csv.writer(f, lineterminator="\n")
            w.writerow(cols.split())
            self.files[table] = f
            self.writers[table] = w
            self.counts[table] = 0

    def row(self, table, *values):
        self.writers[table].writerow(values)
        self.counts[table] += 1

    def close(self):
        for f in self.files.values():
            f.close()


def generate(args):
    rnd = random.Random(args.seed)
    end_d = dt.datetime.strptime(args.end, "%Y-%m-%d")
    if end_d.day != 1:
        sys.exit("--end must be the first day of a month")
    w_end = ts(end_d)
    w_start = add_months(w_end, -args.months)
    os.makedirs(args.out, exist_ok=True)
    out = Writer(args.out)
    none = None

    # Catalogue.
    catalogue_ms = (w_start - 365 * DAY) * 1000
    unit = {}
    for plan, name, ents, monthly, yearly, _ in PLANS:
        out.row("plans", plan, name, 14, 1, catalogue_ms, catalogue_ms, none)
        pos = 0
        for interval, amounts in (("month", monthly), ("year", yearly)):
            for cur, amount in zip(CURRENCIES, amounts):
                pid = price_id(plan, interval, cur)
                unit[pid] = amount
                out.row("plan_prices", pid, plan, pos)
                pos += 1
                out.row("prices", pid, f"prod_{plan}", 1, cur, amount, interval, 1,
                        f"{name} {interval}ly {cur.upper()}", catalogue_ms // 1000, "sync",
                        catalogue_ms)
        for ent in ents:
            out.row("plan_entitlements", plan, ent)
    for cur in CURRENCIES:
        pid = f"price_merch_{cur}"
        out.row("prices", pid, "prod_merch", 1, cur, 2500, none, none, f"Merch {cur.upper()}",
                catalogue_ms // 1000, "sync", catalogue_ms)

    # Subscriptions: a story each, then their billing schedule.
    plan_ids = [p[0] for p in PLANS]
    plan_weights = [p[5] for p in PLANS]
    subs = []
    first_created = add_months(w_start, -6)
    for i in range(args.subscriptions):
        s = {"i": i, "id": f"sub_bench{i:07d}", "customer": i}
        s["plan"] = rnd.choices(plan_ids, plan_weights)[0]
        s["cur"] = "eur" if rnd.random() < 0.6 else "usd"
        s["interval"] = "month" if rnd.random() < 0.8 else "year"
        s["qty"] = rnd.randint(2, 5) if s["plan"] == "pro" and rnd.random() < 0.1 else 1
        s["coupon"] = rnd.random() < 0.10
        s["tax_rate"] = 20 if s["cur"] == "eur" else (8 if rnd.random() < 0.5 else 0)
        c = rnd.randint(first_created, w_end - 7 * DAY)
        s["created"] = c
        snaps = []  # (time, status, price)
        p0 = price_id(s["plan"], s["interval"], s["cur"])
        trial = rnd.random() < 0.4
        if trial:
            snaps.append((c, "trialing", p0))
            bill = c + 14 * DAY
            snaps.append((bill, "active", p0))
            s["trial_end"] = bill
        else:
            bill = c
            snaps.append((c, "active", p0))
            s["trial_end"] = None
        s["bill_start"] = bill
        lo = bill + DAY
        hi = w_end - DAY
        story = rnd.random() if hi - lo > 30 * DAY else 1.0
        if story < 0.13:
            story = "upgrade"
        elif story < 0.21:
            story = "past_due_recovered"
        elif story < 0.24:
            story = "past_due"
        elif story < 0.28:
            story = "past_due_canceled"
        elif story < 0.41:
            story = "canceled"
        elif story < 0.44:
            story = "upgrade_canceled"
        else:
            story = "none"
        s["end"] = None        # when billing stops (canceled, or still past due)
        s["past_due_since"] = None
        if story in ("upgrade", "upgrade_canceled"):
            t = rnd.randint(lo, hi - 5 * DAY)
            k = plan_ids.index(s["plan"])
            other = plan_ids[k + 1] if k + 1 < len(plan_ids) else plan_ids[k - 1]
            snaps.append((t, "active", price_id(other, s["interval"], s["cur"])))
            s["change"] = (t, price_id(other, s["interval"], s["cur"]))
            if story == "upgrade_canceled":
                t2 = rnd.randint(t + DAY, hi)
                snaps.append((t2, "canceled", snaps[-1][2]))
                s["end"] = t2
        elif story.startswith("past_due"):
            t = rnd.randint(lo, hi - 20 * DAY)
            snaps.append((t, "past_due", p0))
            if story == "past_due_recovered":
                snaps.append((t + 3 * DAY, "active", p0))
            elif story == "past_due_canceled":
                snaps.append((t + 14 * DAY, "canceled", p0))
                s["end"] = t
            else:
                # Still past due: move it to the last three weeks, so it is plausible.
                t = rnd.randint(hi - 20 * DAY, hi)
                snaps[-1] = (t, "past_due", p0)
                s["end"] = t
                s["past_due_since"] = t
        elif story == "canceled":
            t = rnd.randint(lo, hi)
            snaps.append((t, "canceled", p0))
            s["end"] = t
        if len(snaps) < 2:
            # A second snapshot of the same state (a renewal, a card update).
            t = add_months(bill, 1 if s["interval"] == "month" else 12)
            if t >= w_end:
                t = bill + 3600
            snaps.append((t, "active", p0))
        s["snaps"] = snaps
        s.setdefault("change", None)
        subs.append(s)

    # Customers: one per subscription; ~5 % of canceled ones come back with a later one.
    by_created = sorted(range(len(subs)), key=lambda k: subs[k]["created"])
    created_sorted = [subs[k]["created"] for k in by_created]
    taken = set()
    for s in subs:
        if s["snaps"][-1][1] == "canceled" and rnd.random() < 0.25:
            j = bisect.bisect_right(created_sorted, s["snaps"][-1][0] + 7 * DAY)
            for _ in range(5):
                if j >= len(by_created):
                    break
                k = by_created[rnd.randint(j, len(by_created) - 1)]
                if k not in taken and subs[k]["customer"] == k and k != s["i"]:
                    subs[k]["customer"] = s["customer"]
                    taken.add(k)
                    break
    customer_seen = {}
    for s in subs:
        c = s["customer"]
        customer_seen[c] = min(customer_seen.get(c, s["created"]), s["created"])
    for c in sorted(customer_seen):
        out.row("customers", f"cus_bench{c:07d}", f"reader-bench-{c}", none,
                customer_seen[c] * 1000)

    # Billing schedules (only counted here, written below).
    def schedule(s):
        step = 1 if s["interval"] == "month" else 12
        stop = min(s["end"] or w_end, w_end)
        k = 0
        t = s["bill_start"]
        while t < stop:
            if t >= w_start:
                yield k, t
            k += 1
            t = add_months(s["bill_start"], k * step)

    scheduled = sum(1 for s in subs for _ in schedule(s))
    n_foreign = round(args.invoices * 0.02)
    n_plan = args.invoices - n_foreign
    if scheduled < n_plan:
        print(f"note: {scheduled} scheduled invoices, fewer than {n_plan}: more merch invoices",
              file=sys.stderr)
        n_foreign += n_plan - scheduled
        n_plan = scheduled
    keep_every = set(rnd.sample(range(scheduled), n_plan)) if scheduled > n_plan else None

    # Which invoices get a refund (global index in write order: plan invoices, then merch).
    n_unattributed = round(args.refunds * 0.04)
    n_attributed = args.refunds - n_unattributed
    refunded = set(rnd.sample(range(args.invoices), n_attributed))
    refund_of = []   # (invoice id, charge, pi, currency, amount_paid, paid_at, in_plan)

    expected = {cur: {"gross": 0, "tax": 0, "refunds": 0, "invoices": 0} for cur in CURRENCIES}
    # What the recognised revenue report must total: billed net of tax, refunds net of their
    # share of their invoice's tax (rounded half to even, as tollgate does).
    recognized = {cur: {"billed": 0, "refunds": 0} for cur in CURRENCIES}
    n = 0        # invoices written
    g = 0        # scheduled invoices seen
    items_json = '[{{"id":"{}","price":"{}","quantity":{}}}]'

    def invoice(sub_id, customer, cur, subtotal, discount, tax_rate, start, stop, paid, reason,
                price, item, qty):
        nonlocal n
        tax = (subtotal - discount) * tax_rate // 100
        total = subtotal - discount + tax
        iid = f"in_bench{n:07d}"
        out.row("invoices", iid, customer, sub_id, "paid", cur, total, total, subtotal, total,
                start, stop, start, paid, reason, f"ch_bench{n:07d}", f"pi_bench{n:07d}", paid,
                f"evt_bench_in{n:07d}", fp(n), paid * 1000 + 250, tax, discount, price)
        out.row("invoice_lines", iid, f"il_bench{n:07d}", 0, price, item, subtotal, discount, cur,
                qty, start, stop, 0, none)
        if n in refunded:
            refund_of.append((iid, f"ch_bench{n:07d}", f"pi_bench{n:07d}", cur, total, paid,
                              item is not None, tax))
        if item is not None and w_start <= paid < w_end:
            recognized[cur]["billed"] += total - tax
            e = expected[cur]
            e["gross"] += total
            e["tax"] += tax
            e["invoices"] += 1
        n += 1

    for s in subs:
        sid = s["id"]
        item = f"si_bench{s['i']:07d}"
        cus = f"cus_bench{s['customer']:07d}"
        snaps = s["snaps"]
        final_t, final_status, final_price = snaps[-1]
        for k, (t, status, price) in enumerate(snaps):
            out.row("subscription_history", sid, t, f"evt_bench{s['i']:07d}_{k}", status,
                    items_json.format(item, price, s["qty"]), t * 1000 + 120)
        step = 1 if s["interval"] == "month" else 12
        # The billing period around the last snapshot.
        k = 0
        while add_months(s["bill_start"], (k + 1) * step) <= min(final_t, w_end - 1):
            k += 1
        period_start = add_months(s["bill_start"], k * step)
        period_end = add_months(s["bill_start"], (k + 1) * step)
        canceled = final_status == "canceled"
        out.row("subscriptions", sid, cus, final_status, s["cur"], s["created"], period_start,
                period_end, 0, none, final_t if canceled else none,
                final_t if canceled else none, s["trial_end"], s["past_due_since"], final_t,
                f"evt_bench{s['i']:07d}_{len(snaps) - 1}", fp(10_000_000 + s["i"]),
                final_t * 1000 + 120)
        out.row("subscription_items", sid, item, final_price, s["qty"], 0)
        for k, t in schedule(s):
            keep = keep_every is None or g in keep_every
            g += 1
            if not keep:
                continue
            price = snaps[0][2]
            if s["change"] and t >= s["change"][0]:
                price = s["change"][1]
            subtotal = unit[price] * s["qty"]
            discount = subtotal // 5 if s["coupon"] else 0
            paid = min(t + rnd.randint(0, 3600), w_end - 1)
            invoice(sid, cus, s["cur"], subtotal, discount, s["tax_rate"], t,
                    add_months(s["bill_start"], (k + 1) * step), paid,
                    "subscription_create" if k == 0 else "subscription_cycle", price, item,
                    s["qty"])
    for _ in range(n_foreign):
        cur = "eur" if rnd.random() < 0.6 else "usd"
        c = rnd.randrange(len(subs))
        t = rnd.randint(w_start, w_end - 1)
        invoice(None, f"cus_bench{subs[c]['customer']:07d}", cur, rnd.randint(10, 50) * 100, 0,
                20 if cur == "eur" else 0, t, t, t, "manual", f"price_merch_{cur}", None, 1)
    assert n == args.invoices, (n, args.invoices)

    # Refunds.
    reasons = ("requested_by_customer", "duplicate", "fraudulent")

    def status_of():
        r = rnd.random()
        return ("failed" if r < 0.03 else "canceled" if r < 0.05 else "pending" if r < 0.09
                else "succeeded")

    rows = []
    for iid, ch, pi, cur, paid_amount, paid, in_plan, tax in refund_of:
        amount = paid_amount if rnd.random() < 0.6 else paid_amount // 2
        net = amount - half_even(amount * tax, paid_amount) if paid_amount else amount
        rows.append((ch, pi, iid, amount, cur, paid + rnd.randint(3600, 20 * DAY), in_plan,
                     net if in_plan else None))
    for _ in range(n_unattributed):
        cur = "eur" if rnd.random() < 0.6 else "usd"
        rows.append((f"ch_bench_x{len(rows):07d}", none, none, rnd.randint(5, 50) * 100, cur,
                     rnd.randint(w_start, w_end - 1), True, None))
    rows.sort(key=lambda r: r[5])
    for k, (ch, pi, iid, amount, cur, created, counted, net) in enumerate(rows):
        status = status_of()
        out.row("refunds", f"re_bench{k:07d}", ch, pi, iid, amount, cur, status,
                rnd.choice(reasons), created, created, f"evt_bench_re{k:07d}",
                fp(20_000_000 + k), created * 1000 + 250)
        if counted and status not in ("failed", "canceled") and w_start <= created < w_end:
            expected[cur]["refunds"] += amount
            if net is not None:
                recognized[cur]["refunds"] += net
    for e in expected.values():
        e["net"] = e["gross"] - e["refunds"]
    out.close()
    day = lambda t: dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d")
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump({"from": day(w_start), "to": day(w_end - DAY), "currencies": expected,
                   "recognized": recognized}, f, indent=1)
    print(" ".join(f"{t}={c}" for t, c in out.counts.items()), file=sys.stderr)


def load_sqlite(args):
    db = sqlite3.connect(args.db, isolation_level=None)
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-1000000")
    db.execute("BEGIN")
    for table in TABLES:
        with open(os.path.join(args.dir, table + ".csv"), newline="") as f:
            r = csv.reader(f)
            cols = next(r)
            sql = "INSERT INTO {} ({}) VALUES ({})".format(table, ", ".join(cols),
                                                           ", ".join("?" * len(cols)))
            db.executemany(sql, ([v if v != "" else None for v in row] for row in r))
    db.execute("COMMIT")
    db.execute("PRAGMA journal_mode=WAL")
    db.close()


def read_rows(path):
    with open(path, newline="") as f:
        text = f.read()
    if text.lstrip().startswith("{"):
        return json.loads(text)["rows"]
    r = list(csv.reader(text.splitlines()))
    return [dict(zip(r[0], row)) for row in r[1:]]


def rows(args):
    print(len(read_rows(args.file)))


def half_even(numerator, denominator):
    """numerator / denominator (positive) rounded half to even."""
    q, r = divmod(numerator, denominator)
    if 2 * r > denominator or (2 * r == denominator and q % 2):
        q += 1
    return q


def check_recognized(args):
    """Every row's identity, each group's months chained from nothing deferred before the
    window, nothing ever deferred below zero, and billed and refunds per currency as generated."""
    with open(args.expected) as f:
        expected = json.load(f)["recognized"]
    got = {cur: {"billed": 0, "refunds": 0} for cur in expected}
    last = {}
    wrong = []
    for row in read_rows(args.file):
        v = {k: int(row[k]) for k in
             ("deferred_start", "billed", "refunds", "recognized", "deferred_end")}
        key = (row["currency"], row.get("plan_id"))
        if v["deferred_start"] + v["billed"] - v["refunds"] - v["recognized"] != v["deferred_end"]:
            wrong.append(f"{row['month']} {key}: the row does not add up")
        if last.get(key, 0) != v["deferred_start"]:
            wrong.append(f"{row['month']} {key}: starts at {v['deferred_start']}, "
                         f"the month before ended at {last.get(key, 0)}")
        if v["deferred_end"] < 0:
            wrong.append(f"{row['month']} {key}: {v['deferred_end']} deferred")
        last[key] = v["deferred_end"]
        got[row["currency"]]["billed"] += v["billed"]
        got[row["currency"]]["refunds"] += v["refunds"]
    wrong += [f"{cur} {k}: {got[cur][k]} (expected {n})"
              for cur, e in expected.items() for k, n in e.items() if got[cur][k] != n]
    if wrong:
        sys.exit("; ".join(wrong[:10]))


def check_revenue(args):
    with open(args.expected) as f:
        expected = json.load(f)["currencies"]
    got = {}
    for row in read_rows(args.file):
        e = got.setdefault(row["currency"], {k: 0 for k in expected["eur"]})
        for k in e:
            e[k] += int(row[k])
    wrong = [f"{cur} {k}: {got.get(cur, {}).get(k)} (expected {v})"
             for cur, e in expected.items() for k, v in e.items() if got.get(cur, {}).get(k) != v]
    if wrong:
        sys.exit("; ".join(wrong))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("out")
    g.add_argument("--end", required=True, help="first day of the month after the window")
    g.add_argument("--months", type=int, default=24)
    g.add_argument("--invoices", type=int, default=1_000_000)
    g.add_argument("--subscriptions", type=int, default=100_000)
    g.add_argument("--refunds", type=int, default=20_000)
    g.add_argument("--seed", type=int, default=1)
    g.set_defaults(func=generate)
    s = sub.add_parser("load-sqlite")
    s.add_argument("db")
    s.add_argument("dir")
    s.set_defaults(func=load_sqlite)
    r = sub.add_parser("rows")
    r.add_argument("file")
    r.set_defaults(func=rows)
    c = sub.add_parser("check-revenue")
    c.add_argument("file")
    c.add_argument("expected")
    c.set_defaults(func=check_revenue)
    c = sub.add_parser("check-recognized")
    c.add_argument("file")
    c.add_argument("expected")
    c.set_defaults(func=check_recognized)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
