#!/usr/bin/env bash
# test/cdc.sh: views over tables filled by a subscription (CREATE SUBSCRIPTION) stay exact in
# every mode.
#
# Two throwaway clusters on unix sockets: a publisher (port ${IVM_CDC_PORT:-55441}, plain
# PostgreSQL with wal_level = logical) and a subscriber (port ${IVM_CDC_SUB_PORT:-55442},
# wal_level = logical, ivm).  The publisher holds the Customer 360 tables with their seed rows
# and publishes them; the subscriber creates the same tables empty and the six Customer 360
# views three times (schemas imm, dfr, wal: one per mode) *before* subscribing, so that the
# initial table copy is captured too, then subscribes.  A random workload
# (test/decode/workload.py: inserts, updates of keys and groups, deletes, TRUNCATE,
# rollbacks) runs on the publisher; once the subscription has caught up (the publisher's slot
# confirmed everything the publisher wrote) the subscriber applies its deferred and wal views
# and every view must be exact (ivm.verify = 0), equal across modes, and the subscribed tables
# equal the publisher's.
#
# What PostgreSQL 15 fires on the subscriber: the apply worker fires row triggers only, and only
# ENABLE ALWAYS / ENABLE REPLICA ones, never statement triggers (TRUNCATE triggers excepted);
# the initial copy (COPY) fires statement triggers with their transition tables.  ivm's
# statement triggers are ENABLE ALWAYS, its row trigger ENABLE REPLICA; views in mode wal
# decode the subscriber's own WAL, where the apply worker's writes are like anyone's.
#
# Ends with "cdc: N checks, M failed"; exits non-zero if any failed.
set -euo pipefail

cd "$(dirname "$0")/.."
unset PGHOST PGPORT PGUSER PGDATABASE
# shellcheck source=test/lib/cluster.sh
source test/lib/cluster.sh
CHECKS_TAG=cdc
# shellcheck source=test/lib/checks.sh
source test/lib/checks.sh

pub_port="${IVM_CDC_PORT:-55441}"
sub_port="${IVM_CDC_SUB_PORT:-55442}"
transactions="${IVM_CDC_TRANSACTIONS:-300}"
db=cdc
pub_dir=""

stop_publisher() {
    [[ -n "$pub_dir" ]] || return 0
    (cd "$pub_dir" && runuser -u postgres -- "$IVM_PG_BIN/pg_ctl" -D "$pub_dir/data" -m fast -w stop >/dev/null 2>&1) || true
    rm -rf "$pub_dir"
    pub_dir=""
}
cleanup() {
    # The subscription first: dropping it drops its slot on the publisher.
    [[ -z "${IVM_CLUSTER_DIR:-}" ]] || psql -X -q -d "$db" -c "DROP SUBSCRIPTION IF EXISTS cdc_sub" >/dev/null 2>&1 || true
    ivm_cluster_stop
    stop_publisher
}
trap cleanup EXIT
trap 'exit 1' INT TERM

sub() { psql -X -qAt -v ON_ERROR_STOP=1 -d "$db" "$@"; }
pub() { psql -X -qAt -v ON_ERROR_STOP=1 -h "$pub_dir" -p "$pub_port" -U postgres -d "$db" "$@"; }

# ---------------------------------------------------------------------------------------------
# The publisher: its own directory and socket, like ivm_cluster_start's.
# ---------------------------------------------------------------------------------------------
id postgres >/dev/null 2>&1 || useradd --system --user-group --no-create-home postgres
pub_dir="$(mktemp -d /tmp/ivm-cdc-pub.XXXXXX)"
chown postgres: "$pub_dir"
chmod 0755 "$pub_dir"
(cd "$pub_dir" && runuser -u postgres -- "$IVM_PG_BIN/initdb" -D "$pub_dir/data" -A trust -U postgres \
    -E UTF8 --locale=C.UTF-8 >"$pub_dir/initdb.log")
cat >>"$pub_dir/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$pub_dir'
port = $pub_port
fsync = off
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
CONF
(cd "$pub_dir" && runuser -u postgres -- "$IVM_PG_BIN/pg_ctl" -D "$pub_dir/data" -l "$pub_dir/server.log" -w start >/dev/null)
psql -X -q -h "$pub_dir" -p "$pub_port" -U postgres -d postgres -c "CREATE DATABASE $db"
pub <<'SQL'
\i demo/schema_and_data.sql
CREATE TABLE notes (id serial PRIMARY KEY, body text);
CREATE PUBLICATION cdc_pub FOR TABLE customers, orders, support_tickets, web_activity;
SQL
say "publisher up on $pub_dir port $pub_port"

# ---------------------------------------------------------------------------------------------
# The subscriber: tables, views in every mode, then the subscription.
# ---------------------------------------------------------------------------------------------
ivm_cluster_start "$sub_port"
ivm_cluster_logical
psql -X -q -d postgres -c "CREATE DATABASE $db"
sub <<'SQL'
CREATE EXTENSION ivm;
CREATE SCHEMA seed;
SET search_path = seed;
\i demo/schema_and_data.sql
RESET search_path;
CREATE TABLE customers (LIKE seed.customers INCLUDING ALL);
CREATE TABLE orders (LIKE seed.orders INCLUDING ALL);
CREATE TABLE support_tickets (LIKE seed.support_tickets INCLUDING ALL);
CREATE TABLE web_activity (LIKE seed.web_activity INCLUDING ALL);
DROP SCHEMA seed CASCADE;
SQL
for mode in immediate deferred wal; do
    schema="${mode:0:3}"
    [[ "$schema" == def ]] && schema=dfr
    sub -c "CREATE SCHEMA $schema"
    sed "s/^\\\$\\\$);/\$\$, mode => '$mode');/" demo/views_ivm.sql >"$IVM_CLUSTER_DIR/views_$schema.sql"
    sub -o /dev/null -c "SET search_path = $schema, public" -f "$IVM_CLUSTER_DIR/views_$schema.sql"
done
sub -c "SELECT ivm.create_view('wal.order_count', 'SELECT count(*) AS n, sum(order_total) AS total FROM orders', mode => 'wal')" \
    -c "SELECT ivm.create_view('imm.order_count', 'SELECT count(*) AS n, sum(order_total) AS total FROM orders')" >/dev/null
# IVM_CDC_IMMEDIATE_APPLY=transaction: the apply worker (and the initial copy) maintain the
# immediate views a replicated transaction at a time (ivm.immediate_apply, set for the database).
if [[ -n "${IVM_CDC_IMMEDIATE_APPLY:-}" ]]; then
    sub -c "ALTER DATABASE $db SET ivm.immediate_apply = '$IVM_CDC_IMMEDIATE_APPLY'"
    say "subscriber database: ivm.immediate_apply = '$IVM_CDC_IMMEDIATE_APPLY'"
fi
say "subscriber: $(sub -c "SELECT count(*) FROM ivm.views WHERE NOT internal") views"
sub -c "CREATE SUBSCRIPTION cdc_sub CONNECTION 'host=$pub_dir port=$pub_port user=postgres dbname=$db' PUBLICATION cdc_pub" 2>&1 |
    grep -v "^NOTICE" || true

synced() {   # every subscribed table copied and in sync
    for _ in $(seq 1 300); do
        [[ "$(sub -c "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'")" == 0 &&
           "$(sub -c "SELECT count(*) FROM pg_subscription_rel")" == 4 ]] && return 0
        sleep 0.2
    done
    return 1
}
caught_up() {   # the subscription applied everything the publisher wrote so far
    local lsn
    lsn="$(pub -c "SELECT pg_current_wal_lsn()")"
    for _ in $(seq 1 600); do
        [[ "$(pub -c "SELECT coalesce(bool_and(confirmed_flush_lsn >= '$lsn'), false) FROM pg_replication_slots
                      WHERE slot_name = 'cdc_sub'")" == t ]] && return 0
        sleep 0.2
    done
    say "  subscription did not reach $lsn"
    return 1
}
tables_equal() {   # the subscribed tables hold what the publisher's hold
    local t a b ok=0
    for t in customers orders support_tickets web_activity; do
        a="$(pub -c "SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) || count(*) FROM $t x")"
        b="$(sub -c "SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) || count(*) FROM $t x")"
        [[ "$a" == "$b" ]] || { say "  $t differs from the publisher's"; ok=1; }
    done
    return $ok
}
exact() {
    local bad
    sub -o /dev/null -c "SELECT ivm.apply_deltas()"
    bad="$(sub -c "SELECT string_agg(name || '=' || d, ' ') FROM (SELECT name, ivm.verify(name) AS d
                   FROM ivm.views WHERE NOT internal) v WHERE d <> 0")"
    [[ -z "$bad" ]] || { say "  not exact: $bad"; return 1; }
}
same_modes() {
    local v d bad=0
    for v in customer_order_summary customer_support_summary customer_web_activity customer_360 \
             customer_churn_risk churn_alerts order_count; do
        for other in dfr.$v wal.$v; do
            [[ "$other" == dfr.order_count ]] && continue
            d="$(sub -c "SELECT count(*) FROM ((TABLE imm.$v EXCEPT ALL TABLE $other) UNION ALL
                                           (TABLE $other EXCEPT ALL TABLE imm.$v)) x")"
            [[ "$d" == 0 ]] || { say "  imm.$v and $other differ in $d rows"; bad=1; }
        done
    done
    return $bad
}

check "initial copy of the four tables done" synced
check "after the initial copy: tables equal the publisher's" tables_equal
check "after the initial copy: every view exact" exact
check "after the initial copy: the views are not empty" test "$(sub -c "SELECT count(*) FROM wal.customer_360")" -gt 0
check "after the initial copy: views equal across modes" same_modes

python3 test/decode/workload.py --transactions "$transactions" --seed "${IVM_CDC_SEED:-3}" >"$IVM_CLUSTER_DIR/workload.sql"
t0=$SECONDS
pub -f "$IVM_CLUSTER_DIR/workload.sql" >/dev/null
say "workload of $transactions transactions on the publisher ($((SECONDS - t0)) s)"
check "subscription caught up" caught_up
check "after the workload: tables equal the publisher's" tables_equal
check "after the workload: every view exact (immediate, deferred, wal)" exact
check "after the workload: views equal across modes" same_modes
check "count views = the subscribed table" \
    want "$(sub -c "SELECT (SELECT n || '/' || coalesce(total, 0) FROM wal.order_count) || ' ' || (SELECT n || '/' || coalesce(total, 0) FROM imm.order_count)")" \
    "$(sub -c "SELECT count(*) || '/' || coalesce(sum(order_total), 0) FROM orders") $(sub -c "SELECT count(*) || '/' || coalesce(sum(order_total), 0) FROM orders")"

# A TRUNCATE on the publisher reaches the views through the apply worker's TRUNCATE triggers.
pub -c "TRUNCATE web_activity" \
    -c "INSERT INTO web_activity VALUES (900001, 1, '/x', 'purchase', 's-x', '2026-04-01'), (900002, 2, '/y', 'page_view', 's-y', '2026-04-01')"
check "subscription caught up after TRUNCATE" caught_up
check "after TRUNCATE: every view exact" exact
check "after TRUNCATE: views equal across modes" same_modes

echo "cdc: $checks checks, $failures failed"
((failures == 0))
