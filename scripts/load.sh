#!/usr/bin/env bash
# Load test of the demo app over HTTP, in one run:
#   - GET /health (no guard) vs GET /me (AuthUser): requests/s and their ratio;
#   - POST /auth/refresh for REFRESH_DURATION (20) seconds over a pool of live
#     sessions, each refreshed again and again (each answer's successor goes
#     back in the pool): requests/s as a ratio of /health, p99, 5xx and 401
#     counts, SQLITE_BUSY/locked lines in the log, and the largest size of the
#     -wal file, sampled every 100 ms;
#   - memory: RSS with 100,000 live sessions and 100,000 revoked tokens loaded;
#   - the demo's own CPU time per request of each kind (from /proc), whose
#     ratios do not depend on how wrk and the demo share the cores;
#   - start-up: time to the first answer with 1,000,000 rows in the database,
#     beside an empty database.
# Builds the demo in release, runs it on temporary databases on loopback, drives
# it with wrk (Debian package `wrk`) at 64 connections.
#
# Usage: scripts/load.sh            (DURATION=10 seconds per wrk run)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
REFRESH_DURATION=${REFRESH_DURATION:-20}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
LIVE=${LIVE:-100000}
REVOKED=${REVOKED:-100000}
ROWS=${ROWS:-1000000}
PORT=${PORT:-8765}

for tool in wrk curl cargo; do
    command -v "$tool" >/dev/null || {
        echo "load.sh needs $tool${tool/wrk/ (apt-get install wrk)}" >&2
        exit 1
    }
done

echo "== building the demo and the fixture in release" >&2
cargo build --release --locked --example demo --example load_fixture >&2
demo=target/release/examples/demo
fixture=target/release/examples/load_fixture

work=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

secret=$(head -c 32 /dev/urandom | base64)
base="http://127.0.0.1:$PORT"

# start_demo, stop_demo, run_wrk, summarise, ratio…
source scripts/common.sh

# ---- start-up: empty database vs 1,000,000 rows (100,000 revocations to load) --------------------------------
echo "== start-up on an empty database" >&2
start_demo "$work/empty.db"
startup_empty=$startup_ms
rss_empty=$(rss)
stop_demo

echo "== writing $ROWS rows" >&2
"$fixture" rows "$work/rows.db" "$secret" "$ROWS"
echo "== start-up with $ROWS rows" >&2
start_demo "$work/rows.db"
startup_rows=$startup_ms
rss_rows=$(rss)
stop_demo

# ---- the load database: live sessions for the refresh pool, revoked tokens ----
echo "== logging in $LIVE sessions and logging out $REVOKED more" >&2
"$fixture" sessions "$work/load.db" "$secret" "$LIVE" "$REVOKED" "$work/refresh_tokens"
start_demo "$work/load.db"
rss_loaded=$(rss)

# A real user through the demo's own API, for /me.
curl -sf -o /dev/null -H 'Content-Type: application/json' \
    -d '{"username":"load","password":"load-test-password"}' "$base/auth/register"
access=$(curl -sf -H 'Content-Type: application/json' \
    -d '{"username":"load","password":"load-test-password"}' "$base/auth/login" |
    sed -E 's/.*"access_token":"([^"]+)".*/\1/')
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $access" "$base/me")" = 200 ] || {
    echo "GET /me with the fresh token did not answer 200" >&2
    exit 1
}

# /health and /me alternate, three runs each; the median of each is reported.
health_runs=() me_runs=()
health_ticks=0 health_requests=0 me_ticks=0 me_requests=0
for round in 1 2 3; do
    echo "== GET /health, run $round" >&2
    read -r rps _ _ ticks requests < <(run_wrk "$base/health")
    health_runs+=("$rps")
    health_ticks=$((health_ticks + ticks)) health_requests=$((health_requests + requests))
    echo "== GET /me, run $round" >&2
    read -r rps _ bad ticks requests < <(run_wrk -H "Authorization: Bearer $access" "$base/me")
    [ "$bad" = 0 ] || { echo "GET /me answered $bad non-2xx responses" >&2; exit 1; }
    me_runs+=("$rps")
    me_ticks=$((me_ticks + ticks)) me_requests=$((me_requests + requests))
done
health_cpu=$(cpu_per_request "$health_ticks" "$health_requests")
me_cpu=$(cpu_per_request "$me_ticks" "$me_requests")
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
health=$(median "${health_runs[@]}")
me=$(median "${me_runs[@]}")

echo "== POST /auth/refresh for ${REFRESH_DURATION}s, sessions refreshed again and again" >&2
wal_samples="$work/wal_samples"
: >"$wal_samples"
(
    while :; do
        stat -c %s "$work/load.db-wal" 2>/dev/null >>"$wal_samples" || echo 0 >>"$wal_samples"
        sleep 0.1
    done
) &
sampler=$!
refresh_ticks=$(cpu_ticks)
refresh_out=$(THREADS=$THREADS REFRESH_TOKENS="$work/refresh_tokens" \
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${REFRESH_DURATION}s" --latency -s scripts/refresh.lua "$base/auth/refresh")
refresh_ticks=$(($(cpu_ticks) - refresh_ticks))
kill "$sampler"
wait "$sampler" 2>/dev/null || true
echo "$refresh_out" >&2
read -r refresh refresh_p99 refresh_bad < <(summarise <<<"$refresh_out")
server_errors=$(sed -nE 's/^5xx: ([0-9]+).*/\1/p' <<<"$refresh_out")
rotations=$(sed -nE 's/.*rotations: ([0-9]+).*/\1/p' <<<"$refresh_out")
refresh_cpu=$(cpu_per_request "$refresh_ticks" "$(requests_of <<<"$refresh_out")")
busy=$(grep -ciE 'busy|locked' "$work/demo.log" || true)
wal_samples_taken=$(wc -l <"$wal_samples")
wal_max=$(sort -n "$wal_samples" | tail -1 | awk '{printf "%.1f", $1 / 1048576}')
rss_after=$(rss)
rss_peak=$(peak_rss)
stop_demo

cat <<EOF

Machine: $(nproc) cores, $(awk '/^MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(sed -nE 's/^model name\s*: //p' /proc/cpuinfo | head -1)
wrk: $THREADS threads, $CONNECTIONS connections, ${DURATION} s per run (refresh: ${REFRESH_DURATION} s); /health and /me: median of 3 alternating runs.

| figure | value | baseline | value | ratio | target |
|---|---|---|---|---|---|
| GET /me (AuthUser) | $me req/s | GET /health | $health req/s | $(ratio "$me" "$health") | ≥ 0.90 |
| POST /auth/refresh | $refresh req/s | GET /health | $health req/s | $(ratio "$refresh" "$health") | ≥ 0.35 |
| demo's CPU per GET /me | $me_cpu µs | per GET /health | $health_cpu µs | $(ratio "$health_cpu" "$me_cpu") | |
| demo's CPU per POST /auth/refresh | $refresh_cpu µs | per GET /health | $health_cpu µs | $(ratio "$health_cpu" "$refresh_cpu") | |
| refresh p99 | $refresh_p99 ms | | | | ≤ 50 ms |
| refresh: rotations / 5xx / non-2xx / SQLITE_BUSY log lines | $rotations / $server_errors / $refresh_bad / $busy | | | | – / 0 / 0 / 0 |
| largest -wal file during the refresh load ($wal_samples_taken samples) | $wal_max MiB | | | | ≤ 64 MiB |
| RSS, $LIVE live sessions + $REVOKED revoked tokens loaded | $rss_loaded MiB | empty database | $rss_empty MiB | $(ratio "$rss_loaded" "$rss_empty") | |
| RSS after the load (peak) | $rss_after MiB ($rss_peak MiB) | | | | |
| start-up to first answer, $ROWS rows | $startup_rows ms | empty database | $startup_empty ms | $(ratio "$startup_rows" "$startup_empty") | |
| RSS after start-up, $ROWS rows | $rss_rows MiB | empty database | $rss_empty MiB | $(ratio "$rss_rows" "$rss_empty") | |
EOF
