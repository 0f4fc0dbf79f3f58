#!/usr/bin/env python3
"""exchangelib (the EWS client for Python) against the EWS face of `calgate sim`.

Starts the built binary (`calgate sim --seed demo --listen 127.0.0.1:0 --credentials-out
<tmp>/creds.json`), then with exchangelib:

  1. connects with Basic and with NTLM as the `all` service account, once with a fixed
     version and once letting exchangelib guess it (ConvertId probe, ServerVersionInfo);
  2. impersonates a room (ExchangeImpersonation) and lists its calendar view;
  3. creates an item (SendToNone), reads it back with a second GetItem, and finds the same
     event through the Graph face (`GET /v1.0/users/{room}/events/{id}` with a client-credentials
     token), proving that both faces share one tenant model;
  4. updates it (one field, then a full save) and checks each with a second read;
  5. deletes it and checks that a second read fails with ErrorItemNotFound;
  6. gets free/busy (`account.protocol.get_free_busy_info`);
  7. checks the room-list-scoped account: allowed inside its room list, denied outside it
     (ErrorImpersonateUserDenied);
  8. makes the server NTLM-only through the control API and checks that Basic is refused.

Prints PASS/FAIL lines and ends with "N passed, M failed"; exits 1 on any failure. The
simulator is always stopped. Run by .ci/run in a venv with `pip install exchangelib==5.6.0`:

    python3 scripts/exchangelib_check.py [--bin target/debug/calgate]
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback

try:
    import exchangelib
    import requests
    from exchangelib import (BASIC, IMPERSONATION, NTLM, Account, Build, CalendarItem,
                             Configuration, Credentials, EWSDateTime, EWSTimeZone, Version)
    from exchangelib.errors import ErrorImpersonateUserDenied, ErrorItemNotFound
    from exchangelib.items import SEND_TO_NONE
except ImportError as e:  # pragma: no cover - environment problem, reported loudly
    print(f"FAIL exchangelib_check: cannot import exchangelib/requests ({e}); run it in a venv "
          "with `pip install exchangelib==5.6.0`")
    print("0 passed, 1 failed")
    sys.exit(1)

HTTP_TIMEOUT = 30
EXT_SET = "c11ff724-aa03-4555-9952-8fa248a11c3e"


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
            if os.environ.get("EXCHANGELIB_CHECK_TRACE"):
                traceback.print_exc()
            return False


def start_sim(binary, workdir):
    creds_path = os.path.join(workdir, "creds.json")
    log_path = os.path.join(workdir, "sim.log")
    log = open(log_path, "wb")
    cmd = [binary, "sim", "--seed", "demo", "--listen", "127.0.0.1:0", "--credentials-out", creds_path]
    print("starting: " + " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    return proc, creds_path, log_path, log


def tail(path, n=30):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no output)"


def wait_for_creds(proc, creds_path, log_path, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"calgate sim exited with status {proc.returncode} before writing "
                               f"{creds_path}; its output:\n{tail(log_path)}")
        try:
            with open(creds_path, encoding="utf-8") as f:
                creds = json.load(f)  # a partially written file fails to parse: retry
            if creds.get("ews_url") and creds.get("ews_accounts"):
                return creds
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"no complete {creds_path} after {timeout} s; simulator output:\n{tail(log_path)}")


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def account_named(creds, impersonation):
    for a in creds["ews_accounts"]:
        if a["impersonation"] == impersonation or a["impersonation"].startswith(impersonation):
            return a
    raise RuntimeError(f"no EWS account with impersonation {impersonation!r} in {creds['ews_accounts']}")


def connect(creds, acc, auth_type, mailbox, version=None):
    # exchangelib caches one Protocol per (endpoint, credentials), whatever the auth type:
    # drop it so that each connection really uses `auth_type`.
    exchangelib.protocol.close_connections()
    kwargs = dict(service_endpoint=creds["ews_url"],
                  credentials=Credentials(acc["username"], acc["password"]),
                  auth_type=auth_type)
    if version is not None:
        kwargs["version"] = version
    cfg = Configuration(**kwargs)
    return Account(mailbox, config=cfg, autodiscover=False, access_type=IMPERSONATION)


def graph_token(creds):
    base = creds["graph_url"].rsplit("/v1.0", 1)[0]
    app = creds["apps"][0]
    r = requests.post(f"{base}/{creds['tenant_id']}/oauth2/v2.0/token", timeout=HTTP_TIMEOUT, data={
        "client_id": app["client_id"], "client_secret": app["client_secret"],
        "scope": "https://graph.microsoft.com/.default", "grant_type": "client_credentials"})
    r.raise_for_status()
    return r.json()["access_token"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    ap.add_argument("--bin", default=os.environ.get("CALGATE_BIN", os.path.join(target, "debug", "calgate")),
                    help="the calgate binary (default: target/debug/calgate)")
    args = ap.parse_args()
    print(f"exchangelib {exchangelib.__version__}, requests {requests.__version__}, "
          f"python {sys.version.split()[0]}")
    if not (os.path.isfile(args.bin) and os.access(args.bin, os.X_OK)):
        print(f"FAIL exchangelib_check: {args.bin} is not an executable; build it first with "
              "`cargo build -p calgate`")
        print("0 passed, 1 failed")
        return 1
    # The simulator listens on 127.0.0.1 only: never send its traffic through a proxy.
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

    checks = Checks()
    workdir = tempfile.mkdtemp(prefix="calgate-exchangelib-")
    proc = log = None
    try:
        proc, creds_path, log_path, log = start_sim(args.bin, workdir)
        try:
            creds = wait_for_creds(proc, creds_path, log_path)
        except RuntimeError as e:
            checks.fail("simulator starts and writes --credentials-out", str(e))
            return 1
        checks.ok("simulator starts and writes --credentials-out", creds["ews_url"])
        control = creds["graph_url"].rsplit("/v1.0", 1)[0] + "/_sim"
        rooms = [m["address"] for m in creds["mailboxes"] if m["kind"] == "room"]
        svc = account_named(creds, "all")
        scoped = account_named(creds, "room-list:")
        room_list = scoped["impersonation"].split(":", 1)[1]
        anonymous = requests.post(creds["ews_url"], timeout=HTTP_TIMEOUT)
        offers = anonymous.headers.get("WWW-Authenticate", "")
        if anonymous.status_code == 401 and "NTLM" in offers and "Basic" in offers:
            checks.ok("anonymous request: 401", offers)
        else:
            checks.fail("anonymous request: 401", f"HTTP {anonymous.status_code}, {offers!r}")
        version = Version(build=Build(15, 2, 1118, 7))
        state = {}
        room = rooms[0]

        for auth_name, auth in (("Basic", BASIC), ("NTLM", NTLM)):
            def connect_guessing(auth=auth, auth_name=auth_name):
                a = connect(creds, svc, auth, room)
                v = a.version
                if v.build is None or v.build.major_version != 15:
                    raise AssertionError(f"unexpected version {v}")
                if a.protocol.auth_type != auth:
                    raise AssertionError(f"connected with {a.protocol.auth_type}, not {auth}")
                state[auth_name] = a
                return f"{auth_name}: guessed {v.build} / {v.api_version}"
            checks.run(f"{auth_name}: exchangelib guesses the server version", connect_guessing)

            def connect_fixed(auth=auth, auth_name=auth_name):
                a = connect(creds, svc, auth, room, version=version)
                n = a.calendar.total_count
                if a.protocol.auth_type != auth:
                    raise AssertionError(f"connected with {a.protocol.auth_type}, not {auth}")
                return f"{auth_name}: fixed version, calendar of {room} has {n} items"
            checks.run(f"{auth_name}: fixed version, GetFolder calendar", connect_fixed)

        acct = state.get("NTLM") or state.get("Basic")
        if acct is None:
            checks.fail("an exchangelib Account", "neither Basic nor NTLM connected")
            return 1
        tz = EWSTimeZone("UTC")
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0, second=0)
        start = EWSDateTime.from_datetime(now - datetime.timedelta(days=7)).astimezone(tz)
        end = EWSDateTime.from_datetime(now + datetime.timedelta(days=21)).astimezone(tz)

        def calendar_view():
            items = list(acct.calendar.view(start=start, end=end))
            if not items:
                raise AssertionError(f"no items in the calendar view of {room}")
            kinds = sorted({i.type for i in items})
            if "RecurringMaster" in kinds:
                raise AssertionError("a CalendarView returned a RecurringMaster")
            return f"{len(items)} items in {room}'s view, types {kinds}"
        checks.run("impersonated room: calendar view", calendar_view)

        created = {}

        def create():
            s = EWSDateTime.from_datetime(now + datetime.timedelta(days=3)).astimezone(tz)
            item = CalendarItem(account=acct, folder=acct.calendar, subject="exchangelib check & <co>",
                                start=s, end=s + datetime.timedelta(hours=1), body="made by exchangelib_check",
                                legacy_free_busy_status="Tentative")
            item.save(send_meeting_invitations=SEND_TO_NONE)
            created["item"] = item
            again = acct.calendar.get(id=item.id)
            if again.subject != "exchangelib check & <co>" or again.start != s:
                raise AssertionError(f"read back {again.subject!r} at {again.start}")
            return f"created {item.id[:24]}…, read back"
        checks.run("CreateItem + second GetItem", create)

        def graph_sees_it():
            item = created["item"]
            token = graph_token(creds)
            graph = creds["graph_url"].rstrip("/")
            # Find the Graph id through the shared iCalUId, then GET the event by its Graph id.
            uid = acct.calendar.get(id=item.id).uid
            r = requests.get(f"{graph}/users/{room}/events", timeout=HTTP_TIMEOUT,
                             headers={"Authorization": f"Bearer {token}"},
                             params={"$filter": f"iCalUId eq '{uid}'"})
            r.raise_for_status()
            values = r.json()["value"]
            if len(values) != 1:
                raise AssertionError(f"Graph found {len(values)} events with iCalUId {uid}")
            gid = values[0]["id"]
            r = requests.get(f"{graph}/users/{room}/events/{gid}", timeout=HTTP_TIMEOUT,
                             headers={"Authorization": f"Bearer {token}"})
            r.raise_for_status()
            ev = r.json()
            if ev["subject"] != "exchangelib check & <co>" or ev["showAs"] != "tentative":
                raise AssertionError(f"Graph shows {ev['subject']!r} / {ev['showAs']}")
            return f"GET /v1.0/users/{room}/events/{gid[:16]}… → {ev['subject']!r}, showAs {ev['showAs']}"
        checks.run("the created item through the Graph face", graph_sees_it)

        def update():
            item = acct.calendar.get(id=created["item"].id)
            item.subject = "exchangelib check (renamed)"
            item.save(update_fields=["subject"], send_meeting_invitations=SEND_TO_NONE)
            if acct.calendar.get(id=item.id).subject != "exchangelib check (renamed)":
                raise AssertionError("subject not updated")
            item = acct.calendar.get(id=item.id)
            item.location = "Desk 7"
            item.save(send_meeting_invitations=SEND_TO_NONE)  # a full save: every field
            again = acct.calendar.get(id=item.id)
            if again.location != "Desk 7" or again.subject != "exchangelib check (renamed)":
                raise AssertionError(f"read back {again.subject!r} at {again.location!r}")
            return "subject, then a full save with a location, each read back"
        checks.run("UpdateItem + second GetItem", update)

        def delete():
            item = acct.calendar.get(id=created["item"].id)
            item.delete(send_meeting_cancellations=SEND_TO_NONE)
            try:
                acct.calendar.get(id=created["item"].id)
            except ErrorItemNotFound:
                return "deleted; GetItem → ErrorItemNotFound"
            raise AssertionError("the item is still there")
        checks.run("DeleteItem + second GetItem", delete)

        def free_busy():
            s = EWSDateTime.from_datetime(now).astimezone(tz)
            info = list(acct.protocol.get_free_busy_info(
                accounts=[(acct, "Required", False)], start=s, end=s + datetime.timedelta(days=2),
                merged_free_busy_interval=30, requested_view="DetailedMerged"))
            fb = info[0]
            if isinstance(fb, Exception):
                raise fb
            if not fb.merged or len(fb.merged) != 96:
                raise AssertionError(f"merged free/busy {fb.merged!r}")
            return f"{len(fb.calendar_events or [])} events, merged {fb.merged[:24]}…"
        checks.run("GetUserAvailability (get_free_busy_info)", free_busy)

        def scoped_account():
            members = [r.email_address for r in acct.protocol.get_rooms(room_list)]
            outside = [r for r in rooms if r not in members]
            if not members or not outside:
                raise AssertionError(f"room list {room_list} has {members}; others {outside}")
            a = connect(creds, scoped, BASIC, members[0], version=version)
            n = len(list(a.calendar.view(start=start, end=end)))
            try:
                b = connect(creds, scoped, BASIC, outside[0], version=version)
                b.calendar.total_count
            except ErrorImpersonateUserDenied:
                return f"{members[0]}: {n} items; {outside[0]}: ErrorImpersonateUserDenied"
            raise AssertionError(f"impersonating {outside[0]} outside {room_list} was allowed")
        checks.run("room-list-scoped impersonation (GetRooms, allowed, denied)", scoped_account)

        def ntlm_only():
            r = requests.put(control + "/ews/auth", json={"basic": False, "ntlm": True}, timeout=HTTP_TIMEOUT)
            r.raise_for_status()
            try:
                try:
                    connect(creds, svc, BASIC, room, version=version).calendar.total_count
                except exchangelib.errors.UnauthorizedError as e:
                    detail = f"Basic refused ({type(e).__name__})"
                else:
                    raise AssertionError("Basic was accepted by an NTLM-only server")
                n = connect(creds, svc, NTLM, room, version=version).calendar.total_count
                return f"{detail}; NTLM still works ({n} items)"
            finally:
                requests.put(control + "/ews/auth", json={"basic": True, "ntlm": True}, timeout=HTTP_TIMEOUT)
        checks.run("NTLM-only server refuses Basic", ntlm_only)
    except Exception as e:  # noqa: BLE001
        checks.fail("exchangelib_check", f"{type(e).__name__}: {e}")
        traceback.print_exc()
    finally:
        if proc is not None:
            stop(proc)
        if log is not None:
            log.close()
    print(f"{checks.passed} passed, {checks.failed} failed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
