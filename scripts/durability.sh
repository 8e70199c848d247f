#!/usr/bin/env bash
# What durability = "power_loss" (the default: PRAGMA synchronous = FULL, the
# WAL synced at every commit, one fsync per batch of the group-committing
# writer) costs beside "process_crash" (synchronous = NORMAL, synced at
# checkpoints): POST /auth/refresh and the crate's login (GET /token of
# limits_server, which logs in without a password check) under wrk, each
# setting on a fresh database of its own, alternating ROUNDS times in one
# run; the medians and their ratios. The database lives in WORK_DIR
# (/var/tmp: a real disk, where an fsync costs what it costs there).
#
# Usage: scripts/durability.sh      (DURATION=5 seconds a wrk run, ROUNDS=3; needs wrk)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
POOL=${POOL:-30000}
PORT=${PORT:-8776}

for tool in wrk curl cargo; do
    command -v "$tool" >/dev/null || {
        echo "durability.sh needs $tool${tool/wrk/ (apt-get install wrk)}" >&2
        exit 1
    }
done

echo "== building limits_server and load_fixture in release" >&2
cargo build --release --locked -p rocket_sqlite_sessions_testsuite --example limits_server --example load_fixture >&2
target=${CARGO_TARGET_DIR:-target}
demo=$target/release/examples/limits_server
fixture=$target/release/examples/load_fixture

work=$(mktemp -d "${WORK_DIR:-/var/tmp}/durability.XXXXXX")
server=
cleanup() {
    [ -z "$server" ] || { kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; }
    rm -rf "$work"
}
trap cleanup EXIT

secret=$(head -c 32 /dev/urandom | base64)
base="http://127.0.0.1:$PORT"
# start_demo (here limits_server), stop_demo, run_wrk, summarise…
source scripts/common.sh

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A refresh login
for round in $(seq "$ROUNDS"); do
    for mode in power_loss process_crash; do
        db="$work/$mode.db"
        rm -f "$db" "$db-wal" "$db-shm"
        "$fixture" sessions "$db" "$secret" "$POOL" 0 "$work/refresh_tokens" >/dev/null 2>&1
        start_demo "$db" "{database=\"$db\",secret=\"$secret\",durability=\"$mode\",auto_prune=false}"
        echo "== $mode: POST /auth/refresh, run $round" >&2
        read -r rps _ bad _ _ < <(REFRESH_TOKENS="$work/refresh_tokens" THREADS=$THREADS run_wrk -s scripts/refresh.lua "$base/auth/refresh")
        [ "$bad" = 0 ] || { echo "POST /auth/refresh answered $bad non-2xx responses" >&2; exit 1; }
        refresh[$mode]+="$rps "
        echo "== $mode: logins (GET /token), run $round" >&2
        read -r rps _ bad _ _ < <(run_wrk "$base/token")
        [ "$bad" = 0 ] || { echo "GET /token answered $bad non-2xx responses" >&2; exit 1; }
        login[$mode]+="$rps "
        stop_demo
    done
done

# shellcheck disable=SC2086
{
    refresh_full=$(median ${refresh[power_loss]}) refresh_normal=$(median ${refresh[process_crash]})
    login_full=$(median ${login[power_loss]}) login_normal=$(median ${login[process_crash]})
}
echo
echo "| requests/s (median of $ROUNDS runs of ${DURATION} s, $CONNECTIONS connections) | power_loss (FULL) | process_crash (NORMAL) | power_loss / process_crash |"
echo "|---|---|---|---|"
echo "| POST /auth/refresh | $refresh_full | $refresh_normal | $(ratio "$refresh_full" "$refresh_normal") |"
echo "| login (the crate's part) | $login_full | $login_normal | $(ratio "$login_full" "$login_normal") |"
