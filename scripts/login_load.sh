#!/usr/bin/env bash
# The demo's memory under a sustained login load: DURATION (600) seconds of
# POST /auth/login at 64 connections (wrk), over USERS (100) registered users,
# every password right, so every request hashes with Argon2id (19 MiB each).
# The demo's RSS is sampled every 10 s; the table gives it at the start, after
# the first minute, at its largest and at the end, with the logins answered.
#
# The demo throttles registrations per network like failed logins, so the
# limits are raised for the $USERS registrations from this one address.
#
# Usage: scripts/login_load.sh            (DURATION=600 USERS=100)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-600}
USERS=${USERS:-100}
CONNECTIONS=${CONNECTIONS:-64}
PORT=${PORT:-8766}

for tool in wrk curl cargo; do
    command -v "$tool" >/dev/null || { echo "login_load.sh needs $tool" >&2; exit 1; }
done

echo "== building the demo in release" >&2
cargo build --release --locked --example demo >&2
work=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

secret=$(head -c 32 /dev/urandom | base64)
base="http://127.0.0.1:$PORT"
ROCKET_PROFILE=release ROCKET_ADDRESS=127.0.0.1 ROCKET_PORT=$PORT ROCKET_LOG_LEVEL=critical \
    ROCKET_SECRET_KEY="$secret" \
    ROCKET_SESSIONS="{database=\"$work/load.db\",secret=\"$secret\",login_max_failures=100000,login_max_failures_global=100000,ip_max_failures=100000}" \
    target/release/examples/demo >"$work/demo.log" 2>&1 &
server=$!
until curl -sf -o /dev/null "$base/health"; do sleep 0.05; done
rss() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$server/status"; }

echo "== registering $USERS users" >&2
for n in $(seq 1 "$USERS"); do
    curl -sf -o /dev/null -H 'Content-Type: application/json' \
        -d "{\"username\":\"user$n\",\"password\":\"load-test-password\"}" "$base/auth/register"
done
rss_start=$(rss)

cat >"$work/login.lua" <<LUA
local n = 0
request = function()
    n = n + 1
    local body = '{"username":"user' .. (n % $USERS + 1) .. '","password":"load-test-password"}'
    return wrk.format("POST", "/auth/login", { ["Content-Type"] = "application/json" }, body)
end
LUA
samples="$work/rss"
(
    while :; do
        echo "$(rss)" >>"$samples"
        sleep 10
    done
) &
sampler=$!
echo "== POST /auth/login for ${DURATION}s" >&2
out=$(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 30s -s "$work/login.lua" "$base/auth/login")
kill "$sampler"
wait "$sampler" 2>/dev/null || true
echo "$out" >&2
rss_end=$(rss)
rate=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
bad=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
after_minute=$(sed -n 7p "$samples")
largest=$(sort -g "$samples" | tail -1)

cat <<TABLE

Machine: $(nproc) cores; ${DURATION} s of logins at $CONNECTIONS connections over $USERS users; RSS sampled every 10 s ($(wc -l <"$samples") samples).

| figure | value |
|---|---|
| logins/s | $rate |
| non-2xx answers | ${bad:-0} |
| RSS after registering, before the load | $rss_start MiB |
| RSS after the first minute | $after_minute MiB |
| largest RSS sampled | $largest MiB |
| RSS at the end | $rss_end MiB |
TABLE
