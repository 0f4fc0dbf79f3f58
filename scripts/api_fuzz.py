#!/usr/bin/env python3
"""Schemathesis against `calgate demo`: the REST API keeps the OpenAPI document it publishes.

Starts the built binary (`calgate demo --listen 127.0.0.1:0` in a fresh data directory: a
simulated tenant, its 37 mailboxes linked and synced, the API serving), reads the API's address
and the admin API key the demo prints once, and runs Schemathesis against
`/openapi.json` with that key. Every phase runs (examples, coverage, fuzzing, stateful), bounded
by `--max-examples` per operation and a wall-clock limit, and these checks must hold for every
generated request:

  not_a_server_error, status_code_conformance, content_type_conformance,
  response_schema_conformance, response_headers_conformance

Then the demo is stopped with SIGTERM and must exit 0 within 15 s. Exits 1 on any failure,
when Schemathesis generated fewer than --min-cases requests (a run that tests nothing is not a
pass), or when the demo does not come up. Run by .ci/run in a venv with schemathesis installed:

    python3 scripts/api_fuzz.py [--bin target/debug/calgate] [--max-examples 50]
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)


INTERPRETER_BUG = "AST constructor recursion depth mismatch"


def only_interpreter_bug(out):
    """True when Schemathesis reported no failed check and every error it reported is CPython
    3.11's AST recursion-depth bug (gh-106905) raised inside Hypothesis while it describes a
    strategy: a crash of the test tool, not a finding about the API."""
    if "== FAILURES ==" in out or INTERPRETER_BUG not in out:
        return False
    m = re.search(r"=+ ERRORS =+\n(.*?)\n=+ (WARNINGS|SUMMARY) =+", out, re.S)
    if not m:
        return False
    blocks = [b for b in re.split(r"\n_{5,} [A-Z]+ [^\n]* _{5,}\n", "\n" + m.group(1)) if b.strip()]
    return bool(blocks) and all(INTERPRETER_BUG in b for b in blocks)


def start_demo(binary, data_dir):
    """Starts the demo; returns (process, api base URL, admin key) once it serves."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALGATE_")}
    env["CALGATE_LOG_LEVEL"] = "warn"
    log = open(os.path.join(os.path.dirname(data_dir), "demo.log"), "wb")
    proc = subprocess.Popen(
        [binary, "demo", "--data-dir", data_dir, "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    found = {}
    lines = []

    def reader():
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace")
            lines.append(line)
            m = re.search(r"REST API at (http://[0-9.:\[\]]+)", line)
            if m:
                found["url"] = m.group(1)
            m = re.search(r"API key \(admin scope, shown once\): (\S+)", line)
            if m:
                found["key"] = m.group(1)

    threading.Thread(target=reader, daemon=True).start()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if "url" in found and "key" in found:
            return proc, found["url"], found["key"]
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(
        "FAIL api_fuzz: the demo did not start serving (exit status %s); its output:\n%s"
        % (proc.poll(), "".join(lines))
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="target/debug/calgate")
    ap.add_argument("--max-examples", type=int, default=50)
    ap.add_argument("--min-cases", type=int, default=300)
    ap.add_argument("--timeout", type=int, default=900, help="seconds for the whole run")
    args = ap.parse_args()

    st = shutil.which("schemathesis", path=os.path.dirname(sys.executable)) or shutil.which("schemathesis")
    if not st:
        print("FAIL api_fuzz: schemathesis is not installed (pip install schemathesis)")
        return 1
    tmp = tempfile.mkdtemp(prefix="calgate-fuzz-")
    proc = None
    try:
        proc, url, key = start_demo(os.path.abspath(args.bin), os.path.join(tmp, "data"))
        print(f"demo serving at {url}", flush=True)
        cmd = [
            st, "--no-color", "run", f"{url}/openapi.json",
            "--header", f"Authorization: Bearer {key}",
            "--checks", CHECKS,
            "--max-examples", str(args.max_examples),
            # One worker: CPython 3.11's AST recursion-depth bug (gh-106905) is a race between
            # threads compiling at once inside Hypothesis; with two workers it struck both tries
            # of one CI run. One worker removes the race; the retry below stays for safety.
            "--workers", "1",
        ]
        started = time.monotonic()
        for attempt in (1, 2, 3):
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
            out = run.stdout + run.stderr
            # Never echo the key (Schemathesis filters Authorization, but be sure).
            print(out.replace(key, "[API key]"))
            if attempt < 3 and run.returncode != 0 and only_interpreter_bug(out):
                print("NOTE api_fuzz: the only errors were CPython 3.11's 'AST constructor recursion "
                      "depth mismatch' inside Hypothesis (gh-106905, not an API failure): running again",
                      flush=True)
                continue
            break
        m = re.search(r"(\d+) generated, (\d+) passed", out)
        generated = int(m.group(1)) if m else 0
        took = time.monotonic() - started
        if run.returncode != 0:
            print(f"FAIL api_fuzz: schemathesis exited {run.returncode} ({generated} requests, {took:.0f} s)")
            return 1
        if not m or int(m.group(2)) != generated:
            print("FAIL api_fuzz: schemathesis did not report every generated request as passed")
            return 1
        if generated < args.min_cases:
            print(f"FAIL api_fuzz: only {generated} requests generated (at least {args.min_cases} expected)")
            return 1
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            print("FAIL api_fuzz: the demo did not stop within 15 s of SIGTERM")
            return 1
        if rc != 0:
            print(f"FAIL api_fuzz: the demo exited {rc} on SIGTERM")
            return 1
        print(f"PASS api_fuzz: {generated} requests, all conform ({took:.0f} s); demo stopped cleanly")
        return 0
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        log = os.path.join(tmp, "demo.log")
        if os.path.exists(log) and os.path.getsize(log):
            with open(log, encoding="utf-8", errors="replace") as f:
                tail = f.read()[-4000:]
            print("-- demo log (warnings and errors):\n" + tail)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
