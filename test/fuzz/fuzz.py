#!/usr/bin/env python3
"""Differential fuzzer for ivm: every ivm view against a plain view of the same query.

Each view shape is created twice in schema `fuzz`: as an ivm view
(`ivm.create_view('fuzz.v_NAME', ...)`) and as a plain oracle view
(`CREATE VIEW fuzz.o_NAME AS ...`). Views that read other views read the ivm
views on the ivm side and the oracle views on the oracle side. A random,
seeded workload of INSERT / UPDATE / DELETE / TRUNCATE / upserts, savepoints,
caught errors and rollbacks then runs against the base tables, and after every
transaction (and sometimes inside one) every ivm view is compared with its
oracle with EXCEPT ALL both ways.

Standard library only; the server is driven through one long-lived `psql`
process (connection from PGHOST/PGPORT/PGUSER/PGDATABASE as usual).

    python3 test/fuzz/fuzz.py [--statements N] [--seed S]
                              [--mode immediate|deferred|wal] [--verbose] [--keep]

Triage options: --views a,b (only these shapes and what they read),
--exclude a,b (leave shapes out), --disable kind,... (leave statement kinds
out of the workload; changes the random stream), --skip-unsupported (skip
shapes that create_view refuses with feature_not_supported). --verbose prints
every statement, the time of each check, and at the end how many rows each
oracle view had over the run (to see that the data exercises every shape).

Exit status: 0 when all views matched all the time, 1 on a mismatch or on an
unexpected error (printed with the seed, the statement number, the last
statements and, for a mismatch, the differing rows).
"""

import argparse
import collections
import os
import re
import subprocess
import sys
import random
import tempfile
import time

# ---------------------------------------------------------------------------
# Base tables. Small key spaces so groups and join keys collide; every
# nullable column gets NULLs. PK ranges bound the size of the PK tables by
# construction; events_nopk (no key, duplicates allowed) is trimmed by the
# driver when it grows.
# ---------------------------------------------------------------------------

TABLES_DDL = """
CREATE TABLE fuzz.customers (
    customer_id  int PRIMARY KEY,
    full_name    text,
    email        text,
    account_tier text,
    signup_date  timestamp
) WITH (autovacuum_enabled = off);
CREATE TABLE fuzz.orders (
    order_id     int PRIMARY KEY,
    customer_id  int,
    order_total  numeric,
    order_status text,
    created_at   timestamp
) WITH (autovacuum_enabled = off);
CREATE TABLE fuzz.support_tickets (
    ticket_id    int PRIMARY KEY,
    customer_id  int,
    priority     text,
    status       text,
    created_at   timestamp
) WITH (autovacuum_enabled = off);
CREATE TABLE fuzz.web_activity (
    event_id     int PRIMARY KEY,
    customer_id  int,
    event_type   text,
    session_id   text,
    created_at   timestamp
) WITH (autovacuum_enabled = off);
CREATE TABLE fuzz.events_nopk (
    k   int,
    v   int,
    tag text
) WITH (autovacuum_enabled = off);
"""

BASE_TABLES = ["customers", "orders", "support_tickets", "web_activity", "events_nopk"]
PK = {
    "customers": "customer_id",
    "orders": "order_id",
    "support_tickets": "ticket_id",
    "web_activity": "event_id",
}
COLS = {
    "customers": ["customer_id", "full_name", "email", "account_tier", "signup_date"],
    "orders": ["order_id", "customer_id", "order_total", "order_status", "created_at"],
    "support_tickets": ["ticket_id", "customer_id", "priority", "status", "created_at"],
    "web_activity": ["event_id", "customer_id", "event_type", "session_id", "created_at"],
    "events_nopk": ["k", "v", "tag"],
}
# PK value ranges used by inserts (this also bounds the table sizes).
PK_RANGE = {"customers": 12, "orders": 120, "support_tickets": 80, "web_activity": 120}
NOPK_LIMIT = 150  # trim events_nopk beyond this many rows

TIERS = ["premium", "standard", "basic"]
ORDER_STATUSES = ["completed", "cancelled", "shipped", "pending"]
ORDER_STATUSES_W = ["completed", "completed", "completed", "cancelled", "shipped", "pending"]
PRIORITIES = ["low", "medium", "high"]
PRIORITIES_W = ["low", "medium", "high", "high"]
TICKET_STATUSES = ["open", "resolved", "closed"]
EVENT_TYPES = ["page_view", "add_to_cart", "purchase"]
SESSIONS = ["s1", "s2", "s3", "s4", "s5", "s6"]
TAGS = ["a", "b", "c"]
NAMES = ["Alice", "Bob", "Carol", "Dan", "Eve", "Frank"]

# ---------------------------------------------------------------------------
# View shapes. `@name` refers to another view of this list: it becomes
# fuzz.v_name in the ivm view and fuzz.o_name in the oracle.
# (name, what it exercises, query)
# ---------------------------------------------------------------------------

VIEWS = [
    ("customer_order_summary", "seed: COUNT(*), SUM(CASE), AVG, MAX grouped by customer", """
SELECT
    customer_id,
    COUNT(*) AS total_orders,
    SUM(CASE WHEN order_status = 'completed' THEN 1 ELSE 0 END) AS completed_orders,
    SUM(CASE WHEN order_status = 'cancelled' THEN 1 ELSE 0 END) AS cancelled_orders,
    SUM(CASE WHEN order_status = 'completed' THEN order_total ELSE 0 END) AS total_spent,
    AVG(order_total) AS avg_order_value,
    MAX(created_at) AS last_order_at
FROM fuzz.orders
GROUP BY customer_id"""),
    ("customer_support_summary", "seed: support summary", """
SELECT
    customer_id,
    COUNT(*) AS total_tickets,
    SUM(CASE WHEN status = 'open' THEN 1 ELSE 0 END) AS open_tickets,
    SUM(CASE WHEN priority = 'high' THEN 1 ELSE 0 END) AS high_priority_tickets,
    MAX(created_at) AS last_ticket_at
FROM fuzz.support_tickets
GROUP BY customer_id"""),
    ("customer_web_activity", "seed: COUNT(DISTINCT session_id)", """
SELECT
    customer_id,
    COUNT(*) AS total_events,
    COUNT(DISTINCT session_id) AS total_sessions,
    SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchase_events,
    SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS cart_events,
    MAX(created_at) AS last_active_at
FROM fuzz.web_activity
GROUP BY customer_id"""),
    ("customer_360", "seed: customers LEFT JOIN three ivm views, COALESCE, engagement_score", """
SELECT
    c.customer_id,
    c.full_name,
    c.email,
    c.account_tier,
    c.signup_date,
    COALESCE(o.total_orders, 0) AS total_orders,
    COALESCE(o.completed_orders, 0) AS completed_orders,
    COALESCE(o.cancelled_orders, 0) AS cancelled_orders,
    COALESCE(o.total_spent, 0) AS lifetime_value,
    o.avg_order_value,
    o.last_order_at,
    COALESCE(s.total_tickets, 0) AS total_tickets,
    COALESCE(s.open_tickets, 0) AS open_tickets,
    COALESCE(s.high_priority_tickets, 0) AS high_priority_tickets,
    s.last_ticket_at,
    COALESCE(w.total_events, 0) AS total_web_events,
    COALESCE(w.total_sessions, 0) AS total_sessions,
    COALESCE(w.purchase_events, 0) AS purchase_events,
    COALESCE(w.cart_events, 0) AS cart_events,
    w.last_active_at,
    COALESCE(o.total_orders, 0) * 10
    + COALESCE(w.total_sessions, 0) * 5
    + COALESCE(w.purchase_events, 0) * 20
    - COALESCE(s.high_priority_tickets, 0) * 15
    AS engagement_score
FROM fuzz.customers c
LEFT JOIN @customer_order_summary o ON c.customer_id = o.customer_id
LEFT JOIN @customer_support_summary s ON c.customer_id = s.customer_id
LEFT JOIN @customer_web_activity w ON c.customer_id = w.customer_id"""),
    ("customer_churn_risk", "seed: CASE over customer_360 (view over view over views)", """
SELECT
    customer_id,
    full_name,
    account_tier,
    lifetime_value,
    open_tickets,
    high_priority_tickets,
    engagement_score,
    CASE
        WHEN open_tickets > 0 AND engagement_score < 0 THEN 'high_risk'
        WHEN open_tickets > 0 OR engagement_score < 20 THEN 'medium_risk'
        ELSE 'healthy'
    END AS churn_risk
FROM @customer_360"""),
    ("churn_alerts", "seed sink: filter over customer_360 (thresholds scaled to the fuzz data)", """
SELECT customer_id, full_name, email, lifetime_value, engagement_score
FROM @customer_360
WHERE lifetime_value > 300 AND engagement_score < 60"""),
    ("global_360", "global aggregate over a view (one row, also when empty)", """
SELECT count(*) AS n_customers, sum(lifetime_value) AS total_ltv,
       min(engagement_score) AS min_score, max(engagement_score) AS max_score
FROM @customer_360"""),
    ("tier_rollup", "low-cardinality GROUP BY over a view of views", """
SELECT account_tier, count(*) AS n_customers, sum(lifetime_value) AS ltv,
       sum(engagement_score) AS score, max(last_order_at) AS last_order_at
FROM @customer_360
GROUP BY account_tier"""),
    ("big_spenders", "aggregate with HAVING", """
SELECT customer_id, count(*) AS n_orders, sum(order_total) AS total
FROM fuzz.orders
GROUP BY customer_id
HAVING count(*) >= 3 AND sum(order_total) > 300"""),
    ("active_orders", "inner join with a filter", """
SELECT o.order_id, o.customer_id, c.full_name, c.account_tier, o.order_total, o.order_status
FROM fuzz.orders o
JOIN fuzz.customers c ON c.customer_id = o.customer_id
WHERE o.order_status <> 'cancelled'"""),
    ("customer_tickets_full", "FULL JOIN (NULL keys on both sides)", """
SELECT c.customer_id AS c_id, c.account_tier, t.ticket_id, t.customer_id AS t_customer_id,
       t.priority, t.status
FROM fuzz.customers c
FULL JOIN fuzz.support_tickets t ON c.customer_id = t.customer_id"""),
    ("web_events_right", "RIGHT JOIN", """
SELECT w.event_id, w.event_type, w.customer_id AS w_customer_id, c.customer_id, c.full_name
FROM fuzz.customers c
RIGHT JOIN fuzz.web_activity w ON w.customer_id = c.customer_id"""),
    ("order_status_pairs", "SELECT DISTINCT", """
SELECT DISTINCT customer_id, order_status
FROM fuzz.orders"""),
    ("nopk_projection", "no-PK table, duplicates kept, projection + WHERE", """
SELECT k, v, tag
FROM fuzz.events_nopk
WHERE v IS NULL OR v > 1"""),
    ("order_extremes", "MIN/MAX (deleting/updating the extreme row)", """
SELECT customer_id, min(order_total) AS min_total, max(order_total) AS max_total,
       min(created_at) AS first_at, max(created_at) AS last_at, min(order_status) AS min_status
FROM fuzz.orders
GROUP BY customer_id"""),
    ("nopk_counts", "COUNT(x) vs COUNT(*) with NULLs, NULL group", """
SELECT tag, count(*) AS n, count(v) AS n_v, count(k) AS n_k, count(DISTINCT v) AS n_dv
FROM fuzz.events_nopk
GROUP BY tag"""),
    ("nopk_sums", "SUM/AVG/MIN over all-NULL groups", """
SELECT k, sum(v) AS s, avg(v) AS a, count(v) AS n_v, count(*) AS n, min(v) AS lo, max(v) AS hi
FROM fuzz.events_nopk
GROUP BY k"""),
    ("ticket_flags", "BOOL_AND / BOOL_OR", """
SELECT customer_id, bool_and(status = 'open') AS all_open, bool_or(priority = 'high') AS any_high,
       bool_and(priority IS NOT NULL) AS all_prioritized
FROM fuzz.support_tickets
GROUP BY customer_id"""),
    ("web_filtered_aggs", "aggregates with FILTER (WHERE ...)", """
SELECT customer_id,
       count(*) FILTER (WHERE event_type = 'purchase') AS purchases,
       count(session_id) FILTER (WHERE event_type <> 'page_view') AS active_with_session,
       max(created_at) FILTER (WHERE event_type = 'add_to_cart') AS last_cart_at,
       count(DISTINCT session_id) FILTER (WHERE event_type = 'page_view') AS viewing_sessions
FROM fuzz.web_activity
GROUP BY customer_id"""),
    ("status_buckets", "GROUP BY expressions", """
SELECT order_status, customer_id % 3 AS bucket, count(*) AS n, sum(order_total) AS total
FROM fuzz.orders
GROUP BY order_status, customer_id % 3"""),
    ("tier_order_stats", "subquery in FROM (join inside), grouped by tier", """
SELECT t.account_tier, count(*) AS n_orders, sum(t.total) AS total, max(t.total) AS top
FROM (SELECT c.customer_id, c.account_tier, o.order_total AS total
      FROM fuzz.customers c
      JOIN fuzz.orders o ON o.customer_id = c.customer_id
      WHERE o.order_total > 50) t
GROUP BY t.account_tier"""),
    ("same_customer_orders", "self-join", """
SELECT a.order_id AS first_id, b.order_id AS second_id, a.customer_id, a.order_status
FROM fuzz.orders a
JOIN fuzz.orders b ON a.customer_id = b.customer_id
                  AND a.order_status = b.order_status
                  AND a.order_id < b.order_id"""),
    ("customer_orders_left", "LEFT JOIN + aggregate, filter in the ON clause", """
SELECT c.customer_id, c.account_tier, count(o.order_id) AS n_orders,
       coalesce(sum(o.order_total), 0) AS spent
FROM fuzz.customers c
LEFT JOIN fuzz.orders o ON o.customer_id = c.customer_id AND o.order_status <> 'cancelled'
GROUP BY c.customer_id, c.account_tier"""),
    ("nopk_global", "global aggregate on the no-PK table (empty after TRUNCATE)", """
SELECT count(*) AS n, sum(v) AS s, count(DISTINCT tag) AS tags, max(k) AS max_k
FROM fuzz.events_nopk"""),
    ("nopk_distinct", "DISTINCT over duplicates", """
SELECT DISTINCT k, tag
FROM fuzz.events_nopk"""),
    ("tier_counts", "low-cardinality groups on customers", """
SELECT account_tier, count(*) AS n, min(signup_date) AS first_signup, count(email) AS with_email
FROM fuzz.customers
GROUP BY account_tier"""),
    ("customer_360_nested", "outer joins over an outer-join view and an aggregate view, all unique on the key", """
SELECT c.customer_id, c.account_tier, x.engagement_score, x.total_orders, s.open_tickets
FROM fuzz.customers c
LEFT JOIN @customer_360 x ON x.customer_id = c.customer_id AND x.total_orders > 0
LEFT JOIN @customer_support_summary s ON s.customer_id = c.customer_id AND s.open_tickets > 0
WHERE c.account_tier IS DISTINCT FROM 'gold'"""),
    ("customer_orders_right", "RIGHT JOIN of a view unique on the key to a primary key", """
SELECT c.customer_id, c.email, o.total_orders, o.last_order_at
FROM @customer_order_summary o
RIGHT JOIN fuzz.customers c ON o.customer_id = c.customer_id"""),
]

VIEW_REF = re.compile(r"@(\w+)")


def view_deps(query):
    return VIEW_REF.findall(query)


def render(query, prefix):
    return VIEW_REF.sub(lambda m: "fuzz.%s_%s" % (prefix, m.group(1)), query)


def dollar_quote(text):
    tag = "q"
    while "$%s$" % tag in text:
        tag += "q"
    return "$%s$%s$%s$" % (tag, text, tag)


# ---------------------------------------------------------------------------
# psql driver
# ---------------------------------------------------------------------------


class PsqlDied(Exception):
    def __init__(self, stderr, line):
        Exception.__init__(self, stderr)
        self.stderr = stderr
        self.line = line  # stdin line psql reported the error on, or None


class Psql:
    """One long-lived psql process; batches of SQL end with an \\echo marker."""

    def __init__(self):
        self.errfile = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-F", "|", "-f", "-"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errfile,
            text=True, bufsize=1)
        self.line = 1   # next stdin line number (psql reports errors by it)
        self.nsync = 0

    def run(self, sql):
        """Send SQL, wait until it has run, return its output lines."""
        self.nsync += 1
        marker = "__ivm_fuzz_sync_%d__" % self.nsync
        text = sql.rstrip("\n") + "\n\\echo " + marker + "\n"
        try:
            self.proc.stdin.write(text)
            self.proc.stdin.flush()
        except BrokenPipeError:
            self._died()
        self.line += text.count("\n")
        out = []
        while True:
            l = self.proc.stdout.readline()
            if not l:
                self._died()
            l = l.rstrip("\n")
            if l == marker:
                return out
            out.append(l)

    def _died(self):
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.errfile.seek(0)
        err = self.errfile.read()
        m = re.search(r"psql:<stdin>:(\d+): ", err)
        raise PsqlDied(err, int(m.group(1)) if m else None)

    def close(self):
        try:
            self.proc.stdin.write("\\q\n")
            self.proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        self.proc.wait(timeout=60)

    def stderr_text(self):
        self.errfile.seek(0)
        return self.errfile.read()


# ---------------------------------------------------------------------------
# Value generation
# ---------------------------------------------------------------------------


def lit(v):
    if v is None:
        return "NULL"
    if isinstance(v, int):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


class Gen:
    """Random SQL for the workload. Decisions depend only on the RNG (and, for
    trimming, on counts read back from the deterministic database)."""

    def __init__(self, rng, disabled=()):
        self.r = rng
        self.disabled = set(disabled)

    # --- scalar values -----------------------------------------------------
    def maybe_null(self, v, p=0.12):
        return None if self.r.random() < p else v

    def cust(self, p=0.15):
        return self.maybe_null(self.r.randint(1, 8), p)

    def money(self, p=0.1):
        cents = self.r.randint(0, 40000)
        return self.maybe_null("%d.%02d" % (cents // 100, cents % 100), p)

    def ts(self, p=0.1):
        day = self.r.randint(1, 14)
        hour = self.r.choice([0, 6, 12, 18])
        return self.maybe_null("2026-03-%02d %02d:00:00" % (day, hour), p)

    def pick(self, vocab, p=0.12):
        return self.maybe_null(self.r.choice(vocab), p)

    def money_lit(self, p=0.1):
        m = self.money(p)
        return "NULL" if m is None else m  # numeric literal, unquoted

    # --- rows --------------------------------------------------------------
    def row(self, table, key=None):
        r = self.r
        if table == "customers":
            cid = key if key is not None else r.randint(1, PK_RANGE["customers"])
            name = self.maybe_null(r.choice(NAMES) + " " + str(cid), 0.08)
            email = self.maybe_null("c%d_%d@example.com" % (cid, r.randint(1, 3)), 0.2)
            return [lit(cid), lit(name), lit(email), lit(self.pick(TIERS)),
                    lit(self.ts(0.1)) + "::timestamp"]
        if table == "orders":
            oid = key if key is not None else r.randint(1, PK_RANGE["orders"])
            return [lit(oid), lit(self.cust()), self.money_lit() + "::numeric",
                    lit(self.pick(ORDER_STATUSES_W, 0.08)), lit(self.ts()) + "::timestamp"]
        if table == "support_tickets":
            tid = key if key is not None else r.randint(1, PK_RANGE["support_tickets"])
            return [lit(tid), lit(self.cust()), lit(self.pick(PRIORITIES_W)),
                    lit(self.pick(TICKET_STATUSES)), lit(self.ts()) + "::timestamp"]
        if table == "web_activity":
            eid = key if key is not None else r.randint(1, PK_RANGE["web_activity"])
            return [lit(eid), lit(self.cust()), lit(self.pick(EVENT_TYPES)),
                    lit(self.pick(SESSIONS, 0.15)), lit(self.ts()) + "::timestamp"]
        if table == "events_nopk":
            k = self.maybe_null(r.randint(1, 6), 0.1)
            # k = 6 holds only NULL v's (an all-NULL group) unless updated.
            v = None if k == 6 else self.maybe_null(r.randint(0, 5), 0.3)
            return [lit(k), lit(v), lit(self.pick(TAGS, 0.15))]
        raise ValueError(table)

    def values(self, table, n, distinct_keys=True):
        rows = []
        used = set()
        for _ in range(n):
            if table in PK and distinct_keys:
                for _ in range(20):
                    key = self.r.randint(1, PK_RANGE[table])
                    if key not in used:
                        break
                used.add(key)
                rows.append(self.row(table, key))
            else:
                rows.append(self.row(table))
        if table == "events_nopk" and rows and self.r.random() < 0.4:
            rows.append(list(self.r.choice(rows)))  # exact duplicate row
        return ",\n  ".join("(" + ", ".join(r) + ")" for r in rows)

    # --- statements: each returns (sql, number of DML statements) ------------
    def insert_values(self):
        t = self.r.choice(["customers", "orders", "orders", "support_tickets",
                           "web_activity", "web_activity", "events_nopk", "events_nopk"])
        n = self.r.randint(1, 5)
        sql = "INSERT INTO fuzz.%s (%s) VALUES\n  %s" % (t, ", ".join(COLS[t]), self.values(t, n))
        if t in PK:
            sql += "\nON CONFLICT DO NOTHING"
        return sql + ";", 1

    def upsert(self):
        t = self.r.choice(["customers", "orders", "support_tickets", "web_activity"])
        n = self.r.randint(1, 3)
        sets = {
            "customers": "account_tier = EXCLUDED.account_tier, email = EXCLUDED.email",
            "orders": "order_total = EXCLUDED.order_total, order_status = EXCLUDED.order_status, "
                      "customer_id = EXCLUDED.customer_id",
            "support_tickets": "status = EXCLUDED.status, priority = EXCLUDED.priority",
            "web_activity": "session_id = EXCLUDED.session_id, customer_id = EXCLUDED.customer_id",
        }[t]
        sql = "INSERT INTO fuzz.%s (%s) VALUES\n  %s\nON CONFLICT (%s) DO UPDATE SET %s;" % (
            t, ", ".join(COLS[t]), self.values(t, n), PK[t], sets)
        return sql, 1

    def insert_select(self):
        r = self.r
        c = r.randint(1, 8)
        off = r.randint(1, 119)
        lim = r.randint(1, 6)
        choices = [
            # copy some orders of a customer to new keys, maybe to another customer
            "INSERT INTO fuzz.orders (order_id, customer_id, order_total, order_status, created_at)\n"
            "SELECT (order_id + %d) %% 120 + 1, %s, order_total, order_status, created_at\n"
            "FROM fuzz.orders WHERE customer_id = %d ORDER BY order_id LIMIT %d\n"
            "ON CONFLICT DO NOTHING;" % (off, lit(self.cust()), c, lim),
            # tickets for cancelled orders
            "INSERT INTO fuzz.support_tickets (ticket_id, customer_id, priority, status, created_at)\n"
            "SELECT (order_id + %d) %% 80 + 1, customer_id, 'high', 'open', created_at\n"
            "FROM fuzz.orders WHERE order_status = 'cancelled' ORDER BY order_id LIMIT %d\n"
            "ON CONFLICT DO NOTHING;" % (off, lim),
            # web events from customers
            "INSERT INTO fuzz.web_activity (event_id, customer_id, event_type, session_id, created_at)\n"
            "SELECT (customer_id * 7 + %d) %% 120 + 1, customer_id, %s, 's' || (customer_id %% 4), signup_date\n"
            "FROM fuzz.customers WHERE account_tier IS DISTINCT FROM %s ORDER BY customer_id LIMIT %d\n"
            "ON CONFLICT DO NOTHING;" % (off, lit(self.pick(EVENT_TYPES)), lit(self.pick(TIERS)), lim),
            # no-PK rows (duplicates) from orders
            "INSERT INTO fuzz.events_nopk (k, v, tag)\n"
            "SELECT customer_id %% 6 + 1, (order_id %% 4)::int, order_status::text\n"
            "FROM fuzz.orders WHERE customer_id IS NOT NULL ORDER BY order_id LIMIT %d;" % lim,
            # duplicate existing no-PK rows
            "INSERT INTO fuzz.events_nopk (k, v, tag)\n"
            "SELECT k, v, tag FROM fuzz.events_nopk WHERE k = %d ORDER BY k, v, tag LIMIT %d;"
            % (r.randint(1, 6), lim),
        ]
        return r.choice(choices), 1

    def bulk_insert(self):
        """Refill a table with a generate_series insert (many rows at once)."""
        r = self.r
        t = r.choice(["orders", "support_tickets", "web_activity", "customers", "events_nopk"])
        a, b = r.randint(2, 13), r.randint(3, 97)
        lo = r.randint(1, 60)
        hi = lo + r.randint(5, 40)
        if t == "orders":
            sql = ("INSERT INTO fuzz.orders (order_id, customer_id, order_total, order_status, created_at)\n"
                   "SELECT g, NULLIF((g * %d) %% 9, 0), CASE WHEN g %% 11 = 0 THEN NULL ELSE round(((g * %d) %% 40000) / 100.0, 2) END,\n"
                   "       (ARRAY['completed','cancelled','shipped','pending',NULL])[g %% 5 + 1],\n"
                   "       timestamp '2026-03-01' + (g %% 17) * interval '6 hours'\n"
                   "FROM generate_series(%d, %d) g ON CONFLICT DO NOTHING;" % (a, b * 101, lo, min(hi, 120)))
        elif t == "support_tickets":
            sql = ("INSERT INTO fuzz.support_tickets (ticket_id, customer_id, priority, status, created_at)\n"
                   "SELECT g, NULLIF((g * %d) %% 9, 0), (ARRAY['low','medium','high',NULL])[g %% 4 + 1],\n"
                   "       (ARRAY['open','resolved','closed',NULL])[(g * %d) %% 4 + 1],\n"
                   "       timestamp '2026-03-01' + (g %% 13) * interval '12 hours'\n"
                   "FROM generate_series(%d, %d) g ON CONFLICT DO NOTHING;" % (a, b, lo, min(hi, 80)))
        elif t == "web_activity":
            sql = ("INSERT INTO fuzz.web_activity (event_id, customer_id, event_type, session_id, created_at)\n"
                   "SELECT g, NULLIF((g * %d) %% 9, 0), (ARRAY['page_view','add_to_cart','purchase',NULL])[g %% 4 + 1],\n"
                   "       CASE WHEN g %% 7 = 0 THEN NULL ELSE 's' || ((g * %d) %% 6 + 1) END,\n"
                   "       timestamp '2026-03-01' + (g %% 19) * interval '6 hours'\n"
                   "FROM generate_series(%d, %d) g ON CONFLICT DO NOTHING;" % (a, b, lo, min(hi, 120)))
        elif t == "customers":
            sql = ("INSERT INTO fuzz.customers (customer_id, full_name, email, account_tier, signup_date)\n"
                   "SELECT g, 'Cust ' || g, CASE WHEN g %% 3 = 0 THEN NULL ELSE 'c' || g || '@example.com' END,\n"
                   "       (ARRAY['premium','standard','basic',NULL])[(g * %d) %% 4 + 1],\n"
                   "       timestamp '2025-01-01' + (g %% 5) * interval '30 days'\n"
                   "FROM generate_series(1, %d) g ON CONFLICT DO NOTHING;" % (a, r.randint(3, 12)))
        else:
            sql = ("INSERT INTO fuzz.events_nopk (k, v, tag)\n"
                   "SELECT NULLIF(g %% 7, 0), CASE WHEN g %% 7 = 6 OR g %% %d = 0 THEN NULL ELSE (g * %d) %% 6 END,\n"
                   "       (ARRAY['a','b','c',NULL])[g %% 4 + 1]\n"
                   "FROM generate_series(1, %d) g;" % (a, b, r.randint(5, 30)))
        return sql, 1

    def update(self):
        r = self.r
        c = r.randint(1, 8)
        lo = r.randint(1, 110)
        hi = lo + r.randint(0, 12)
        ext = r.choice(["DESC NULLS LAST", "ASC NULLS LAST"])
        choices = [
            # group key / join key changes
            ("UPDATE fuzz.orders SET customer_id = %s WHERE order_id BETWEEN %d AND %d;"
             % (lit(self.cust()), lo, hi), 3),
            ("UPDATE fuzz.orders SET customer_id = %s WHERE customer_id = %d;" % (lit(self.cust()), c), 1),
            ("UPDATE fuzz.orders SET customer_id = NULL WHERE order_id %% 7 = %d;" % r.randint(0, 6), 1),
            ("UPDATE fuzz.orders SET order_status = %s WHERE customer_id = %d;"
             % (lit(self.pick(ORDER_STATUSES_W)), c), 2),
            ("UPDATE fuzz.orders SET order_status = %s WHERE order_id BETWEEN %d AND %d;"
             % (lit(self.pick(ORDER_STATUSES_W)), lo, hi), 2),
            # measures
            ("UPDATE fuzz.orders SET order_total = order_total + %s WHERE customer_id = %d;"
             % (self.money(0), c), 2),
            ("UPDATE fuzz.orders SET order_total = %s WHERE order_id BETWEEN %d AND %d;"
             % (self.money_lit(0.3), lo, hi), 2),
            ("UPDATE fuzz.orders SET order_total = round(order_total * 1.1, 2), created_at = created_at + interval '1 day'"
             " WHERE order_status = %s;" % lit(r.choice(ORDER_STATUSES)), 1),
            # the extreme row of a group moves
            ("UPDATE fuzz.orders SET order_total = order_total - 250 WHERE order_id = "
             "(SELECT order_id FROM fuzz.orders WHERE customer_id = %d ORDER BY order_total %s, order_id LIMIT 1);"
             % (c, ext), 2),
            ("UPDATE fuzz.orders SET created_at = %s::timestamp WHERE order_id = "
             "(SELECT order_id FROM fuzz.orders WHERE customer_id = %d ORDER BY created_at DESC NULLS LAST, order_id LIMIT 1);"
             % (lit(self.ts(0.3)), c), 1),
            # no-op update (rows rewritten unchanged)
            ("UPDATE fuzz.orders SET order_status = order_status WHERE customer_id = %d;" % c, 1),
            # UPDATE ... FROM join
            ("UPDATE fuzz.orders o SET order_status = 'cancelled' FROM fuzz.customers cu "
             "WHERE cu.customer_id = o.customer_id AND cu.account_tier = %s AND o.order_id %% 3 = %d;"
             % (lit(r.choice(TIERS)), r.randint(0, 2)), 1),
            # customers
            ("UPDATE fuzz.customers SET account_tier = %s WHERE customer_id = %d;"
             % (lit(self.pick(TIERS)), r.randint(1, 12)), 2),
            ("UPDATE fuzz.customers SET full_name = %s, email = %s WHERE customer_id %% 4 = %d;"
             % (lit(self.maybe_null(r.choice(NAMES))), lit(self.maybe_null("x%d@example.com" % c, 0.3)),
                r.randint(0, 3)), 1),
            ("UPDATE fuzz.customers SET signup_date = %s::timestamp WHERE account_tier = %s;"
             % (lit(self.ts(0.3)), lit(r.choice(TIERS))), 1),
            # customers PK changes, guarded against collisions
            ("UPDATE fuzz.customers SET customer_id = customer_id + 10 WHERE customer_id = %d "
             "AND NOT EXISTS (SELECT 1 FROM fuzz.customers WHERE customer_id = %d);" % (c, c + 10), 1),
            ("UPDATE fuzz.customers SET customer_id = customer_id - 10 WHERE customer_id > 10 "
             "AND customer_id - 10 NOT IN (SELECT customer_id FROM fuzz.customers);", 1),
            # support tickets
            ("UPDATE fuzz.support_tickets SET status = %s WHERE customer_id = %d;"
             % (lit(self.pick(TICKET_STATUSES)), c), 2),
            ("UPDATE fuzz.support_tickets SET priority = %s, status = %s WHERE ticket_id BETWEEN %d AND %d;"
             % (lit(self.pick(PRIORITIES_W)), lit(self.pick(TICKET_STATUSES)), lo % 80, hi % 80 + 5), 2),
            ("UPDATE fuzz.support_tickets SET customer_id = %s WHERE ticket_id %% 5 = %d;"
             % (lit(self.cust()), r.randint(0, 4)), 1),
            # web activity
            ("UPDATE fuzz.web_activity SET session_id = %s WHERE customer_id = %d AND event_id %% 2 = %d;"
             % (lit(self.pick(SESSIONS, 0.2)), c, r.randint(0, 1)), 2),
            ("UPDATE fuzz.web_activity SET event_type = %s, customer_id = %s WHERE event_id BETWEEN %d AND %d;"
             % (lit(self.pick(EVENT_TYPES)), lit(self.cust()), lo, hi), 2),
            ("UPDATE fuzz.web_activity SET created_at = created_at + interval '6 hours' WHERE event_type = %s;"
             % lit(r.choice(EVENT_TYPES)), 1),
            # no-PK table: updates hit all duplicates at once
            ("UPDATE fuzz.events_nopk SET v = v + 1 WHERE k = %d;" % r.randint(1, 6), 2),
            ("UPDATE fuzz.events_nopk SET v = NULL WHERE k = %d;" % r.randint(1, 6), 1),
            ("UPDATE fuzz.events_nopk SET v = %d WHERE k = 6 AND tag IS NOT DISTINCT FROM %s;"
             % (r.randint(0, 5), lit(self.pick(TAGS))), 1),
            ("UPDATE fuzz.events_nopk SET k = %s, tag = %s WHERE v = %d;"
             % (lit(self.maybe_null(r.randint(1, 6))), lit(self.pick(TAGS)), r.randint(0, 5)), 1),
        ]
        return self._weighted(choices), 1

    def delete(self):
        r = self.r
        c = r.randint(1, 8)
        lo = r.randint(1, 115)
        hi = lo + r.randint(0, 10)
        choices = [
            ("DELETE FROM fuzz.orders WHERE order_id = %d;" % r.randint(1, 120), 3),
            ("DELETE FROM fuzz.orders WHERE order_id BETWEEN %d AND %d;" % (lo, hi), 2),
            ("DELETE FROM fuzz.orders WHERE customer_id = %d;" % c, 1),
            ("DELETE FROM fuzz.orders WHERE customer_id IS NULL;", 1),
            ("DELETE FROM fuzz.orders WHERE order_status = %s AND order_id %% 2 = %d;"
             % (lit(r.choice(ORDER_STATUSES)), r.randint(0, 1)), 1),
            # delete the extreme row of a group
            ("DELETE FROM fuzz.orders WHERE order_id = (SELECT order_id FROM fuzz.orders WHERE customer_id = %d "
             "ORDER BY order_total %s, order_id LIMIT 1);" % (c, r.choice(["DESC NULLS LAST", "ASC NULLS LAST"])), 3),
            ("DELETE FROM fuzz.orders WHERE order_id = (SELECT order_id FROM fuzz.orders WHERE customer_id = %d "
             "ORDER BY created_at DESC NULLS LAST, order_id LIMIT 1);" % c, 1),
            ("DELETE FROM fuzz.orders o USING fuzz.customers cu WHERE cu.customer_id = o.customer_id "
             "AND cu.account_tier = %s AND o.order_id %% 4 = %d;" % (lit(r.choice(TIERS)), r.randint(0, 3)), 1),
            ("DELETE FROM fuzz.customers WHERE customer_id = %d;" % r.randint(1, 22), 2),
            ("DELETE FROM fuzz.support_tickets WHERE ticket_id BETWEEN %d AND %d;" % (lo % 80, hi % 80 + 3), 2),
            ("DELETE FROM fuzz.support_tickets WHERE customer_id = %d AND status = %s;"
             % (c, lit(r.choice(TICKET_STATUSES))), 1),
            ("DELETE FROM fuzz.web_activity WHERE event_id BETWEEN %d AND %d;" % (lo, hi), 2),
            ("DELETE FROM fuzz.web_activity WHERE session_id = %s;" % lit(r.choice(SESSIONS)), 1),
            ("DELETE FROM fuzz.events_nopk WHERE k = %d AND v IS NOT DISTINCT FROM %s;"
             % (r.randint(1, 6), lit(self.maybe_null(r.randint(0, 5), 0.3))), 2),
            ("DELETE FROM fuzz.events_nopk WHERE tag IS NULL OR k IS NULL;", 1),
        ]
        return self._weighted(choices), 1

    def truncate(self):
        ts = self.r.sample(BASE_TABLES, self.r.choice([1, 1, 1, 2]))
        return "TRUNCATE %s;" % ", ".join("fuzz." + t for t in ts), 1

    def pk_change(self):
        """PK moves that may collide, inside a plpgsql block that catches exactly
        the expected unique violation (an error in a subtransaction)."""
        r = self.r
        t = r.choice(["orders", "support_tickets", "web_activity", "customers"])
        k = PK[t]
        n = PK_RANGE[t]
        a, b = r.randint(1, n), r.randint(1, n)
        if r.random() < 0.5:
            stmt = "UPDATE fuzz.%s SET %s = %d WHERE %s = %d;" % (t, k, b, k, a)
        else:  # swap two keys: always collides when both exist
            stmt = ("UPDATE fuzz.%s SET %s = CASE %s WHEN %d THEN %d ELSE %d END WHERE %s IN (%d, %d);"
                    % (t, k, k, a, b, a, k, a, b))
        pre = ""
        if r.random() < 0.5:  # a successful change first, undone with the failing one
            pre, _ = self.insert_values()
            pre += "\n  "
        sql = ("DO $fz$ DECLARE cn text; BEGIN\n  %s%s\n"
               "EXCEPTION WHEN unique_violation THEN\n"
               "  GET STACKED DIAGNOSTICS cn = CONSTRAINT_NAME;\n"
               "  IF cn IS DISTINCT FROM '%s_pkey' THEN RAISE; END IF;\n"
               "END $fz$;" % (pre, stmt, t))
        return sql, 2 if pre else 1

    def aborted_block(self):
        """Statements that run (and fire ivm's triggers), then a deliberate error
        rolls their subtransaction back."""
        stmts = []
        for _ in range(self.r.randint(1, 3)):
            s, _ = self.r.choice([self.insert_values, self.update, self.delete, self.upsert])()
            stmts.append(s)
        sql = ("DO $fz$ BEGIN\n  %s\n  RAISE EXCEPTION 'fuzz deliberate abort' USING ERRCODE = 'FZ001';\n"
               "EXCEPTION WHEN SQLSTATE 'FZ001' THEN NULL;\nEND $fz$;" % "\n  ".join(stmts))
        return sql, len(stmts)

    def write_cte(self):
        r = self.r
        c = r.randint(1, 8)
        choices = [
            "WITH d AS (DELETE FROM fuzz.orders WHERE customer_id = %d AND order_status = %s RETURNING *)\n"
            "INSERT INTO fuzz.events_nopk (k, v, tag) SELECT customer_id %% 6 + 1, order_id %% 5, 'a' FROM d;"
            % (c, lit(r.choice(ORDER_STATUSES))),
            "WITH u AS (UPDATE fuzz.support_tickets SET status = 'closed' WHERE customer_id = %d RETURNING ticket_id, customer_id)\n"
            "UPDATE fuzz.customers SET account_tier = 'basic' WHERE customer_id IN (SELECT customer_id FROM u);" % c,
        ]
        return r.choice(choices), 2

    KINDS = [
        ("insert_values", 22), ("insert_select", 6), ("bulk_insert", 3), ("upsert", 6),
        ("update", 30), ("delete", 20), ("truncate", 1), ("pk_change", 4),
        ("aborted_block", 3), ("write_cte", 2),
    ]

    def statement(self):
        kind = self._weighted([k for k in self.KINDS if k[0] not in self.disabled])
        return getattr(self, kind)()

    def _weighted(self, pairs):
        total = sum(w for _, w in pairs)
        x = self.r.uniform(0, total)
        for item, w in pairs:
            x -= w
            if x <= 0:
                return item
        return pairs[-1][0]


# ---------------------------------------------------------------------------
# The fuzzer
# ---------------------------------------------------------------------------


class Failure(Exception):
    pass


class Fuzzer:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.gen = Gen(self.rng, [k.strip() for k in (args.disable or "").split(",") if k.strip()])
        self.psql = Psql()
        self.history = collections.deque(maxlen=20)   # (stdin line, stmt no, sql)
        self.full_log = []
        self.nstmts = 0
        self.ntx = 0
        self.nchecks = 0
        self.views = []       # names actually created, in creation order
        self.columns = {}     # view -> [column]
        self.nopk_size = 0
        self.rowcounts = collections.defaultdict(list)  # --verbose: oracle rows per check

    # --- plumbing ----------------------------------------------------------
    def log(self, msg):
        if self.args.verbose:
            print(msg, flush=True)

    def send(self, sql):
        """Run `sql` now (setup, teardown) and return its output lines."""
        self.history.append((self.psql.line, None, sql))
        self.full_log.append(sql)
        if self.args.verbose:
            print(sql, flush=True)
        return self.psql.run(sql)

    # --- setup -------------------------------------------------------------
    def setup(self):
        a = self.args
        self.send("SET client_min_messages = warning;\nSET statement_timeout = '120s';")
        if a.standin:
            out = self.send("SELECT count(*) FROM pg_extension WHERE extname = 'ivm';")
            if out and out[-1] != "0":
                raise Failure("--standin given but the real ivm extension is installed in this database")
            self.send(self.standin_sql(a.standin))
        else:
            out = self.send("SELECT to_regprocedure('ivm.create_view(text,text,text)') IS NOT NULL\n"
                            "   AND NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'ivm');")
            if out and out[-1] == "t":
                raise Failure("schema ivm holds the --standin fake from an earlier run; "
                              "DROP SCHEMA ivm CASCADE first")
            self.send("CREATE EXTENSION IF NOT EXISTS ivm;")
        self.cleanup_views(tolerant=True)
        self.send("DROP SCHEMA IF EXISTS fuzz CASCADE;\nCREATE SCHEMA fuzz;\n" + TABLES_DDL)
        wanted = self.select_views()
        views_first = self.rng.random() < 0.5
        if not views_first:
            self.initial_load()
        for name, _, query in VIEWS:
            if name in wanted:
                self.create_view(name, query)
        if views_first:
            self.initial_load()
        self.check_columns()
        self.make_check_function()
        self.history.clear()

    def standin_sql(self, kind):
        if kind == "stale":  # materialize once, never maintain: must be caught
            make = "EXECUTE format('CREATE TABLE %s AS %s', name, query);"
            drop = "EXECUTE format('DROP TABLE IF EXISTS %s CASCADE', name);"
        else:
            make = "EXECUTE format('CREATE VIEW %s AS %s', name, query);"
            drop = "EXECUTE format('DROP VIEW IF EXISTS %s CASCADE', name);"
        return ("CREATE SCHEMA IF NOT EXISTS ivm;\n"
                "CREATE OR REPLACE FUNCTION ivm.create_view(name text, query text, mode text DEFAULT 'immediate')\n"
                "RETURNS void LANGUAGE plpgsql AS $sf$ BEGIN %s END $sf$;\n"
                "CREATE OR REPLACE FUNCTION ivm.drop_view(name text) RETURNS void LANGUAGE plpgsql AS $sf$ BEGIN %s END $sf$;\n"
                "CREATE OR REPLACE FUNCTION ivm.apply_deltas(name text DEFAULT NULL) RETURNS void\n"
                "LANGUAGE plpgsql AS $sf$ BEGIN END $sf$;" % (make, drop))

    def select_views(self):
        names = [v[0] for v in VIEWS]
        byname = {v[0]: v for v in VIEWS}
        if self.args.exclude:
            out = set()
            for n in self.args.exclude.split(","):
                if n.strip() not in byname:
                    raise Failure("unknown view %r (known: %s)" % (n.strip(), ", ".join(names)))
                out.add(n.strip())
            for name, _, query in VIEWS:  # views reading excluded views go too
                if any(d in out for d in view_deps(query)):
                    out.add(name)
            names = [n for n in names if n not in out]
        if not self.args.views:
            return set(names)
        wanted = set()

        def add(n):
            if n not in byname:
                raise Failure("unknown view %r (known: %s)" % (n, ", ".join(names)))
            if n not in wanted:
                wanted.add(n)
                for d in view_deps(byname[n][2]):
                    add(d)
        for n in self.args.views.split(","):
            add(n.strip())
        return wanted

    def cleanup_views(self, tolerant):
        """Drop the ivm views of a previous run (or of this one) through ivm.drop_view."""
        names = [v[0] for v in VIEWS][::-1]
        body = []
        for n in names:
            stmt = "PERFORM ivm.drop_view('fuzz.v_%s');" % n
            if tolerant:
                stmt = ("BEGIN %s EXCEPTION WHEN OTHERS THEN RAISE WARNING 'fuzz cleanup: %%', SQLERRM; END;" % stmt)
            body.append("IF to_regclass('fuzz.v_%s') IS NOT NULL THEN %s END IF;" % (n, stmt))
        self.send("DO $cl$ BEGIN\n%s\nEND $cl$;" % "\n".join(body))

    def initial_load(self):
        g = self.gen
        for t in ["customers", "orders", "support_tickets", "web_activity", "events_nopk"]:
            n = {"customers": 10, "orders": 50, "support_tickets": 30, "web_activity": 50, "events_nopk": 40}[t]
            if t == "customers":
                rows = ",\n  ".join("(" + ", ".join(g.row(t, k)) + ")" for k in range(1, n + 1))
            else:
                rows = g.values(t, n)
            sql = "INSERT INTO fuzz.%s (%s) VALUES\n  %s" % (t, ", ".join(COLS[t]), rows)
            if t in PK:
                sql += "\nON CONFLICT DO NOTHING"
            self.send(sql + ";")

    def create_view(self, name, query):
        deps = view_deps(query)
        missing = [d for d in deps if d not in self.views]
        if missing:
            print("fuzz: skipping %s (depends on skipped %s)" % (name, ", ".join(missing)), flush=True)
            return
        ivm_q = render(query, "v")
        mode = ""
        if self.args.mode != "immediate":
            mode = ", mode => '%s'" % self.args.mode
        call = "ivm.create_view('fuzz.v_%s', %s%s)" % (name, dollar_quote(ivm_q), mode)
        if self.args.skip_unsupported:
            self.send("DO $cv$ BEGIN PERFORM %s;\nEXCEPTION WHEN feature_not_supported THEN\n"
                      "  RAISE WARNING 'fuzz: %s not supported: %%', SQLERRM;\nEND $cv$;" % (call, name))
            out = self.send("SELECT to_regclass('fuzz.v_%s') IS NOT NULL;" % name)
            if out[-1] != "t":
                print("fuzz: skipping %s (ivm.create_view: feature not supported)" % name, flush=True)
                return
        else:
            self.send("SELECT %s;" % call)
        self.send("CREATE VIEW fuzz.o_%s AS %s;" % (name, render(query, "o")))
        self.views.append(name)

    def check_columns(self):
        """The ivm view must have exactly the query's column names and types."""
        out = self.send(
            "SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod)\n"
            "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid\n"
            "JOIN pg_namespace n ON n.oid = c.relnamespace\n"
            "WHERE n.nspname = 'fuzz' AND (c.relname LIKE 'v\\_%' OR c.relname LIKE 'o\\_%')\n"
            "  AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 2;")
        cols = collections.defaultdict(list)
        for line in out:
            rel, _, att, typ = line.split("|")
            cols[rel].append((att, typ))
        bad = []
        for v in self.views:
            if cols["v_" + v] != cols["o_" + v]:
                bad.append("  %s:\n    ivm:    %s\n    oracle: %s" % (
                    v, ", ".join("%s %s" % c for c in cols["v_" + v]),
                    ", ".join("%s %s" % c for c in cols["o_" + v])))
            self.columns[v] = [c[0] for c in cols["o_" + v]]
        if bad:
            raise Failure("ivm views whose columns differ from the query's:\n" + "\n".join(bad))

    def collist(self, v):
        return ", ".join('"%s"' % c.replace('"', '""') for c in self.columns[v])

    def make_check_function(self):
        parts = []
        for v in self.views:
            cl = self.collist(v)
            parts.append(
                "  SELECT count(*) INTO fuzz_n FROM ((SELECT %s FROM fuzz.v_%s EXCEPT ALL SELECT %s FROM fuzz.o_%s)\n"
                "    UNION ALL (SELECT %s FROM fuzz.o_%s EXCEPT ALL SELECT %s FROM fuzz.v_%s)) d;\n"
                "  IF fuzz_n <> 0 THEN RETURN NEXT '%s'; END IF;" % (cl, v, cl, v, cl, v, cl, v, v))
        self.send("CREATE FUNCTION fuzz.fuzz_check() RETURNS SETOF text LANGUAGE plpgsql AS $ck$\n"
                  "DECLARE fuzz_n bigint;\nBEGIN\n%s\n  RETURN;\nEND $ck$;" % "\n".join(parts))

    # --- checking ----------------------------------------------------------
    def check(self, where, batch=()):
        """Run the `batch` [(sql, statement number or None)], then compare all
        views, in one round trip."""
        line = self.psql.line
        for sql, no in batch:
            self.history.append((line, no, sql))
            self.full_log.append(sql)
            line += sql.count("\n") + 1
            if self.args.verbose:
                print(sql, flush=True)
        pending = "".join(sql + "\n" for sql, _ in batch)
        apply = ""
        if self.args.mode != "immediate":
            apply = "DO $ad$ BEGIN PERFORM ivm.apply_deltas(); END $ad$;\n"
        self.nchecks += 1
        t0 = time.time()
        stats = ""
        if self.args.verbose:
            stats = "SELECT 'C|' || %s;\n" % " || ',' || ".join(
                "(SELECT count(*) FROM fuzz.o_%s)" % v for v in self.views)
        out = self.psql.run(pending + apply + stats +
                            "SELECT 'M|' || x FROM fuzz.fuzz_check() x;\n"
                            "SELECT 'S|' || count(*) FROM fuzz.events_nopk;")
        for l in out:
            if l.startswith("C|"):
                for v, c in zip(self.views, l[2:].split(",")):
                    self.rowcounts[v].append(int(c))
        self.log("-- check (%s) %.1f ms" % (where, (time.time() - t0) * 1000))
        bad = [l[2:] for l in out if l.startswith("M|")]
        size = [int(l[2:]) for l in out if l.startswith("S|")]
        if size:
            self.nopk_size = size[-1]
        if bad:
            self.report_mismatch(bad, where)

    def report_mismatch(self, bad, where):
        lines = ["", "=" * 72,
                 "MISMATCH in %d view(s): %s" % (len(bad), ", ".join(bad)),
                 "seed %d, mode %s, after statement %d (transaction %d, check %s)"
                 % (self.args.seed, self.args.mode, self.nstmts, self.ntx, where)]
        lines += self.history_lines()
        for v in bad[:6]:
            cl = self.collist(v)
            out = self.psql.run(
                "SELECT 'ivm_only', %s FROM (SELECT %s FROM fuzz.v_%s EXCEPT ALL SELECT %s FROM fuzz.o_%s) d\n"
                "UNION ALL\n"
                "SELECT 'oracle_only', %s FROM (SELECT %s FROM fuzz.o_%s EXCEPT ALL SELECT %s FROM fuzz.v_%s) d\n"
                "ORDER BY 1 LIMIT 40;" % (cl, cl, v, cl, v, cl, cl, v, cl, v))
            lines.append("--- diff of %s  (side|%s)" % (v, "|".join(self.columns[v])))
            lines += ["  " + l for l in out]
        raise Failure("\n".join(lines))

    def history_lines(self, error_line=None):
        hist = list(self.history)
        marked = None
        if error_line is not None:
            started = [h for h in hist if h[0] <= error_line]
            if started:
                marked = started[-1]
                hist = hist[:hist.index(marked) + 1]  # later ones never ran
        lines = ["--- last %d statements ([statement number]; control statements unnumbered):" % len(hist)]
        for h in hist:
            line, n, sql = h
            text = sql.split("\n")
            if len(text) > 40:
                text = text[:20] + ["... (%d more lines)" % (len(text) - 20)]
            tag = "[%d] " % n if n else ""
            if h is marked:
                tag = ">>> FAILED HERE >>> " + tag
            lines.append(tag + "\n".join(text))
        return lines

    # --- workload ----------------------------------------------------------
    def run(self):
        a = self.args
        immediate = a.mode == "immediate"
        r = self.rng
        t0 = time.time()
        while self.nstmts < a.statements:
            self.ntx += 1
            batch = []
            if self.ntx % 250 == 0:
                # Base tables have autovacuum off (a stable physical order keeps runs
                # reproducible); vacuum them at fixed points instead.
                self.psql.run("VACUUM %s;" % ", ".join("fuzz." + t for t in BASE_TABLES))
                self.log("-- %d statements, %d transactions, %.1f s" % (self.nstmts, self.ntx, time.time() - t0))

            def add(sql, n=0):
                self.nstmts += n
                batch.append((sql, self.nstmts if n else None))

            trim = None
            if self.nopk_size > NOPK_LIMIT:
                trim = r.choice(["DELETE FROM fuzz.events_nopk WHERE k IS NULL OR k <= %d;" % r.randint(2, 5),
                                 "TRUNCATE fuzz.events_nopk;"])
            if trim is None and r.random() < 0.2:
                add(*self.gen.statement())
                self.check("tx %d autocommit" % self.ntx, batch)
                continue
            add("BEGIN;")
            if trim:
                add(trim, 1)
            sps = []
            nsp = 0
            for _ in range(r.randint(1, 5)):
                if r.random() < 0.15:
                    nsp += 1
                    sps.append("sp%d" % nsp)
                    add("SAVEPOINT %s;" % sps[-1])
                add(*self.gen.statement())
                if sps and r.random() < 0.25:
                    if r.random() < 0.5:
                        add("ROLLBACK TO SAVEPOINT %s;" % sps[-1])
                        if r.random() < 0.5:
                            sps.pop()  # still defined, just not used again
                    else:
                        add("RELEASE SAVEPOINT %s;" % sps.pop())
                if immediate and r.random() < 0.1:
                    self.check("tx %d in transaction" % self.ntx, batch)
                    batch = []
            if sps and r.random() < 0.3:
                add("ROLLBACK TO SAVEPOINT %s;" % sps[0])
                if immediate and r.random() < 0.5:
                    self.check("tx %d after rollback to savepoint" % self.ntx, batch)
                    batch = []
            end = "ROLLBACK;" if r.random() < 0.15 else "COMMIT;"
            add(end)
            self.check("tx %d end (%s)" % (self.ntx, end[:-1]), batch)

    def teardown(self):
        if self.args.keep:
            return
        self.cleanup_views(tolerant=False)
        self.send("DROP SCHEMA fuzz CASCADE;")
        if self.args.standin:
            self.send("DROP FUNCTION ivm.create_view(text, text, text), ivm.drop_view(text), ivm.apply_deltas(text);\n"
                      "DROP SCHEMA IF EXISTS ivm;")

    def error_report(self, e):
        where = "after statement %d" % self.nstmts
        if e.line is not None:
            started = [h for h in self.history if h[0] <= e.line and h[1]]
            if started and started[-1][0] == max(h[0] for h in self.history if h[0] <= e.line):
                where = "at statement %d" % started[-1][1]
        lines = ["", "=" * 72, "UNEXPECTED ERROR (seed %d, mode %s, %s, transaction %d)"
                 % (self.args.seed, self.args.mode, where, self.ntx)]
        err = e.stderr.strip()
        lines.append(err or "(psql exited without a message)")
        if "server closed the connection" in err or "terminating connection" in err:
            lines.append("(the server backend died: see the server log)")
        lines += self.history_lines(e.line)
        return "\n".join(lines)

    def dump_log(self):
        path = os.path.join(tempfile.gettempdir(), "ivm_fuzz_seed%d.sql" % self.args.seed)
        try:
            with open(path, "w") as f:
                f.write("\n".join(self.full_log) + "\n")
            return path
        except OSError:
            return None


def main(argv=None):
    p = argparse.ArgumentParser(description="Differential fuzzer: ivm views vs plain views.")
    p.add_argument("--statements", type=int, default=2000, help="DML statements to run (default 2000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--mode", choices=["immediate", "deferred", "wal"], default="immediate",
                   help="ivm view mode; deferred/wal call ivm.apply_deltas() before each comparison")
    p.add_argument("--verbose", action="store_true", help="print every statement and check")
    p.add_argument("--keep", action="store_true", help="keep schema fuzz at the end")
    p.add_argument("--views", help="comma-separated view names to fuzz (their dependencies are added)")
    p.add_argument("--exclude", help="comma-separated view names to leave out (and the views reading them)")
    p.add_argument("--disable", help="comma-separated statement kinds to leave out of the workload: "
                   + ", ".join(k for k, _ in Gen.KINDS))
    p.add_argument("--skip-unsupported", action="store_true",
                   help="skip view shapes that ivm.create_view refuses with feature_not_supported")
    # Hidden: fake ivm (plain views, or 'stale' never-maintained tables) to test the harness.
    p.add_argument("--standin", nargs="?", const="view", choices=["view", "stale"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for k in (args.disable or "").split(","):
        if k.strip() and k.strip() not in dict(Gen.KINDS):
            p.error("unknown statement kind %r" % k.strip())

    t0 = time.time()
    f = Fuzzer(args)
    status = 0
    try:
        f.setup()
        print("fuzz: seed %d, mode %s, %d views (%s)" % (args.seed, args.mode, len(f.views), ", ".join(f.views)),
              flush=True)
        f.run()
        f.teardown()
    except Failure as e:
        print(str(e), flush=True)
        status = 1
    except PsqlDied as e:
        print(f.error_report(e), flush=True)
        status = 1
    if status:
        path = f.dump_log()
        if path:
            print("fuzz: full SQL of this run written to %s" % path, flush=True)
        print("fuzz: FAILED (seed %d, after %d statements, %d transactions, %.1f s)"
              % (args.seed, f.nstmts, f.ntx, time.time() - t0), flush=True)
        try:
            f.psql.proc.kill()
        except OSError:
            pass
        return 1
    f.psql.close()
    warnings = [l for l in f.psql.stderr_text().splitlines() if "WARNING" in l]
    if warnings:
        print("fuzz: note: %d server warning(s), e.g.:\n  %s" % (len(warnings), "\n  ".join(warnings[:5])))
    print("fuzz: %d statements, %d views, %d transactions, 0 mismatches (seed %d)"
          % (f.nstmts, len(f.views), f.ntx, args.seed), flush=True)
    if args.verbose:
        print("fuzz: %d checks, %.1f s; oracle rows per check (min/avg/max, %% of checks non-empty):"
              % (f.nchecks, time.time() - t0))
        for v in f.views:
            c = f.rowcounts[v] or [0]
            print("  %-26s %4d %7.1f %5d  %3d%%" % (v, min(c), sum(c) / len(c), max(c),
                                                   100 * sum(1 for x in c if x) // len(c)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
