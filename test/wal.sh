#!/usr/bin/env bash
# test/wal.sh: views in mode wal (maintained from the database's logical slot, no trigger on
# the write path).
#
# Starts its own throwaway cluster (port ${IVM_WAL_PORT:-55440}; it never uses PGHOST: it needs
# wal_level = logical, the library preloaded for the worker, and is killed on purpose) with
# shared_preload_libraries = 'ivm', ivm.databases = 'walw' and fsync = on, then runs the
# scenarios named in IVM_WAL_SCENARIOS (default "views status worker crash"):
#
#   views   the six Customer 360 views three times over the same tables, once per mode
#           (schemas imm, dfr, wal), plus views mixing modes (an immediate view over a wal view,
#           a wal view over an immediate one, a wal view with a subquery, a count view).  Two
#           random workloads (test/decode/workload.py: rollbacks, savepoints, caught errors,
#           TRUNCATE) run concurrently while a third session applies in a loop; then one
#           apply, and every view must be exact (ivm.verify = 0) and equal to its twins in the
#           other modes.  Also: the write path of a table that only wal views read has no DML
#           trigger, its replica identity is FULL, set_mode moves views in and out of mode wal
#           without losing a change, and the slot goes once no view in mode wal is left.
#   status  ivm.status: wal_lag_bytes and wal_lag for wal views (NULL for the others), the
#           pending WAL growing with writes and the lag shrinking with an apply.
#   straggler  a transaction whose commit is in WAL but not yet visible (held by a synchronous
#           replication wait for a standby that does not exist) while a later one is visible:
#           the apply takes the later one only, and once the first becomes visible the next
#           apply takes it and not the later one again.
#   worker  the background worker catches wal views up without anyone calling apply_deltas.
#   crash   kill -9 of the whole server while the worker applies a large batch (~120k
#           changes): after the restart every view is exact and a count view equals the table
#           (no transaction applied twice, none lost); then kill -9 while writers commit and the
#           worker applies: every acknowledged transaction is in the tables and the views.
#   fuzz    the differential fuzzer in mode wal (${IVM_FUZZ_STATEMENTS:-2000} statements, seed
#           ${IVM_FUZZ_SEED:-1}).
#
# IVM_WAL_KEEP=1 leaves the cluster running at the end.
# Ends with "wal: N checks, M failed"; exits non-zero if any failed.
set -euo pipefail

cd "$(dirname "$0")/.."
unset PGHOST PGPORT PGUSER PGDATABASE
# shellcheck source=test/lib/cluster.sh
source test/lib/cluster.sh
CHECKS_TAG=wal
# shellcheck source=test/lib/checks.sh
source test/lib/checks.sh

port="${IVM_WAL_PORT:-55440}"
scenarios="${IVM_WAL_SCENARIOS:-views status straggler worker crash}"
bg_pids=()
db=walv

cleanup() {
    stop_pids "${bg_pids[@]}"
    if [[ "${IVM_WAL_KEEP:-0}" == 1 && -n "$IVM_CLUSTER_DIR" ]]; then
        echo "IVM_WAL_KEEP: cluster left running: PGHOST=$IVM_CLUSTER_DIR PGPORT=$port"
        return
    fi
    ivm_cluster_stop
}
trap cleanup EXIT
trap 'exit 1' INT TERM

q() { psql -X -qAt -v ON_ERROR_STOP=1 -d "$db" "$@"; }
# exact: every view of the database exact (ivm.verify = 0).
exact() {
    local bad
    bad="$(q -c "SELECT string_agg(name || '=' || d, ' ') FROM (SELECT name, ivm.verify(name) AS d
                 FROM ivm.views WHERE NOT internal) v WHERE d <> 0")"
    [[ -z "$bad" ]] || { say "  not exact: $bad"; return 1; }
}

# ---------------------------------------------------------------------------------------------
# The cluster.
# ---------------------------------------------------------------------------------------------
ivm_cluster_start "$port"
ivm_cluster_logical
{
    echo "# --- test/wal.sh ---"
    echo "shared_preload_libraries = 'ivm'"
    echo "ivm.databases = 'walw'"
    echo "ivm.apply_interval = 200ms"
    echo "fsync = on"
    echo "synchronous_commit = on"
} >>"$(data_dir)/postgresql.conf"
pg_ctl_ -w -m fast stop >/dev/null
start_server
[[ "$(psql -X -qAt -d postgres -c 'SHOW wal_level')" == logical ]] || { echo "wal_level is not logical" >&2; exit 1; }
# The worker's database (ivm.databases): empty until the worker scenario creates the extension.
psql -X -q -d postgres -c "CREATE DATABASE walw"

# seed_schema: the Customer 360 tables, empty, their seed rows in schema seed.
seed_schema() {
    q <<'SQL'
CREATE EXTENSION ivm;
CREATE SCHEMA seed;
SET search_path = seed;
\i demo/schema_and_data.sql
RESET search_path;
CREATE TABLE customers (LIKE seed.customers INCLUDING ALL);
CREATE TABLE orders (LIKE seed.orders INCLUDING ALL);
CREATE TABLE support_tickets (LIKE seed.support_tickets INCLUDING ALL);
CREATE TABLE web_activity (LIKE seed.web_activity INCLUDING ALL);
CREATE TABLE notes (id serial PRIMARY KEY, body text);
SQL
}

# seed_views <schema> <mode>: the six seed views in <schema>, in mode <mode>.
seed_views() {
    q -c "CREATE SCHEMA $1"
    sed "s/^\\\$\\\$);/\$\$, mode => '$2');/" demo/views_ivm.sql >"$IVM_CLUSTER_DIR/views_$1.sql"
    grep -q "mode => '$2'" "$IVM_CLUSTER_DIR/views_$1.sql"
    q -o /dev/null -c "SET search_path = $1, public" -f "$IVM_CLUSTER_DIR/views_$1.sql"
}

# same_as <a> <b>: two views of the same query (in different modes) hold the same rows.
same_as() {
    local d
    d="$(q -c "SELECT count(*) FROM ((TABLE $1 EXCEPT ALL TABLE $2) UNION ALL (TABLE $2 EXCEPT ALL TABLE $1)) x")"
    [[ "$d" == 0 ]] || { say "  $1 and $2 differ in $d rows"; return 1; }
}

same_3() { same_as "wal.$1" "imm.$1" && same_as "dfr.$1" "imm.$1"; }

seed_view_names="customer_order_summary customer_support_summary customer_web_activity customer_360
                 customer_churn_risk churn_alerts"

# ---------------------------------------------------------------------------------------------
# views: all modes over the same tables, concurrent writers and appliers.
# ---------------------------------------------------------------------------------------------
scenario_views() {
    db=walv
    say "scenario views"
    psql -X -q -d postgres -c "CREATE DATABASE $db"
    seed_schema
    seed_views imm immediate
    seed_views dfr deferred
    seed_views wal wal
    q <<'SQL'
-- Modes mixed along a chain of views, a subquery (an internal view), a count view.
SELECT ivm.create_view('wal.tier_summary', $$
    SELECT account_tier, count(*) AS customers, sum(lifetime_value) AS ltv FROM imm.customer_360
    GROUP BY account_tier $$, mode => 'wal');
SELECT ivm.create_view('imm.wal_alerts_per_tier', $$
    SELECT c.account_tier, count(*) AS alerts FROM wal.churn_alerts a
    JOIN customers c ON c.customer_id = a.customer_id GROUP BY c.account_tier $$);
SELECT ivm.create_view('wal.big_customers', $$
    SELECT s.customer_id, s.spent FROM (SELECT customer_id, sum(order_total) AS spent FROM orders
                                        GROUP BY customer_id) s WHERE s.spent > 300 $$, mode => 'wal');
SELECT ivm.create_view('wal.order_count', $$
    SELECT count(*) AS n, sum(order_total) AS total FROM orders $$, mode => 'wal');
SQL
    q -c "INSERT INTO customers TABLE seed.customers" -c "INSERT INTO orders TABLE seed.orders" \
      -c "INSERT INTO support_tickets TABLE seed.support_tickets" -c "INSERT INTO web_activity TABLE seed.web_activity"
    check "slot ivm_<database oid> exists, plugin ivm" \
        want "$(q -c "SELECT plugin FROM pg_replication_slots WHERE slot_name = 'ivm_' || (SELECT oid FROM pg_database WHERE datname = current_database())")" ivm
    check "replica identity FULL on the tables wal views read" \
        want "$(q -c "SELECT string_agg(relname || ':' || relreplident::text, ' ' ORDER BY relname) FROM pg_class
                      WHERE relname IN ('customers', 'orders', 'support_tickets', 'web_activity') AND relnamespace = 'public'::regnamespace")" \
        "customers:f orders:f support_tickets:f web_activity:f"

    local work="$IVM_CLUSTER_DIR/views" t0=$SECONDS
    mkdir -p "$work"
    python3 test/decode/workload.py --transactions "${IVM_WAL_TRANSACTIONS:-300}" --seed 11 >"$work/w1.sql"
    python3 test/decode/workload.py --transactions "${IVM_WAL_TRANSACTIONS:-300}" --seed 12 >"$work/w2.sql"
    # Two writers at once (their keys collide: a failing statement only rolls its transaction
    # back), an applier in a loop.
    psql -X -q -d "$db" -f "$work/w1.sql" >"$work/w1.out" 2>&1 &
    local w1=$!
    psql -X -q -d "$db" -f "$work/w2.sql" >"$work/w2.out" 2>&1 &
    local w2=$!
    bg_pids+=("$w1" "$w2")
    local applies=0
    while kill -0 "$w1" 2>/dev/null || kill -0 "$w2" 2>/dev/null; do
        q -o /dev/null -c "SELECT ivm.apply_deltas()" 2>>"$work/apply.err" && applies=$((applies + 1))
    done
    wait "$w1" "$w2" || true
    bg_pids=()
    say "two workloads done with $applies concurrent applies ($((SECONDS - t0)) s)"
    check "no apply failed while writers ran" test ! -s "$work/apply.err"
    [[ -s "$work/apply.err" ]] && head -5 "$work/apply.err"
    q -o /dev/null -c "SELECT ivm.apply_deltas()"
    check "every view exact after the workload" exact
    local v
    for v in $seed_view_names; do
        check "wal.$v = imm.$v = dfr.$v" same_3 "$v"
    done
    check "count view = the table (nothing applied twice)" \
        want "$(q -c "SELECT n || '/' || coalesce(total, 0) FROM wal.order_count")" \
        "$(q -c "SELECT count(*) || '/' || coalesce(sum(order_total), 0) FROM orders")"
    check "views are not empty" test "$(q -c "SELECT count(*) FROM wal.customer_360")" -gt 0

    # A table only wal views read: no DML trigger on its write path, a TRUNCATE trigger only.
    q <<'SQL'
CREATE TABLE metrics (id int PRIMARY KEY, k int, v numeric);
INSERT INTO metrics SELECT g, g % 7, g FROM generate_series(1, 500) g;
SELECT ivm.create_view('wal.metric_sums', 'SELECT k, count(*) AS n, sum(v) AS s FROM metrics GROUP BY k', mode => 'wal');
SQL
    check "a table only wal views read has no DML trigger" \
        want "$(q -c "SELECT string_agg(tgname, ' ' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'metrics'::regclass")" \
        "ivm_capture_btrunc ivm_capture_trunc"
    q -c "UPDATE metrics SET v = v + 1 WHERE k = 3" -c "DELETE FROM metrics WHERE id < 50" \
      -c "INSERT INTO metrics SELECT g, g % 5, 1 FROM generate_series(1000, 1100) g"
    check "pending changes of a wal view are not applied before an apply" \
        test "$(q -c "SELECT ivm.verify('wal.metric_sums')")" -gt 0
    q -o /dev/null -c "SELECT ivm.apply_deltas()"
    check "wal view exact after apply" want "$(q -c "SELECT ivm.verify('wal.metric_sums')")" 0

    # set_mode in and out of wal, with changes committed on each side of each switch.
    q -c "SELECT ivm.set_mode('wal.metric_sums', 'deferred')" -c "UPDATE metrics SET v = v * 2 WHERE k = 1"
    check "deferred again: DML triggers back" \
        want "$(q -c "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'metrics'::regclass")" 6
    q -c "SELECT ivm.set_mode('wal.metric_sums', 'wal')" -c "DELETE FROM metrics WHERE k = 2"
    q -c "SELECT ivm.set_mode('wal.metric_sums', 'immediate')" -c "INSERT INTO metrics VALUES (5000, 9, 9)"
    check "immediate: exact without an apply" want "$(q -c "SELECT ivm.verify('wal.metric_sums')")" 0
    q -c "SELECT ivm.set_mode('wal.metric_sums', 'wal')" -c "TRUNCATE metrics" -c "INSERT INTO metrics VALUES (1, 1, 1), (2, 1, 2)"
    q -o /dev/null -c "SELECT ivm.apply_deltas('wal.metric_sums')"
    check "wal -> deferred -> wal -> immediate -> wal, TRUNCATE: exact" \
        want "$(q -c "SELECT ivm.verify('wal.metric_sums') || ':' || (SELECT count(*) FROM wal.metric_sums)")" "0:1"

    # Dropping the last wal view of a table a deferred view also reads: the changes already in
    # WAL still reach the deferred view, later ones come through its triggers again.
    q -c "SELECT ivm.create_view('dfr.metric_counts', 'SELECT k, count(*) AS n FROM metrics GROUP BY k', mode => 'deferred')" \
      -c "INSERT INTO metrics SELECT g, g % 4, 1 FROM generate_series(10, 60) g" \
      -c "SELECT ivm.drop_view('wal.metric_sums')" \
      -c "UPDATE metrics SET k = k + 1 WHERE id % 3 = 0" >/dev/null
    q -o /dev/null -c "SELECT ivm.apply_deltas()"
    check "drop of the last wal view of a table: its deferred reader misses nothing" \
        want "$(q -c "SELECT ivm.verify('dfr.metric_counts') || ':' || (SELECT sum(n) FROM dfr.metric_counts) || ':' || count(*) FROM metrics")" \
        "0:$(q -c "SELECT count(*) || ':' || count(*) FROM metrics")"

    # Values of every kind cross the WAL stream as text and come back as the same values: json
    # and jsonb documents (and a domain over jsonb), arrays, composites, text with quotes and
    # newlines, float and numeric specials, intervals, bytea, timestamps.  Compared as text.
    q <<'SQL'
CREATE TYPE pair AS (a int, b text);
CREATE DOMAIN doc AS jsonb CHECK (VALUE IS NOT NULL);
CREATE TABLE typed (id int PRIMARY KEY, js jsonb, d doc, arr int[], tarr text[], p pair, t text,
                    f float8, n numeric, iv interval, b bytea, ts timestamptz);
INSERT INTO typed VALUES (1, '{"x": [1, "two"]}', '"s"', '{1,NULL}', '{"a,b","c\"d"}', ROW(1, 'q"x'),
                          E'a\nb"c', -0.0, 1.500, '1 day 02:00', '\x00ff', '2026-01-01 00:00+02');
SELECT ivm.create_view('wal.typed_rows', 'SELECT id, js, d, arr, tarr, p, t, f, n, iv, b, ts FROM typed', mode => 'wal');
INSERT INTO typed VALUES (2, 'null', '1.50', '{}', '{}', ROW(NULL, NULL), '', 1e300, 'NaN', '-3 mons', '\x', 'infinity'),
                         (3, NULL, '[]', '{{1,2},{3,4}}', NULL, NULL, NULL, 'NaN', -0.000, NULL, NULL, NULL);
UPDATE typed SET js = '"text"', d = '{"k": null}', f = '-Infinity' WHERE id = 1;
SQL
    q -o /dev/null -c "SELECT ivm.apply_deltas()"
    check "values of every kind come back from WAL as they were (compared as text)" \
        want "$(q -c "SELECT ivm.verify('wal.typed_rows') || ':' || (
                      SELECT count(*) FROM ((SELECT v::text FROM wal.typed_rows v EXCEPT ALL
                                             SELECT v::text FROM (SELECT id, js, d, arr, tarr, p, t, f, n, iv, b, ts FROM typed) v)
                                            UNION ALL
                                            (SELECT v::text FROM (SELECT id, js, d, arr, tarr, p, t, f, n, iv, b, ts FROM typed) v
                                             EXCEPT ALL SELECT v::text FROM wal.typed_rows v)) x)")" "0:0"

    # Errors: the first view in mode wal in a transaction that already wrote.
    psql -X -q -d postgres -c "CREATE DATABASE walx"
    local err
    err="$(psql -X -qAt -d walx -c "CREATE EXTENSION ivm" -c "CREATE TABLE t (id int)" \
            -c "BEGIN" -c "INSERT INTO t VALUES (1)" \
            -c "SELECT ivm.create_view('tv', 'SELECT count(*) AS n FROM t', mode => 'wal')" 2>&1 || true)"
    check "create_view in mode wal after writes in the same transaction: clear error" \
        grep -q "cannot start capturing changes from WAL in a transaction that has already written" <<<"$err"

    # The slot goes with the last view in mode wal (at the next apply).
    psql -X -qAt -d walx -c "SELECT ivm.create_view('tv', 'SELECT count(*) AS n FROM t', mode => 'wal')" >/dev/null
    check "slot of database walx created" \
        want "$(psql -X -qAt -d walx -c "SELECT count(*) FROM pg_replication_slots WHERE database = 'walx'")" 1
    psql -X -qAt -d walx -c "SELECT ivm.drop_view('tv')" -c "SELECT ivm.apply_deltas()" >/dev/null
    check "slot and origin dropped once no view in mode wal is left" \
        want "$(psql -X -qAt -d walx -c "SELECT count(*) FROM pg_replication_slots WHERE database = 'walx'")/$(
                psql -X -qAt -d walx -c "SELECT count(*) FROM pg_replication_origin WHERE roname = 'ivm_' || (SELECT oid FROM pg_database WHERE datname = 'walx')")" "0/0"

    # A slot left behind is never decoded again: the first view in mode wal starts from a new
    # one.  (a) The last view in mode wal dropped, no apply since (the slot is still there),
    # writes, a new view over the same table; (b) DROP EXTENSION with a view in mode wal (its
    # slot stays: a slot is not dropped transactionally), writes, the extension again.
    local x=(psql -X -qAt -v ON_ERROR_STOP=1 -d walx)
    "${x[@]}" -c "INSERT INTO t SELECT g FROM generate_series(1, 100) g" \
              -c "SELECT ivm.create_view('tv', 'SELECT count(*) AS n, sum(id) AS s FROM t', mode => 'wal')" \
              -c "INSERT INTO t SELECT g FROM generate_series(101, 150) g" -c "SELECT ivm.apply_deltas()" \
              -c "SELECT ivm.drop_view('tv')" -c "INSERT INTO t SELECT g FROM generate_series(151, 170) g" \
              -c "SELECT ivm.create_view('tv2', 'SELECT count(*) AS n, sum(id) AS s FROM t', mode => 'wal')" \
              -c "DELETE FROM t WHERE id % 3 = 0" -c "SELECT ivm.apply_deltas()" >/dev/null
    check "a view in mode wal created over a stale slot (last view dropped, no apply since) is exact" \
        want "$("${x[@]}" -c "SELECT ivm.verify('tv2')")" 0
    "${x[@]}" -c "DROP EXTENSION ivm CASCADE" -c "INSERT INTO t SELECT g FROM generate_series(171, 200) g" \
              -c "UPDATE t SET id = id + 1000 WHERE id % 5 = 0" >/dev/null
    check "DROP EXTENSION leaves the slot (until the worker or the next view in mode wal)" \
        want "$("${x[@]}" -c "SELECT count(*) FROM pg_replication_slots WHERE database = 'walx'")" 1
    "${x[@]}" -c "CREATE EXTENSION ivm" \
              -c "SELECT ivm.create_view('tv3', 'SELECT count(*) AS n, sum(id) AS s FROM t', mode => 'wal')" \
              -c "DELETE FROM t WHERE id % 7 = 0" -c "SELECT ivm.apply_deltas()" >/dev/null
    check "after DROP EXTENSION and CREATE EXTENSION, a view in mode wal is exact (the old slot is not decoded)" \
        want "$("${x[@]}" -c "SELECT ivm.verify('tv3')")" 0
    check "one slot for the database" \
        want "$("${x[@]}" -c "SELECT count(*) FROM pg_replication_slots WHERE database = 'walx'")" 1
}

# ---------------------------------------------------------------------------------------------
# status: the lag columns.
# ---------------------------------------------------------------------------------------------
scenario_status() {
    db=walv
    say "scenario status"
    q -c "SELECT ivm.apply_deltas()" >/dev/null
    check "ivm.status: wal_lag_bytes and wal_lag for wal views only" \
        want "$(q -c "SELECT bool_and((wal_lag_bytes IS NOT NULL AND wal_lag IS NOT NULL) = (mode = 'wal'))
                      FROM ivm.status")" t
    local before after
    before="$(q -c "SELECT wal_lag_bytes FROM ivm.status WHERE view = 'wal.customer_360'::regclass")"
    q -c "UPDATE orders SET order_total = order_total + 1"
    after="$(q -c "SELECT wal_lag_bytes FROM ivm.status WHERE view = 'wal.customer_360'::regclass")"
    check "wal_lag_bytes grows with writes ($before -> $after)" test "$after" -gt "$before"
    check "pending WAL not applied yet" test "$(q -c "SELECT ivm.verify('wal.customer_order_summary')")" -gt 0
    sleep 1
    check "wal_lag grows while nothing applies" \
        want "$(q -c "SELECT wal_lag >= interval '1 second' AND lag >= interval '1 second' FROM ivm.status
                      WHERE view = 'wal.customer_360'::regclass")" t
    local lsn t
    lsn="$(q -c "SELECT pg_current_wal_lsn()")"
    t="$(q -c "SELECT clock_timestamp()")"
    q -o /dev/null -c "SELECT ivm.apply_deltas()"
    # (wal_lag_bytes counts WAL written since the apply took its snapshot, the apply's own too;
    # wal_lag is the time since then.)
    check "after an apply: caught up past the writes, lag counted from the apply, exact" \
        want "$(q -c "SELECT w.applied_lsn >= '$lsn' AND w.caught_up_at >= '$t'
                      AND s.wal_lag <= clock_timestamp() - '$t'::timestamptz
                      AND ivm.verify('wal.customer_order_summary') = 0
                      FROM ivm.status s, ivm.wal_state w WHERE s.view = 'wal.customer_360'::regclass")" t
}

# ---------------------------------------------------------------------------------------------
# straggler: commit order in WAL is not visibility order.
# ---------------------------------------------------------------------------------------------
scenario_straggler() {
    db=walv
    say "scenario straggler"
    [[ "$(q -c "SELECT to_regclass('wal.order_count') IS NOT NULL" 2>/dev/null || echo f)" == t ]] || {
        say "  (needs scenario views first)"
        failures=$((failures + 1))
        return
    }
    q -o /dev/null -c "SELECT ivm.apply_deltas()"
    # Every session but the straggler's commits locally; the straggler's commit waits for a
    # synchronous standby that never comes, after its commit record is written and before it
    # becomes visible.
    psql -X -q -d postgres -c "ALTER SYSTEM SET synchronous_standby_names = 'nosuch'" -c "SELECT pg_reload_conf()" >/dev/null
    export PGOPTIONS="-c synchronous_commit=local"
    PGOPTIONS="-c synchronous_commit=on" psql -X -q -d "$db" \
        -c "INSERT INTO orders VALUES (7000001, 1, 1000, 'completed', '2026-04-01')" >/dev/null 2>&1 &
    local straggler=$!
    bg_pids+=("$straggler")
    local pid=""
    for _ in $(seq 1 100); do
        pid="$(q -c "SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND datname = current_database()")"
        [[ -n "$pid" ]] && break
        sleep 0.1
    done
    check "a commit waits for synchronous replication (logged, not visible)" test -n "$pid"
    q -c "INSERT INTO orders VALUES (7000002, 2, 10, 'completed', '2026-04-01')"
    q -o /dev/null -c "SELECT ivm.apply_deltas()"
    check "the later, visible transaction is applied past the invisible one" \
        want "$(q -c "SELECT cardinality(ahead) > 0 FROM ivm.wal_state")/$(q -c "SELECT ivm.verify('wal.order_count')")" "t/0"
    check "the invisible one is not" \
        want "$(q -c "SELECT n FROM wal.order_count")" "$(q -c "SELECT count(*) FROM orders")"
    # Release it: its commit stays (it is in WAL), it becomes visible.
    psql -X -q -d postgres -c "ALTER SYSTEM RESET synchronous_standby_names" -c "SELECT pg_reload_conf()" >/dev/null
    wait "$straggler" || true
    bg_pids=()
    unset PGOPTIONS
    check "released: the straggler's row is there" want "$(q -c "SELECT count(*) FROM orders WHERE order_id = 7000001")" 1
    q -o /dev/null -c "SELECT ivm.apply_deltas()"
    check "next apply: the straggler applied, the later one not twice" \
        want "$(q -c "SELECT n || '/' || total FROM wal.order_count")" "$(q -c "SELECT count(*) || '/' || sum(order_total) FROM orders")"
    check "nothing left ahead of the progress" want "$(q -c "SELECT ahead IS NULL FROM ivm.wal_state")" t
    check "every view exact after the straggler" exact

    # An apply rolled back to a savepoint takes its progress along; two applies in one
    # transaction take each change once.
    q -c "INSERT INTO orders VALUES (7000003, 3, 7, 'completed', '2026-04-01')" \
      -c "BEGIN" -c "SAVEPOINT s" -c "SELECT ivm.apply_deltas()" -c "ROLLBACK TO SAVEPOINT s" -c "COMMIT" >/dev/null
    check "an apply rolled back to a savepoint left its changes pending" \
        test "$(q -c "SELECT ivm.verify('wal.order_count')")" -gt 0
    q -c "BEGIN" -c "SELECT ivm.apply_deltas()" -c "INSERT INTO orders VALUES (7000004, 4, 8, 'completed', '2026-04-01')" \
      -c "SELECT ivm.apply_deltas()" -c "COMMIT" >/dev/null
    q -c "INSERT INTO orders VALUES (7000005, 5, 9, 'completed', '2026-04-01')" -c "SELECT ivm.apply_deltas()" >/dev/null
    check "then applied once each" \
        want "$(q -c "SELECT n || '/' || total FROM wal.order_count")" "$(q -c "SELECT count(*) || '/' || sum(order_total) FROM orders")"
}

# ---------------------------------------------------------------------------------------------
# worker and crash: database walw, applied by the background worker.
# ---------------------------------------------------------------------------------------------
walw_schema() {
    db=walw
    q <<'SQL'
CREATE EXTENSION ivm;
CREATE TABLE orders (order_id int PRIMARY KEY, customer_id int, order_total numeric, order_status text);
CREATE TABLE customers (customer_id int PRIMARY KEY, tier text);
INSERT INTO customers SELECT g, (ARRAY['gold', 'silver', 'bronze'])[1 + g % 3] FROM generate_series(1, 2000) g;
INSERT INTO orders SELECT g, 1 + g % 2000, g % 100, (ARRAY['paid', 'open'])[1 + g % 2] FROM generate_series(1, 20000) g;
SELECT ivm.create_view('order_count', 'SELECT count(*) AS n, sum(order_total) AS total FROM orders', mode => 'wal');
SELECT ivm.create_view('per_customer', $$
    SELECT customer_id, count(*) AS n, sum(order_total) AS total, max(order_total) AS biggest
    FROM orders GROUP BY customer_id $$, mode => 'wal');
SELECT ivm.create_view('per_tier', $$
    SELECT c.tier, o.order_status, count(*) AS n, sum(o.order_total) AS total
    FROM orders o JOIN customers c ON c.customer_id = o.customer_id GROUP BY c.tier, o.order_status $$, mode => 'wal');
SELECT ivm.create_view('per_tier_deferred', $$
    SELECT c.tier, count(DISTINCT o.customer_id) AS buyers
    FROM orders o JOIN customers c ON c.customer_id = o.customer_id GROUP BY c.tier $$, mode => 'deferred');
SQL
}

counted() {   # the count view equals the table
    want "$(q -c "SELECT n || '/' || coalesce(total, 0) FROM order_count")" \
         "$(q -c "SELECT count(*) || '/' || coalesce(sum(order_total), 0) FROM orders")"
}

caught_up() {   # waits (up to 60 s) until the worker has applied everything committed now
    local lsn
    lsn="$(q -c "SELECT pg_current_wal_lsn()")"
    for _ in $(seq 1 300); do
        [[ "$(q -c "SELECT coalesce((SELECT applied_lsn >= '$lsn' FROM ivm.wal_state), false)")" == t ]] && return 0
        sleep 0.2
    done
    say "  the worker did not catch up with $lsn"
    return 1
}

scenario_worker() {
    say "scenario worker"
    walw_schema
    q -c "UPDATE orders SET order_total = order_total + 1 WHERE order_id % 10 = 0" \
      -c "DELETE FROM orders WHERE order_id % 17 = 0" \
      -c "INSERT INTO orders SELECT g, 1 + g % 2000, 5, 'open' FROM generate_series(30001, 31000) g"
    check "worker catches up by itself" caught_up
    check "views exact, applied by the worker" exact
    check "count view = the table" counted
    check "ivm.status counts the worker's applies" \
        test "$(q -c "SELECT applies FROM ivm.status WHERE view = 'order_count'::regclass")" -gt 0
    # DROP EXTENSION cannot drop the slot; the worker drops what the extension left.
    q -c "DROP EXTENSION ivm CASCADE" >/dev/null
    gone() {
        for _ in $(seq 1 100); do
            [[ "$(q -c "SELECT (SELECT count(*) FROM pg_replication_slots WHERE database = current_database()) +
                        (SELECT count(*) FROM pg_replication_origin WHERE roname = 'ivm_' ||
                            (SELECT oid FROM pg_database WHERE datname = current_database()))")" == 0 ]] && return 0
            sleep 0.2
        done
        return 1
    }
    check "after DROP EXTENSION the worker drops the slot and origin left behind" gone
    q -c "DROP TABLE orders, customers" >/dev/null   # walw_schema makes them again
}

scenario_crash() {
    db=walw
    [[ "$(q -c "SELECT count(*) FROM ivm.views WHERE viewid = to_regclass('order_count')" 2>/dev/null || echo 0)" == 1 ]] || walw_schema
    say "scenario crash 1: kill -9 while the worker applies a large batch"
    # The worker pauses (a long interval), a large batch is committed, the worker wakes up.
    psql -X -q -d postgres -c "ALTER SYSTEM SET ivm.apply_interval = '1h'" -c "SELECT pg_reload_conf()" >/dev/null
    sleep 1
    q -c "INSERT INTO orders SELECT g, 1 + g % 2000, g % 50, 'open' FROM generate_series(100001, 160000) g" \
      -c "UPDATE orders SET order_total = order_total + 2 WHERE order_id BETWEEN 100001 AND 130000" \
      -c "DELETE FROM orders WHERE order_id BETWEEN 130001 AND 140000"
    local before batch_end
    before="$(q -c "SELECT applied_lsn FROM ivm.wal_state")"
    batch_end="$(q -c "SELECT pg_current_wal_lsn()")"
    psql -X -q -d postgres -c "ALTER SYSTEM SET ivm.apply_interval = '200ms'" -c "SELECT pg_reload_conf()" >/dev/null
    local busy=0
    for _ in $(seq 1 200); do
        busy="$(q -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'ivm apply worker'
                      AND state = 'active' AND now() - query_start > interval '0.5 second'")"
        [[ "$busy" == 1 ]] && break
        sleep 0.05
    done
    check "the worker was applying for over half a second when killed" want "$busy" 1
    crash_server
    start_server
    check "the batch was not applied before the crash" \
        want "$(q -c "SELECT applied_lsn < '$batch_end' FROM ivm.wal_state")" t
    say "  applied before the batch: $before; batch ends at $batch_end"
    check "after the restart the worker catches up" caught_up
    check "views exact after crash 1" exact
    check "count view = the table after crash 1 (nothing twice, nothing lost)" counted

    say "scenario crash 2: kill -9 while writers commit and the worker applies"
    local work="$IVM_CLUSTER_DIR/crash2" w
    mkdir -p "$work"
    for w in 1 2 3; do
        (
            i=0
            while :; do
                i=$((i + 1))
                id=$((1000000 * w + i))
                psql -X -qAt -d "$db" -c "BEGIN" \
                    -c "INSERT INTO orders VALUES ($id, $((i % 2000 + 1)), $((i % 90)), 'paid')" \
                    -c "UPDATE orders SET order_total = order_total + 1 WHERE order_id = $((i * 7 % 20000 + 1))" \
                    -c "DELETE FROM orders WHERE order_id = $((1000000 * w + i - 3))" \
                    -c "COMMIT" >/dev/null 2>&1 || break
                echo "$id" >>"$work/acked_$w"
            done
        ) &
        bg_pids+=($!)
    done
    sleep 4
    crash_server
    for w in "${bg_pids[@]}"; do wait "$w" 2>/dev/null || true; done
    bg_pids=()
    start_server
    local acked missing
    acked="$(cat "$work"/acked_* | wc -l)"
    missing=0
    for w in 1 2 3; do
        local last
        last="$(tail -1 "$work/acked_$w" 2>/dev/null || echo 0)"
        [[ "$last" == 0 ]] && continue
        [[ "$(q -c "SELECT count(*) FROM orders WHERE order_id = $last")" == 1 ]] || missing=$((missing + 1))
    done
    say "  $acked acknowledged transactions"
    check "acknowledged transactions survived ($acked)" test "$missing" = 0 -a "$acked" -gt 0
    check "after the restart the worker catches up" caught_up
    check "views exact after crash 2" exact
    check "count view = the table after crash 2" counted
}

scenario_fuzz() {
    db=walf
    say "scenario fuzz"
    psql -X -q -d postgres -c "CREATE DATABASE $db"
    check "differential fuzzer, mode wal" \
        env PGDATABASE="$db" python3 test/fuzz/fuzz.py --statements "${IVM_FUZZ_STATEMENTS:-2000}" \
            --seed "${IVM_FUZZ_SEED:-1}" --mode wal
}

for s in $scenarios; do
    case "$s" in
        views) scenario_views ;;
        status) scenario_status ;;
        straggler) scenario_straggler ;;
        worker) scenario_worker ;;
        crash) scenario_crash ;;
        fuzz) scenario_fuzz ;;
        *) echo "unknown scenario $s" >&2; exit 2 ;;
    esac
done

echo "wal: $checks checks, $failures failed"
((failures == 0))
