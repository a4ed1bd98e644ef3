#!/usr/bin/env bash
# test/dump_restore.sh: pg_dump and pg_restore of a database with ivm views.
#
# Builds a database with the seed tables and the Customer 360 views (demo/views_ivm.sql, with
# customer_web_activity switched to deferred mode), plus views owned by another role (a
# deferred one, and one with a subquery, which ivm compiles into an internal view), leaves
# changes pending in the delta tables, and adds oracles: plain views of the same queries
# (o_<view>, reading base tables only).  Dumps it in plain and in custom format and restores it
# three ways, each into a new database: psql, pg_restore, pg_restore -j 2.  In each:
#   - ivm's catalog names the restored relations (their oids changed), owners are kept, the
#     changes pending at dump time are still pending;
#   - views without deferred inputs are exact at once, all views after ivm.apply_deltas():
#     ivm.verify() = 0 and no row differs from the oracle (EXCEPT ALL both ways);
#   - DML on every base table (the seed's live update among it, TRUNCATE too), by the tables'
#     owner and by a role that may only INSERT, keeps every view exact;
#   - new views can be created and old ones dropped.
#
# Uses the server in PGHOST if set (test/run's), else starts a throwaway cluster.
# Ends with "dump/restore: N checks, M mismatches"; exits non-zero on any mismatch.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=test/lib/cluster.sh
source test/lib/cluster.sh

bin="$IVM_PG_BIN"
src=ivm_dr_source
targets=(ivm_dr_plain ivm_dr_custom ivm_dr_parallel)
analyst=ivm_dr_analyst
writer=ivm_dr_writer
work="$(mktemp -d /tmp/ivm-dump.XXXXXX)"
checks=0
mismatches=0

drop_all() {
    local db
    for db in "$src" "${targets[@]}"; do
        "$bin/psql" -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" 2>/dev/null || true
    done
    "$bin/psql" -X -q -d postgres -c "DROP ROLE IF EXISTS $analyst" -c "DROP ROLE IF EXISTS $writer" 2>/dev/null || true
}
cleanup() {
    [[ -n "${PGHOST:-}" ]] && drop_all
    rm -rf "$work"
    ivm_cluster_stop
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ivm_cluster_start >&2
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"

say() { printf '[dump/restore] %s\n' "$*"; }
q() { local db="$1"; shift; "$bin/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }
check() {  # check <what> <got> <want>
    checks=$((checks + 1))
    if [[ "$2" == "$3" ]]; then
        say "ok: $1: $2"
    else
        say "MISMATCH: $1: got '$2', want '$3'"
        mismatches=$((mismatches + 1))
    fi
}

drop_all
q postgres -c "CREATE ROLE $analyst" -c "CREATE ROLE $writer" -c "CREATE DATABASE $src"

say "building $src"
q "$src" -c 'CREATE EXTENSION ivm'
q "$src" -f demo/schema_and_data.sql
q "$src" -f demo/views_ivm.sql >/dev/null
q "$src" <<'SQL' >/dev/null
SELECT ivm.set_mode('customer_web_activity', 'deferred');

-- Another role's views: a deferred one, and one with a subquery (an internal view).
GRANT CREATE ON SCHEMA public TO ivm_dr_analyst;
GRANT SELECT, TRIGGER ON orders, customers TO ivm_dr_analyst;
GRANT INSERT ON orders, web_activity, support_tickets TO ivm_dr_writer;
SET ROLE ivm_dr_analyst;
SELECT ivm.create_view('order_status_totals', $$
    SELECT order_status, count(*) AS n, sum(order_total) AS total, min(created_at) AS first_at
    FROM orders GROUP BY order_status $$, mode => 'deferred');
SELECT ivm.create_view('big_spenders', $$
    SELECT c.customer_id, c.full_name, s.spent
    FROM customers c JOIN (SELECT customer_id, sum(order_total) AS spent FROM orders GROUP BY customer_id) s
      ON s.customer_id = c.customer_id
    WHERE s.spent > 300 $$);
RESET ROLE;

-- oracles(): a plain view o_<v> of every ivm view's query, reading oracles instead of ivm views.
CREATE FUNCTION oracles() RETURNS void LANGUAGE plpgsql AS $f$
DECLARE
    names text;
    r record;
BEGIN
    SELECT string_agg(c.relname, '|') INTO names
    FROM ivm.views v JOIN pg_class c ON c.oid = v.viewid WHERE NOT v.internal;
    FOR r IN
        SELECT c.relname, v.query FROM ivm.views v JOIN pg_class c ON c.oid = v.viewid
        WHERE NOT v.internal AND to_regclass('o_' || c.relname) IS NULL ORDER BY v.level
    LOOP
        EXECUTE format('CREATE VIEW %I AS %s', 'o_' || r.relname,
                       regexp_replace(r.query, '\m(' || names || ')\M', 'o_\1', 'g'));
    END LOOP;
END
$f$;
SELECT oracles();

-- current_views: the views that are right without an apply (immediate, and reading no
-- deferred view, directly or through other views).
CREATE VIEW current_views AS
WITH RECURSIVE lagging(viewid) AS (
    SELECT viewid FROM ivm.views WHERE mode = 'deferred'
    UNION SELECT d.viewid FROM ivm.dependencies d JOIN lagging l ON d.relid = l.viewid)
SELECT viewid FROM ivm.views WHERE viewid NOT IN (SELECT viewid FROM lagging);

-- exactness(current_only): "N views exact", or the views that differ from their queries
-- (ivm.verify) or from their oracles (EXCEPT ALL both ways, comparing values).
CREATE FUNCTION exactness(current_only boolean) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
    r record;
    v bigint;
    d bigint;
    n int := 0;
    bad text := '';
BEGIN
    FOR r IN
        SELECT c.relname FROM ivm.views iv JOIN pg_class c ON c.oid = iv.viewid
        WHERE NOT iv.internal AND (NOT current_only OR iv.viewid IN (SELECT viewid FROM current_views))
        ORDER BY iv.level, c.relname
    LOOP
        v := ivm.verify(r.relname);
        EXECUTE format('SELECT count(*) FROM ((TABLE %1$I EXCEPT ALL TABLE %2$I) '
                       'UNION ALL (TABLE %2$I EXCEPT ALL TABLE %1$I)) d', r.relname, 'o_' || r.relname)
            INTO d;
        n := n + 1;
        IF v <> 0 OR d <> 0 THEN
            bad := bad || format(' %s (verify %s, diff %s)', r.relname, v, d);
        END IF;
    END LOOP;
    RETURN CASE WHEN bad = '' THEN format('%s views exact', n) ELSE 'MISMATCH:' || bad END;
END
$f$;

-- fingerprint(): per view table, its row count and a digest of its rows.
CREATE FUNCTION fingerprint() RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
    r record;
    f text;
    result text := '';
BEGIN
    FOR r IN
        SELECT c.relname FROM ivm.views v JOIN pg_class c ON c.oid = v.viewid
        WHERE NOT v.internal ORDER BY c.relname
    LOOP
        EXECUTE format($q$SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')
                          FROM %I t$q$, r.relname) INTO f;
        result := result || r.relname || '=' || f || ' ';
    END LOOP;
    RETURN result;
END
$f$;

-- Changes before the dump: many orders, updates and deletes, web events, tickets.  The
-- deferred views keep theirs pending.
INSERT INTO orders SELECT 1000 + i, 1 + i % 5, (i * 37 % 900) + 0.99,
       (ARRAY['completed', 'cancelled', 'shipped', 'pending'])[1 + i % 4],
       timestamp '2026-01-01' + i * interval '7 hours'
FROM generate_series(1, 300) i;
UPDATE orders SET order_status = 'completed' WHERE order_id % 7 = 0;
DELETE FROM orders WHERE order_id % 11 = 0;
INSERT INTO web_activity SELECT 7000 + i, 1 + i % 5, '/p/' || i % 13,
       (ARRAY['page_view', 'add_to_cart', 'purchase'])[1 + i % 3], 'sess_' || i % 40,
       timestamp '2026-02-01' + i * interval '1 hour'
FROM generate_series(1, 200) i;
UPDATE support_tickets SET status = 'resolved' WHERE ticket_id % 2 = 0;
INSERT INTO support_tickets VALUES (900, 3, 'Refund', 'high', 'open', '2026-03-30 10:00:00', NULL);
SQL

q "$src" -c "SET ROLE $writer" -c "INSERT INTO orders VALUES (2000, 2, 42.00, 'completed', '2026-03-31 12:00:00')"

# What every restored database must show.
owners_sql="SELECT string_agg(v.name || '=' || c.relowner::regrole, ' ' ORDER BY v.name)
            FROM ivm.views v JOIN pg_class c ON c.oid = v.viewid"
pending_sql="SELECT coalesce(sum(pending_changes), 0) FROM ivm.status"
counts_sql="SELECT (SELECT count(*) FROM ivm.views) || ' views, ' || (SELECT count(*) FROM ivm.dependencies)
            || ' dependencies, ' || (SELECT count(*) FROM ivm.delta_tables) || ' delta tables'"
want_owners="$(q "$src" -c "$owners_sql")"
want_pending="$(q "$src" -c "$pending_sql")"
want_counts="$(q "$src" -c "$counts_sql")"
want_rows="$(q "$src" -c "SELECT fingerprint()")"
current="$(q "$src" -c "SELECT count(*) FROM ivm.views JOIN current_views USING (viewid) WHERE NOT internal") views exact"
all="$(q "$src" -c "SELECT count(*) FROM ivm.views WHERE NOT internal") views exact"
check "source: views without deferred inputs, before the dump" "$(q "$src" -c 'SELECT exactness(true)')" "$current"
check "source: changes pending at dump time" "$([[ "$want_pending" -gt 0 ]] && echo yes)" "yes"

say "dumping $src (plain and custom format)"
"$bin/pg_dump" -d "$src" -f "$work/plain.sql" 2>"$work/dump.err"
# No warning either (a view table depending on a post-data object such as an index makes
# pg_dump report a dependency loop).
check "pg_dump without warnings" "$(cat "$work/dump.err")" ""
"$bin/pg_dump" -d "$src" -Fc -f "$work/custom.dump"

say "restoring"
for db in "${targets[@]}"; do q postgres -c "CREATE DATABASE $db"; done
"$bin/psql" -X -q -v ON_ERROR_STOP=1 -d ivm_dr_plain -f "$work/plain.sql" >/dev/null
"$bin/pg_restore" --exit-on-error -d ivm_dr_custom "$work/custom.dump"
"$bin/pg_restore" --exit-on-error -j 2 -d ivm_dr_parallel "$work/custom.dump"

for db in "${targets[@]}"; do
    say "--- $db"
    # The catalog names the restored relations: no row points at an oid that is not there.
    check "$db: catalog rows" "$(q "$db" -c "$counts_sql")" "$want_counts"
    check "$db: catalog oids resolve" "$(q "$db" -c "
        SELECT count(*) FROM ivm.views v WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = v.viewid)
        UNION ALL SELECT count(*) FROM ivm.dependencies d WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = d.relid)
        UNION ALL SELECT count(*) FROM ivm.delta_tables t WHERE to_regclass(t.name) IS NULL
           OR NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.relid)" | tr '\n' ' ')" "0 0 0 "
    check "$db: view owners" "$(q "$db" -c "$owners_sql")" "$want_owners"
    check "$db: view rows as dumped" "$(q "$db" -c "SELECT fingerprint()" | md5sum)" "$(md5sum <<<"$want_rows")"
    check "$db: changes still pending" "$(q "$db" -c "$pending_sql")" "$want_pending"
    check "$db: views without deferred inputs exact after restore" "$(q "$db" -c 'SELECT exactness(true)')" "$current"
    q "$db" -c 'SELECT ivm.apply_deltas()' >/dev/null
    check "$db: every view exact after apply" "$(q "$db" -c 'SELECT exactness(false)')" "$all"

    # Maintained afterwards: the tutorial's live update, and DML on every base table.
    q "$db" >/dev/null <<'SQL'
INSERT INTO orders VALUES (109, 2, 250.00, 'completed', '2026-04-01 10:00:00');
UPDATE orders SET order_total = order_total + 10 WHERE customer_id = 3;
UPDATE orders SET customer_id = 4 WHERE order_id BETWEEN 1100 AND 1120;
DELETE FROM orders WHERE order_status = 'cancelled' AND order_id % 3 = 0;
INSERT INTO customers VALUES (6, 'frank@example.com', 'Frank Moore', '2026-03-01', 'standard');
UPDATE customers SET account_tier = 'premium' WHERE customer_id = 2;
INSERT INTO support_tickets VALUES (901, 6, 'Login', 'high', 'open', '2026-04-02 09:00:00', NULL);
DELETE FROM support_tickets WHERE ticket_id % 3 = 0;
INSERT INTO web_activity VALUES (9001, 6, '/home', 'purchase', 'sess_new', '2026-04-02 09:05:00');
DELETE FROM web_activity WHERE event_id % 5 = 0;
SQL
    q "$db" -c "SET ROLE $writer" -c "INSERT INTO orders VALUES (2001, 6, 99.50, 'completed', '2026-04-03 08:00:00')" \
        -c "INSERT INTO web_activity VALUES (9002, 6, '/cart', 'add_to_cart', 'sess_new', '2026-04-03 08:01:00')"
    check "$db: views without deferred inputs exact after DML" "$(q "$db" -c 'SELECT exactness(true)')" "$current"
    q "$db" -c 'SELECT ivm.apply_deltas()' >/dev/null
    check "$db: every view exact after DML and apply" "$(q "$db" -c 'SELECT exactness(false)')" "$all"

    # TRUNCATE, a new view, a dropped one.
    q "$db" >/dev/null <<'SQL'
TRUNCATE web_activity;
SELECT ivm.create_view('orders_per_tier', $$
    SELECT c.account_tier, count(*) AS orders, sum(o.order_total) AS total
    FROM customers c JOIN orders o ON o.customer_id = c.customer_id GROUP BY c.account_tier $$);
SELECT oracles();
SELECT ivm.drop_view('churn_alerts');
DROP VIEW o_churn_alerts;
INSERT INTO orders VALUES (2002, 1, 15.00, 'completed', '2026-04-04 10:00:00');
INSERT INTO web_activity VALUES (9003, 1, '/home', 'page_view', 'sess_x', '2026-04-04 10:01:00');
SELECT ivm.apply_deltas();
SQL
    check "$db: exact after TRUNCATE, create_view, drop_view" "$(q "$db" -c 'SELECT exactness(false)')" "$all"

    # The DDL guards hold in the restored database too: a table a view reads cannot be dropped,
    # nor a column it uses; renaming a base table keeps the views maintained.
    check "$db: DROP TABLE of a base table refused" \
        "$(q "$db" -c "DO \$\$ BEGIN DROP TABLE orders; RAISE EXCEPTION 'dropped'; EXCEPTION WHEN dependent_objects_still_exist THEN RAISE WARNING 'refused'; END \$\$" 2>&1 | grep -c refused)" "1"
    # A serial restore creates the primary keys before the views' guard triggers: the views keep
    # matching rows by key.
    if [[ "$db" != ivm_dr_parallel ]]; then
        check "$db: views matching rows by key" "$(q "$db" -c "SELECT string_agg(v, ' ' ORDER BY v) FROM
            unnest(ARRAY['customer_360', 'customer_churn_risk']) v WHERE ivm.explain(v) ~ 'View key: customer_id, (at most )?one row per key'")" \
            "customer_360 customer_churn_risk"
    fi
    check "$db: DROP COLUMN of a used column refused" \
        "$(q "$db" -c "DO \$\$ BEGIN ALTER TABLE orders DROP COLUMN order_total; RAISE EXCEPTION 'dropped'; EXCEPTION WHEN dependent_objects_still_exist THEN RAISE WARNING 'refused'; END \$\$" 2>&1 | grep -c refused)" "1"
    q "$db" >/dev/null <<'SQL'
ALTER TABLE orders RENAME TO orders_renamed;
INSERT INTO orders_renamed VALUES (2003, 2, 25.00, 'completed', '2026-04-05 10:00:00');
ALTER TABLE orders_renamed RENAME TO orders;
SELECT ivm.apply_deltas();
SQL
    check "$db: exact after renaming a base table" "$(q "$db" -c 'SELECT exactness(false)')" "$all"
done

say "dump/restore: $checks checks, $mismatches mismatches"
((mismatches == 0))
