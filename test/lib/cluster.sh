# shellcheck shell=bash
# test/lib/cluster.sh: shared helpers for test/run and demo/run.  Source it; do not execute it.
#
#   ivm_install_deps        apt-get install what building and testing need (only what is missing)
#   ivm_build_install       make && make install the extension into the PostgreSQL 15 tree
#   ivm_cluster_start [p]   start a throwaway PostgreSQL 15 cluster (unless PGHOST is already set)
#   ivm_cluster_stop        stop it and delete it; safe to call twice, or when none was started
#   ivm_cluster_log         print the tail of the throwaway server's log
#   ivm_cluster_logical     restart the throwaway cluster with logical decoding (wal_level = logical,
#                           ivm allowed as an output plugin)
#
# Callers should `trap ivm_cluster_stop EXIT` so the cluster goes away even when a step fails.

IVM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# IVM_PG_BIN may name another PostgreSQL 15 tree (a relocated copy, say, so that two
# checkouts can install and test their own builds side by side).
IVM_PG_BIN="${IVM_PG_BIN:-/usr/lib/postgresql/15/bin}"
# Always build against PG 15, even if another pg_config comes first on PATH.
export PG_CONFIG="$IVM_PG_BIN/pg_config"

IVM_CLUSTER_DIR=""   # set only in the shell that started the cluster (not exported on purpose:
                     # child scripts reuse the server through PGHOST but must not stop it)

ivm_install_deps() {
    local pkgs=(postgresql-15 postgresql-server-dev-15 postgresql-client-15
                build-essential g++ cmake libgtest-dev python3 make procps sqlsmith clang-format)
    local missing=() p
    for p in "${pkgs[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        echo "all dependencies already installed"
        return 0
    fi
    echo "installing: ${missing[*]}"
    # CI has no terminal and no stdin: never let apt or debconf ask anything.
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

ivm_build_install() {
    (cd "$IVM_ROOT" && make -j2 PG_CONFIG="$PG_CONFIG" && make install PG_CONFIG="$PG_CONFIG")
}

ivm_cluster_start() {
    if [[ -n "${PGHOST:-}" ]]; then
        echo "PGHOST is set ($PGHOST): using the existing server, not starting one"
        return 0
    fi
    local port="${1:-${IVM_PORT:-55431}}"

    # PostgreSQL refuses to run as root, so the server runs as the postgres OS user.
    id postgres >/dev/null 2>&1 || useradd --system --user-group --no-create-home postgres

    # Data, socket and log all live in one fresh directory that ivm_cluster_stop removes whole.
    # Mode 0755 lets root's psql reach the socket; listen_addresses='' means no TCP, so the port
    # only names the socket file and cannot clash with another server on this machine.
    IVM_CLUSTER_DIR="$(mktemp -d /tmp/ivm-cluster.XXXXXX)"
    chown postgres: "$IVM_CLUSTER_DIR"
    chmod 0755 "$IVM_CLUSTER_DIR"
    local data="$IVM_CLUSTER_DIR/data" log="$IVM_CLUSTER_DIR/server.log"

    # cd: PostgreSQL tools fail if their working directory (root's) is unreadable to postgres.
    (cd "$IVM_CLUSTER_DIR" &&
        runuser -u postgres -- "$IVM_PG_BIN/initdb" -D "$data" -A trust -U postgres \
            -E UTF8 --locale=C.UTF-8 >"$IVM_CLUSTER_DIR/initdb.log")

    cat >>"$data/postgresql.conf" <<CONF

# --- throwaway test cluster (test/lib/cluster.sh) ---
listen_addresses = ''
unix_socket_directories = '$IVM_CLUSTER_DIR'
port = $port
fsync = off                      # data is thrown away: speed over durability
max_prepared_transactions = 10   # isolation tests may use two-phase commit
shared_buffers = 256MB
max_locks_per_transaction = 256  # views over many tables take many locks
CONF

    (cd "$IVM_CLUSTER_DIR" &&
        runuser -u postgres -- "$IVM_PG_BIN/pg_ctl" -D "$data" -l "$log" -w start >/dev/null) || {
        echo "server failed to start; log:" >&2
        tail -n 50 "$log" >&2 || true
        return 1
    }

    export PGHOST="$IVM_CLUSTER_DIR" PGPORT="$port" PGUSER=postgres PGDATABASE=postgres
    echo "throwaway cluster up: PGHOST=$PGHOST PGPORT=$PGPORT; server log: $log"
}

ivm_cluster_stop() {
    [[ -n "${IVM_CLUSTER_DIR:-}" ]] || return 0
    (cd "$IVM_CLUSTER_DIR" &&
        runuser -u postgres -- "$IVM_PG_BIN/pg_ctl" -D "$IVM_CLUSTER_DIR/data" -m fast -w stop \
            >/dev/null 2>&1) || true
    rm -rf "$IVM_CLUSTER_DIR"
    IVM_CLUSTER_DIR=""
    unset PGHOST PGPORT PGUSER PGDATABASE
}

ivm_cluster_log() {
    local log="${IVM_CLUSTER_DIR:-}/server.log"
    if [[ -n "${IVM_CLUSTER_DIR:-}" && -f "$log" ]]; then
        echo "----- last ${1:-60} lines of $log -----"
        tail -n "${1:-60}" "$log"
    else
        echo "(no server log to show: no throwaway cluster is running here)"
    fi
}

ivm_cluster_logical() {
    if [[ -z "${IVM_CLUSTER_DIR:-}" ]]; then
        echo "ivm_cluster_logical: no throwaway cluster was started here" >&2
        return 1
    fi
    {
        echo "# --- logical decoding (ivm_cluster_logical) ---"
        echo "wal_level = logical"
        echo "max_replication_slots = 10"
        echo "max_wal_senders = 10"
        # PostgreSQL 15.19 and later load only the output plugins listed here (and refuse to start
        # with the line when they do not know the setting).
        if [[ "$(psql -X -qAt -d postgres -c \
                "SELECT count(*) FROM pg_settings WHERE name = 'output_plugin_libraries'")" == 1 ]]; then
            echo "output_plugin_libraries = 'pgoutput, test_decoding, ivm'"
        fi
    } >>"$IVM_CLUSTER_DIR/data/postgresql.conf"
    (cd "$IVM_CLUSTER_DIR" && runuser -u postgres -- "$IVM_PG_BIN/pg_ctl" -D "$IVM_CLUSTER_DIR/data" \
        -l "$IVM_CLUSTER_DIR/server.log" -w -m fast restart >/dev/null)
}
