# Shell functions shared by scripts/load.sh and scripts/backends.sh; sourced,
# not run. They use the caller's $demo (the demo binary), $work (a temporary
# directory), $secret, $PORT, $base, $THREADS, $CONNECTIONS and $DURATION.
# $DEMO_USERS, when set, is the SQLite file for the demo's users.

# Starts the demo on database $1 (log in $work/demo.log), its [sessions]
# the TOML table $2 when given (else $1 and $secret); sets $server and
# $startup_ms, the time from exec to the first answer of /health. The user
# "load" (password "load password") is registered.
start_demo() {
    local started now
    started=$(date +%s%N)
    ROCKET_PROFILE=release ROCKET_ADDRESS=127.0.0.1 ROCKET_PORT=$PORT ROCKET_LOG_LEVEL=critical \
        ROCKET_SECRET_KEY="$secret" ROCKET_SESSIONS="${2:-{database=\"$1\",secret=\"$secret\"\}}" \
        ROCKET_DEMO_USERS="${DEMO_USERS:-$1}" "$demo" >>"$work/demo.log" 2>&1 &
    server=$!
    until curl -sf -o /dev/null "$base/health"; do
        kill -0 "$server" 2>/dev/null || { echo "the demo exited; its log:" >&2; cat "$work/demo.log" >&2; exit 1; }
        sleep 0.005
    done
    now=$(date +%s%N)
    startup_ms=$(((now - started) / 1000000))
    # The fixture's sessions are user 1's: the demo's claims source ends the
    # sessions of a user its table does not have, so register one (the first
    # user is id 1; a second start finds it there, 409).
    curl -s -o /dev/null -H 'Content-Type: application/json' \
        -d '{"username":"load","password":"load password"}' "$base/auth/register"
}

stop_demo() {
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=
}

# CPU time the demo has used, in clock ticks (user + system).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
ticks_per_second=$(getconf CLK_TCK)
# The demo's CPU time per request, in µs: ticks used, requests answered.
cpu_per_request() { awk -v t="$1" -v n="$2" -v hz="$ticks_per_second" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }'; }
# The number of requests in wrk's output.
requests_of() { awk '/ requests in / {print $1}'; }

# RSS and peak RSS of the demo, in MiB.
rss() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$server/status"; }
peak_rss() { awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$server/status"; }

# Reads wrk's output; prints "requests/s p99_ms non2xx".
summarise() {
    awk '
        /^Requests\/sec:/ { rps = $2 }
        /^ +99%/ { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } p99 = v }
        /Non-2xx or 3xx responses:/ { bad = $5 }
        END { printf "%s %s %d\n", rps, p99, bad }'
}

# Runs wrk with the given extra arguments; prints its full output to stderr and
# its summary to stdout, with the demo's CPU ticks and the requests answered.
run_wrk() {
    local out before
    before=$(cpu_ticks)
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$@")
    echo "$out" >&2
    echo "$(summarise <<<"$out") $(($(cpu_ticks) - before)) $(requests_of <<<"$out")"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

