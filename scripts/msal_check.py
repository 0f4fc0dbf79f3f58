#!/usr/bin/env python3
"""Microsoft's MSAL for Python against `calgate sim --tls`.

Starts the built binary (`target/debug/calgate sim --tls --seed demo --listen 127.0.0.1:0
--credentials-out <tmp>/creds.json`), then with MSAL's ConfidentialClientApplication:

  1. acquires an app-only Graph token with the demo app's client secret;
  2. lists a demo room's events on Graph with that token (200);
  3. checks that a wrong secret comes back as MSAL's error dict (invalid_client, AADSTS7000215);
  4. registers a certificate through the control API (POST /_sim/apps/{id}/certificates,
     {"generate": true}) and acquires a token with {"private_key", "thumbprint"} (MSAL signs
     the client assertion with RS256 + x5t), then lists the room's events with it;
  5. acquires a token with {"private_key", "public_certificate"} (MSAL signs with PS256 +
     x5t#S256 and sends x5c), then lists the room's events with it.

Prints PASS/FAIL lines and ends with "N passed, M failed"; exits 1 on any failure. The
simulator is always stopped. Run by .ci/run in a venv with `pip install msal==1.39.0`:

    python3 scripts/msal_check.py [--bin target/debug/calgate]
"""

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

try:
    import msal
    import requests
except ImportError as e:  # pragma: no cover - environment problem, reported loudly
    print(f"FAIL msal_check: cannot import msal/requests ({e}); run it in a venv with `pip install msal==1.39.0`")
    print("0 passed, 1 failed")
    sys.exit(1)

GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]
HTTP_TIMEOUT = 30


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, name, detail=""):
        self.passed += 1
        print(f"PASS {name}" + (f": {detail}" if detail else ""), flush=True)

    def fail(self, name, detail):
        self.failed += 1
        print(f"FAIL {name}: {detail}", flush=True)

    def run(self, name, fn):
        """Runs fn(); PASS with its return value as detail, FAIL on exception."""
        try:
            detail = fn()
            self.ok(name, detail or "")
            return True
        except Exception as e:  # noqa: BLE001 - every failure is reported, never raised
            self.fail(name, f"{type(e).__name__}: {e}")
            if os.environ.get("MSAL_CHECK_TRACE"):
                traceback.print_exc()
            return False


def jwt_part(token, index):
    part = token.split(".")[index]
    part += "=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(part))


def start_sim(binary, workdir):
    creds_path = os.path.join(workdir, "creds.json")
    log_path = os.path.join(workdir, "sim.log")
    log = open(log_path, "wb")
    cmd = [binary, "sim", "--tls", "--seed", "demo", "--listen", "127.0.0.1:0",
           "--credentials-out", creds_path]
    print("starting: " + " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    return proc, creds_path, log_path, log


def wait_for_creds(proc, creds_path, log_path, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"calgate sim exited with status {proc.returncode} before writing "
                               f"{creds_path}; its output:\n{tail(log_path)}")
        try:
            with open(creds_path, encoding="utf-8") as f:
                creds = json.load(f)  # a partially written file fails to parse: retry
            if creds.get("authority") and creds.get("apps"):
                return creds
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"no complete {creds_path} after {timeout} s; simulator output:\n{tail(log_path)}")


def tail(path, n=30):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no output)"


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    ap.add_argument("--bin", default=os.environ.get("CALGATE_BIN", os.path.join(target, "debug", "calgate")),
                    help="the calgate binary (default: target/debug/calgate)")
    args = ap.parse_args()
    # requests lets these variables override a Session's `verify` (which is how MSAL passes our
    # CA file): with them set, the simulator's self-signed CA would be ignored.
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        if os.environ.pop(var, None) is not None:
            print(f"note: ignoring {var} so that MSAL uses the simulator's CA")

    print(f"msal {msal.__version__}, requests {requests.__version__}, python {sys.version.split()[0]}")
    if not (os.path.isfile(args.bin) and os.access(args.bin, os.X_OK)):
        print(f"FAIL msal_check: {args.bin} is not an executable; build it first with `cargo build -p calgate`")
        print("0 passed, 1 failed")
        return 1

    checks = Checks()
    workdir = tempfile.mkdtemp(prefix="calgate-msal-")
    proc = log = None
    try:
        proc, creds_path, log_path, log = start_sim(args.bin, workdir)
        try:
            creds = wait_for_creds(proc, creds_path, log_path)
        except RuntimeError as e:
            checks.fail("simulator starts and writes --credentials-out", str(e))
            return 1
        checks.ok("simulator starts and writes --credentials-out", creds["authority"])

        authority = creds["authority"]
        graph = creds["graph_url"].rstrip("/")
        base = graph.rsplit("/v1.0", 1)[0]
        app = creds["apps"][0]
        client_id, secret = app["client_id"], app["client_secret"]
        rooms = [m["address"] for m in creds.get("mailboxes", []) if m.get("kind") == "room"]
        room = rooms[0] if rooms else None
        if not authority.startswith("https://"):
            checks.fail("authority is https", authority)
        ca_pem = creds.get("ca_cert_pem")
        if not ca_pem:
            checks.fail("credentials carry ca_cert_pem", "no ca_cert_pem in the --credentials-out file")
            return 1
        ca_file = os.path.join(workdir, "ca.pem")
        with open(ca_file, "w", encoding="utf-8") as f:
            f.write(ca_pem)

        def app_with(credential):
            return msal.ConfidentialClientApplication(
                client_id,
                authority=authority,
                client_credential=credential,
                verify=ca_file,
                validate_authority=False,
                instance_discovery=False,
                timeout=HTTP_TIMEOUT,
            )

        def acquire(credential, label):
            result = app_with(credential).acquire_token_for_client(scopes=GRAPH_SCOPE)
            if "access_token" not in result:
                raise AssertionError(f"no access_token: {result.get('error')}: {result.get('error_description')}")
            claims = jwt_part(result["access_token"], 1)
            if claims.get("appid") != client_id:
                raise AssertionError(f"token appid {claims.get('appid')} is not {client_id}")
            tokens[label] = result["access_token"]
            return f"token_type {result.get('token_type')}, expires_in {result.get('expires_in')}, roles {claims.get('roles')}"

        def list_room_events(label):
            def run():
                if room is None:
                    raise AssertionError("the demo tenant publishes no room mailbox")
                token = tokens.get(label)
                if token is None:
                    raise AssertionError("no token (the acquisition above failed)")
                r = requests.get(f"{graph}/users/{room}/events", headers={"Authorization": f"Bearer {token}"},
                                 verify=ca_file, timeout=HTTP_TIMEOUT)
                if r.status_code != 200:
                    raise AssertionError(f"GET /users/{room}/events → {r.status_code}: {r.text[:300]}")
                return f"{room}: {len(r.json().get('value', []))} events on the first page"
            return run

        tokens = {}
        checks.run("client secret: acquire_token_for_client", lambda: acquire(secret, "secret"))
        checks.run("client secret token lists a room's events", list_room_events("secret"))

        def wrong_secret():
            result = app_with("not-the-secret").acquire_token_for_client(scopes=GRAPH_SCOPE)
            if "access_token" in result:
                raise AssertionError("a wrong secret got a token")
            if result.get("error") != "invalid_client" or 7000215 not in result.get("error_codes", []):
                raise AssertionError(f"expected invalid_client / AADSTS7000215, got {result.get('error')} {result.get('error_codes')}")
            return f"{result['error']}, AADSTS{result['error_codes'][0]}"
        checks.run("wrong secret: MSAL reports invalid_client (AADSTS7000215)", wrong_secret)

        cert = {}

        def register_cert():
            r = requests.post(f"{base}/_sim/apps/{client_id}/certificates",
                              json={"generate": True, "display_name": "msal-check"},
                              verify=ca_file, timeout=HTTP_TIMEOUT)
            if r.status_code not in (200, 201):
                raise AssertionError(f"POST /_sim/apps/{client_id}/certificates → {r.status_code}: {r.text[:300]}")
            c = r.json()
            for k in ("private_key_pem", "cert_pem", "thumbprint_sha1_hex"):
                if not c.get(k):
                    raise AssertionError(f"the answer has no {k}: {sorted(c)}")
            cert.update(c)
            return f"key_id {c.get('key_id')}, sha1 {c['thumbprint_sha1_hex']}"
        if checks.run("control API registers a generated certificate", register_cert):
            checks.run("certificate (RS256 + x5t): acquire_token_for_client",
                       lambda: acquire({"private_key": cert["private_key_pem"],
                                        "thumbprint": cert["thumbprint_sha1_hex"]}, "rs256"))
            checks.run("certificate (RS256 + x5t) token lists a room's events", list_room_events("rs256"))
            checks.run("certificate (PS256 + x5t#S256): acquire_token_for_client",
                       lambda: acquire({"private_key": cert["private_key_pem"],
                                        "public_certificate": cert["cert_pem"]}, "ps256"))
            checks.run("certificate (PS256 + x5t#S256) token lists a room's events", list_room_events("ps256"))
        return 1 if checks.failed else 0
    except Exception as e:  # noqa: BLE001
        checks.fail("msal_check", f"{type(e).__name__}: {e}")
        traceback.print_exc()
        return 1
    finally:
        if proc is not None:
            stop(proc)
        if log is not None:
            log.close()
        if checks.failed and proc is not None:
            print("--- simulator output (last lines) ---")
            print(tail(os.path.join(workdir, "sim.log")))
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"{checks.passed} passed, {checks.failed} failed", flush=True)


if __name__ == "__main__":
    sys.exit(main())
