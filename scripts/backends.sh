#!/usr/bin/env bash
# SQLite beside PostgreSQL, in one run, on the demo app in release:
#   - POST /auth/refresh for REFRESH_DURATION (20) seconds over LIVE (20,000)
#     live sessions refreshed again and again, as in scripts/load.sh:
#     requests/s of each backend, as a ratio of GET /health and of each other;
#   - revocation propagation between two demo processes on one database:
#     TRIALS (200) logouts on A, each timed until B refuses the token
#     (testsuite/examples/propagation.rs): p50, p90, p99, max.
# PostgreSQL: the server $ROCKET_SESSIONS_TEST_POSTGRES names (a URL; each run
# makes a schema of its own there), or else a throwaway cluster started here
# as the `postgres` user on a unix socket (needs root and Debian's
# postgresql). Needs wrk and curl.
#
# Usage: scripts/backends.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
REFRESH_DURATION=${REFRESH_DURATION:-20}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
LIVE=${LIVE:-20000}
TRIALS=${TRIALS:-200}
PORT=${PORT:-8766}

for tool in wrk curl cargo psql; do
    command -v "$tool" >/dev/null || { echo "backends.sh needs $tool" >&2; exit 1; }
done

echo "== building the demo, the fixture and the propagation probe in release, with PostgreSQL" >&2
cargo build --release --locked --features postgres --example demo --example load_fixture --example propagation >&2
demo=target/release/examples/demo
fixture=target/release/examples/load_fixture
propagation=target/release/examples/propagation

work=$(mktemp -d)
chmod 755 "$work"
server=
pg_bin=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    [ -n "$pg_bin" ] && su postgres -s /bin/sh -c "'$pg_bin/pg_ctl' -D '$work/pg/data' -m immediate stop" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${ROCKET_SESSIONS_TEST_POSTGRES:-}" ]; then
    echo "== starting a throwaway PostgreSQL cluster" >&2
    pg_bin=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -n 1)")
    mkdir "$work/pg" && chown postgres "$work/pg"
    su postgres -s /bin/sh -c "'$pg_bin/initdb' -D '$work/pg/data' -A trust -U postgres" >/dev/null
    su postgres -s /bin/sh -c "'$pg_bin/pg_ctl' -D '$work/pg/data' -l '$work/pg/log' -w \
        -o \"-k $work/pg -c listen_addresses=''\" start" >/dev/null
    ROCKET_SESSIONS_TEST_POSTGRES="postgresql://postgres@localhost/postgres?host=$work/pg"
fi

secret=$(head -c 32 /dev/urandom | base64)
base="http://127.0.0.1:$PORT"
DEMO_USERS="$work/users.db"
# start_demo, stop_demo, run_wrk, summarise, ratio…
source scripts/common.sh

# The database of backend $1, fresh.
database_of() {
    case "$1" in
        sqlite) echo "$work/sessions.db" ;;
        postgres)
            local schema="backends_$$"
            psql -q "$ROCKET_SESSIONS_TEST_POSTGRES" -c "CREATE SCHEMA $schema" >&2
            echo "$ROCKET_SESSIONS_TEST_POSTGRES&options=-csearch_path%3D$schema"
            ;;
    esac
}

declare -A health refresh p99 bad spread
for backend in sqlite postgres; do
    database=$(database_of "$backend")
    echo "== $backend: logging in $LIVE sessions" >&2
    "$fixture" sessions "$database" "$secret" "$LIVE" 0 "$work/$backend.tokens"
    start_demo "$database"
    echo "== $backend: GET /health" >&2
    read -r rps _ _ _ _ < <(run_wrk "$base/health")
    health[$backend]=$rps
    echo "== $backend: POST /auth/refresh for ${REFRESH_DURATION}s" >&2
    out=$(THREADS=$THREADS REFRESH_TOKENS="$work/$backend.tokens" \
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"${REFRESH_DURATION}s" --latency -s scripts/refresh.lua "$base/auth/refresh")
    echo "$out" >&2
    read -r rps latency non2xx < <(summarise <<<"$out")
    refresh[$backend]=$rps p99[$backend]=$latency bad[$backend]=$non2xx
    stop_demo
    echo "== $backend: propagation between two processes, $TRIALS logouts" >&2
    spread[$backend]=$("$propagation" "$database" "$TRIALS")
done

cat <<EOF

Machine: $(nproc) cores, $(sed -nE 's/^model name\s*: //p' /proc/cpuinfo | head -1); PostgreSQL $(psql -tA "$ROCKET_SESSIONS_TEST_POSTGRES" -c 'SHOW server_version') on a unix socket, same machine.
wrk: $THREADS threads, $CONNECTIONS connections; /health ${DURATION} s, refresh ${REFRESH_DURATION} s over $LIVE sessions.

| backend | GET /health | POST /auth/refresh | refresh / health | refresh p99 | non-2xx |
|---|---|---|---|---|---|
| SQLite | ${health[sqlite]} req/s | ${refresh[sqlite]} req/s | $(ratio "${refresh[sqlite]}" "${health[sqlite]}") | ${p99[sqlite]} ms | ${bad[sqlite]} |
| PostgreSQL | ${health[postgres]} req/s | ${refresh[postgres]} req/s | $(ratio "${refresh[postgres]}" "${health[postgres]}") | ${p99[postgres]} ms | ${bad[postgres]} |

Refresh requests/s, PostgreSQL / SQLite: $(ratio "${refresh[postgres]}" "${refresh[sqlite]}")

Revocation propagation, two processes:
- SQLite: ${spread[sqlite]}
- PostgreSQL: ${spread[postgres]}
EOF
