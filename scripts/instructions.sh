#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind in the server
# (testsuite/examples/limits_server.rs), not timed: the same binary, requests
# and environment give the same counts whatever else the machine does. Each
# phase is run three times in one process and the lowest figure kept
# (scripts/instructions.py):
#
#   open              GET /open, the guarded route's body without the guard
#   guard_kept        GET /guarded, AuthUser, the same token each time (kept)
#   guard_first_seen  GET /guarded with 4,096 or more distinct tokens, each once
#   floor             POST /floor: refresh's HTTP, body and answer, no crypto or store
#   refresh           POST /auth/refresh, a chain of rotations
#   logout            POST /auth/logout, a fresh session each
#   login             POST /login-pair: the crate's part of a login (no password check)
#
# and the guard's and refresh's own instructions, over their baselines.
#
# Usage: scripts/instructions.sh            (release build, COUNT=2000)
#        PROFILE=debug COUNT=20 DISTINCT=64 scripts/instructions.sh   (CI's smoke run:
#        the debug build cargo test made, few requests; it asserts nothing)
# Needs valgrind (Debian's valgrind package) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=${PROFILE:-release}
COUNT=${COUNT:-2000}
PORT=${PORT:-8767}

for tool in valgrind callgrind_control python3 curl; do
    command -v "$tool" >/dev/null || { echo "instructions.sh needs $tool (apt-get install valgrind)" >&2; exit 1; }
done

target=${CARGO_TARGET_DIR:-target}
if [ "$PROFILE" = release ]; then
    echo "== building limits_server in release (with line tables, for callgrind_annotate)" >&2
    CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
        cargo build --release --locked -p rocket_sqlite_sessions_testsuite --example limits_server >&2
    server_binary=$target/release/examples/limits_server
else
    cargo build --locked -p rocket_sqlite_sessions_testsuite --example limits_server >&2
    server_binary=$target/debug/examples/limits_server
fi

work=$(mktemp -d)
server=
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; fi
    # KEEP_DUMPS=<dir> keeps callgrind's dumps, for callgrind_annotate.
    if [ -n "${KEEP_DUMPS:-}" ]; then mkdir -p "$KEEP_DUMPS" && cp "$work"/callgrind.out.* "$KEEP_DUMPS"/; fi
    rm -rf "$work"
}
trap cleanup EXIT

secret=$(head -c 32 /dev/urandom | base64)
ROCKET_PROFILE=release ROCKET_ADDRESS=127.0.0.1 ROCKET_PORT=$PORT ROCKET_LOG_LEVEL=off \
    ROCKET_SECRET_KEY="$secret" ROCKET_WORKERS=2 \
    ROCKET_SESSIONS="{database=\"$work/sessions.db\",secret=\"$secret\",auto_prune=false}" \
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/callgrind.out.%p" \
    "$server_binary" >"$work/server.log" 2>&1 &
server=$!
until curl -sf -o /dev/null "http://127.0.0.1:$PORT/health"; do
    kill -0 "$server" 2>/dev/null || { echo "the server exited; its log:" >&2; cat "$work/server.log" >&2; exit 1; }
    sleep 0.2
done

figures=$(python3 scripts/instructions.py "$server" "http://127.0.0.1:$PORT" "$COUNT" "$work")
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
python3 - "$figures" "$commit" "$PROFILE" "$COUNT" <<'PY'
import json, sys
f = json.loads(sys.argv[1])
commit, profile, count = sys.argv[2], sys.argv[3], sys.argv[4]
print(f"Instructions per request (callgrind, {profile} build, commit {commit}, {count} requests a phase, the lowest of three runs):\n")
print("| request | instructions | own (over its baseline) | / baseline |")
print("|---|---|---|---|")
rows = [
    ("GET /open (no guard)", "open", None),
    ("GET /guarded, a kept token", "guard_kept", "open"),
    ("GET /guarded, first-seen tokens", "guard_first_seen", "open"),
    ("POST /floor (refresh's HTTP floor)", "floor", None),
    ("POST /auth/refresh", "refresh", "floor"),
    ("POST /auth/logout", "logout", "open"),
    ("POST /login-pair (the crate's part of a login)", "login", "open"),
]
for label, key, base in rows:
    value = f[key]
    if base:
        own = value - f[base]
        print(f"| {label} | {value:,.0f} | {own:,.0f} | {value / f[base]:.3f} |")
    else:
        print(f"| {label} | {value:,.0f} | | |")
PY
