#!/usr/bin/env python3
"""Runs the README's curl walkthrough, verbatim, against the demo, and checks
every output the README shows (`# → …` under a command; `…` stands for any
text, and a note after two spaces, `  (…)`, is not part of the output).

    scripts/readme_walkthrough.py [DEMO]

DEMO is the demo's executable (default: target/debug/examples/demo, which
`cargo test` builds). It runs in an empty directory, on port 8000 as the
README says, and is stopped at the end. Needs curl and jq. CI runs it, so a
README whose walkthrough breaks fails CI.
"""

import os
import re
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARK = "@@readme-walkthrough-output@@"


def walkthrough():
    """The README's shell block that follows "a session from start to end"."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    start = text.index("a session from start to end")
    block = text.index("```sh\n", start) + len("```sh\n")
    return text[block : text.index("```", block)].splitlines()


def script_and_expectations(lines):
    """A bash script printing a marker after each command, and the outputs
    the README shows, each with the number of the command it follows."""
    script, expected, commands = ["set -euo pipefail"], [], 0
    for line in lines:
        if line.startswith("# → "):
            shown = re.split(r"  \(", line[len("# → "):], maxsplit=1)[0].strip()
            expected.append((commands - 1, shown))
        elif line.strip() and not line.lstrip().startswith("#"):
            script.append(line)
            script.append(f"echo {MARK}")
            commands += 1
    return "\n".join(script) + "\n", expected


def matches(shown, actual):
    pattern = ".*".join(re.escape(part) for part in shown.split("…"))
    return re.fullmatch(pattern, actual.strip(), re.DOTALL) is not None


def main():
    demo = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/debug/examples/demo"))
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 8000)) == 0:
            sys.exit("readme_walkthrough: something already listens on port 8000, where the README's demo runs")
    work = tempfile.mkdtemp(prefix="readme-walkthrough-")
    env = dict(os.environ, ROCKET_LOG_LEVEL="critical")
    server = subprocess.Popen([demo], cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = time.time()
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", 8000)) == 0:
                    break
            if server.poll() is not None or time.time() - started > 30:
                sys.exit("readme_walkthrough: the demo did not start on port 8000")
            time.sleep(0.05)
        script, expected = script_and_expectations(walkthrough())
        ran = subprocess.run(["bash", "-c", script], cwd=work, capture_output=True, text=True, timeout=120)
        outputs = ran.stdout.split(MARK + "\n")
        failures = []
        if ran.returncode != 0:
            failures.append(f"the walkthrough exited with {ran.returncode}: {ran.stderr.strip()}")
        for command, shown in expected:
            actual = outputs[command] if command < len(outputs) else "(no output)"
            if not matches(shown, actual):
                failures.append(
                    f"command {command + 1}: the README shows {shown!r}, the demo printed {actual.strip()!r}"
                )
        if failures:
            print("The README's walkthrough does not do what it says:", file=sys.stderr)
            for failure in failures:
                print("  " + failure, file=sys.stderr)
            sys.exit(1)
        print(f"readme_walkthrough: {len(expected)} outputs as the README shows them")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
