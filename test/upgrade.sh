#!/usr/bin/env bash
# test/upgrade.sh: ALTER EXTENSION ivm UPDATE from the previous release, with live views.
#
# Like a real upgrade: the previous release (git tag ${IVM_PREVIOUS:-v0.1}) is built and installed
# into a private copy of the PostgreSQL 15 installation; a cluster of its own (port
# ${IVM_UPGRADE_PORT:-55436}) gets the Customer 360 tables and views under the old version (immediate
# and deferred), with changes still pending; then this tree's build is installed over it (new
# library, new scripts), the server restarted, and `ALTER EXTENSION ivm UPDATE` run.  Afterwards
# every view must be exact (ivm.verify = 0 and EXCEPT ALL against the same query as a plain view),
# stay exact under further writes, the pending changes must be applied exactly once, and the new
# version's features must work (a new view, ivm.status).
#
# The previous release is taken from git history (tag v0.1, or the commit it names); a shallow
# clone without it skips this test, saying so.  Ends with "upgrade: N checks, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
# shellcheck source=test/lib/cluster.sh
source test/lib/cluster.sh
CHECKS_TAG=upgrade
# shellcheck source=test/lib/checks.sh
source test/lib/checks.sh

# A cluster of its own, never the one PGHOST points at.
unset PGHOST PGPORT PGUSER PGDATABASE
previous="${IVM_PREVIOUS:-v0.1}"
port="${IVM_UPGRADE_PORT:-55436}"
new_version="$(sed -n "s/^default_version = '\(.*\)'/\1/p" ivm.control)"
system_bin="$IVM_PG_BIN"

tree="$(mktemp -d /tmp/ivm-upgrade.XXXXXX)"
chmod 0755 "$tree"   # the server runs as postgres, from binaries in here
cleanup() { ivm_cluster_stop; rm -rf "$tree"; }
trap cleanup EXIT
trap 'exit 1' INT TERM

# The tag, or the commit it names (a clone without tags still has the history).
if ! git rev-parse --verify -q "$previous^{commit}" >/dev/null; then
    [[ "$previous" == v0.1 ]] && previous=f808609
    git rev-parse --verify -q "$previous^{commit}" >/dev/null || {
        echo "upgrade: SKIPPED: the previous release is not in this clone's history" \
             "(a shallow clone? git fetch --tags --unshallow)" >&2
        exit 0; }
fi

# A private PostgreSQL tree: PostgreSQL finds its share and lib directories relative to its binaries.
say "copying the PostgreSQL 15 installation into $tree"
pg_prefix="$(cd "$system_bin/../../../.." && pwd)"          # /usr
mkdir -p "$tree/usr/lib/postgresql" "$tree/usr/share/postgresql" "$tree/usr/include"
cp -a "$pg_prefix/lib/postgresql/15" "$tree/usr/lib/postgresql/"
cp -a "$pg_prefix/share/postgresql/15" "$tree/usr/share/postgresql/"
cp -a "$pg_prefix/include/postgresql" "$tree/usr/include/"
# Whatever ivm the system tree holds is not the previous release: start clean.
rm -f "$tree/usr/lib/postgresql/15/lib/ivm.so" "$tree"/usr/share/postgresql/15/extension/ivm*
IVM_PG_BIN="$tree/usr/lib/postgresql/15/bin"
PG_CONFIG="$IVM_PG_BIN/pg_config"
export IVM_PG_BIN PG_CONFIG

say "building the previous release ($previous) into the private tree"
mkdir -p "$tree/previous"
git archive "$previous" | tar -x -C "$tree/previous"
make -C "$tree/previous" -j2 PG_CONFIG="$PG_CONFIG" >/dev/null
make -C "$tree/previous" install PG_CONFIG="$PG_CONFIG" >/dev/null
old_version="$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$tree/previous/ivm.control")"

ivm_cluster_start "$port" >/dev/null
cat >>"$IVM_CLUSTER_DIR/data/postgresql.conf" <<CONF
shared_preload_libraries = 'ivm'
ivm.databases = ''
CONF
restart() {
    (cd "$IVM_CLUSTER_DIR" && runuser -u postgres -- "$IVM_PG_BIN/pg_ctl" -D "$IVM_CLUSTER_DIR/data" \
        -l "$IVM_CLUSTER_DIR/server.log" -m fast -w restart >/dev/null)
}
restart
db=ivm_upgrade
psql -X -q -d postgres -c "CREATE DATABASE $db"
q() { psql -X -qAt -v ON_ERROR_STOP=1 -d "$db" "$@"; }

say "version $old_version: seed tables, views (immediate and deferred), writes"
q -c "CREATE EXTENSION ivm VERSION '$old_version'"
q -f demo/schema_and_data.sql >/dev/null
q -f demo/views_ivm.sql >/dev/null
q -c "SELECT ivm.create_view('orders_by_status', \$\$SELECT order_status, count(*) AS n, sum(order_total) AS total FROM orders GROUP BY order_status\$\$, 'deferred')" >/dev/null
write_some() {   # write_some SEED: a few deterministic writes to every base table
    q <<SQL
SELECT setseed($1 / 10.0);
INSERT INTO orders SELECT 100000 * $1 + g, 1 + (g % 3), round((random() * 500)::numeric, 2),
       (ARRAY['completed','shipped','pending','cancelled'])[1 + g % 4], now() FROM generate_series(1, 40) g;
UPDATE orders SET order_status = 'cancelled' WHERE order_id % 7 = $1 % 7;
DELETE FROM orders WHERE order_id % 11 = $1 % 11 AND order_id > 100000;
INSERT INTO support_tickets SELECT 100000 * $1 + g, 1 + (g % 3), 'upgrade', 'high', 'open', now(), NULL
FROM generate_series(1, 10) g;
UPDATE support_tickets SET status = 'resolved', resolved_at = now() WHERE ticket_id % 5 = $1 % 5;
INSERT INTO web_activity SELECT 100000 * $1 + g, 1 + (g % 3), '/checkout', 'purchase', 'sess' || g % 4, now()
FROM generate_series(1, 20) g;
SQL
}
write_some 1
pending_before="$(q -c "SELECT pending_changes FROM ivm.status WHERE view = 'orders_by_status'::regclass")"
say "pending changes of the deferred view before the upgrade: $pending_before"

say "installing this tree's build ($new_version) over it, restarting"
(cd "$root" && make -j2 PG_CONFIG="$PG_CONFIG" >/dev/null && make install PG_CONFIG="$PG_CONFIG" >/dev/null)
restart
# Until ALTER EXTENSION runs, the new library maintains the views over the old catalog.
write_some 2
q -c "ALTER EXTENSION ivm UPDATE TO '$new_version'"
check "extension version is $new_version" test "$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'ivm'")" = "$new_version"

check "MIN/MAX state of an existing view counts the rows holding the extreme" \
    test "$(q -c "SELECT ivm.explain('customer_order_summary') LIKE '%max(%extreme counted%'")" = t
views="customer_order_summary customer_support_summary customer_web_activity customer_360 customer_churn_risk churn_alerts orders_by_status"
exact() {   # every view equal to its query (after applying what is pending)
    local v bad=0 n
    q -c "SELECT ivm.apply_deltas()" >/dev/null
    for v in $views; do
        n="$(q -c "SELECT ivm.verify('$v')")"
        [[ "$n" == 0 ]] || { say "  $v: $n rows differ"; bad=1; }
    done
    ((bad == 0))
}
pending_after="$(q -c "SELECT pending_changes FROM ivm.status WHERE view = 'orders_by_status'::regclass")"
check "pending changes survived the upgrade ($pending_before before, $pending_after with the writes since)" \
    test "$pending_after" -gt "$pending_before"
check "every view exact after the upgrade (pending changes applied once)" exact
write_some 4
check "every view exact after further writes" exact
refused() {   # refused SQL: the statement fails with 2BP01 (dependent objects still exist)
    q -c "DO \$\$ BEGIN $1; RAISE EXCEPTION 'not refused'; EXCEPTION WHEN dependent_objects_still_exist THEN RAISE WARNING 'refused'; END \$\$" 2>&1 | grep -q refused
}
check "DROP TABLE of a base table refused after the upgrade" refused "DROP TABLE orders"
check "DROP COLUMN of a used column refused after the upgrade" refused "ALTER TABLE orders DROP COLUMN order_total"
q -c "ALTER TABLE orders RENAME TO orders_renamed" -c "ALTER TABLE orders_renamed RENAME TO orders"
q -c "SELECT ivm.create_view('tickets_by_priority', \$\$SELECT priority, count(*) AS n FROM support_tickets GROUP BY priority\$\$)" >/dev/null
views="$views tickets_by_priority"
write_some 3
check "a view created after the upgrade is maintained" exact
check "ivm.status lists every view" test "$(q -c "SELECT count(*) FROM ivm.status")" = 8

echo "upgrade: $checks checks, $failures failed"
((failures == 0))
