# shellcheck shell=bash
# bench/lib.sh: what bench/run, bench/oltp, bench/bulk and bench/suite share.  Source it (after
# test/lib/cluster.sh); do not execute it.
#
#   bench_views DIR          the benchmark's views, in creation order: every
#                            `SELECT ivm.create_view('name', $$ ... $$);` of demo/views_ivm.sql
#                            (the five seed views + churn_alerts), then of bench/views_extra.sql
#                            (tier_summary); writes DIR/views.list and DIR/<name>.sql, sets the
#                            array `views`
#   bench_cluster_start P    a throwaway cluster on port P with the benchmark's server settings
#                            (below); with PGHOST set, uses that server and checks it instead
#   bench_settings           "name=value" lines: the server settings a report must state
#   bench_build_id           the ivm build installed in IVM_PG_BIN (md5 of ivm.so and of the SQL)
#   bench_loadavg            the 1-minute load average
#   bench_data DB N          database DB with N customers (bench/gen.sql) and the sequence of
#                            fresh ticket ids pgbench/oltp.sql draws from
#   bench_add_views DB       the six views of demo/views_ivm.sql in DB, in mode $MODE (default
#                            deferred), then VACUUM ANALYZE
#   bench_deferred_views DB N  bench_data, then bench_add_views
#   bench_timed_apply DB S N the CPU of one deferred apply: the appliers' lock is held while pgbench
#                            (2 clients, pgbench/oltp.sql over N customers) writes for S seconds,
#                            then everything is applied at once (alone: its wall time is its CPU);
#                            prints "transactions seconds view_rows"
#   bench_backend_cpu DB N C one session runs N mixed OLTP transactions (the four writes of
#                            pgbench/oltp.sql, over C customers, each transaction committed) and
#                            reads its own CPU time from /proc (utime + stime, 10 ms ticks):
#                            prints "cpu_ms_per_tx wall_ms_per_tx".  One backend's CPU is what the
#                            writes and their maintenance cost, whatever else the box is doing.
#
# The benchmark's server settings, the same for every configuration of every script (a
# throwaway cluster gets them at its start, before anything is generated or measured):
#   fsync = off, max_locks_per_transaction = 256       (test/lib/cluster.sh)
#   shared_buffers = $IVM_BENCH_SHARED_BUFFERS           (default 2GB: 1M customers fit)
#   max_wal_size = 8GB, min_wal_size = 1GB, checkpoint_timeout = 30min
#                                                        (checkpoints don't dominate bulk writes)
#   wal_level = logical, max_replication_slots = 10, max_wal_senders = 10,
#   output_plugin_libraries = 'pgoutput, test_decoding, ivm' (only where the setting exists)
#                                                        (the 'wal' configuration needs them)
#   shared_preload_libraries = 'ivm', ivm.databases = $BENCH_IVM_DATABASES,
#   ivm.apply_interval = 1s                              (the background worker, bench/oltp)
#   max_worker_processes = 16                            (one ivm worker per database listed:
#                                                        the default 8 would leave some without)
# Extra lines for postgresql.conf may be given in IVM_BENCH_EXTRA_CONF (newline-separated).

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH_IVM_DATABASES="oltp_none,oltp_immediate,oltp_deferred,oltp_wal,oltp_triggers,oltp_immediate6,oltp_mixed,oltp_batched,oltp_batched7,oltp_triggers6"
IVM_BENCH_SHARED_BUFFERS="${IVM_BENCH_SHARED_BUFFERS:-2GB}"
BENCH_SETTINGS=(shared_buffers max_wal_size min_wal_size checkpoint_timeout wal_level fsync
                synchronous_commit full_page_writes work_mem maintenance_work_mem jit
                max_locks_per_transaction autovacuum max_replication_slots
                shared_preload_libraries ivm.databases ivm.apply_interval output_plugin_libraries
                max_worker_processes)

bench_views() {
    local dir="$1" f
    : >"$dir/views.list"
    for f in "$IVM_ROOT/demo/views_ivm.sql" "$BENCH_DIR/views_extra.sql"; do
        awk -v dir="$dir" '
            /^SELECT ivm\.create_view\(/ {
                match($0, /\x27[a-z_0-9]+\x27/); name = substr($0, RSTART + 1, RLENGTH - 2)
                inq = 1; body = ""; print name >> (dir "/views.list"); next
            }
            inq && /^\$\$\);/ { inq = 0; printf "%s", body > (dir "/" name ".sql"); close(dir "/" name ".sql"); next }
            inq { body = body $0 "\n" }
        ' "$f"
    done
    mapfile -t views <"$dir/views.list"
    ((${#views[@]} == 7)) || {
        echo "expected 7 views (demo/views_ivm.sql + bench/views_extra.sql), found ${#views[@]}" >&2
        return 1; }
}

bench_cluster_start() {
    local port="$1"
    if [[ -n "${PGHOST:-}" ]]; then
        echo "PGHOST is set ($PGHOST): using the existing server with its settings"
        return 0
    fi
    ivm_cluster_start "$port" || return 1
    local conf="$IVM_CLUSTER_DIR/data/postgresql.conf" has_opl
    has_opl=$(psql -X -qAt -d postgres -c \
        "SELECT count(*) FROM pg_settings WHERE name = 'output_plugin_libraries'")
    {
        echo
        echo "# --- bench/lib.sh: the benchmark's settings, the same for every configuration ---"
        echo "shared_buffers = $IVM_BENCH_SHARED_BUFFERS"
        echo "max_wal_size = 8GB"
        echo "min_wal_size = 1GB"
        echo "checkpoint_timeout = 30min"
        echo "wal_level = logical"
        echo "max_replication_slots = 10"
        echo "max_wal_senders = 10"
        [[ "$has_opl" == 1 ]] && echo "output_plugin_libraries = 'pgoutput, test_decoding, ivm'"
        echo "shared_preload_libraries = 'ivm'"
        echo "ivm.databases = '$BENCH_IVM_DATABASES'"
        echo "ivm.apply_interval = 1s"
        echo "max_worker_processes = 16"
        [[ -n "${IVM_BENCH_EXTRA_CONF:-}" ]] && printf '%s\n' "$IVM_BENCH_EXTRA_CONF"
    } >>"$conf"
    (cd "$IVM_CLUSTER_DIR" && runuser -u postgres -- "$IVM_PG_BIN/pg_ctl" -D "$IVM_CLUSTER_DIR/data" \
        -l "$IVM_CLUSTER_DIR/server.log" -m fast -w restart >/dev/null) || {
        echo "the benchmark cluster failed to restart with its settings; log:" >&2
        tail -n 30 "$IVM_CLUSTER_DIR/server.log" >&2
        return 1
    }
    echo "benchmark cluster up: PGHOST=$PGHOST PGPORT=$PGPORT shared_buffers=$IVM_BENCH_SHARED_BUFFERS" \
         "wal_level=logical shared_preload_libraries=ivm"
}

bench_settings() {
    local in
    in=$(printf "'%s'," "${BENCH_SETTINGS[@]}")
    psql -X -qAt -d postgres -c "SELECT name || '=' || current_setting(name)
        FROM pg_settings WHERE name IN (${in%,}) ORDER BY name"
}

bench_build_id() {
    local so sql_file
    so="$("$IVM_PG_BIN/pg_config" --pkglibdir)/ivm.so"
    sql_file="$("$IVM_PG_BIN/pg_config" --sharedir)/extension/ivm.control"   # and every ivm--*.sql beside it
    echo "ivm.so md5 $(md5sum <"$so" | cut -c1-12), scripts md5 $(cat "${sql_file%/*}"/ivm*.sql | md5sum | cut -c1-8)" \
         "(ivm.so of $(date -u -r "$so" '+%Y-%m-%d %H:%M:%S UTC'))"
}

bench_loadavg() { cut -d ' ' -f 1 /proc/loadavg; }

# bench_space DB: per view (not internal): name, rows, the view table's heap (+TOAST) bytes, its
# indexes' bytes, the bytes of the ivm_state relations that belong to it (aggregate state
# s_<oid>, key locks k_<oid>, and the tables of its internal views with their own s_/k_, each
# with its indexes and TOAST), and their names; tab-separated.  Then one line per delta table
# (deferred mode: shared by every deferred view reading the base table): "delta:<table>", 0,
# bytes (with indexes), 0, pending rows, views reading it.  Then "unattributed" with the bytes
# of any other ivm_state relation.
bench_space() {
    psql -X -qAt -F $'\t' -v ON_ERROR_STOP=1 -d "$1" <<'SQL'
WITH RECURSIVE owned(top, rel) AS (
    SELECT viewid, viewid FROM ivm.views WHERE NOT internal
    UNION ALL
    SELECT o.top, v.viewid FROM owned o JOIN ivm.views v ON v.parent = o.rel AND v.internal),
state(top, relid) AS (
    SELECT top, rel::regclass FROM owned WHERE rel <> top
    UNION ALL SELECT top, to_regclass('ivm_state.s_' || rel::oid) FROM owned
    UNION ALL SELECT top, to_regclass('ivm_state.k_' || rel::oid) FROM owned),
per_view AS (
    SELECT v.viewid, v.name,
           coalesce(sum(pg_total_relation_size(s.relid)), 0) AS state_bytes,
           coalesce(string_agg(s.relid::text, ' ' ORDER BY s.relid::text), '') AS state_rels
    FROM ivm.views v LEFT JOIN state s ON s.top = v.viewid AND s.relid IS NOT NULL
    WHERE NOT v.internal GROUP BY v.viewid, v.name)
SELECT regexp_replace(name, '^public\.', ''), pg_stat_get_live_tuples(viewid), pg_table_size(viewid), pg_indexes_size(viewid),
       state_bytes, state_rels
FROM per_view
UNION ALL
SELECT 'delta:' || dt.relid::regclass, 0, pg_total_relation_size(dt.name::regclass), 0,
       (SELECT p.changes FROM ivm.delta_pending() p WHERE p.relid = dt.relid),
       (SELECT string_agg(regexp_replace(v.name, '^public\.', ''), ' ' ORDER BY v.name)
        FROM ivm.dependencies d JOIN ivm.views v USING (viewid)
        WHERE d.relid = dt.relid AND v.mode <> 'immediate')
FROM ivm.delta_tables dt
UNION ALL
SELECT 'unattributed', 0, coalesce(sum(pg_total_relation_size(c.oid)), 0), 0, count(*), ''
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'ivm_state' AND c.relkind IN ('r', 'm')
  AND c.relname !~ '^(s|k|delta)_[0-9]+$'
  AND c.oid NOT IN (SELECT viewid FROM ivm.views)
SQL
}

bench_data() {
    local db="$1" n="$2"
    psql -X -q -d postgres -c "CREATE DATABASE $db"
    psql -X -q -v ON_ERROR_STOP=1 -d "$db" -v N="$n" -f "$BENCH_DIR/gen.sql" >/dev/null
    psql -X -q -v ON_ERROR_STOP=1 -d "$db" \
        -c "CREATE SEQUENCE bench_ticket_id START $(awk -v n="$n" 'BEGIN { printf "%.0f", 1.3 * n + 1 }')"
}

bench_deferred_views() {
    local db="$1" n="$2"
    bench_data "$db" "$n"
    bench_add_views "$db"
}

bench_add_views() {
    local db="$1" mode="${MODE:-deferred}"
    psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "CREATE EXTENSION ivm" -f "$IVM_ROOT/demo/views_ivm.sql" >/dev/null 2>&1
    if [[ "$mode" != immediate ]]; then
        psql -X -qAt -v ON_ERROR_STOP=1 -d "$db" -c "SELECT ivm.set_mode(viewid::regclass::text, '$mode')
            FROM ivm.views WHERE NOT internal ORDER BY level" >/dev/null
    fi
    psql -X -q -d "$db" -c "VACUUM ANALYZE"
}

bench_timed_apply() {
    local db="$1" seconds="$2" n="$3" out ntx m t
    out="$(mktemp)"
    m=$(awk -v n="$n" 'BEGIN { printf "%.0f", 2.7 * n }')
    t=$(awk -v n="$n" 'BEGIN { printf "%.0f", 1.3 * n }')
    psql -X -qAt -d "$db" -c "SELECT ivm.apply_deltas()" >/dev/null
    psql -X -qAt -v ON_ERROR_STOP=1 -d "$db" >"$out" <<SQL &
BEGIN;
SELECT pg_catalog.pg_advisory_xact_lock(x'69766d6170706c79'::int8);  -- the appliers' lock ("ivmapply")
SELECT pg_sleep($seconds + 1);
SELECT 'start', extract(epoch FROM clock_timestamp());
SELECT 'rows', ivm.apply_deltas();
SELECT 'end', extract(epoch FROM clock_timestamp());
COMMIT;
SQL
    sleep 0.5
    ntx=$(pgbench -n -M prepared -c 2 -j 2 -T "$seconds" -f "$BENCH_DIR/pgbench/oltp.sql" \
              -D N="$n" -D M="$m" -D T="$t" "$db" 2>&1 | awk '/actually processed/ { print $NF }')
    wait
    awk -F'|' -v n="$ntx" '$1 == "start" { a = $2 } $1 == "end" { b = $2 } $1 == "rows" { r = $2 }
        END { printf "%d %.3f %d\n", n, b - a, r }' "$out"
    rm -f "$out"
}

bench_backend_cpu() {
    local db="$1" n="$2" c="$3"
    psql -X -qAt -v ON_ERROR_STOP=1 -d "$db" -v n="$n" -v c="$c" <<'SQL'
CREATE OR REPLACE PROCEDURE pg_temp.oltp(n int, customers int) LANGUAGE plpgsql AS $$
DECLARE
    m int := (SELECT max(order_id) FROM orders);
    t int := (SELECT max(ticket_id) FROM support_tickets);
    st text[] := ARRAY['completed', 'shipped', 'pending', 'cancelled'];
    cid int; oid int; tid int;
BEGIN
    FOR i IN 1..n LOOP
        -- Keys drawn into variables first: a volatile expression in WHERE would scan.
        cid := 1 + floor(random() * customers)::int;
        oid := 1 + floor(random() * m)::int;
        INSERT INTO orders VALUES (nextval('bench_order_id'), cid, (500 + floor(random() * 149500)) / 100.0,
                                   st[1 + floor(random() * 4)::int], now());
        UPDATE orders SET order_status = st[1 + floor(random() * 4)::int] WHERE order_id = oid;
        cid := 1 + floor(random() * customers)::int;
        tid := 1 + floor(random() * t)::int;
        INSERT INTO support_tickets VALUES (nextval('bench_ticket_id'), cid, 'Refund request',
            (ARRAY['low', 'medium', 'high'])[1 + floor(random() * 3)::int], 'open', now(), NULL);
        UPDATE support_tickets SET status = 'resolved', resolved_at = now() WHERE ticket_id = tid;
        COMMIT;
    END LOOP;
END $$;
CALL pg_temp.oltp(50, :c);   -- warm: plans cached, catalogs read
SELECT split_part(s, ' ', 12)::int8 + split_part(s, ' ', 13)::int8 AS t0, clock_timestamp() AS w0
FROM (SELECT split_part(pg_read_file('/proc/' || pg_backend_pid() || '/stat'), ') ', 2) AS s) x \gset
CALL pg_temp.oltp(:n, :c);
SELECT round((split_part(s, ' ', 12)::int8 + split_part(s, ' ', 13)::int8 - :t0) * 10.0 / :n, 4),
       round(extract(epoch FROM clock_timestamp() - :'w0') * 1000 / :n, 4)
FROM (SELECT split_part(pg_read_file('/proc/' || pg_backend_pid() || '/stat'), ') ', 2) AS s) x;
SQL
}
