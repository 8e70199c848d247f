#!/usr/bin/env bash
# What each kind of signing key costs the guard, on the demo in release, in
# one run: GET /me (AuthUser) with an HS256 secret, an Ed25519 key (EdDSA) and
# a P-256 key (ES256), and GET /health (no guard) beside them: requests/s, p99
# and the demo's own CPU time per request (from /proc, which does not depend on
# how wrk and the demo share the cores). The keys are made here with openssl.
# Needs wrk, curl and openssl.
#
# Usage: scripts/keys.sh            (DURATION=10 seconds per wrk run)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
PORT=${PORT:-8767}

for tool in wrk curl cargo openssl; do
    command -v "$tool" >/dev/null || { echo "keys.sh needs $tool" >&2; exit 1; }
done

echo "== building the demo in release" >&2
cargo build --release --locked --example demo >&2
demo=target/release/examples/demo

work=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
secret=$(head -c 32 /dev/urandom | base64)
base="http://127.0.0.1:$PORT"
openssl genpkey -algorithm ed25519 -out "$work/ed25519.pem" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/p256.pem" 2>/dev/null

# start_demo, stop_demo, run_wrk, summarise, ratio…
source scripts/common.sh

# The demo on a fresh database with the signing key of kind $1; $token is an
# access token of its user.
start_with_key() {
    local database="$work/$1.db" keys
    case "$1" in
        hs256) keys="[{kid=\"hs\",secret=\"$secret\"}]" ;;
        eddsa) keys="[{kid=\"ed\",private_key_file=\"$work/ed25519.pem\"}]" ;;
        es256) keys="[{kid=\"ec\",private_key_file=\"$work/p256.pem\"}]" ;;
    esac
    start_demo "$database" "{database=\"$database\",keys=$keys}"
    token=$(curl -sf -H 'Content-Type: application/json' \
        -d '{"username":"load","password":"load password"}' "$base/auth/login" |
        sed -E 's/.*"access_token":"([^"]+)".*/\1/')
}

declare -A rps p99 cpu
for kind in hs256 eddsa es256; do
    start_with_key "$kind"
    if [ "$kind" = hs256 ]; then
        echo "== GET /health" >&2
        read -r r l _ ticks n < <(run_wrk "$base/health")
        rps[health]=$r p99[health]=$l cpu[health]=$(cpu_per_request "$ticks" "$n")
    fi
    echo "== $kind: GET /me" >&2
    read -r r l bad ticks n < <(run_wrk -H "Authorization: Bearer $token" "$base/me")
    [ "$bad" = 0 ] || { echo "$kind: $bad answers were not 2xx" >&2; exit 1; }
    rps[$kind]=$r p99[$kind]=$l cpu[$kind]=$(cpu_per_request "$ticks" "$n")
    stop_demo
done

cat <<EOF

Machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); $(date -u +%Y-%m-%d).
wrk: $THREADS threads, $CONNECTIONS connections, $DURATION s each.

| route | key | requests/s | / HS256 | p99 | demo CPU per request | / HS256 |
|---|---|---|---|---|---|---|
| GET /health (no guard) | — | ${rps[health]} | — | ${p99[health]} ms | ${cpu[health]} µs | — |
| GET /me | HS256 secret | ${rps[hs256]} | 1.000 | ${p99[hs256]} ms | ${cpu[hs256]} µs | 1.000 |
| GET /me | Ed25519 (EdDSA) | ${rps[eddsa]} | $(ratio "${rps[eddsa]}" "${rps[hs256]}") | ${p99[eddsa]} ms | ${cpu[eddsa]} µs | $(ratio "${cpu[eddsa]}" "${cpu[hs256]}") |
| GET /me | P-256 (ES256) | ${rps[es256]} | $(ratio "${rps[es256]}" "${rps[hs256]}") | ${p99[es256]} ms | ${cpu[es256]} µs | $(ratio "${cpu[es256]}" "${cpu[hs256]}") |
EOF
