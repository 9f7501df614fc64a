"""How long the nightly pre-screen of one location takes for 1,000 patients, over HTTP, with
production's rate limits.

    CHAIRSIDE_VAR_DIR=/tmp/chairside-prescreen-bench .venv/bin/python bench/prescreen.py
    ... bench/prescreen.py --patients 1000 --limiter redis://127.0.0.1:6379/14   # the limiter in Redis
    ... bench/prescreen.py --pms-rate 1000                                     # the lender's limit alone

It starts the CareCredit and Dentrix sandboxes as processes of their own on free ports, makes N
patients in the Dentrix sandbox (a clinic of their own, each with an accepted plan of $600 to
$5,400) and books each on the location's next business day (not timed), and wires a location to
them with the limits of production: the Dentrix connector at 5 requests a second, CareCredit at
20 a second and 6 Quickscreen batches a minute per merchant, the limiter on
(PARTNER_RATE_LIMITS). Then it times one run of the day as the worker runs it: each piece is
the task's body (`services.prescreen.work_on_run`), and between pieces it waits as the
broker's countdown would (the run's `next_attempt_at`). It prints the time, the pieces, the
requests each partner saw and any refusal. The database is a SQLite file in CHAIRSIDE_VAR_DIR,
made afresh on each run; nothing else is touched.
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str):
    import requests

    for _ in range(100):
        try:
            if requests.get(f"{url}/_sandbox/health", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"sandbox at {url} did not start")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--pms-rate", default="5.00", help="Dentrix connector requests per second (production: 5)")
    parser.add_argument("--lender-rate", default="20.00", help="CareCredit requests per second per merchant (production: 20)")
    parser.add_argument("--batches-per-minute", type=int, default=6, help="Quickscreen batches a minute per merchant (CareCredit: 6)")
    parser.add_argument("--limiter", default="", help="PARTNER_RATE_LIMIT_URL (a Redis URL), default: in memory")
    args = parser.parse_args()

    var = Path(os.environ.setdefault("CHAIRSIDE_VAR_DIR", "/tmp/chairside-prescreen-bench"))
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    os.environ["PARTNER_RATE_LIMITS"] = "true"
    os.environ["PARTNER_RATE_LIMIT_URL"] = args.limiter
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

    cc_port, dx_port = free_port(), free_port()
    python = sys.executable
    env = {**os.environ, "CARECREDIT_SANDBOX_PRESCREEN_RATE": str(args.batches_per_minute)}
    sandboxes = [
        subprocess.Popen([python, "-m", "sandboxes.carecredit", "--host", "127.0.0.1", "--port", str(cc_port)],
                         cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([python, "-m", "sandboxes.dentrix", "--host", "127.0.0.1", "--port", str(dx_port)],
                         cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        run_bench(args, f"http://127.0.0.1:{cc_port}", f"http://127.0.0.1:{dx_port}")
    finally:
        for process in sandboxes:
            process.terminate()
        for process in sandboxes:
            process.wait(timeout=10)


def run_bench(args, cc_url: str, dx_url: str):
    import logging

    import django
    import requests

    django.setup()
    logging.disable(logging.INFO)  # the partner kit logs each request: noise at this scale
    from django.core.management import call_command
    from django.utils import timezone

    from financing.models import ArrangementTemplate, Location, Prescreen, PrescreenRun
    from financing.services import prescreen

    wait_up(cc_url)
    wait_up(dx_url)
    call_command("migrate", verbosity=0)
    location = Location.objects.create(
        code="bench", name="Bench Dental", timezone="America/New_York",
        template=ArrangementTemplate.objects.create(name="Group standard"),
        pms_base_url=dx_url, pms_api_key="sandbox", pms_clinic_ids="7",
        lender_base_url=cc_url, lender_client_id="chairside-sandbox", lender_client_secret="sandbox-secret",
        merchant_number="5348120000000099", pms_requests_per_second=Decimal(args.pms_rate),
        lender_requests_per_second=Decimal(args.lender_rate), lender_prescreen_batches_per_minute=args.batches_per_minute,
    )
    day = prescreen.day_to_screen(location)
    key = {"X-API-Key": "sandbox"}
    surnames = ["Thompson", "Lee", "Moreau", "Partial-Nguyen", "Cardholder-Reyes", "Decline-Parker", "Nomatch-Olsen", "Garcia"]
    started = time.monotonic()
    session = requests.Session()
    for i in range(args.patients):
        body = {
            "first_name": "Pat", "last_name": f"{surnames[i % len(surnames)]}", "birth_date": "1980-04-12",
            "phone": "+15555550188", "email": "bench.patient@example.com",
            "address": {"line1": "12 Elm St", "city": "Springfield", "state": "IL", "zip": "62701"},
            "procedures": [{"code": "D2740", "tooth": "3", "surface": "", "fee": f"{600 + (i * 37) % 4800}.00"}],
            "clinic_id": "7",
        }
        patient = session.post(f"{dx_url}/_sandbox/patients", json=body, timeout=5).json()
        plans = session.get(f"{dx_url}/v1/patients/{patient['patient_id']}/treatment-plans", headers=key, timeout=5).json()
        minute = 8 * 60 + (i * 10) % (9 * 60)  # 8:00 AM to 5:00 PM on the clinic's book
        session.post(f"{dx_url}/_sandbox/appointments", json={
            "patient_id": patient["patient_id"], "starts_at": f"{day.isoformat()}T{minute // 60:02d}:{minute % 60:02d}",
            "procedure_ids": [p["procedure_id"] for p in plans[0]["procedures"]],
        }, timeout=5).raise_for_status()
    booked = time.monotonic() - started
    before = {name: len(requests.get(f"{url}/_sandbox/requests", timeout=5).json()) for name, url in (("dx", dx_url), ("cc", cc_url))}

    # The run, piece by piece, as the worker would take its messages.
    run = prescreen.rerun(location)
    pieces = []
    started = time.monotonic()
    while True:
        piece_started = time.monotonic()
        outcome = prescreen.work_on_run(run.pk)
        pieces.append((outcome, time.monotonic() - piece_started))
        run.refresh_from_db()
        if run.status not in (PrescreenRun.Status.PENDING, PrescreenRun.Status.SCREENING):
            break
        if run.next_attempt_at:
            wait = (run.next_attempt_at - timezone.now()).total_seconds()
            if wait > 0:
                time.sleep(wait)
    took = time.monotonic() - started

    def seen(url, since):
        return requests.get(f"{url}/_sandbox/requests", timeout=5).json()[since:]

    dx, cc = seen(dx_url, before["dx"]), seen(cc_url, before["cc"])
    quickscreens = [r for r in cc if r["path"] == "/v1/quickscreens"]
    results = Counter(Prescreen.objects.filter(run=run).values_list("result", flat=True))
    screening = [seconds for outcome, seconds in pieces if outcome.startswith("screened")]
    print(f"Pre-screen of {args.patients} patients booked on {day} (booking them took {booked:.1f} s, not timed)")
    print(f"  limits: Dentrix {args.pms_rate}/s, CareCredit {args.lender_rate}/s and {args.batches_per_minute} Quickscreen "
          f"batches/min per merchant, limiter {'in Redis' if args.limiter else 'in memory'}")
    print(f"  run: {run.get_status_display()} in {took:.1f} s ({timedelta(seconds=round(took))}); "
          f"{run.batches} batches; pieces: {Counter(o.split()[0] for o, _ in pieces)}")
    if screening:
        print(f"  a batch's piece (reads + Quickscreen): median {statistics.median(screening):.1f} s, max {max(screening):.1f} s")
    print(f"  Dentrix saw {len(dx)} requests ({Counter(r['status'] for r in dx)}); "
          f"CareCredit {len(cc)} ({len(quickscreens)} Quickscreen batches, statuses {Counter(r['status'] for r in quickscreens)})")
    print(f"  results: {dict(results)}")
    if run.status != PrescreenRun.Status.DONE:
        print(f"  stopped: {run.last_error}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
