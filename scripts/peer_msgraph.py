#!/usr/bin/env python3
"""Side-by-side benchmark: Microsoft's Graph SDK for Python vs. calgate, same simulator.

Starts one `calgate sim --tls --seed empty --scale M --events-per-mailbox E --latency-ms L`
on 127.0.0.1 and pulls every mailbox's calendar over calgate's default sync window twice,
with the simulator's counters reset before each side:

  calgate  `calgate connection add` (the sim's tenant, app, secret, authority, Graph URL and
           CA), `calgate mailbox import` (a CSV of the sim's mailboxes), then the timed part:
           the first `calgate sync` of all of them (`--concurrency C` if given).
  peer     what an integrator writes with msgraph-sdk + azure-identity: an async
           `ClientSecretCredential` whose authority is the simulator (azure-identity accepts
           only https authorities, hence `--tls`; its CA is given to both azure-identity and
           the SDK's httpx client), a `GraphServiceClient` whose request adapter's base URL is
           the sim's `/v1.0`, and per mailbox
           `users.by_user_id(addr).calendar_view.delta.get(startDateTime, endDateTime,
           Prefer: odata.maxpagesize=100)` then `.with_url(odata_next_link)` until
           `odata_delta_link`, counting the events; N mailboxes at once (asyncio).
           The SDK's default middleware (retry on 429/503/504 with Retry-After, redirects,
           telemetry) is kept as is. The SDK requests `.../calendarView/delta()` (OData
           function-call syntax, which Graph accepts), and so does the simulator; with
           `--delta-rewrite` the SDK's own UrlReplaceHandler turns it into
           `.../calendarView/delta` (for simulators older than that route, which 404 it).

calgate runs first (the simulator is cold for it), the peer second. Both sides ask for the same
window: calgate's default, from the UTC midnight 30 days before today to the UTC midnight 366
days after today (crates/sync/src/plan.rs, `WindowConfig::window_at`).

Prints the versions used, then for each side its wall time, events, the requests and 429s the
simulator saw, and mailboxes failed; then `ratio: peer/calgate = X.X×`. Exits 1 if the event
counts differ, any mailbox failed, or anything else went wrong; 2 on a timeout. Every step is
bounded (`--timeout-s`, default 1800 s overall) and the simulator is always stopped.

REQUIREMENTS (pip, in a venv; the versions this was measured with):
    msgraph-sdk==1.65.0 azure-identity==1.27.0
    (pulled in: msgraph-core==1.5.2, microsoft-kiota-abstractions==1.16.0,
     microsoft-kiota-http==1.16.0, microsoft-kiota-authentication-azure==1.16.0,
     microsoft-kiota-serialization-json==1.16.0, azure-core==1.41.0, httpx==0.29.0,
     h2==4.4.1, aiohttp==3.14.5, msal==1.39.0)

    python3 -m venv /tmp/peer/venv
    /tmp/peer/venv/bin/pip install msgraph-sdk==1.65.0 azure-identity==1.27.0
    /tmp/peer/venv/bin/python scripts/peer_msgraph.py --bin target/release/calgate \
        --mailboxes 200 --events-per-mailbox 150 --latency-ms 25
"""

import argparse
import asyncio
import csv
import datetime as dt
import importlib.metadata as md
import json
import os
import re
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
import urllib.request

PAGE_SIZE = 100  # calgate's DEFAULT_PAGE_SIZE (crates/sync/src/engine.rs)
DAYS_BACK, DAYS_AHEAD = 30, 365  # calgate's default window (crates/sync/src/plan.rs)
GRAPH_SCOPES = ["https://graph.microsoft.com/.default"]
SECRET_ENV = "CALGATE_PEER_SECRET"
DELTA_CALL = "/calendarView/delta()"  # what the SDK's URL template sends
PACKAGES = ["msgraph-sdk", "msgraph-core", "azure-identity", "azure-core",
            "microsoft-kiota-abstractions", "microsoft-kiota-http",
            "microsoft-kiota-authentication-azure", "httpx", "h2", "aiohttp", "msal"]


class Timeout(Exception):
    pass


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self, cap=None):
        left = self.end - time.monotonic()
        if left <= 0:
            raise Timeout("the overall --timeout-s ran out")
        return left if cap is None else min(left, cap)


def versions():
    out = []
    for p in PACKAGES:
        try:
            out.append(f"{p}=={md.version(p)}")
        except md.PackageNotFoundError:
            out.append(f"{p} (not installed)")
    return out


def window(now=None):
    """calgate's default window: UTC midnight 30 days back .. UTC midnight 366 days ahead."""
    today = (now or dt.datetime.now(dt.timezone.utc)).date()
    start = today - dt.timedelta(days=DAYS_BACK)
    end = today + dt.timedelta(days=DAYS_AHEAD + 1)
    fmt = lambda d: d.strftime("%Y-%m-%dT00:00:00Z")  # noqa: E731 - jiff's Timestamp Display
    return fmt(start), fmt(end)


def tail(path, n=30):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no output)"


# ---------------------------------------------------------------------------------------------
# The simulator
# ---------------------------------------------------------------------------------------------

class Sim:
    def __init__(self, args, workdir, deadline):
        self.creds_path = os.path.join(workdir, "creds.json")
        self.log_path = os.path.join(workdir, "sim.log")
        self.ca_file = os.path.join(workdir, "ca.pem")
        self.log = open(self.log_path, "wb")
        cmd = [args.bin, "sim", "--tls", "--seed", "empty", "--scale", str(args.mailboxes),
               "--events-per-mailbox", str(args.events_per_mailbox),
               "--latency-ms", str(args.latency_ms), "--listen", "127.0.0.1:0",
               "--data-dir", os.path.join(workdir, "sim-data"),
               "--credentials-out", self.creds_path]
        print("sim:     " + " ".join(cmd), flush=True)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def ready(self, deadline):
        self.creds = self._wait(deadline)
        with open(self.ca_file, "w", encoding="utf-8") as f:
            f.write(self.creds["ca_cert_pem"])
        self.graph = self.creds["graph_url"].rstrip("/")
        self.base = self.graph.rsplit("/v1.0", 1)[0]
        host = urllib.parse.urlsplit(self.base).hostname
        if host not in ("127.0.0.1", "localhost"):
            raise RuntimeError(f"the simulator is not on 127.0.0.1: {self.base}")
        self.ssl = ssl.create_default_context(cafile=self.ca_file)
        self.mailboxes = [m["address"] for m in self.creds["mailboxes"]]

    def _wait(self, deadline):
        end = time.monotonic() + deadline.left(300)
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"calgate sim exited with status {self.proc.returncode}; "
                                   f"its output:\n{tail(self.log_path)}")
            try:
                with open(self.creds_path, encoding="utf-8") as f:
                    creds = json.load(f)  # a partly written file fails to parse: retry
                if creds.get("apps") and creds.get("mailboxes") and creds.get("ca_cert_pem"):
                    return creds
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"no complete {self.creds_path} in time; sim output:\n{tail(self.log_path)}")

    def control(self, method, path):
        req = urllib.request.Request(self.base + path, method=method,
                                     data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, context=self.ssl, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body else None

    def reset(self):
        self.control("POST", "/_sim/stats/reset")

    def totals(self):
        return self.control("GET", "/_sim/stats")["totals"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


# ---------------------------------------------------------------------------------------------
# calgate
# ---------------------------------------------------------------------------------------------

def run_calgate(args, sim, workdir, deadline):
    data = os.path.join(workdir, "calgate-data")
    app = sim.creds["apps"][0]
    env = dict(os.environ, **{SECRET_ENV: app["client_secret"]})
    env.pop("CALGATE_DATA_DIR", None)

    def cg(*argv, cap=600):
        cmd = [args.bin, *argv, "--data-dir", data]
        try:
            r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=deadline.left(cap))
        except subprocess.TimeoutExpired as e:
            raise Timeout(f"`{' '.join(cmd)}` did not finish in time") from e
        if r.returncode != 0:
            raise RuntimeError(f"`{' '.join(cmd)}` exited {r.returncode}:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
        return r

    cg("connection", "add", "--tenant", sim.creds["tenant_id"], "--client-id", app["client_id"],
       "--client-secret-env", SECRET_ENV, "--authority", sim.base, "--graph-url", sim.graph,
       "--ca-cert", sim.ca_file, "sim")
    csv_path = os.path.join(workdir, "mailboxes.csv")
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["address", "connection"])
        for a in sim.mailboxes:
            w.writerow([a, "sim"])
    cg("mailbox", "import", csv_path)

    sync = ["sync"] + (["--concurrency", str(args.calgate_concurrency)]
                       if args.calgate_concurrency else [])
    sim.reset()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    cmd = [args.bin, *sync, "--data-dir", data]
    try:
        r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=deadline.left())
    except subprocess.TimeoutExpired as e:
        raise Timeout("calgate sync did not finish before --timeout-s") from e
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    totals = sim.totals()
    out = (r.stdout + r.stderr).strip()
    m = re.search(r"synced ([\d,]+) of ([\d,]+) mailboxes: ([\d,]+) events stored", out)
    if m is None:
        raise RuntimeError(f"`{' '.join(cmd)}` exited {r.returncode} without its summary line:\n{out[-3000:]}")
    synced, total, events = (int(g.replace(",", "")) for g in m.groups())
    return {"wall": wall, "cpu": cpu, "events": events, "requests": totals["requests"],
            "throttled": totals["throttled"], "failed": total - synced, "rc": r.returncode,
            "summary": m.group(0) + out[m.end():].split("\n", 1)[0], "errors": [],
            "peak": totals.get("peak_concurrency")}


# ---------------------------------------------------------------------------------------------
# The peer: msgraph-sdk + azure-identity
# ---------------------------------------------------------------------------------------------

async def peer_pull(args, sim, start, end, deadline):
    import httpx
    from azure.identity.aio import ClientSecretCredential
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider)
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import (
        DeltaRequestBuilder)
    from kiota_http.middleware.options import UrlReplaceHandlerOption
    from msgraph_core import GraphClientFactory

    app = sim.creds["apps"][0]
    cpu0 = time.process_time()
    t0 = time.monotonic()
    credential = ClientSecretCredential(
        sim.creds["tenant_id"], app["client_id"], app["client_secret"],
        authority=sim.base,                # token endpoint: {authority}/{tenant}/oauth2/v2.0/token
        connection_verify=sim.ca_file,     # azure-core's transport: the sim's CA
        disable_instance_discovery=True)
    auth = AzureIdentityAuthenticationProvider(
        credential, scopes=GRAPH_SCOPES,
        allowed_hosts=[urllib.parse.urlsplit(sim.base).hostname])
    # The SDK's own default client (kiota: 100 s request / 30 s connect timeouts, HTTP/2), with
    # the sim's CA and base URL, loaded with the SDK's default middleware.
    http = httpx.AsyncClient(verify=sim.ssl, http2=True, base_url=sim.graph,
                             timeout=httpx.Timeout(100, connect=30))
    # The SDK's URL template is `.../calendarView/delta()` (OData function-call syntax, which
    # Graph and the simulator accept). Older simulators routed only `.../calendarView/delta`;
    # with --delta-rewrite the SDK's own UrlReplaceHandler rewrites it.
    pairs = {"/users/me-token-to-replace": "/me"}  # the handler's default pair, kept
    if args.delta_rewrite:
        pairs[DELTA_CALL] = "/calendarView/delta"
    options = {UrlReplaceHandlerOption.get_key(): UrlReplaceHandlerOption(replacement_pairs=pairs)}
    http = GraphClientFactory.create_with_default_middleware(client=http, options=options)
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = sim.graph
    client = GraphServiceClient(request_adapter=adapter)

    sem = asyncio.Semaphore(args.peer_concurrency)
    counts, errors = {}, {}
    pages = [0]

    async def pull(addr):
        async with sem:
            try:
                builder = client.users.by_user_id(addr).calendar_view.delta
                query = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
                    start_date_time=start, end_date_time=end)
                config = RequestConfiguration(query_parameters=query)
                config.headers.add("Prefer", f"odata.maxpagesize={PAGE_SIZE}")
                page = await builder.get(request_configuration=config)
                n = 0
                while True:
                    pages[0] += 1
                    if page is None:
                        raise RuntimeError("the SDK returned no page")
                    n += sum(1 for e in (page.value or [])
                             if "@removed" not in (e.additional_data or {}))
                    if page.odata_next_link:
                        follow = RequestConfiguration()
                        follow.headers.add("Prefer", f"odata.maxpagesize={PAGE_SIZE}")
                        page = await builder.with_url(page.odata_next_link).get(
                            request_configuration=follow)
                        continue
                    if not page.odata_delta_link:
                        raise RuntimeError("a last page with neither nextLink nor deltaLink")
                    break
                counts[addr] = n
            except Exception as e:  # noqa: BLE001 - a failed mailbox is counted, not raised
                errors[addr] = describe(e)

    try:
        await asyncio.wait_for(asyncio.gather(*(pull(a) for a in sim.mailboxes)),
                               timeout=deadline.left())
    except asyncio.TimeoutError as e:
        raise Timeout("the peer did not finish before --timeout-s") from e
    finally:
        wall = time.monotonic() - t0
        cpu = time.process_time() - cpu0
        await http.aclose()
        await credential.close()
    return {"wall": wall, "cpu": cpu, "events": sum(counts.values()), "failed": len(errors),
            "errors": sorted(errors.items())[:5], "pages": pages[0], "per_mailbox": counts}


def describe(e):
    """An exception as one line; Graph's APIError carries the status and the error body."""
    parts = [type(e).__name__]
    code = getattr(e, "response_status_code", None)
    if code is not None:
        parts.append(f"HTTP {code}")
    err = getattr(e, "error", None)
    if err is not None and (getattr(err, "code", None) or getattr(err, "message", None)):
        parts.append(f"{getattr(err, 'code', None)}: {getattr(err, 'message', None)}")
    msg = str(e).strip().splitlines()
    if msg:
        parts.append(msg[0][:300])
    return " | ".join(parts)


# ---------------------------------------------------------------------------------------------

def report(name, r):
    print(f"{name}:", flush=True)
    print(f"  wall time:              {r['wall']:.1f} s")
    print(f"  CPU time (client):      {r['cpu']:.1f} s")
    print(f"  events:                 {r['events']}")
    print(f"  requests (simulator):   {r['requests']}")
    print(f"  429s (simulator):       {r['throttled']}")
    print(f"  mailboxes failed:       {r['failed']}")
    for addr, err in r["errors"]:
        print(f"    {addr}: {err}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.environ.get("CALGATE_BIN", "target/release/calgate"),
                    help="the calgate binary (default: target/release/calgate)")
    ap.add_argument("--mailboxes", type=int, default=200)
    ap.add_argument("--events-per-mailbox", type=int, default=150)
    ap.add_argument("--latency-ms", type=int, default=25)
    ap.add_argument("--peer-concurrency", type=int, default=16,
                    help="mailboxes the SDK pulls at once (default 16)")
    ap.add_argument("--calgate-concurrency", type=int, default=None,
                    help="`calgate sync --concurrency` (default: calgate's own default)")
    ap.add_argument("--delta-rewrite", action="store_true",
                    help="rewrite the SDK's `calendarView/delta()` to `calendarView/delta` "
                         "(for simulators without the function-call route)")
    ap.add_argument("--timeout-s", type=float, default=1800, help="bound on the whole run")
    args = ap.parse_args()
    if args.mailboxes < 1 or args.peer_concurrency < 1:
        ap.error("--mailboxes and --peer-concurrency must be at least 1")
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        os.environ.pop(var, None)  # the simulator's CA is given explicitly

    try:
        import azure.identity  # noqa: F401
        import msgraph  # noqa: F401
    except ImportError as e:
        print(f"FAIL: cannot import the SDK ({e}); install it in a venv with "
              "`pip install msgraph-sdk==1.65.0 azure-identity==1.27.0`")
        return 1
    if not (os.path.isfile(args.bin) and os.access(args.bin, os.X_OK)):
        print(f"FAIL: {args.bin} is not an executable")
        return 1
    cg_version = subprocess.run([args.bin, "--version"], capture_output=True, text=True,
                                timeout=30).stdout.strip()
    print(f"python {sys.version.split()[0]}; {cg_version} ({args.bin})")
    print("peer:    " + ", ".join(versions()))
    print(f"params:  {args.mailboxes} mailboxes, {args.events_per_mailbox} events per mailbox "
          f"(seeding window), {args.latency_ms} ms latency; peer concurrency "
          f"{args.peer_concurrency}, calgate concurrency "
          f"{args.calgate_concurrency or 'default'}; {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)

    deadline = Deadline(args.timeout_s)
    workdir = tempfile.mkdtemp(prefix="calgate-peer-")
    sim = None
    status = 0
    try:
        sim = Sim(args, workdir, deadline)
        sim.ready(deadline)
        start, end = window()
        print(f"window:  startDateTime={start} endDateTime={end}; simulator {sim.base}", flush=True)

        cg = run_calgate(args, sim, workdir, deadline)
        print(f"calgate: {cg['summary']}", flush=True)
        sim.reset()
        peer = asyncio.run(peer_pull(args, sim, start, end, deadline))
        totals = sim.totals()
        peer.update(requests=totals["requests"], throttled=totals["throttled"])
        if window() != (start, end):
            print("WARNING: the UTC date changed during the run; the two sides may have used "
                  "different windows")

        print()
        report("calgate (calgate sync)", cg)
        report(f"peer (msgraph-sdk, {args.peer_concurrency} mailboxes at once)", peer)
        print(f"  pages fetched (client): {peer['pages']}")
        if cg["events"] != peer["events"]:
            print(f"MISMATCH: calgate stored {cg['events']} events, the peer saw {peer['events']}")
            status = 1
        else:
            print(f"events match: {cg['events']} on both sides")
        if cg["failed"] or peer["failed"] or cg["rc"] != 0:
            print(f"FAILURES: calgate {cg['failed']} mailboxes (exit {cg['rc']}), "
                  f"peer {peer['failed']} mailboxes")
            status = 1
        print(f"load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        note = " (NOT COMPARABLE: see above)" if status else ""
        print(f"ratio: peer/calgate = {peer['wall'] / cg['wall']:.1f}×{note}", flush=True)
    except Timeout as e:
        print(f"TIMEOUT: {e}")
        status = 2
    except Exception as e:  # noqa: BLE001
        print(f"FAIL: {type(e).__name__}: {e}")
        traceback.print_exc()
        status = 1
    finally:
        if sim is not None:
            sim.stop()
            if status:
                print("--- simulator output (last lines) ---")
                print(tail(sim.log_path))
        shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
