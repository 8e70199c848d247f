#!/usr/bin/env bash
# The figures of "speed at the limit", each a ratio measured in one run of
# this script (release build, wrk on loopback, routes alternating):
#   - GET /guarded (AuthUser) / GET /open, the same route and body with no
#     guard, sent the same Authorization header (the guard's own cost) and
#     sent none (the guard's and the token's);
#   - POST /auth/refresh / POST /floor, a POST with the same body and answer
#     sizes and no crypto or store (the HTTP floor), and refresh's p99;
#   - GET /guarded with $JTIS blocklisted jtis in memory / with none;
#   - launch to the first answer with $LIVE live sessions and $JTIS
#     blocklisted jtis, beside an empty database, and the RSS above an empty
#     start.
# The server is testsuite/examples/limits_server.rs; the rows are written by
# testsuite/examples/load_fixture.rs.
#
# Besides requests/s, each figure is given as the server's own CPU time per
# request (from /proc), which depends less on how wrk and the server share
# the two cores; both are medians of ROUNDS alternating runs.
#
# Usage: scripts/limits.sh        (DURATION=6 seconds a wrk run, ROUNDS=5; needs wrk)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-6}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-5}
POOL=${POOL:-10000}
LIVE=${LIVE:-1000000}
JTIS=${JTIS:-1000000}
PORT=${PORT:-8766}

for tool in wrk curl cargo; do
    command -v "$tool" >/dev/null || {
        echo "limits.sh needs $tool${tool/wrk/ (apt-get install wrk)}" >&2
        exit 1
    }
done

echo "== building limits_server and load_fixture in release" >&2
cargo build --release --locked -p rocket_sqlite_sessions_testsuite --example limits_server --example load_fixture >&2
target=${CARGO_TARGET_DIR:-target}
demo=$target/release/examples/limits_server
fixture=$target/release/examples/load_fixture

work=$(mktemp -d)
server= big_server=
cleanup() {
    for pid in $server $big_server; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT

secret=$(head -c 32 /dev/urandom | base64)
base="http://127.0.0.1:$PORT"
# start_demo (here limits_server), stop_demo, run_wrk, summarise, ratio…
source scripts/common.sh

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# Starts the server on database $1 $ROUNDS times, stopping it in between;
# sets $launch_ms, the median time to the first answer, and $launch_rss, the
# RSS of the last start, which stays running.
launches() {
    local times=()
    for round in $(seq "$ROUNDS"); do
        [ -z "$server" ] || stop_demo
        start_demo "$1"
        times+=("$startup_ms")
    done
    launch_ms=$(median "${times[@]}")
    launch_rss=$(rss)
}

echo "== launch on an empty database" >&2
launches "$work/empty.db"
startup_empty=$launch_ms rss_empty=$launch_rss
stop_demo

echo "== writing $LIVE live sessions and $JTIS blocklisted jtis" >&2
"$fixture" limits "$work/big.db" "$secret" "$LIVE" "$JTIS" >&2
echo "== launch with $LIVE live sessions and $JTIS blocklisted jtis" >&2
launches "$work/big.db"
startup_big=$launch_ms rss_big=$launch_rss
# It stays up, on its own port, for the guard with revocations in memory.
big_server=$server big_base=$base
server=
PORT=$((PORT + 1))
base="http://127.0.0.1:$PORT"

echo "== $POOL sessions to refresh" >&2
"$fixture" sessions "$work/load.db" "$secret" "$POOL" 0 "$work/refresh_tokens" >&2
start_demo "$work/load.db"

# GET /open (with and without the token) and GET /guarded on the server
# without revocations, and GET
# /guarded on the one holding $JTIS, alternating $ROUNDS times; medians.
access=$(curl -sf "$base/token")
big_access=$(curl -sf "$big_base/token")
open_runs=() bare_runs=() guarded_runs=() big_runs=()
open_cpus=() bare_cpus=() guarded_cpus=() big_cpus=()
for round in $(seq "$ROUNDS"); do
    echo "== GET /open with the same Authorization header, run $round" >&2
    read -r rps _ _ ticks requests < <(run_wrk -H "Authorization: Bearer $access" "$base/open")
    open_runs+=("$rps") open_cpus+=("$(cpu_per_request "$ticks" "$requests")")
    echo "== GET /open without it, run $round" >&2
    read -r rps _ _ ticks requests < <(run_wrk "$base/open")
    bare_runs+=("$rps") bare_cpus+=("$(cpu_per_request "$ticks" "$requests")")
    echo "== GET /guarded, run $round" >&2
    read -r rps _ bad ticks requests < <(run_wrk -H "Authorization: Bearer $access" "$base/guarded")
    [ "$bad" = 0 ] || { echo "GET /guarded answered $bad non-2xx responses" >&2; exit 1; }
    guarded_runs+=("$rps") guarded_cpus+=("$(cpu_per_request "$ticks" "$requests")")
    echo "== GET /guarded with $JTIS blocklisted jtis, run $round" >&2
    read -r rps _ bad ticks requests < <(server=$big_server run_wrk -H "Authorization: Bearer $big_access" "$big_base/guarded")
    [ "$bad" = 0 ] || { echo "GET /guarded (revocations) answered $bad non-2xx responses" >&2; exit 1; }
    big_runs+=("$rps") big_cpus+=("$(cpu_per_request "$ticks" "$requests")")
done
open_empty=$(median "${open_runs[@]}") open_cpu=$(median "${open_cpus[@]}")
open_bare=$(median "${bare_runs[@]}") bare_cpu=$(median "${bare_cpus[@]}")
guarded_empty=$(median "${guarded_runs[@]}") guarded_cpu=$(median "${guarded_cpus[@]}")
guarded_big=$(median "${big_runs[@]}") big_cpu=$(median "${big_cpus[@]}")
kill "$big_server"
wait "$big_server" 2>/dev/null || true

floor_runs=() refresh_runs=() refresh_p99s=() floor_cpus=() refresh_cpus=()
for round in $(seq "$ROUNDS"); do
    echo "== POST /floor, run $round" >&2
    read -r rps _ _ ticks requests < <(run_wrk -s scripts/floor.lua "$base/floor")
    floor_runs+=("$rps") floor_cpus+=("$(cpu_per_request "$ticks" "$requests")")
    echo "== POST /auth/refresh, run $round" >&2
    read -r rps p99 bad ticks requests < <(REFRESH_TOKENS="$work/refresh_tokens" THREADS=$THREADS run_wrk -s scripts/refresh.lua "$base/auth/refresh")
    [ "$bad" = 0 ] || { echo "POST /auth/refresh answered $bad non-2xx responses" >&2; exit 1; }
    refresh_runs+=("$rps") refresh_p99s+=("$p99") refresh_cpus+=("$(cpu_per_request "$ticks" "$requests")")
    # The successors of this run's rotations are only in wrk's memory: the
    # next run starts on fresh sessions.
    stop_demo
    rm -f "$work/load.db" "$work/load.db-wal" "$work/load.db-shm"
    "$fixture" sessions "$work/load.db" "$secret" "$POOL" 0 "$work/refresh_tokens" >/dev/null 2>&1
    start_demo "$work/load.db"
done
stop_demo
floor=$(median "${floor_runs[@]}")
refresh=$(median "${refresh_runs[@]}")
refresh_p99=$(median "${refresh_p99s[@]}")
floor_cpu=$(median "${floor_cpus[@]}") refresh_cpu=$(median "${refresh_cpus[@]}")

cat <<EOT

Machine: $(nproc) cores, $(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(sed -nE 's/^model name\s*: //p' /proc/cpuinfo | head -1); $(date -u +%Y-%m-%d)
wrk: $THREADS threads, $CONNECTIONS connections, ${DURATION} s a run; medians of $ROUNDS alternating runs (launches: of $ROUNDS starts).

| figure | value | baseline | value | ratio | server CPU a request, value / baseline | ratio |
|---|---|---|---|---|---|---|
| GET /guarded / the same request to the same route with no guard | $guarded_empty req/s | GET /open, same header | $open_empty req/s | $(ratio "$guarded_empty" "$open_empty") | $guarded_cpu / $open_cpu µs | $(ratio "$open_cpu" "$guarded_cpu") |
| GET /guarded / the route with no guard and no token | $guarded_empty req/s | GET /open, no header | $open_bare req/s | $(ratio "$guarded_empty" "$open_bare") | $guarded_cpu / $bare_cpu µs | $(ratio "$bare_cpu" "$guarded_cpu") |
| POST /auth/refresh / the HTTP floor | $refresh req/s | POST /floor | $floor req/s | $(ratio "$refresh" "$floor") | $refresh_cpu / $floor_cpu µs | $(ratio "$floor_cpu" "$refresh_cpu") |
| refresh p99 | $refresh_p99 ms | | | | | |
| GET /guarded, $JTIS blocklisted jtis / none | $guarded_big req/s | none | $guarded_empty req/s | $(ratio "$guarded_big" "$guarded_empty") | $big_cpu / $guarded_cpu µs | $(ratio "$guarded_cpu" "$big_cpu") |
| launch to first answer, $LIVE live + $JTIS blocklisted | $startup_big ms | empty database | $startup_empty ms | $(ratio "$startup_big" "$startup_empty") | | |
| RSS, $LIVE live + $JTIS blocklisted | $rss_big MiB | empty database | $rss_empty MiB | $(awk -v a="$rss_big" -v b="$rss_empty" 'BEGIN { printf "+%.1f MiB", a - b }') | | |
EOT
