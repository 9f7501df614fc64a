"""Pre-screen the next business day now and print each location's list (the demo's way to see
"Tomorrow's patients" without waiting for the morning's beat).

    .venv/bin/python manage.py prescreen                    # every location with pre-screening on
    .venv/bin/python manage.py prescreen --location demo-main

Each location's run is the one beat would start (services.prescreen.rerun: the same run for
the day, refreshed), worked in this process piece by piece, waiting where the lender's batch
limit says so; a running worker that gets the same messages finds the run taken and skips.
It prints what the console's page shows: "Ava T.", never a full name.
"""

import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from financing import display, morning
from financing.models import Location, PrescreenRun
from financing.services import prescreen

WORKING = (PrescreenRun.Status.PENDING, PrescreenRun.Status.SCREENING)


class Command(BaseCommand):
    help = "Pre-screen each location's next business day now and print the list (as Tomorrow's patients shows it)."

    def add_arguments(self, parser):
        parser.add_argument("--location", action="append", default=[], help="A location code (repeatable); default: all.")
        parser.add_argument("--max-wait", type=float, default=300.0, help="Seconds to wait for the lender's limit per location.")

    def handle(self, *args, location, max_wait, **options):
        locations = Location.objects.filter(prescreen_enabled=True).exclude(mode=Location.Mode.PAUSED).order_by("code")
        if location:
            locations = locations.filter(code__in=location)
            missing = set(location) - set(locations.values_list("code", flat=True))
            if missing:
                raise CommandError(f"No location with pre-screening on has the code {', '.join(sorted(missing))}.")
        for where in locations:
            started = time.monotonic()
            try:
                run = prescreen.rerun(where)
            except prescreen.PrescreenError as exc:
                self.stderr.write(f"{where.code}: {exc}")
                continue
            self._work(run, max_wait)
            self._print(where, PrescreenRun.objects.get(pk=run.pk), time.monotonic() - started)

    def _work(self, run: PrescreenRun, max_wait: float):
        deadline = time.monotonic() + max_wait
        while time.monotonic() < deadline:
            outcome = prescreen.work_on_run(run.pk)
            run.refresh_from_db()
            if run.status not in WORKING:
                return
            if outcome in ("skipped", "rate_limited", "retry") and run.next_attempt_at:
                # Someone else holds it, or it waits for the lender's limit or a backoff.
                time.sleep(min(5.0, max(0.2, (run.next_attempt_at - timezone.now()).total_seconds())))

    def _print(self, location: Location, run: PrescreenRun, took: float):
        local_today = prescreen.local_now(location).date()
        told = morning.day_list(location, run.day, local_today)
        self.stdout.write(self.style.SUCCESS(f"{location.name} ({location.code}) · {told.day_words}, {display.day(run.day)}"))
        self.stdout.write(f"  {told.headline}" if told.findings else f"  Nobody pre-qualified among {len(told.rows)} patients.")
        if run.status == PrescreenRun.Status.FAILED:
            self.stdout.write(self.style.ERROR(f"  Stopped: {run.last_error}"))
        elif run.status != PrescreenRun.Status.DONE:
            self.stdout.write(self.style.WARNING(f"  Still screening ({run.get_status_display().lower()}): the worker finishes it."))
        for row in told.rows:
            until = f", until {display.day(row.expires_on)}" if row.expires_on else ""
            self.stdout.write(
                f"  {display.clock(row.starts_at, location):>12}  {row.patient_short_name or '—':<8} "
                f"{display.money(row.planned_fees):>11}  {morning.result_words(row, location)}{until}"
            )
        if told.the_rest:
            self.stdout.write(f"  {told.the_rest}")
        self.stdout.write(f"  ({run.batches} batch{'es' if run.batches != 1 else ''}, {took:.1f} s)")
