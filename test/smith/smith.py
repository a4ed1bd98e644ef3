#!/usr/bin/env python3
"""SQLsmith against ivm.create_view: queries nobody here wrote.

SQLsmith (--dry-run, fixed seed) generates queries against a database holding the
Customer 360 seed tables (demo/schema_and_data.sql, test/smith/schema.sql) and the seed views as plain views.
Each query is fed to ivm.create_view in a second database where the same seed views
are ivm views. Every query must be either

  - refused: SQLSTATE 0A000 naming the construct, or an error PostgreSQL itself
    raises for the query (it fails to parse or analyze, or fails when run plainly), or
  - accepted: then ivm.explain works, a burst of random DML (inserts, updates,
    deletes, upserts, truncates, NULLs everywhere) on the base tables the view reads
    keeps ivm.verify() = 0 after every statement (deferred views: after each
    ivm.apply_deltas), for this view and every other view; ivm.refresh keeps it
    exact, and ivm.drop_view leaves nothing of it.

Each query runs in one transaction that is rolled back, so each starts from the
same data. Besides the query as generated, its "trimmed" variant is fed too:
SQLsmith puts LIMIT and TABLESAMPLE nearly everywhere, which ivm refuses at once,
so the variant drops them to let the rest of the query reach further (and a third,
"grouped", adds the GROUP BY that SQLsmith never writes).

Findings (exit status 1): a crash (the connection dies), an internal error (XX000
or any class XX), an error that is neither a refusal nor PostgreSQL's own error for
the query, an error during maintenance that the same statement without the view
does not raise, an error in ivm.verify, or ivm.verify <> 0. PostgreSQL's own error
includes one that a subquery in FROM raises when run on its own: ivm keeps it as a
view of its own, computed whole (README, Limits). Timeouts (statement_timeout) are
counted, not findings.

    python3 test/smith/smith.py [--queries N] [--seed S] [--dml N] [--timeout MS]
                                [--deferred-every N] [--server-log PATH] [--keep] [--verbose]

Connection from PGHOST/PGPORT/PGUSER as usual. Standard library and psql only;
needs the sqlsmith binary (Debian package sqlsmith). Ends with a summary:
accepted, refused grouped by message (literals and names stripped), findings,
each with a reproduction script under --out (default: a temporary directory).
"""

import argparse
import collections
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TARGET_DB = "ivm_smith"
GEN_DB = "ivm_smith_gen"
VIEW = "public.smith_v"

# The seed's views (shared/seed/views.sql): ivm views in TARGET_DB, plain views in GEN_DB.
SEED_VIEWS = [
    ("customer_order_summary", """
SELECT customer_id, COUNT(*) AS total_orders,
       SUM(CASE WHEN order_status = 'completed' THEN 1 ELSE 0 END) AS completed_orders,
       SUM(CASE WHEN order_status = 'cancelled' THEN 1 ELSE 0 END) AS cancelled_orders,
       SUM(CASE WHEN order_status = 'completed' THEN order_total ELSE 0 END) AS total_spent,
       AVG(order_total) AS avg_order_value, MAX(created_at) AS last_order_at
FROM orders GROUP BY customer_id"""),
    ("customer_support_summary", """
SELECT customer_id, COUNT(*) AS total_tickets,
       SUM(CASE WHEN status = 'open' THEN 1 ELSE 0 END) AS open_tickets,
       SUM(CASE WHEN priority = 'high' THEN 1 ELSE 0 END) AS high_priority_tickets,
       MAX(created_at) AS last_ticket_at
FROM support_tickets GROUP BY customer_id"""),
    ("customer_web_activity", """
SELECT customer_id, COUNT(*) AS total_events, COUNT(DISTINCT session_id) AS total_sessions,
       SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchase_events,
       SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS cart_events,
       MAX(created_at) AS last_active_at
FROM web_activity GROUP BY customer_id"""),
    ("customer_360", """
SELECT c.customer_id, c.full_name, c.email, c.account_tier, c.signup_date,
       COALESCE(o.total_orders, 0) AS total_orders,
       COALESCE(o.completed_orders, 0) AS completed_orders,
       COALESCE(o.cancelled_orders, 0) AS cancelled_orders,
       COALESCE(o.total_spent, 0) AS lifetime_value,
       o.avg_order_value, o.last_order_at,
       COALESCE(s.total_tickets, 0) AS total_tickets,
       COALESCE(s.open_tickets, 0) AS open_tickets,
       COALESCE(s.high_priority_tickets, 0) AS high_priority_tickets,
       s.last_ticket_at,
       COALESCE(w.total_events, 0) AS total_web_events,
       COALESCE(w.total_sessions, 0) AS total_sessions,
       COALESCE(w.purchase_events, 0) AS purchase_events,
       COALESCE(w.cart_events, 0) AS cart_events,
       w.last_active_at,
       COALESCE(o.total_orders, 0) * 10 + COALESCE(w.total_sessions, 0) * 5
       + COALESCE(w.purchase_events, 0) * 20 - COALESCE(s.high_priority_tickets, 0) * 15
       AS engagement_score
FROM customers c
LEFT JOIN customer_order_summary o ON c.customer_id = o.customer_id
LEFT JOIN customer_support_summary s ON c.customer_id = s.customer_id
LEFT JOIN customer_web_activity w ON c.customer_id = w.customer_id"""),
    ("customer_churn_risk", """
SELECT customer_id, full_name, account_tier, lifetime_value, open_tickets,
       high_priority_tickets, engagement_score,
       CASE WHEN open_tickets > 0 AND engagement_score < 0 THEN 'high_risk'
            WHEN open_tickets > 0 OR engagement_score < 20 THEN 'medium_risk'
            ELSE 'healthy' END AS churn_risk
FROM customer_360"""),
    ("churn_alerts", """
SELECT customer_id, full_name, email, lifetime_value, engagement_score
FROM customer_360 WHERE lifetime_value > 500 AND engagement_score < 10"""),
]

# A plain PostgreSQL view in both databases: create_view expands it into a subquery.
PLAIN_VIEWS = [
    ("open_orders", """
SELECT o.order_id, o.customer_id, o.order_total, c.account_tier
FROM orders o JOIN customers c ON c.customer_id = o.customer_id
WHERE o.order_status <> 'cancelled'"""),
]

# Helpers in TARGET_DB (schema smith, invisible to SQLsmith, which reads GEN_DB). Errors
# come back as one line "SQLSTATE message", never as psql errors.
HELPERS = r"""
CREATE SCHEMA smith;
-- run: executes a statement; 'ok' or 'SQLSTATE message'.
CREATE FUNCTION smith.run(stmt text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE st text; msg text;
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS OR query_canceled THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    RETURN st || ' ' || regexp_replace(msg, '\s+', ' ', 'g');
END $f$;
-- val: 'ok <first value of the first row>' or 'SQLSTATE message'.
CREATE FUNCTION smith.val(stmt text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE st text; msg text; v text;
BEGIN
    EXECUTE stmt INTO v;
    RETURN 'ok ' || coalesce(v, '<null>');
EXCEPTION WHEN OTHERS OR query_canceled THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    RETURN st || ' ' || regexp_replace(msg, '\s+', ' ', 'g');
END $f$;
-- base_tables: the ordinary tables a view reads, through other (and internal) views.
CREATE FUNCTION smith.base_tables(v regclass) RETURNS SETOF regclass LANGUAGE sql AS $f$
    WITH RECURSIVE r(relid) AS (
        SELECT d.relid FROM ivm.dependencies d WHERE d.viewid = v
        UNION SELECT d.relid FROM ivm.dependencies d JOIN r ON d.viewid = r.relid)
    SELECT relid::regclass FROM r
    WHERE relid NOT IN (SELECT viewid FROM ivm.views) ORDER BY relid::regclass::text
$f$;
"""

# GEN_DB: what SQLsmith reads as pg_proc in its "tuned" profile (it reads "pg_proc"
# unqualified, and its search_path puts this view first). Only immutable functions, the
# aggregates ivm maintains, and nothing with pseudo-type arguments or results (SQLsmith can
# only feed those cast(NULL AS anyrange) and the like, which PostgreSQL rejects): queries
# that more often get past the refusals. The view lives in schema information_schema because
# --exclude-catalog hides that schema's relations from the queries (any other schema's view
# would be queried as a table, one that does not exist in TARGET_DB).
TUNED_CATALOG = r"""
CREATE VIEW information_schema.pg_proc AS
SELECT p.* FROM pg_catalog.pg_proc p
WHERE CASE WHEN p.prokind = 'a'
           THEN p.pronamespace = 'pg_catalog'::regnamespace
                AND p.proname IN ('count', 'sum', 'avg', 'min', 'max', 'bool_and', 'bool_or', 'every')
           ELSE p.provolatile = 'i' END
  AND NOT EXISTS (SELECT FROM pg_catalog.pg_type t
                  WHERE t.typtype = 'p' AND (t.oid = p.prorettype OR t.oid = ANY (p.proargtypes)));
"""
PROFILES = [
    ("full", ""),
    ("tuned", " options='-csearch_path=information_schema,pg_catalog,public'"),
]
VARIANTS = ["generated", "trimmed", "grouped"]


def dollar_quote(text):
    tag = "q"
    while "$%s$" % tag in text:
        tag += "q"
    return "$%s$%s$%s$" % (tag, text, tag)


def split_statements(text):
    """SQLsmith's --dry-run output: statements ending in ';' at the end of a line,
    outside quotes and parentheses."""
    out, start, depth, quote, i, n = [], 0, 0, None, 0, len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == quote:
                if i + 1 < n and text[i + 1] == quote:
                    i += 1
                else:
                    quote = None
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == ";" and depth == 0 and (i + 1 == n or text[i + 1] == "\n"):
            s = text[start:i].strip()
            if s:
                out.append(s)
            start = i + 1
        i += 1
    if text[start:].strip():
        out.append(text[start:].strip())
    return out


LIMIT_RE = re.compile(r"\s+limit\s+\d+(\s+offset\s+\d+)?(?=\s*(\)|$))", re.I)
SAMPLE_RE = re.compile(r"\s+tablesample\s+(system|bernoulli)\s*\(\s*[0-9.]+\s*\)", re.I)
SUBLINK_RE = re.compile(r"(\bexists\s*)?\(\s*select\b", re.I)
FROM_ALIAS_RE = re.compile(r"\s*as\s+subq_\d+\b", re.I)   # SQLsmith's aliases of subqueries in FROM
OVER_RE = re.compile(r"\s+over\s*\(", re.I)
CTE_RE = re.compile(r"(\w+)\s+as\s*\(", re.I)


def closing(text, i):
    """Index of the parenthesis closing the one at text[i] (quotes skipped), or -1."""
    depth, quote = 0, None
    for j in range(i, len(text)):
        c = text[j]
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return j
    return -1


def from_subqueries(query):
    """The subqueries in FROM (as SQLsmith writes them: "(select ...) as subq_N"), nested too."""
    out = []
    for m in re.finditer(r"\(\s*select\b", query, re.I):
        end = closing(query, m.start())
        if end > 0 and FROM_ALIAS_RE.match(query, end + 1):
            out.append(query[m.start() + 1:end])
    return out


def fenced(query):
    """The query with OFFSET 0 in each of its subqueries in FROM: PostgreSQL then plans each
    on its own (no pull-up, no constants folded across), much as ivm computes them."""
    ends = []
    for m in re.finditer(r"\(\s*select\b", query, re.I):
        end = closing(query, m.start())
        if end > 0 and FROM_ALIAS_RE.match(query, end + 1):
            ends.append(end)
    for end in sorted(ends, reverse=True):
        query = query[:end] + "\n offset 0" + query[end:]
    return query


def inline_ctes(query):
    """WITH a AS (q1), b AS (q2) SELECT ... FROM a AS x  ->  SELECT ... FROM (q1) AS x."""
    m = re.match(r"\s*with\s+", query, re.I)
    if not m:
        return query
    i, ctes = m.end(), []
    while True:
        c = CTE_RE.match(query, i)
        if not c:
            return query
        end = closing(query, c.end() - 1)
        if end < 0:
            return query
        body = query[c.end():end]
        for name, b in ctes:
            body = re.sub(r"\b%s\b(?=\s+as\b)" % name, "(%s)" % b, body)
        ctes.append((c.group(1), body))
        i = end + 1
        comma = re.match(r"\s*,\s*", query[i:])
        if not comma:
            break
        i += comma.end()
    main = query[i:]
    for name, b in ctes:
        main = re.sub(r"\b%s\b(?=\s+as\b)" % name, "(%s)" % b, main)
    return main.strip()


def trimmed(query):
    """The query without what SQLsmith puts nearly everywhere and ivm refuses at once:
    LIMIT/OFFSET, TABLESAMPLE, WITH (inlined as subqueries in FROM), subqueries in
    expressions (EXISTS (...) becomes true, a scalar subquery NULL), OVER (...) (a
    window aggregate becomes a plain aggregate). A different query, nobody wrote either."""
    q = SAMPLE_RE.sub("", LIMIT_RE.sub("", query))
    q = inline_ctes(q)
    pos = 0
    while True:
        m = SUBLINK_RE.search(q, pos)
        if not m:
            break
        paren = q.index("(", m.start() + (len(m.group(1)) if m.group(1) else 0))
        end = closing(q, paren)
        if end < 0:
            break
        if FROM_ALIAS_RE.match(q, end + 1) and not m.group(1):
            pos = paren + 1          # a subquery in FROM: keep it, look inside
            continue
        q = q[:m.start()] + ("true" if m.group(1) else "null") + q[end + 1:]
        pos = m.start()
    while True:
        m = OVER_RE.search(q)
        if not m:
            break
        end = closing(q, m.end() - 1)
        if end < 0:
            break
        q = q[:m.start()] + q[end + 1:]
    return q


def top_level_items(query):
    """(select list items, index where the top-level FROM starts) of a query that
    starts with SELECT, or None."""
    m = re.match(r"\s*select\s+(distinct\s+)?", query, re.I)
    if not m:
        return None
    items, start, depth, quote, i = [], m.end(), 0, None, m.end()
    while i < len(query):
        c = query[i]
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif depth == 0 and c == ",":
            items.append(query[start:i])
            start = i + 1
        elif depth == 0 and re.match(r"\bfrom\b", query[i:i + 5], re.I) and re.match(r"\s", query[i - 1]):
            items.append(query[start:i])
            return items, i
        i += 1
    return None


def grouped(query, aggregates):
    """SQLsmith writes no GROUP BY. A query whose select list mixes aggregate calls (as
    the trimmed variant leaves them) with other items gets GROUP BY those other items."""
    top = top_level_items(query)
    if not top or re.search(r"\bgroup\s+by\b", query[top[1]:], re.I):
        return None
    agg = re.compile(r"\bpg_catalog\.(%s)\s*\(" % "|".join(sorted(aggregates)))
    plain = [str(i + 1) for i, item in enumerate(top[0]) if not agg.search(item)]
    if not plain or len(plain) == len(top[0]):
        return None
    return query.rstrip() + "\ngroup by " + ", ".join(plain)


def message_group(err):
    """'SQLSTATE message' with names and literals stripped, for grouping."""
    state, _, s = err.partition(" ")
    s = re.sub(r'"[^"]*"', '"…"', s)
    s = re.sub(r"'[^']*'", "'…'", s)
    s = re.sub(r"\b(non-immutable function|aggregate function|aggregate) [\w.\"…]+\(\)", r"\1 F()", s)
    s = re.sub(r"\b(system column|column|output column) [\w.\"…]+ of type .*? \(no", r"\1 C of type T (no", s)
    s = re.sub(r"\b(system column) \w+", r"\1 C", s)
    s = re.sub(r"\b(table|relation|system catalog|materialized view|ivm's own table) [\w.\"…]+ ", r"\1 R ", s)
    s = re.sub(r"\boperator does not exist: .*", "operator does not exist: …", s)
    s = re.sub(r"\bfunction [\w.\"…]+\(.*?\) does not exist", "function F(…) does not exist", s)
    T = r"(?:\w+(?: \w+)*?)"
    for pattern, repl in [
            (r"COALESCE types %s and %s cannot" % (T, T), "COALESCE types T and T cannot"),
            (r"(CASE|UNION|COALESCE|IN|NULLIF) could not convert type %s to %s$" % (T, T), r"\1 could not convert type T to T"),
            (r"cannot cast type %s to %s$" % (T, T), "cannot cast type T to T"),
            (r"argument declared %s is not (an? [\w ]+?) but type %s$" % (T, T), r"argument declared T is not \1 but type T"),
            (r"(operator for|value of|pseudo-type|for) type %s$" % T, r"\1 type T"),
            (r"operator is not unique: .*", "operator is not unique: …"),
            (r"(GROUP BY on|DISTINCT on|key of) type %s \(no" % T, r"\1 type T (no"),
            (r"output column [\w\"…]+ of pseudo-type %s is" % T, "output column C of pseudo-type T is"),
            (r"lack an ordering operator \(.*?\)", "lack an ordering operator (T)"),
            (r'column "…" is of type %s but expression is of type %s$' % (T, T), 'column "…" is of type T but expression is of type T')]:
        s = re.sub(pattern, repl, s)
    s = re.sub(r"\b\d+(\.\d+)?\b", "N", s)
    return state + " " + s


class PsqlDied(Exception):
    pass


class Psql:
    """One long-lived psql; each batch ends with an \\echo marker. Results come back as
    rows (the helpers catch SQL errors), so stdout alone tells what happened."""

    def __init__(self, db, errpath, logpath=None):
        self.errfile = open(errpath, "a")
        self.log = open(logpath, "a") if logpath else None
        self.proc = subprocess.Popen(
            ["psql", "-X", "-q", "-At", "-F", "\x1f", "-d", db, "-f", "-"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errfile,
            text=True, bufsize=1)
        self.n = 0

    def run(self, sql):
        self.n += 1
        marker = "__smith_sync_%d__" % self.n
        if self.log:
            self.log.write(sql.rstrip("\n") + "\n")
        try:
            self.proc.stdin.write(sql.rstrip("\n") + "\n\\echo " + marker + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise PsqlDied()
        out = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise PsqlDied()
            line = line.rstrip("\n")
            if line == marker:
                return out
            out.append(line)

    def one(self, sql):
        out = self.run(sql)
        if len(out) != 1:
            # psql printed an error instead of the helper's one row: the connection is
            # gone (psql exits on its own), or the harness sent bad SQL.
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                raise RuntimeError("smith: unexpected output %r for: %s" % (out, sql[:300]))
            raise PsqlDied()
        return out[0]

    def close(self):
        try:
            self.proc.stdin.write("\\q\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()
        self.errfile.close()
        if self.log:
            self.log.close()


QUIET = dict(os.environ, PGOPTIONS=(os.environ.get("PGOPTIONS", "") + " -c client_min_messages=warning").strip())


def admin(sql, db="postgres"):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql],
                   check=True, stdout=subprocess.DEVNULL, env=QUIET)


def admin_file(path, db):
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-f", path],
                   check=True, stdout=subprocess.DEVNULL, env=QUIET)


def lit(text, typ):
    if text is None:
        return "NULL"
    return "'%s'::%s" % (text.replace("'", "''"), typ)


# ---------------------------------------------------------------------------
# Random DML on the base tables of a view
# ---------------------------------------------------------------------------

class Table:
    def __init__(self, name, columns, pk, samples):
        self.name = name          # regclass text
        self.columns = columns    # [(quoted name, type text)]
        self.pk = pk              # [quoted name] or []
        self.samples = samples    # column -> [existing values as text]


class Dml:
    WORDS = ["", "a", "b", "x", "completed", "cancelled", "open", "high", "premium", "sess_a1",
             "page_view", "purchase", "Alice Johnson", "A", "zz", " a", "1"]

    def __init__(self, rng):
        self.r = rng

    def value(self, t, col, typ):
        r = self.r
        x = r.random()
        if x < 0.15 and col not in t.pk:
            return "NULL"
        if x < 0.55 and t.samples.get(col):
            return lit(r.choice(t.samples[col]), typ)
        base = typ.split("(")[0]
        if base in ("integer", "bigint", "smallint"):
            return lit(str(r.choice([0, 1, 2, 3, 4, 5, -1, 7, 101, 1001, 5001, r.randint(-20, 200)])), typ)
        if base == "numeric":
            return lit(r.choice(["0", "1", "-1", "0.5", "2.50", "99.99", "1000", "%d.%02d" % (r.randint(0, 999), r.randint(0, 99))]), typ)
        if base in ("double precision", "real"):
            return lit(r.choice(["0", "-0", "1.5", "-2.25", "1e10", "0.1", "NaN", "Infinity", "3"]), typ)
        if base in ("character varying", "text", "character"):
            return lit(r.choice(self.WORDS), typ)
        if base.startswith("timestamp"):
            return lit("2026-03-%02d %02d:%02d:00" % (r.randint(1, 31), r.randint(0, 23), r.choice([0, 30])), typ)
        if base == "date":
            return lit("2026-03-%02d" % r.randint(1, 31), typ)
        if base == "interval":
            return lit(r.choice(["0", "1 day", "-2 hours", "1 mon", "00:00:01", "3 days 4 hours"]), typ)
        if base == "boolean":
            return lit(r.choice(["true", "false"]), typ)
        if base == "jsonb":
            return lit(r.choice(["{}", "[]", "1", "\"a\"", "{\"a\": 1}", "null"]), typ)
        return "NULL"

    def pred(self, t):
        r = self.r
        col, typ = r.choice(t.columns)
        x = r.random()
        if x < 0.08:
            return "true"
        if x < 0.25:
            return "%s IS %sNULL" % (col, r.choice(["", "NOT "]))
        if x < 0.4 and t.pk and dict(t.columns)[t.pk[0]] in ("integer", "bigint"):
            return "%s %% %d = %d" % (t.pk[0], r.choice([2, 3, 4]), r.randint(0, 1))
        vals = [self.value(t, col, typ) for _ in range(r.randint(1, 3))]
        vals = [v for v in vals if v != "NULL"] or [self.value(t, col, typ)]
        if vals == ["NULL"]:
            return "%s IS NULL" % col
        return "%s IN (%s)" % (col, ", ".join(vals))

    def row(self, t):
        return "(" + ", ".join(self.value(t, c, typ) for c, typ in t.columns) + ")"

    def statement(self, tables):
        r = self.r
        t = r.choice(tables)
        cols = ", ".join(c for c, _ in t.columns)
        x = r.random()
        if x < 0.32:
            rows = ", ".join(self.row(t) for _ in range(r.randint(1, 4)))
            s = "INSERT INTO %s (%s) VALUES %s" % (t.name, cols, rows)
            return s + (" ON CONFLICT DO NOTHING" if t.pk else "")
        if x < 0.38:
            # copies of existing rows (duplicates where there is no key)
            exprs = []
            for c, typ in t.columns:
                if c in t.pk and typ in ("integer", "bigint", "smallint"):
                    exprs.append("%s + %d" % (c, r.randint(1, 50)))
                else:
                    exprs.append(c)
            s = "INSERT INTO %s (%s) SELECT %s FROM %s WHERE %s" % (t.name, cols, ", ".join(exprs), t.name, self.pred(t))
            return s + (" ON CONFLICT DO NOTHING" if t.pk else "")
        if x < 0.44 and t.pk:
            upd = [c for c, _ in t.columns if c not in t.pk]
            sets = ", ".join("%s = EXCLUDED.%s" % (c, c) for c in r.sample(upd, min(len(upd), r.randint(1, 2))))
            rows = ", ".join(self.row(t) for _ in range(r.randint(1, 2)))
            return "INSERT INTO %s (%s) VALUES %s ON CONFLICT (%s) DO UPDATE SET %s" % (
                t.name, cols, rows, ", ".join(t.pk), sets)
        if x < 0.72:
            targets = r.sample(t.columns, min(len(t.columns), r.choice([1, 1, 2])))
            sets = ", ".join("%s = %s" % (c, self.value(t, c, typ)) for c, typ in targets)
            return "UPDATE %s SET %s WHERE %s" % (t.name, sets, self.pred(t))
        if x < 0.95:
            return "DELETE FROM %s WHERE %s" % (t.name, self.pred(t))
        if x < 0.97 and len(tables) > 1:
            # one statement changing two base tables of the view
            u = r.choice([o for o in tables if o is not t])
            c, typ = r.choice(u.columns)
            return "WITH d AS (DELETE FROM %s WHERE %s RETURNING 1) UPDATE %s SET %s = %s WHERE %s" % (
                t.name, self.pred(t), u.name, c, self.value(u, c, typ), self.pred(u))
        return "TRUNCATE %s" % t.name


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

class Smith:
    def __init__(self, args):
        self.a = args
        self.rng = random.Random(args.seed)
        self.dml = Dml(self.rng)
        self.out = args.out or tempfile.mkdtemp(prefix="ivm-smith.")
        os.makedirs(self.out, exist_ok=True)
        self.errpath = os.path.join(self.out, "psql.stderr")
        self.tables = {}          # name -> Table (the data is the same at every query's start)
        self.stats = collections.Counter()
        self.refused = collections.defaultdict(collections.Counter)
        self.accepted = collections.Counter()
        self.findings = []
        self.timeouts = []
        self.log_offset = 0
        self.psql = None
        self.current = 0
        self.seed_names = "ARRAY[%s]" % ", ".join("'public.%s'" % n for n, _ in SEED_VIEWS)

    def say(self, msg):
        print(msg, flush=True)

    # --- databases -------------------------------------------------------
    def setup(self):
        for db in (TARGET_DB, GEN_DB):
            admin("DROP DATABASE IF EXISTS %s" % db)
            admin("CREATE DATABASE %s" % db)
            admin_file(os.path.join(ROOT, "demo", "schema_and_data.sql"), db)
            admin_file(os.path.join(HERE, "schema.sql"), db)
        for name, q in SEED_VIEWS + PLAIN_VIEWS:
            admin("CREATE VIEW %s AS %s" % (name, q), GEN_DB)
        admin(TUNED_CATALOG, GEN_DB)
        self.aggregates = set(subprocess.run(
            ["psql", "-X", "-qAt", "-d", GEN_DB, "-c", "SELECT DISTINCT proname FROM pg_proc WHERE prokind = 'a'"],
            check=True, capture_output=True, text=True).stdout.split())
        admin("CREATE EXTENSION ivm", TARGET_DB)
        admin(HELPERS, TARGET_DB)
        for name, q in SEED_VIEWS:
            admin("SELECT ivm.create_view(%s, %s)" % (dollar_quote(name), dollar_quote(q)), TARGET_DB)
        for name, q in PLAIN_VIEWS:
            admin("CREATE VIEW %s AS %s" % (name, q), TARGET_DB)
        if self.a.server_log and os.path.exists(self.a.server_log):
            self.log_offset = os.path.getsize(self.a.server_log)
        self.connect()

    def connect(self):
        if self.psql:
            self.psql.close()
        deadline = time.time() + 120
        while subprocess.run(["pg_isready", "-q", "-d", TARGET_DB]).returncode != 0 or \
                subprocess.run(["psql", "-X", "-qAt", "-d", TARGET_DB, "-c", "SELECT 1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
            if time.time() > deadline:
                raise SystemExit("smith: the server did not come back")
            time.sleep(1)
        self.psql = Psql(TARGET_DB, self.errpath, self.a.session_log)
        if self.a.session_log:
            self.psql.log.write("\\connect %s\n" % TARGET_DB)
        self.psql.run("SET statement_timeout = %d;\nSET lock_timeout = 5000;\n"
                      "SET client_min_messages = error;" % self.a.timeout)

    def teardown(self):
        if self.psql:
            self.psql.close()
            self.psql = None
        if not self.a.keep:
            for db in (TARGET_DB, GEN_DB):
                admin("DROP DATABASE IF EXISTS %s" % db)

    def generate(self, profile, options, n):
        host = os.environ.get("PGHOST", "/var/run/postgresql")
        target = "host=%s port=%s user=%s dbname=%s%s" % (
            host, os.environ.get("PGPORT", "5432"), os.environ.get("PGUSER", "postgres"), GEN_DB, options)
        cmd = ["sqlsmith", "--target=" + target, "--seed=%d" % self.a.seed,
               "--max-queries=%d" % n, "--dry-run", "--exclude-catalog"]
        path = os.path.join(self.out, "queries_%s.sql" % profile)
        with open(path, "w") as f:
            subprocess.run(cmd, stdout=f, stderr=subprocess.DEVNULL, check=True, timeout=3600)
        with open(path) as f:
            queries = split_statements(f.read())
        self.say("sqlsmith, %s catalog: %d queries (seed %d) in %s" % (profile, len(queries), self.a.seed, path))
        return queries

    # --- one query -------------------------------------------------------
    def call(self, fn, stmt):
        return self.psql.one("SELECT smith.%s(%s);" % (fn, dollar_quote(stmt)))

    def table(self, name):
        if name not in self.tables:
            rows = self.psql.run(
                "SELECT quote_ident(a.attname), format_type(a.atttypid, a.atttypmod),\n"
                "       coalesce(a.attnum = ANY (i.indkey), false)\n"
                "FROM pg_attribute a LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary\n"
                "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum;"
                % dollar_quote(name))
            columns, pk, samples = [], [], {}
            for r in rows:
                c, typ, key = r.split("\x1f")
                columns.append((c, typ))
                if key == "t":
                    pk.append(c)
                vals = self.psql.run("SELECT DISTINCT %s::text FROM %s WHERE %s IS NOT NULL LIMIT 12;" % (c, name, c))
                samples[c] = [v for v in vals]
            self.tables[name] = Table(name, columns, pk, samples)
        return self.tables[name]

    def finding(self, kind, query, detail, dml=(), mode="immediate"):
        n = len(self.findings) + 1
        path = os.path.join(self.out, "finding_%03d.sql" % n)
        with open(path, "w") as f:
            f.write("-- %s: %s\n-- load demo/schema_and_data.sql, test/smith/schema.sql and the seed views first (smith.py --keep keeps them)\n"
                    % (kind, detail))
            f.write("BEGIN;\nSELECT ivm.create_view('%s', %s, '%s');\n" % (VIEW, dollar_quote(query), mode))
            for s in dml:
                f.write(s + ";\n")
                if mode == "deferred":
                    f.write("SELECT ivm.apply_deltas();\n")
                f.write("SELECT ivm.verify('%s');\n" % VIEW)
            f.write("ROLLBACK;\n")
        detail = "query %d: %s" % (self.current, detail)
        self.findings.append((kind, detail, path))
        self.say("FINDING %d: %s: %s (%s)" % (n, kind, detail, path))

    def plain_error(self, query):
        """The error the query raises when PostgreSQL runs it plainly, or None."""
        # count(smith_q): the whole row, so that every output column is computed
        r = self.call("val", "SELECT count(smith_q) FROM (%s\n) smith_q" % query)
        return None if r.startswith("ok") else r

    def own_error(self, query, state):
        """Does PostgreSQL raise SQLSTATE `state` for the query, for one of its subqueries in
        FROM run on its own, or for the query with those subqueries fenced (OFFSET 0)? ivm keeps
        such a subquery as a view of its own, computing every row and column of it, also those
        the whole query never computes, and without folding its constants into the outer query:
        an expression that fails there (an overflow, say) fails in ivm too (README, Limits).
        (bool, what PostgreSQL said)."""
        plain = self.plain_error(query)
        if plain is not None and plain.split(" ", 1)[0] == state:
            return True, "plainly: " + plain
        subs = from_subqueries(query)
        for sub in subs:
            e = self.plain_error(sub)
            if e is not None and e.split(" ", 1)[0] == state:
                self.stats["subquery errors"] += 1
                return True, "its subquery in FROM alone: " + e
        if subs:
            e = self.plain_error(fenced(query))
            if e is not None and e.split(" ", 1)[0] == state:
                self.stats["subquery errors"] += 1
                return True, "with its subqueries in FROM fenced (OFFSET 0): " + e
        return False, "plainly: " + (plain or "runs")

    def feed(self, query, variant):
        """Returns 'accepted', 'refused' or 'finding'."""
        self.stats[variant + " queries"] += 1
        mode = "deferred" if self.a.deferred_every and self.rng.randrange(self.a.deferred_every) == 0 else "immediate"
        self.psql.run("BEGIN;")
        try:
            r = self.call("run", "SELECT ivm.create_view('%s', %s, '%s')" % (VIEW, dollar_quote(query), mode))
            if r == "ok":
                self.accepted[mode] += 1
                with open(os.path.join(self.out, "accepted.sql"), "a") as f:
                    f.write("-- query %d, %s, %s\n%s;\n\n" % (self.current, variant, mode, query))
                n = len(self.findings)
                self.burst(query, mode)
                return "accepted" if len(self.findings) == n else "finding"
            state = r.split(" ", 1)[0]
            if state.startswith("XX"):
                self.finding("internal error in create_view", query, r, mode=mode)
                return "finding"
            if state == "57014":
                self.timeouts.append(("create_view", r))
                self.refused[variant]["(timeout) " + message_group(r)] += 1
                return "refused"
            if state != "0A000":
                # PostgreSQL's own error for the query (syntax, types, run-time error)?
                own, how = self.own_error(query, state)
                if not own:
                    self.finding("create_view error on a query PostgreSQL runs", query,
                                 "%s (%s)" % (r, how), mode=mode)
                    return "finding"
            self.refused[variant][message_group(r)] += 1
            return "refused"
        finally:
            self.psql.run("ROLLBACK;")

    def burst(self, query, mode):
        r = self.call("val", "SELECT length(ivm.explain('%s'))" % VIEW)
        if not r.startswith("ok"):
            self.finding("ivm.explain failed", query, r, mode=mode)
            return
        base = self.psql.run("SELECT smith.base_tables('%s');" % VIEW)
        tables = [self.table(b) for b in base]
        done = []
        for i in range(self.a.dml):
            stmt = self.dml.statement(tables)
            self.stats["dml statements"] += 1
            self.psql.run("SAVEPOINT smith_dml;")
            r = self.call("run", stmt)
            if r != "ok":
                state = r.split(" ", 1)[0]
                self.psql.run("ROLLBACK TO smith_dml;")
                if state == "57014":
                    self.timeouts.append(("dml", r))
                    return
                # Does the statement fail without the view, or the query on the new data?
                own = self.call("run", "SELECT ivm.drop_view('%s')" % VIEW)
                alone = self.call("run", stmt)
                query_own, how = self.own_error(query, state) if alone == "ok" else (False, "-")
                self.psql.run("ROLLBACK TO smith_dml;")
                if own != "ok" or state.startswith("XX") or not (
                        (alone != "ok" and alone.split(" ", 1)[0] == state) or query_own):
                    self.finding("error maintaining the view", query,
                                 "%s: %s (without the view: %s; query afterwards, %s)"
                                 % (stmt, r, alone, how), done + [stmt], mode)
                    return
                self.stats["dml errors of the statement or query itself"] += 1
                continue
            self.psql.run("RELEASE smith_dml;")
            done.append(stmt)
            if mode == "deferred" and self.rng.random() < 0.6:
                continue  # let changes pile up before the next apply
            if not self.check_view(query, mode, done):
                return
        if mode == "deferred" and not self.check_view(query, mode, done):
            return
        # Every view, the seed views and internal ones included, after the whole burst.
        bad = self.psql.run("SELECT name || ': ' || smith.val(format('SELECT ivm.verify(%L)', name))\n"
                            "FROM ivm.views ORDER BY viewid;")
        bad = [b for b in bad if not b.endswith(": ok 0")]
        if bad:
            self.finding("another view diverged", query, "; ".join(bad), done, mode)
            return
        # Rebuilt from scratch, still exact; dropped, nothing of it is left.
        r = self.call("val", "SELECT ivm.refresh('%s')" % VIEW)
        if not r.startswith("ok"):
            own, how = self.own_error(query, r.split(" ", 1)[0])
            if not own:
                self.finding("ivm.refresh failed", query, "%s (query now, %s)" % (r, how), done, mode)
            return
        if not self.check_view(query, mode, done):
            return
        r = self.call("run", "SELECT ivm.drop_view('%s')" % VIEW)
        left = self.psql.one("SELECT count(*) FROM ivm.views WHERE NOT (name = ANY (%s));" % self.seed_names)
        if r != "ok" or left != "0":
            self.finding("ivm.drop_view failed", query, "%s; %s views left besides the seed views" % (r, left),
                         done, mode)

    def check_view(self, query, mode, done):
        """Applies the pending changes (deferred mode), then ivm.verify = 0? False: stop the burst."""
        if mode == "deferred":
            r = self.call("val", "SELECT ivm.apply_deltas()")
            if not r.startswith("ok"):
                state = r.split(" ", 1)[0]
                if state == "57014":
                    self.timeouts.append(("apply", r))
                    return False
                own, how = self.own_error(query, state)
                if state.startswith("XX") or not own:
                    self.finding("ivm.apply_deltas failed", query, "%s (query now, %s)" % (r, how), done, mode)
                else:
                    self.stats["dml errors of the statement or query itself"] += 1
                return False
        v = self.call("val", "SELECT ivm.verify('%s')" % VIEW)
        if v.startswith("57014"):
            self.timeouts.append(("verify", v))
            return False
        if v != "ok 0":
            what = "ivm.verify failed" if not v.startswith("ok") else "ivm.verify = %s" % v[3:]
            self.finding(what, query, "%s after: %s" % (what, done[-1] if done else "create_view"), done, mode)
            return False
        return True

    def check_log(self):
        """New 'terminated by signal' lines in the server log (a crashed backend)."""
        if not self.a.server_log or not os.path.exists(self.a.server_log):
            return []
        with open(self.a.server_log, errors="replace") as f:
            f.seek(self.log_offset)
            text = f.read()
        self.log_offset += len(text.encode())
        return [l for l in text.splitlines() if "terminated by signal" in l or "PANIC" in l]

    def run(self):
        self.setup()
        queries = []
        for i, (profile, options) in enumerate(PROFILES):
            n = self.a.queries // len(PROFILES) + (1 if i < self.a.queries % len(PROFILES) else 0)
            queries += [(profile, q) for q in self.generate(profile, options, n)]
        t0 = time.time()
        try:
            for n, (profile, q) in enumerate(queries, 1):
                if n < self.a.first:
                    continue
                self.current = n
                variants = [("generated", q)]
                t = trimmed(q)
                if t != q:
                    variants.append(("trimmed", t))
                g = grouped(t, self.aggregates)
                if g:
                    variants.append(("grouped", g))
                for variant, text in variants:
                    key = profile + " " + variant
                    try:
                        res = self.feed(text, key)
                    except PsqlDied:
                        res = "finding"
                        time.sleep(2)
                        lines = self.check_log()
                        self.finding("crash (connection lost)", text, "; ".join(lines) or "see the server log")
                        self.connect()
                    self.stats[key + " " + res] += 1
                    if self.a.verbose:
                        self.say("%5d %-15s %s" % (n, key, res))
                for line in self.check_log():
                    self.finding("crash (server log)", q, line)
                if n % 500 == 0:
                    self.say("... %d/%d queries, %d findings, %.0fs" % (n, len(queries), len(self.findings), time.time() - t0))
        finally:
            self.teardown()
        self.summary(len(queries), time.time() - t0)
        if not self.findings and not self.a.out:
            shutil.rmtree(self.out, ignore_errors=True)
        return 1 if self.findings else 0

    def summary(self, nq, secs):
        s = self.stats
        self.say("\n=== SQLsmith against ivm.create_view: seed %d, %d queries, %.0fs ===" % (self.a.seed, nq, secs))
        self.say("%-8s %-10s %7s %9s %8s %9s" % ("catalog", "variant", "fed", "accepted", "refused", "findings"))
        for profile, _ in PROFILES:
            for variant in VARIANTS:
                k = profile + " " + variant
                self.say("%-8s %-10s %7d %9d %8d %9d" % (profile, variant, s[k + " queries"], s[k + " accepted"],
                                                         s[k + " refused"], s[k + " finding"]))
        self.say("accepted views by mode: %d immediate, %d deferred; %d DML statements run on them"
                 " (%d failed as the statement or the query itself would)" % (
                     self.accepted["immediate"], self.accepted["deferred"], s["dml statements"],
                     s["dml errors of the statement or query itself"]))
        self.say("errors that the query raises with its subqueries in FROM run on their own"
                 " (as ivm computes them): %d"
                 % s["subquery errors"])
        self.say("timeouts: %d" % len(self.timeouts))
        merged = collections.Counter()
        for c in self.refused.values():
            merged += c
        self.say("\nrefused, by message:")
        for msg, k in merged.most_common():
            self.say("%7d  %s" % (k, msg))
        self.say("\nfindings: %d" % len(self.findings))
        for i, (kind, detail, path) in enumerate(self.findings, 1):
            self.say("  %d. %s: %s\n     %s" % (i, kind, detail[:500], path))
        for i, (kind, detail, path) in enumerate(self.findings[:5], 1):
            self.say("\n----- finding %d: %s -----" % (i, path))
            with open(path) as f:
                self.say(f.read()[:6000])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--dml", type=int, default=12, help="DML statements per accepted view")
    p.add_argument("--timeout", type=int, default=5000, help="statement_timeout in ms")
    p.add_argument("--deferred-every", type=int, default=4,
                   help="create about one view in N in deferred mode (0: never)")
    p.add_argument("--server-log", help="the server's log, scanned for crashed backends")
    p.add_argument("--out", help="where queries, accepted queries and reproductions go (default: a temporary "
                   "directory, removed when nothing was found)")
    p.add_argument("--session-log", help="append every statement sent to the server to this file "
                   "(replayed with psql -f, it rebuilds the backend's history)")
    p.add_argument("--first", type=int, default=1, help="start at query number N (triage)")
    p.add_argument("--keep", action="store_true", help="keep the two databases")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    if not shutil.which("sqlsmith"):
        raise SystemExit("smith: sqlsmith is not installed (apt-get install sqlsmith)")
    sys.exit(Smith(args).run())


if __name__ == "__main__":
    main()
