#!/usr/bin/env python3
"""Counts the instructions the limits_server spends per request, under
valgrind's callgrind (user space, every thread of the server): each phase
is a run of requests of one kind, over one keep-alive connection, with the
server's instrumentation switched on for it alone (callgrind_control), run
three times and the lowest figure kept (malloc's and Tokio's state move a
phase by a few hundred instructions from one run to the next). Driven by
scripts/instructions.sh.

  instructions.py SERVER_PID BASE_URL COUNT OUT_DIR
"""
import http.client
import json
import os
import re
import subprocess
import sys
import urllib.parse

pid, base, count, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
url = urllib.parse.urlparse(base)


def connection():
    return http.client.HTTPConnection(url.hostname, url.port, timeout=600)


def request(conn, method, path, headers=None, body=None):
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    return response.status, data


def control(*args):
    subprocess.run(["callgrind_control", *args, pid], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def counted(name, prepare, send):
    """The instructions of `send(conn, item)` for each item `prepare()`
    gives (made before instrumentation), per request; the lowest of three runs."""
    figures = []
    for run in (1, 2, 3):
        items = prepare()
        conn = connection()
        request(conn, "GET", "/health")  # the connection is open before counting
        control("--zero")
        control("--instr=on")
        for item in items:
            status = send(conn, item)
            assert status < 400 or name == "logout", f"{name}: {status}"
        control("--instr=off")
        dump = f"{name}-{run}"
        control(f"--dump={dump}")
        conn.close()
        figures.append(total_of(dump) / len(items))
    return min(figures)


def total_of(dump):
    """The `totals:` of the callgrind dump named `dump` (`--dump=<name>`
    writes `desc: Trigger: dump <name>` in its header)."""
    import time
    for _ in range(400):
        for file in os.listdir(out):
            if not file.startswith("callgrind.out"):
                continue
            with open(os.path.join(out, file), errors="replace") as f:
                text = f.read()
            if re.search(rf"^desc: Trigger: dump {re.escape(dump)}$", text, re.M):
                match = re.search(r"^totals: (\d+)", text, re.M)
                if match:
                    return int(match.group(1))
        time.sleep(0.05)
    raise SystemExit(f"no callgrind dump for {dump}")


setup = connection()


def token():
    status, data = request(setup, "GET", "/token")
    assert status == 200, status
    return data.decode()


def pair():
    status, data = request(setup, "POST", "/login-pair")
    assert status == 200, status
    return json.loads(data)


kept = token()
bearer = {"Authorization": f"Bearer {kept}"}
floor_body = json.dumps({"refresh_token": "x" * 96})
results = {}
results["open"] = counted("open", lambda: [None] * count, lambda c, _: request(c, "GET", "/open", bearer)[0])
results["guard_kept"] = counted("guard_kept", lambda: [None] * count, lambda c, _: request(c, "GET", "/guarded", bearer)[0])
# Four times the tokens the guard keeps (1,024), each sent once: every one
# is a first sight. CI's smoke run asks for fewer (DISTINCT).
distinct = int(os.environ.get("DISTINCT", max(count, 4096)))
results["guard_first_seen"] = counted(
    "guard_first_seen",
    lambda: [token() for _ in range(distinct)],
    lambda c, t: request(c, "GET", "/guarded", {"Authorization": f"Bearer {t}"})[0],
)
results["floor"] = counted(
    "floor",
    lambda: [None] * count,
    lambda c, _: request(c, "POST", "/floor", {"Content-Type": "application/json"}, floor_body)[0],
)


def refresh_chain():
    state = {"refresh": pair()["refresh_token"]}
    return [state] * count


def refresh(c, state):
    status, data = request(
        c, "POST", "/auth/refresh", {"Content-Type": "application/json"},
        json.dumps({"refresh_token": state["refresh"]}),
    )
    state["refresh"] = json.loads(data)["refresh_token"]
    return status


results["refresh"] = counted("refresh", refresh_chain, refresh)
results["logout"] = counted(
    "logout",
    lambda: [token() for _ in range(count)],
    lambda c, t: request(c, "POST", "/auth/logout", {"Authorization": f"Bearer {t}"})[0],
)
results["login"] = counted("login", lambda: [None] * count, lambda c, _: request(c, "POST", "/login-pair")[0])
print(json.dumps(results))
