#!/usr/bin/env bash
# test/decode.sh: the ivm output plugin (logical decoding) end to end.
#
# Starts its own throwaway cluster (port ${IVM_DECODE_PORT:-55439}; it never uses PGHOST: it
# needs wal_level = logical and ivm in output_plugin_libraries where the server has that
# setting), then:
#
#   1. pg_regress test/decode/sql/decode.sql: pg_logical_slot_get_changes with the plugin;
#      record format, typed values, rollbacks, savepoints, TRUNCATE, views created and dropped
#      mid-stream, options and their errors (expected output in test/decode/expected/).
#   2. Two real `pg_recvlogical -P ivm` consumers stream while a random workload runs on the
#      Customer 360 tables (test/decode/workload.py, ${IVM_DECODE_TRANSACTIONS:-400}
#      transactions, seed ${IVM_DECODE_SEED:-1}): consumer A with -o views=<four of the seed
#      views>, consumer B with every view and -o include-base.  Both slots exist before the
#      views and the data, so the streams hold everything.  Then each stream's shape is checked
#      (test/decode/check_stream.py: transactions, selected relations only, no trace of undone
#      work), each is replayed onto empty copies of its views (B: and of the base tables) by
#      test/decode/replay.sql, and every copy must equal its original (EXCEPT ALL both ways,
#      and not empty).
#
# IVM_DECODE_KEEP=1 leaves the cluster running at the end (its directory is printed).
# Ends with "decode: N checks, M failed"; exits non-zero if any failed.
set -euo pipefail

cd "$(dirname "$0")/.."
# Our own cluster, always: the caller's server may not have wal_level = logical.
unset PGHOST PGPORT PGUSER PGDATABASE
# shellcheck source=test/lib/cluster.sh
source test/lib/cluster.sh
CHECKS_TAG=decode
# shellcheck source=test/lib/checks.sh
source test/lib/checks.sh

port="${IVM_DECODE_PORT:-55439}"
transactions="${IVM_DECODE_TRANSACTIONS:-400}"
seed="${IVM_DECODE_SEED:-1}"
db=ivm_decode
consumers=()

cleanup() {
    stop_pids "${consumers[@]}"
    if [[ "${IVM_DECODE_KEEP:-0}" == 1 && -n "$IVM_CLUSTER_DIR" ]]; then
        echo "IVM_DECODE_KEEP: cluster left running: PGHOST=$IVM_CLUSTER_DIR PGPORT=$port, database $db"
        return
    fi
    ivm_cluster_stop
}
trap cleanup EXIT
trap 'exit 1' INT TERM

q() { psql -X -qAt -v ON_ERROR_STOP=1 -d "$db" "$@"; }

# ---------------------------------------------------------------------------------------------
# The cluster: logical decoding on, ivm allowed as an output plugin.
# ---------------------------------------------------------------------------------------------
ivm_cluster_start "$port"
work="$IVM_CLUSTER_DIR/decode"
mkdir -p "$work"
ivm_cluster_logical
[[ "$(psql -X -qAt -d postgres -c 'SHOW wal_level')" == logical ]] || { echo "wal_level is not logical" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# 1. pg_regress: the SQL interface.
# ---------------------------------------------------------------------------------------------
regress_ok() {
    local regress
    regress="$(dirname "$("$PG_CONFIG" --pgxs)")/../test/regress/pg_regress"
    "$regress" --bindir="$IVM_PG_BIN" --inputdir=test/decode --outputdir="$work/regress" \
        --dbname=ivm_decode_regress decode && return 0
    cat "$work/regress/regression.diffs" 2>/dev/null || true
    return 1
}
say "pg_regress test/decode/sql/decode.sql"
check "pg_regress decode (pg_logical_slot_get_changes)" regress_ok

# ---------------------------------------------------------------------------------------------
# 2. Streaming with pg_recvlogical during a random workload.
# ---------------------------------------------------------------------------------------------
views_a="customer_order_summary,customer_360,customer_churn_risk,churn_alerts"
views_all="customer_order_summary,customer_support_summary,customer_web_activity,customer_360,customer_churn_risk,churn_alerts"
tables="customers,orders,support_tickets,web_activity"

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $db"
# The seed tables empty in public (their rows wait in schema seed), a table no view reads, and
# the two slots, before any view exists.
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
SELECT pg_create_logical_replication_slot('a', 'ivm') AS a \gset
SELECT pg_create_logical_replication_slot('b', 'ivm') AS b \gset
SQL

start_consumer() {   # start_consumer <slot> <options...>
    local slot="$1"
    shift
    "$IVM_PG_BIN/pg_recvlogical" -d "$db" --slot "$slot" --start --no-loop -s 1 -F 1 \
        -f "$work/$slot.jsonl" "$@" 2>"$work/$slot.err" &
    consumers+=($!)
}
start_consumer a -o "views=$views_a"
start_consumer b -o include-base
say "consumers started: pg_recvlogical pids ${consumers[*]}"

start=$SECONDS
q -o /dev/null -f demo/views_ivm.sql
q -c "INSERT INTO customers TABLE seed.customers" -c "INSERT INTO orders TABLE seed.orders" \
  -c "INSERT INTO support_tickets TABLE seed.support_tickets" -c "INSERT INTO web_activity TABLE seed.web_activity"
python3 test/decode/workload.py --transactions "$transactions" --seed "$seed" >"$work/workload.sql"
q -f "$work/workload.sql"
# The last transaction: once both streams show it, they hold everything before it.  Its
# customer has an alert (so churn_alerts is not empty at the end, whatever the workload did).
q -c "BEGIN" \
  -c "INSERT INTO customers VALUES (99999, 'end@example.com', 'stream-sentinel', '2026-04-01', 'standard')" \
  -c "INSERT INTO orders VALUES (99999, 99999, 800.00, 'completed', '2026-04-01')" \
  -c "INSERT INTO support_tickets VALUES (99999, 99999, 'late', 'high', 'open', '2026-04-01', NULL)" \
  -c "COMMIT"
say "views created, seed rows loaded, workload of $transactions transactions run ($((SECONDS - start)) s)"

for _ in $(seq 1 600); do
    grep -q stream-sentinel "$work/a.jsonl" 2>/dev/null && grep -q stream-sentinel "$work/b.jsonl" 2>/dev/null && break
    for p in "${consumers[@]}"; do
        kill -0 "$p" 2>/dev/null || { echo "pg_recvlogical $p ended early:" >&2; cat "$work"/*.err >&2; exit 1; }
    done
    sleep 0.5
done
for p in "${consumers[@]}"; do kill -INT "$p"; done
for p in "${consumers[@]}"; do wait "$p" || true; done
consumers=()
say "streams received ($((SECONDS - start)) s): $(wc -l <"$work/a.jsonl") lines (A), $(wc -l <"$work/b.jsonl") lines (B)"
check "stream A reached the end of the workload" grep -q stream-sentinel "$work/a.jsonl"
check "stream B reached the end of the workload" grep -q stream-sentinel "$work/b.jsonl"

relations() {   # relations <kind> <names>: kind:public.name,... for check_stream.py
    local kind="$1" out="" n
    IFS=, read -ra names <<<"$2"
    for n in "${names[@]}"; do out+="${out:+,}$kind:public.$n"; done
    echo "$out"
}
check "stream A: transactions, only its four views, nothing undone" \
    python3 test/decode/check_stream.py "$work/a.jsonl" --relations "$(relations view "$views_a")"
check "stream B: transactions, every view and base table (not notes), nothing undone" \
    python3 test/decode/check_stream.py "$work/b.jsonl" \
    --relations "$(relations view "$views_all"),$(relations table "$tables")"

# Replay each stream onto empty copies, compare every copy with its original.
q -f test/decode/replay.sql
for s in a b; do
    # CSV with a quote and a delimiter that never occur: each line is one field, backslashes kept.
    q -c "\\copy replay.incoming (line) FROM '$work/$s.jsonl' WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02')" \
      -c "INSERT INTO replay.stream (stream, line) SELECT '$s', line FROM replay.incoming ORDER BY n" \
      -c "TRUNCATE replay.incoming"
done
q -c "CREATE SCHEMA copy_a" -c "CREATE SCHEMA copy_b"
IFS=, read -ra list_a <<<"$views_a"
IFS=, read -ra list_b <<<"$views_all,$tables"
for v in "${list_a[@]}"; do q -c "CREATE TABLE copy_a.$v (LIKE public.$v)"; done
for v in "${list_b[@]}"; do q -c "CREATE TABLE copy_b.$v (LIKE public.$v)"; done

replayed() {   # replayed <stream> <schema>: replays, prints how many changes were applied
    local n
    n="$(q -c "SELECT replay.run('$1', '$2')")" || return 1
    say "stream ${1^^}: $n changes replayed onto schema $2"
    ((n > 0))
}
check "stream A replays" replayed a copy_a
check "stream B replays" replayed b copy_b

same() {   # same <schema> <relation>: the copy equals the original, which is not empty
    local rows diff
    rows="$(q -c "SELECT count(*) FROM public.$2")"
    diff="$(q -c "SELECT replay.differences('public.$2', '$1.$2')")"
    say "  $1.$2: $rows rows, $diff differing"
    [[ "$diff" == 0 && "$rows" -gt 0 ]]
}
for v in "${list_a[@]}"; do check "stream A rebuilds $v" same copy_a "$v"; done
for v in "${list_b[@]}"; do check "stream B rebuilds $v" same copy_b "$v"; done

# The views themselves were right all along (what the streams were compared with).
bad="$(q -c "SELECT count(*) FROM ivm.views WHERE NOT internal AND ivm.verify(viewid::regclass::text) <> 0")"
check "every view exact (ivm.verify)" test "$bad" = 0

echo "decode: $checks checks, $failures failed"
((failures == 0))
