"""The nightly pre-screen: the next business day's patients, screened with the lender before
they sit in the chair.

Per location, once its hour has come on its own clock (`Location.prescreen_hour`, 6:00 AM by
default), beat starts the run of the next business day after today (`Location.business_days`):
one `PrescreenRun` per location and appointment day, so the job is idempotent per location and
date — a beat that comes again, a second beat, the weekend's ticks (whose next business day is
Monday's, already screened on Friday) all find the run there and start nothing. A rerun
(`rerun`, from the console) takes the same row again: the list is refreshed, never duplicated.

A run is worked by one task at a time (`financing.prescreen_run`, the run's id only), claimed
with a lease like a case's step (renewed by the heartbeat, handed back if its process dies):

1. **Gather**: the PMS's appointments on the day (one call), the location's clinics only,
   per patient (the earliest visit, the day's whole planned treatment, the plan with the
   most of it); those with planned fees at or over the location's threshold become the day's
   `Prescreen` rows, the patients who opted out marked so (never read, never sent).
2. **Screen**, a batch per task: the next patients not screened yet, read from the PMS one
   by one (demographics in flight only: in this task's memory, in the lender's request, then
   dropped; "Ava T." is all that is kept), minors (under 18 on the appointment day) set
   aside, the rest sent to the lender as one pre-screen batch. A batch is at most the
   lender's `max_prescreen_batch`, and no more patients than the PMS connection's pace reads
   in half a task's time limit. The lender's own limit on batches (CareCredit: 6 a minute
   per merchant) is a window of the shared rate limiter (financing/ratelimit.py); before
   reading a batch's patients the task asks whether a slot is near, and comes back when one
   is instead of reading them for nothing.
3. **Done**: the coordinators' morning message (financing.morning), once per run.

A pre-screen is a read: a lost answer is sent again. A partner error backs off like a step
and, after STEP_MAX_ATTEMPTS failures in a row, stops the run with its reason (the console
shows it, and *Screen again* starts it over); our own rate limiter only delays it.
"""

import logging
import random
import uuid
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.module_loading import import_string

from core import heartbeat, holders, leases
from core.backoff import backoff_seconds
from core.queueing import enqueue_on_commit

from .. import display, morning, partners, ratelimit
from ..models import Location, Prescreen, PrescreenOptOut, PrescreenResult, PrescreenRun
from ..ports import (
    NotFoundError,
    PermanentPartnerError,
    PrescreenApplicant,
    PrescreenOutcome,
    PrescreenRequest,
    RateLimited,
    TransientPartnerError,
)
from .capture import short_name

log = logging.getLogger(__name__)

RUN_TASK = "financing.prescreen_run"
PRESCREEN_LEASE = "prescreen_run"  # the heartbeat's name for a run's lease (financing.apps)
ADULT_AGE = 18
CHUNK = 500  # rows per statement where a day may hold thousands of patients
Status = PrescreenRun.Status
WORKING = (Status.PENDING, Status.SCREENING)


class PrescreenError(Exception):
    """A pre-screen cannot be started as asked (a clear sentence for the console)."""


# --- days --------------------------------------------------------------------------------------


def next_business_day(after: date, open_weekdays) -> date:
    """The first of the location's business days after `after` (Friday → Monday)."""
    if not open_weekdays:
        raise PrescreenError("The location has no business days: set at least one.")
    day = after + timedelta(days=1)
    while day.weekday() not in open_weekdays:
        day += timedelta(days=1)
    return day


def local_now(location, now=None):
    return (now or timezone.now()).astimezone(display.zone_of(location))


def day_to_screen(location, now=None) -> date:
    """The appointment day the location's pre-screen looks at now: the next business day
    after today, today as the location's own clock has it."""
    return next_business_day(local_now(location, now).date(), location.open_weekdays)


def schedule_readable(location) -> bool:
    """Whether the location's PMS client lists a day's appointments (`appointments_on`): a
    PMS bridge without it cannot be pre-screened, and is never started. Read from the
    registry's client class, without building a client."""
    client = import_string(partners.PMS_IMPLEMENTATIONS[location.pms_kind]["client"])
    return callable(getattr(client, "appointments_on", None))


def no_schedule(location) -> str:
    return f"{location.pms_name} does not list appointments to Chairside yet: its patients cannot be pre-screened."


def age_on(birth_date: date, day: date) -> int:
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


# --- beat ---------------------------------------------------------------------------------------


def runs_to_start(now=None) -> list[int]:
    """Beat: the runs to queue now. Today's run of every location whose pre-screen hour has
    come (made once: the (location, day) row is unique), and any run under way whose message
    was lost (nobody holds it, and it has been due for over a minute)."""
    now = now or timezone.now()
    ids = []
    locations = Location.objects.filter(prescreen_enabled=True).exclude(mode=Location.Mode.PAUSED).order_by("pk")
    for location in locations.only("pk", "pms_kind", "timezone", "prescreen_hour", "business_days"):
        local = local_now(location, now)
        if local.hour < location.prescreen_hour or not location.open_weekdays or not schedule_readable(location):
            continue
        day = next_business_day(local.date(), location.open_weekdays)
        run, created = PrescreenRun.objects.get_or_create(
            location=location, day=day, defaults={"run_on": local.date(), "started_at": now, "next_attempt_at": now}
        )
        if created:
            log.info("location %s: pre-screen of %s started", location.pk, day)
            ids.append(run.pk)
    lost = (
        PrescreenRun.objects.filter(status__in=WORKING, location__prescreen_enabled=True)
        .exclude(location__mode=Location.Mode.PAUSED)
        .exclude(pk__in=ids)
        .filter(leases.free("lease_until", now))
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=now - timedelta(seconds=message_grace_seconds())))
    )
    lost_ids = list(lost.values_list("pk", flat=True)[:500])
    if lost_ids:
        PrescreenRun.objects.filter(pk__in=lost_ids).update(next_attempt_at=now)
    return ids + lost_ids


def message_grace_seconds() -> int:
    """How long a due run is left to its own message before beat queues it again."""
    return max(60, settings.SWEEP_SECONDS)


def rerun(location: Location, *, now=None) -> PrescreenRun:
    """Screen the location's next business day again now (the console's *Screen again*): the
    same run, refreshed; results already kept are replaced as the new answers come."""
    if not location.prescreen_enabled:
        raise PrescreenError(f"Pre-screening is turned off at {location.name}: turn it on in the location's settings first.")
    if location.mode == Location.Mode.PAUSED:
        raise PrescreenError(f"{location.name} is paused: Chairside is not working there.")
    if not schedule_readable(location):
        raise PrescreenError(no_schedule(location))
    now = now or timezone.now()
    day = day_to_screen(location, now)
    with transaction.atomic():
        run, created = PrescreenRun.objects.get_or_create(
            location=location, day=day, defaults={"run_on": local_now(location, now).date(), "started_at": now}
        )
        # A worker on the old run finds its token gone and stops (LeaseLost): its batch's
        # answers are not stored, the new run screens those patients again.
        PrescreenRun.objects.filter(pk=run.pk).update(
            status=Status.PENDING, attempts=0, lease_token="", lease_holder="", lease_until=None,
            next_attempt_at=now, last_error="", batches=0, started_at=now, finished_at=None,
            run_on=local_now(location, now).date(),
        )
        enqueue_on_commit(RUN_TASK, run.pk)
    run.refresh_from_db()
    return run


def opt_out(location: Location, patient_id: str, *, actor=None, note: str = "") -> PrescreenOptOut:
    """The patient asked not to be pre-screened at the location: never read or sent again,
    and what was found for them is forgotten."""
    with transaction.atomic():
        opt, _ = PrescreenOptOut.objects.get_or_create(
            location=location, patient_id=patient_id, defaults={"created_by": actor if getattr(actor, "pk", None) else None, "note": note}
        )
        forget_result(location, patient_id)
    return opt


def forget_result(location: Location, patient_id: str) -> int:
    """Clear an opted-out patient's results (any day) at the location."""
    return Prescreen.objects.filter(location=location, patient_id=patient_id).update(
        result=PrescreenResult.OPTED_OUT, amount=None, expires_on=None, raw_status="", screened_at=None,
        patient_short_name="",
    )


# --- one task: claim the run, do its next piece of work ----------------------------------------


class LeaseLost(Exception):
    """Another worker (or a rerun) took the run over: abandon quietly."""


def work_on_run(run_id: int) -> str:
    claimed = _claim(run_id)
    if claimed is None:
        return "skipped"
    run, token = claimed
    try:
        if run.status == Status.PENDING:
            return _gather(run, token)
        return _screen_batch(run, token)
    except LeaseLost:
        return "lease_lost"
    except RateLimited as exc:
        return _later(run, token, exc.retry_after or 1.0, give_back=True)
    except TransientPartnerError as exc:
        if run.attempts >= settings.STEP_MAX_ATTEMPTS:
            return _stop(run, token, f"Stopped after {run.attempts} failed attempts in a row; the last error was: {exc}")
        delay = backoff_seconds(run.attempts)
        if exc.retry_after:
            delay = max(delay, min(exc.retry_after, settings.RETRY_MAX_SECONDS))
        return _later(run, token, delay, error=str(exc))
    except PermanentPartnerError as exc:
        return _stop(run, token, str(exc))
    except NotImplementedError as exc:
        return _stop(run, token, str(exc) or f"{run.location.lender_name} cannot pre-screen through Chairside yet.")


def _claim(run_id: int) -> tuple[PrescreenRun, str] | None:
    now = timezone.now()
    token = uuid.uuid4().hex
    claimed = (
        PrescreenRun.objects.filter(pk=run_id, status__in=WORKING, location__prescreen_enabled=True)
        .exclude(location__mode=Location.Mode.PAUSED)
        .filter(leases.free("lease_until", now))
        # A duplicate message must not cut a wait for the lender's limit (or a backoff) short.
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + timedelta(seconds=1)))
        .update(
            lease_token=token,
            lease_holder=holders.me(),
            lease_until=leases.until(leases.lease_seconds(), now),
            attempts=F("attempts") + 1,
            next_attempt_at=None,
        )
    )
    if claimed != 1:
        return None
    heartbeat.hold(PRESCREEN_LEASE, run_id)
    run = PrescreenRun.objects.select_related("location").get(pk=run_id)
    if run.attempts > settings.STEP_MAX_ATTEMPTS:
        # Each earlier claim died without finishing (worker killed, hard time limit).
        _stop(run, token, f"The pre-screen was interrupted {run.attempts - 1} times without finishing.")
        return None
    return run, token


def _ours(run: PrescreenRun, token: str):
    """Inside a transaction: lock the run and prove it is still ours (else LeaseLost)."""
    current = PrescreenRun.objects.select_for_update().filter(pk=run.pk).first()
    if current is None or current.lease_token != token or current.status not in WORKING:
        raise LeaseLost(run.pk)
    return current


def _renew(run: PrescreenRun, token: str):
    """Before the lender call, after the PMS reads: still ours, for another lease."""
    if not PrescreenRun.objects.filter(pk=run.pk, lease_token=token, status__in=WORKING).update(
        lease_holder=holders.me(), lease_until=leases.until(leases.lease_seconds())
    ):
        raise LeaseLost(run.pk)


def _next(run: PrescreenRun, token: str, *, countdown: float | None = None, **fields):
    """Release the run and queue its next piece of work (after commit)."""
    with transaction.atomic():
        _ours(run, token)
        due = timezone.now() + timedelta(seconds=countdown or 0)
        PrescreenRun.objects.filter(pk=run.pk).update(
            lease_token="", lease_holder="", lease_until=None, next_attempt_at=due, **fields
        )
        enqueue_on_commit(RUN_TASK, run.pk, countdown=countdown)


def _later(run: PrescreenRun, token: str, wait: float, *, give_back: bool = False, error: str = "") -> str:
    """Come back in `wait` seconds. A wait for our own rate limiter gives the attempt back:
    nothing was sent, nothing failed."""
    if give_back:  # spread a little, so runs waiting on one connection do not come back as one wave
        wait = wait * random.uniform(1.0, 1.2) + random.uniform(0.0, 0.5)
    wait = min(settings.RETRY_MAX_SECONDS, wait)  # below the broker's visibility timeout
    fields = {"attempts": F("attempts") - 1} if give_back else {"last_error": error}
    try:
        _next(run, token, countdown=wait, **fields)
    except LeaseLost:
        return "lease_lost"
    if give_back:
        log.info("pre-screen run %s: waiting %.1fs for a free slot on a partner connection", run.pk, wait)
        return "rate_limited"
    log.warning("pre-screen run %s: attempt %s failed (%s), retrying in %.1fs", run.pk, run.attempts, error, wait)
    return "retry"


def _stop(run: PrescreenRun, token: str, why: str) -> str:
    with transaction.atomic():
        try:
            _ours(run, token)
        except LeaseLost:
            return "lease_lost"
        PrescreenRun.objects.filter(pk=run.pk).update(
            status=Status.FAILED, last_error=why, lease_token="", lease_holder="", lease_until=None,
            next_attempt_at=None, finished_at=timezone.now(),
        )
    log.warning("pre-screen run %s stopped: %s", run.pk, why)
    return "failed"


# --- 1. gather ---------------------------------------------------------------------------------


def _gather(run: PrescreenRun, token: str) -> str:
    location = run.location
    if not schedule_readable(location):
        raise NotImplementedError(no_schedule(location))
    appointments = partners.pms_for(location).appointments_on(run.day)
    served = location.clinic_ids
    visits = defaultdict(list)
    for appointment in appointments:
        # A location reaches only its own clinics' patients of a shared practice database.
        if served and appointment.clinic_id not in served:
            continue
        visits[appointment.patient_id].append(appointment)
    wanted = {}
    for patient_id, theirs in visits.items():
        fees = sum((a.planned_fees for a in theirs), Decimal("0.00"))
        if fees <= 0 or fees < location.prescreen_threshold:
            continue
        first = min(theirs, key=lambda a: (a.starts_at, a.appointment_id))
        planned = [a for a in theirs if a.treatment_plan_id]
        plan = max(planned, key=lambda a: (a.planned_fees, -a.starts_at.timestamp())).treatment_plan_id if planned else ""
        wanted[patient_id] = Prescreen(
            location=location, run=run, day=run.day, patient_id=patient_id, appointment_id=first.appointment_id,
            starts_at=first.starts_at, treatment_plan_id=plan, planned_fees=fees,
        )
    opted_out = set(PrescreenOptOut.objects.filter(location=location).values_list("patient_id", flat=True))
    for row in wanted.values():
        row.result = PrescreenResult.OPTED_OUT if row.patient_id in opted_out else PrescreenResult.PENDING
        row.amount = row.expires_on = row.screened_at = None
        row.raw_status = ""
    with transaction.atomic():
        _ours(run, token)
        # A rerun: patients no longer booked that day leave the list; the others are refreshed.
        existing = Prescreen.objects.filter(location=location, day=run.day).values_list("patient_id", "pk")
        gone = [pk for patient_id, pk in existing if patient_id not in wanted]
        for start in range(0, len(gone), CHUNK):
            Prescreen.objects.filter(pk__in=gone[start:start + CHUNK]).delete()
        Prescreen.objects.bulk_create(
            list(wanted.values()),
            batch_size=CHUNK,
            update_conflicts=True,
            unique_fields=["location", "patient_id", "day"],
            update_fields=[
                "run", "appointment_id", "starts_at", "treatment_plan_id", "planned_fees", "result", "amount",
                "expires_on", "raw_status", "screened_at",
            ],
        )
        PrescreenRun.objects.filter(pk=run.pk).update(status=Status.SCREENING, attempts=0, last_error="")
    _next(run, token)
    log.info("pre-screen run %s: %s patients to screen of %s appointments", run.pk, len(wanted), len(appointments))
    return f"gathered {len(wanted)}"


# --- 2. screen a batch -------------------------------------------------------------------------


def batch_size(location: Location, lender) -> int:
    """The patients one task reads and sends: at most the lender's batch, and no more than
    the PMS connection's pace reads in half a task's soft time limit (a 1-per-second Open
    Dental key reads 30, a Dentrix connector at 5 per second a full batch of 100)."""
    most = lender.max_prescreen_batch
    if most <= 0:
        raise NotImplementedError(f"{location.lender_name} has no batch pre-screen: its patients cannot be pre-screened.")
    if not settings.PARTNER_RATE_LIMITS:
        return most
    readable = int(float(location.pms_requests_per_second) * settings.CELERY_TASK_SOFT_TIME_LIMIT / 2)
    return max(1, min(most, readable))


def batch_window(location: Location) -> tuple[str, int, float] | None:
    """The lender's limit on pre-screen batches for the location's merchant, as a limiter
    window (key, N, per P seconds); None when Chairside's rate limits are off."""
    if not settings.PARTNER_RATE_LIMITS:
        return None
    key = ratelimit.connection_key("lender-prescreen", location.lender_base_url, location.merchant_number)
    return key, location.lender_prescreen_batches_per_minute, 60.0


def _screen_batch(run: PrescreenRun, token: str) -> str:
    location = run.location
    lender = partners.lender_for(location)
    rows = list(
        Prescreen.objects.filter(run=run, result=PrescreenResult.PENDING).order_by("starts_at", "pk")[
            : batch_size(location, lender)
        ]
    )
    if not rows:
        return _done(run, token)
    window = batch_window(location)
    if window:
        wait = ratelimit.free_in(*window)
        if wait > settings.PARTNER_RATE_LIMIT_MAX_WAIT:
            raise RateLimited(f"the lender takes {window[1]} pre-screen batches a minute", retry_after=wait)
    pms = partners.pms_for(location)
    applicants = []
    for row in rows:
        try:
            patient = pms.get_patient(row.patient_id)
        except NotFoundError:
            row.result = PrescreenResult.NOT_FOUND
            continue
        row.patient_short_name = short_name(patient)
        if age_on(patient.birth_date, run.day) < ADULT_AGE:
            # Lenders do not screen minors; the guarantor applies for them at the chair.
            row.result = PrescreenResult.MINOR
            continue
        # The reference names the row, never the patient: it is echoed back and may be logged.
        applicants.append(
            PrescreenApplicant(
                reference=f"P{row.pk}", first_name=patient.first_name, last_name=patient.last_name,
                birth_date=patient.birth_date, address=patient.address, requested_amount=row.planned_fees,
            )
        )
    answers = {}
    if applicants:
        _renew(run, token)
        if window:
            ratelimit.acquire_window(window[0], window[1], window[2], pace=f"{window[1]} pre-screen batches a minute")
        results = lender.prescreen(PrescreenRequest(merchant_number=location.merchant_number, applicants=tuple(applicants)))
        answers = {result.reference: result for result in results}
    now = timezone.now()
    with transaction.atomic():
        _ours(run, token)
        for row in rows:
            answer = answers.get(f"P{row.pk}")
            if answer is not None:
                _record(row, answer, now)
            elif row.result == PrescreenResult.PENDING:
                row.result = PrescreenResult.NO_RESULT  # sent, but the answer did not name it
                row.screened_at = now
            row.save(update_fields=["patient_short_name", "result", "amount", "expires_on", "raw_status", "screened_at"])
    _next(run, token, batches=F("batches") + (1 if applicants else 0), attempts=0, last_error="")
    return f"screened {len(applicants)}"


def _record(row: Prescreen, answer, now):
    amount = answer.amount
    if amount is not None and (not amount.is_finite() or abs(amount) >= Decimal("100000000")):
        amount = None  # a lender bug: never shown as a limit
    result = PrescreenResult(answer.outcome.value) if answer.outcome in PrescreenOutcome else PrescreenResult.NO_RESULT
    if result in (PrescreenResult.PREQUALIFIED, PrescreenResult.EXISTING_CARDHOLDER) and amount is None:
        result = PrescreenResult.NO_RESULT
    row.result = result
    row.amount = amount.quantize(Decimal("0.01")) if amount is not None else None
    row.expires_on = answer.expires_on if result == PrescreenResult.PREQUALIFIED else None
    row.raw_status = answer.raw_status[:64]
    row.screened_at = now


# --- 3. done -------------------------------------------------------------------------------


def _done(run: PrescreenRun, token: str) -> str:
    now = timezone.now()
    with transaction.atomic():
        _ours(run, token)
        PrescreenRun.objects.filter(pk=run.pk).update(
            status=Status.DONE, lease_token="", lease_holder="", lease_until=None, next_attempt_at=None,
            attempts=0, last_error="", finished_at=now,
        )
        run.refresh_from_db()
        if run.messaged_at is None and morning.queue_morning_message(run):
            PrescreenRun.objects.filter(pk=run.pk).update(messaged_at=now)
    log.info("pre-screen run %s done: %s batches", run.pk, run.batches)
    return "done"


def redrive(run_id: int):
    """Queue a run again (the lease heartbeat, once its holder is gone)."""
    enqueue_on_commit(RUN_TASK, run_id)
