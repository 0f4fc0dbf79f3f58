#!/usr/bin/env python3
"""ICS feeds read by independent iCalendar libraries equal what calgate stores.

Builds a demo data directory (`calgate demo --no-serve`: a simulated tenant, every mailbox
linked and synced), makes a `--privacy full` feed of every linked mailbox, serves the API
(`calgate serve --no-sync`), fetches each feed over HTTP and reads it with `icalendar` and
`recurring_ical_events` (the Python libraries calendar clients and scripts use), then compares,
mailbox by mailbox, the instances inside a window (the feed's window less two days at each end)
with `calgate events ADDRESS --from --to --json`:

  * timed instances by (start, end) in UTC, the local times read through the feed's own
    VTIMEZONE definitions (and those must agree with the IANA zone of the same name);
  * all-day instances by (start date, end date);
  * busy status: TRANSP:OPAQUE for busy, TRANSPARENT for free;
  * the subject, for instances whose details the feed may show.

Prints one line per mailbox and exits 1 on any difference. Run by .ci/run in a venv with
`pip install icalendar recurring-ical-events`:

    python3 scripts/ics_check.py [--bin target/debug/calgate]
"""

import argparse
import collections
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zoneinfo

try:
    import icalendar
    import recurring_ical_events
except ImportError as e:  # environment problem, reported loudly
    print(f"FAIL ics_check: cannot import icalendar/recurring_ical_events ({e})")
    sys.exit(1)

UTC = dt.timezone.utc


def env():
    e = {k: v for k, v in os.environ.items() if not k.startswith("CALGATE_")}
    e["CALGATE_LOG_LEVEL"] = "warn"
    return e


def cli(binary, data, *args, extra_env=None):
    e = env()
    e.update(extra_env or {})
    r = subprocess.run([binary, "--data-dir", data, *args], capture_output=True, text=True, env=e, timeout=300)
    if r.returncode != 0:
        raise SystemExit(f"FAIL ics_check: calgate {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def serve(binary, data, log_path):
    proc = subprocess.Popen(
        [binary, "--data-dir", data, "serve", "--no-sync", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=open(log_path, "wb"), stdin=subprocess.DEVNULL, env=env(),
    )
    found = {}

    def reader():
        for raw in proc.stdout:
            m = re.search(r"API on (http://[0-9.:\[\]]+)", raw.decode("utf-8", "replace"))
            if m:
                found["url"] = m.group(1)

    threading.Thread(target=reader, daemon=True).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "url" not in found and proc.poll() is None:
        time.sleep(0.1)
    if "url" not in found:
        proc.kill()
        raise SystemExit(f"FAIL ics_check: calgate serve did not start (exit status {proc.poll()})")
    return proc, found["url"]


def utc(s):
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(UTC)


def vtimezones(cal):
    """TZID -> tzinfo built from the feed's own VTIMEZONE component."""
    return {str(tz["TZID"]): tz.to_tz(lookup_tzid=False) for tz in cal.walk("VTIMEZONE")}


def to_utc(prop, zones, problems):
    """A DTSTART/DTEND property as a UTC datetime, through the feed's VTIMEZONE."""
    v = prop.dt
    tzid = prop.params.get("TZID")
    if tzid is None:
        if v.tzinfo is None:
            problems.append(f"floating time {v} (no TZID, no Z)")
            return v.replace(tzinfo=UTC)
        return v.astimezone(UTC)
    tzid = str(tzid)
    if tzid not in zones:
        problems.append(f"TZID {tzid} has no VTIMEZONE in the feed")
        return v.astimezone(UTC)
    local = v.replace(tzinfo=None)
    ours = local.replace(tzinfo=zones[tzid]).astimezone(UTC)
    try:
        iana = local.replace(tzinfo=zoneinfo.ZoneInfo(tzid)).astimezone(UTC)
        if iana != ours:
            problems.append(f"VTIMEZONE {tzid} puts {local} at {ours}, the IANA zone at {iana}")
    except zoneinfo.ZoneInfoNotFoundError:
        pass
    return ours


def feed_instances(text, lo, hi, problems):
    cal = icalendar.Calendar.from_ical(text)
    zones = vtimezones(cal)
    out = collections.Counter()
    subjects = collections.defaultdict(set)
    # recurring_ical_events yields each occurrence (the feed carries expanded instances, and a
    # master with RRULE would be expanded here the same way).
    for ev in recurring_ical_events.of(cal).between(lo - dt.timedelta(days=2), hi + dt.timedelta(days=2)):
        start, end = ev["DTSTART"], ev.get("DTEND")
        if end is None:
            problems.append(f"VEVENT {ev.get('UID')} has no DTEND")
            continue
        busy = str(ev.get("TRANSP", "OPAQUE")).upper() == "OPAQUE"
        if not isinstance(start.dt, dt.datetime):
            s, e = start.dt, end.dt
            if not (lo.date() <= s and e <= hi.date()):
                continue
            key = ("day", s.isoformat(), e.isoformat(), busy)
        else:
            s, e = to_utc(start, zones, problems), to_utc(end, zones, problems)
            if not (lo <= s and e <= hi):
                continue
            key = ("time", s.isoformat(), e.isoformat(), busy)
        out[key] += 1
        subjects[key].add(str(ev.get("SUMMARY", "")))
    return out, subjects


def stored_instances(events, lo, hi):
    out = collections.Counter()
    subjects = collections.defaultdict(list)
    for ev in events:
        busy = bool(ev["busy"])
        if ev["is_all_day"]:
            zone = zoneinfo.ZoneInfo(ev["time_zone"]) if ev.get("time_zone") else UTC
            s = utc(ev["start"]).astimezone(zone).date()
            e = utc(ev["end"]).astimezone(zone).date()
            if not (lo.date() <= s and e <= hi.date()):
                continue
            key = ("day", s.isoformat(), e.isoformat(), busy)
        else:
            s, e = utc(ev["start"]), utc(ev["end"])
            if not (lo <= s and e <= hi):
                continue
            key = ("time", s.isoformat(), e.isoformat(), busy)
        out[key] += 1
        if not ev.get("details_hidden") and ev.get("subject"):
            subjects[key].append(ev["subject"])
    return out, subjects


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="target/debug/calgate")
    ap.add_argument("--days-back", type=int, default=30, help="the sync window's days back (default config)")
    ap.add_argument("--days-ahead", type=int, default=365, help="the sync window's days ahead (default config)")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    tmp = tempfile.mkdtemp(prefix="calgate-ics-")
    data = os.path.join(tmp, "data")
    proc = None
    failed = 0
    try:
        cli(binary, data, "demo", "--no-serve")
        mailboxes = json.loads(cli(binary, data, "mailbox", "list", "--json"))
        if len(mailboxes) < 10:
            print(f"FAIL ics_check: the demo linked only {len(mailboxes)} mailboxes")
            return 1
        proc, url = serve(binary, data, os.path.join(tmp, "serve.log"))
        today = dt.datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        lo = today - dt.timedelta(days=args.days_back - 2)
        hi = today + dt.timedelta(days=args.days_ahead - 2)
        total = 0
        for m in mailboxes:
            addr = m["address"]
            feed_url = cli(binary, data, "feed", "create", addr, "--privacy", "full",
                           extra_env={"CALGATE_PUBLIC_URL": url}).strip()
            with urllib.request.urlopen(feed_url, timeout=60) as r:
                ctype = r.headers.get("Content-Type", "")
                text = r.read()
            problems = []
            if not ctype.startswith("text/calendar"):
                problems.append(f"Content-Type is {ctype!r}")
            got, got_subjects = feed_instances(text, lo, hi, problems)
            events = json.loads(cli(binary, data, "events", addr, "--from", lo.date().isoformat(),
                                    "--to", (hi + dt.timedelta(days=1)).date().isoformat(), "--json"))
            want, want_subjects = stored_instances(events, lo, hi)
            missing, extra = want - got, got - want
            for k, n in sorted(missing.items())[:5]:
                problems.append(f"stored but not in the feed: {k} x{n}")
            for k, n in sorted(extra.items())[:5]:
                problems.append(f"in the feed but not stored: {k} x{n}")
            for k, subs in want_subjects.items():
                for s in subs:
                    if k in got and s not in got_subjects[k]:
                        problems.append(f"subject {s!r} at {k} is missing from the feed")
                        break
            n = sum(want.values())
            total += n
            if n == 0:
                problems.append("no instances in the window: nothing was compared")
            if problems:
                failed += 1
                print(f"FAIL {addr}: " + "; ".join(problems[:8]))
            else:
                print(f"PASS {addr}: {n} instances ({sum(1 for k in want if k[0] == 'day')} all-day keys) agree")
        print(f"{len(mailboxes) - failed} mailboxes passed, {failed} failed; {total} instances compared")
        return 1 if failed else 0
    finally:
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
