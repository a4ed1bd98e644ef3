# shellcheck shell=bash
# test/lib/checks.sh: what the scenario scripts (test/decode.sh, wal.sh, cdc.sh, crash.sh,
# upgrade.sh) share.  Set CHECKS_TAG, then source it (after test/lib/cluster.sh); do not execute it.
#
#   say TEXT...           prints "[TAG hh:mm:ss] TEXT"
#   check WHAT CMD...     runs CMD; says "ok: WHAT" or "FAILED: WHAT"; counts $checks and $failures
#   want GOT WANTED       true when equal, else says both
#   stop_pids PID...      kills background processes and reaps them
#   data_dir              the throwaway cluster's data directory (test/lib/cluster.sh)
#   pg_ctl_ ARGS...       pg_ctl on it, as postgres, logging to its server.log
#   start_server          starts it (stopped or crashed), waiting for recovery; exits on failure
#   crash_server          SIGKILL to the postmaster and every process it started, at once

checks=0 failures=0

say() { printf '[%s %s] %s\n' "$CHECKS_TAG" "$(date +%T)" "$*"; }

check() {
    local what="$1"
    shift
    checks=$((checks + 1))
    if "$@"; then
        say "ok: $what"
    else
        failures=$((failures + 1))
        say "FAILED: $what"
    fi
}

want() { [[ "$1" == "$2" ]] || { say "  got '$1', want '$2'"; return 1; }; }

stop_pids() {
    local p
    for p in "$@"; do kill "$p" 2>/dev/null || true; done
    for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

data_dir() { echo "$IVM_CLUSTER_DIR/data"; }

pg_ctl_() {
    (cd "$IVM_CLUSTER_DIR" && runuser -u postgres -- "$IVM_PG_BIN/pg_ctl" -D "$(data_dir)" \
        -l "$IVM_CLUSTER_DIR/server.log" "$@")
}

start_server() {
    pg_ctl_ -w -t 120 start >"$IVM_CLUSTER_DIR/pg_ctl.out" 2>&1 || {
        cat "$IVM_CLUSTER_DIR/pg_ctl.out" >&2
        echo "server failed to start; log:" >&2
        tail -n 40 "$IVM_CLUSTER_DIR/server.log" >&2
        exit 1
    }
}

crash_server() {
    local pm kids p alive
    pm="$(head -1 "$(data_dir)/postmaster.pid")"
    kids="$(pgrep -P "$pm" | tr '\n' ' ' || true)"
    # shellcheck disable=SC2086
    kill -9 "$pm" $kids 2>/dev/null || true
    # Wait until every one of them is gone (reaped), so a restart finds no live old process.
    for _ in $(seq 1 100); do
        alive=0
        for p in $pm $kids; do kill -0 "$p" 2>/dev/null && alive=1; done
        ((alive == 0)) && break
        sleep 0.1
    done
    say "killed postmaster $pm and $(wc -w <<<"$kids") child processes (SIGKILL)"
}
