#!/usr/bin/env bash
# test/large.sh: ivm.create_view on a large table reports progress and can be cancelled,
# leaving nothing behind.
#
# Runs against the server PGHOST/PGPORT point at (test/run's throwaway cluster), in a database
# of its own (ivm_large, dropped at the end).  Table `big` gets IVM_LARGE_ROWS rows (default
# 2,000,000; the default run stays well under a minute) and already has one incremental view,
# so its capture triggers and ivm's per-backend caches are in play.  Then:
#
#   1. statement_timeout: create_view of a view over every row of `big` is stopped by a
#      timeout after it has reported progress; in the same session, ivm's catalog, ivm_state,
#      pg_depend and the triggers are as before, writes to `big` work and the other view is
#      exact (the aborted transaction left no per-backend state behind).
#   2. pg_cancel_backend: the same create_view in another session is cancelled from here as
#      soon as its first progress NOTICE arrives (so the cancel lands mid-populate); again
#      nothing is left behind.
#   3. a create_view that completes reports progress every ivm.progress_rows input rows and a
#      final total, and the view is exact and maintained.
#
# Ends with "large: N checks, M failed"; exits non-zero if any failed.
set -euo pipefail

cd "$(dirname "$0")/.."
rows="${IVM_LARGE_ROWS:-2000000}"
db=ivm_large
work="$(mktemp -d /tmp/ivm-large.XXXXXX)"
bg=""
cleanup() {
    [[ -z "$bg" ]] || kill "$bg" 2>/dev/null || true
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

checks=0 failed=0
check() {   # check <description> <command...>
    checks=$((checks + 1))
    if "${@:2}"; then
        echo "ok:     $1"
    else
        echo "FAILED: $1"
        failed=$((failed + 1))
    fi
}

q() { psql -X -q -t -A -v ON_ERROR_STOP=1 -d "$db" "$@"; }

# What ivm owns, in one line: any difference after a cancelled create_view is a leftover.
footprint_sql="
SELECT concat_ws(' ',
  (SELECT count(*) FROM ivm.views), 'views',
  (SELECT count(*) FROM ivm.dependencies), 'dependencies',
  (SELECT count(*) FROM ivm.delta_tables), 'delta tables',
  (SELECT count(*) FROM pg_class WHERE relnamespace = 'ivm_state'::regnamespace), 'ivm_state relations',
  (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace), 'public relations',
  (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal), 'triggers',
  (SELECT count(*) FROM pg_depend WHERE refclassid = 'pg_extension'::regclass), 'extension dependencies',
  (SELECT count(*) FROM pg_depend d JOIN pg_class c ON c.oid = d.refobjid
     WHERE d.refclassid = 'pg_class'::regclass AND c.relname = 'big'), 'dependencies on big')"

psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
start=$SECONDS
q >/dev/null <<SQL
CREATE EXTENSION ivm;
CREATE TABLE big (id bigint, k int, v int);
INSERT INTO big SELECT g, g % 1000, g % 7919 FROM generate_series(1, $rows) g;
ANALYZE big;
SET ivm.progress_rows = 0;
SELECT ivm.create_view('small', 'SELECT k, count(*) AS n, sum(v) AS s FROM big WHERE k < 10 GROUP BY k');
SQL
echo "big: $rows rows, loaded in $((SECONDS - start)) s"
before="$(q -c "$footprint_sql")"
echo "before: $before"

# The view that will not be created: every row of big, so populating it takes a while.
create="SELECT ivm.create_view('big_v', 'SELECT id, k, v FROM big');"

# --- 1. statement_timeout ------------------------------------------------------------------
interval=$((rows / 40))
psql -X -q -t -A -d "$db" >"$work/1.out" 2>&1 <<SQL || true
\\set VERBOSITY verbose
SET ivm.progress_rows = $interval;
SET statement_timeout = '1s';
$create
RESET statement_timeout;
$footprint_sql;
-- The same backend goes on: writes to big are maintained, nothing names big_v.
INSERT INTO big SELECT g, g % 1000, 1 FROM generate_series(-100, -1) g;
UPDATE big SET v = v + 1 WHERE id BETWEEN 1 AND 50;
DELETE FROM big WHERE id BETWEEN 51 AND 60;
SELECT 'verify small: ' || ivm.verify('small');
SQL
grep -E 'NOTICE' "$work/1.out" | sed -n '1,2p'; grep -vE 'NOTICE|LOCATION' "$work/1.out"
check "timeout: progress was reported before the cancel" grep -q 'populating incremental view public.big_v: [0-9]* input rows read' "$work/1.out"
check "timeout: create_view was cancelled (57014)" grep -q 'ERROR:  57014: canceling statement due to statement timeout' "$work/1.out"
check "timeout: the view was not populated" bash -c "! grep -q 'big_v populated' '$work/1.out'"
check "timeout: nothing left behind" grep -qxF "$before" "$work/1.out"
check "timeout: the same session then maintains the other view exactly" grep -qx 'verify small: 0' "$work/1.out"
check "timeout: big_v does not exist" test "$(q -c "SELECT to_regclass('big_v') IS NULL")" = t

# --- 2. pg_cancel_backend, mid-populate ----------------------------------------------------
psql -X -d "$db" >"$work/2.out" 2>&1 <<SQL &
\\set VERBOSITY verbose
SET application_name = 'ivm_large_cancel';
SET ivm.progress_rows = $interval;
$create
SQL
bg=$!
for _ in $(seq 1 600); do
    grep -q 'populating incremental view' "$work/2.out" && break
    sleep 0.1
done
# The pid first, then the cancel: in one query the planner may call
# pg_cancel_backend() before filtering on application_name.
pid="$(q -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'ivm_large_cancel'")"
cancelled="$(q -c "SELECT pg_cancel_backend(${pid:-0})")"
wait "$bg" || true
bg=""
grep -E 'NOTICE|ERROR' "$work/2.out" | sed -n '1,2p;/ERROR/p'
check "cancel: it was under way (progress reported) when cancelled" test "$cancelled" = t
check "cancel: create_view was cancelled (57014)" grep -q 'ERROR:  57014: canceling statement due to user request' "$work/2.out"
check "cancel: the view was not populated" bash -c "! grep -q 'big_v populated' '$work/2.out'"
after="$(q -c "$footprint_sql")"
echo "after:  $after"
check "cancel: nothing left behind" test "$after" = "$before"

# --- 3. a create_view that completes ---------------------------------------------------------
psql -X -q -t -A -v ON_ERROR_STOP=1 -d "$db" >"$work/3.out" 2>&1 <<SQL
SET ivm.progress_rows = $((rows / 4));
SELECT ivm.create_view('big_agg', 'SELECT k, count(*) AS n, sum(v) AS s, max(id) AS top FROM big GROUP BY k');
INSERT INTO big SELECT g, g % 1000, 2 FROM generate_series(-200, -101) g;
UPDATE big SET k = k + 1 WHERE id BETWEEN 100 AND 120;
DELETE FROM big WHERE id = (SELECT max(id) FROM big);
SELECT 'verify big_agg: ' || ivm.verify('big_agg');
SELECT 'verify small: ' || ivm.verify('small');
SQL
grep -E 'NOTICE|verify' "$work/3.out"
check "complete: progress every ivm.progress_rows input rows" \
    test "$(grep -c 'populating incremental view public.big_agg: [0-9]* input rows read' "$work/3.out")" -ge 4
check "complete: a final total" grep -q "incremental view public.big_agg populated: [0-9]* input rows read, [0-9]* rows" "$work/3.out"
check "complete: the views are exact after writes" \
    bash -c "grep -qx 'verify big_agg: 0' '$work/3.out' && grep -qx 'verify small: 0' '$work/3.out'"

echo "large: $checks checks, $failed failed ($((SECONDS - start)) s)"
((failed == 0))
