#!/usr/bin/env python3
"""calgate's webhooks verify with the Standard Webhooks reference implementation.

Starts `calgate sim` (a separate process), connects a fresh data directory to it, links a few
mailboxes, adds a webhook pointing at a receiver in this script (http on 127.0.0.1), runs
`calgate serve` (which syncs and delivers), and checks every delivery with
`standardwebhooks.Webhook(secret).verify(body, headers)` from PyPI's `standardwebhooks`
package. Then it rotates the secret while serve runs, makes changes in the simulator and asks
for a sync round: the new deliveries must verify under the new secret and, during the overlap,
under the old one too; a tampered body or a wrong secret must not verify.

Prints a summary line and exits 1 on any failure. Run by .ci/run in a venv with
`pip install standardwebhooks`:

    python3 scripts/webhook_check.py [--bin target/debug/calgate]
"""

import argparse
import http.server
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

try:
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError
except ImportError as e:  # environment problem, reported loudly
    print(f"FAIL webhook_check: cannot import standardwebhooks ({e})")
    sys.exit(1)


def fail(msg):
    print(f"FAIL webhook_check: {msg}")
    sys.exit(1)


def env(extra=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("CALGATE_")}
    e["CALGATE_LOG_LEVEL"] = "warn"
    e.update(extra or {})
    return e


def cli(binary, data, *args, extra_env=None):
    r = subprocess.run([binary, "--data-dir", data, *args], capture_output=True, text=True,
                       env=env(extra_env), timeout=300)
    if r.returncode != 0:
        fail(f"calgate {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


class Receiver(http.server.BaseHTTPRequestHandler):
    got = []
    lock = threading.Lock()

    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(n)
        headers = {k.lower(): v for k, v in self.headers.items()}
        with Receiver.lock:
            Receiver.got.append((headers, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def wait_for(pred, what, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    fail(f"timed out waiting for {what}")


def wait_quiet(quiet, what, timeout=90):
    """Waits until no delivery has arrived for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    n, since = len(received()), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        m = len(received())
        if m != n:
            n, since = m, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
    fail(f"timed out waiting for {what}")


def start(cmd, pattern, log, what):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(log, "wb"),
                            stdin=subprocess.DEVNULL, env=env())
    found = {}

    def reader():
        for raw in proc.stdout:
            m = re.search(pattern, raw.decode("utf-8", "replace"))
            if m and "url" not in found:
                found["url"] = m.group(1)

    threading.Thread(target=reader, daemon=True).start()
    wait_for(lambda: "url" in found or proc.poll() is not None, f"{what} to start", 60)
    if "url" not in found:
        proc.kill()
        fail(f"{what} did not start (exit status {proc.poll()}; log in {log})")
    return proc, found["url"]


def received():
    with Receiver.lock:
        return list(Receiver.got)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/debug/calgate")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    tmp = tempfile.mkdtemp(prefix="calgate-webhooks-")
    data = os.path.join(tmp, "data")
    creds_file = os.path.join(tmp, "creds.json")
    procs = []
    try:
        sim = subprocess.Popen(
            [binary, "sim", "--listen", "127.0.0.1:0", "--seed", "demo", "--credentials-out", creds_file],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "sim.log"), "wb"),
            stdin=subprocess.DEVNULL, env=env())
        procs.append(sim)
        wait_for(lambda: os.path.exists(creds_file) and os.path.getsize(creds_file) > 0,
                 "the simulator's credentials", 60)
        time.sleep(0.2)
        creds = json.load(open(creds_file))
        app = creds["apps"][0]
        people = [m["address"] for m in creds["mailboxes"] if m["kind"] == "user"][:3]
        cli(binary, data, "connection", "add", "sim", "--tenant", creds["tenant_id"],
            "--client-id", app["client_id"], "--client-secret-env", "CG_SECRET",
            "--authority", creds["authority"], "--graph-url", creds["graph_url"],
            extra_env={"CG_SECRET": app["client_secret"]})
        for p in people:
            cli(binary, data, "mailbox", "link", p, "--connection", "sim")

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        hook_url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        out = cli(binary, data, "webhook", "add", hook_url)
        m = re.search(r"webhook (wh_[0-9a-f]+)", out)
        s = re.search(r"(whsec_[A-Za-z0-9+/=]+)", out)
        if not m or not s:
            fail(f"`calgate webhook add` printed no id or secret: {out!r}")
        hook, secret = m.group(1), s.group(1)
        key = cli(binary, data, "apikey", "create", "check", "--scope", "admin").strip()

        serve, api = start([binary, "--data-dir", data, "serve", "--listen", "127.0.0.1:0"],
                           r"API on (http://[0-9.:\[\]]+)", os.path.join(tmp, "serve.log"), "calgate serve")
        procs.append(serve)
        wait_for(lambda: len(received()) >= 20, "the first sync's deliveries")
        # Let the first sync's deliveries drain (none for 2 s): one signed before the rotation
        # but received after it would otherwise count as sent after it.
        wait_quiet(2.0, "the first sync's deliveries to drain")

        # Rotate while serving; then changes in Exchange and a sync round.
        rotated_at = int(time.time())
        out = cli(binary, data, "webhook", "rotate-secret", hook)
        s2 = re.search(r"(whsec_[A-Za-z0-9+/=]+)", out)
        if not s2:
            fail(f"`calgate webhook rotate-secret` printed no secret: {out!r}")
        new_secret = s2.group(1)
        before = len(received())
        sim_base = creds["graph_url"].rstrip("/").removesuffix("/v1.0")
        for p in people:
            req = urllib.request.Request(f"{sim_base}/_sim/mailboxes/{p}/random-changes",
                                         data=json.dumps({"count": 4, "seed": 11}).encode(),
                                         headers={"content-type": "application/json"}, method="POST")
            urllib.request.urlopen(req, timeout=30).read()
            req = urllib.request.Request(f"{api}/v1/mailboxes/{p}/sync", data=b"",
                                         headers={"authorization": f"Bearer {key}"}, method="POST")
            urllib.request.urlopen(req, timeout=30).read()
        wait_for(lambda: len(received()) > before, "deliveries after the rotation")
        time.sleep(1.0)

        got = received()
        old_ok = new_ok = both = 0
        types = {}
        for i, (headers, body) in enumerate(got):
            after_rotation = i >= before
            # The reference implementation verifies id, timestamp and signature.
            verified = []
            for name, sec in (("old", secret), ("new", new_secret)):
                try:
                    payload = Webhook(sec).verify(body, headers)
                    verified.append(name)
                except WebhookVerificationError:
                    pass
            if not after_rotation and "old" not in verified:
                fail(f"delivery {headers.get('webhook-id')} does not verify: {headers}")
            # webhook-timestamp is the second of signing: one from before the rotation's second
            # was signed with the old secret alone, whenever it arrived.
            signed_before = int(headers.get("webhook-timestamp", "0")) < rotated_at
            if after_rotation and signed_before and "old" not in verified:
                fail(f"delivery {headers.get('webhook-id')} signed before the rotation does not verify")
            if after_rotation and not signed_before and verified != ["old", "new"]:
                # Sent after the rotation: both secrets sign during the overlap.
                fail(f"delivery {headers.get('webhook-id')} after the rotation verifies with {verified}")
            old_ok += "old" in verified
            new_ok += "new" in verified
            both += len(verified) == 2
            if set(payload) != {"type", "timestamp", "data"}:
                fail(f"unexpected body shape: {sorted(payload)}")
            types[payload["type"]] = types.get(payload["type"], 0) + 1
            # Tampering is detected.
            try:
                Webhook(secret).verify(body + b" ", headers)
                fail("a tampered body verified")
            except WebhookVerificationError:
                pass
        try:
            Webhook("whsec_" + "A" * 43 + "=").verify(got[0][1], got[0][0])
            fail("a wrong secret verified")
        except WebhookVerificationError:
            pass
        if "event.created" not in types:
            fail(f"no event.created among {types}")
        print(f"ok webhook_check: {len(got)} deliveries verified by standardwebhooks "
              f"({old_ok} with the first secret, {new_ok} with the rotated one, {both} with both); "
              f"types {dict(sorted(types.items()))}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
