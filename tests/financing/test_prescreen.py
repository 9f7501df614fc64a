"""The nightly pre-screen over HTTP against the sandboxes: when it runs (each location's own
hour and zone, the business-day rule), what it gathers (threshold, clinic, one row per
patient), who it skips (minors on the appointment day, opt-outs: never read, never sent),
each outcome stored with its expiry, the lender's batch limit held, a rerun that refreshes
and never duplicates, and no PHI kept or logged.

Moments (see tests/financing/prescreening.py): Friday 2027-03-12 11:00 UTC is 6:00 AM EST;
summer time starts Sunday 2027-03-14, so Monday 2027-03-15 9:00 AM EDT is 13:00 UTC.
"""

import logging
from datetime import date, datetime
from decimal import Decimal as D

import pytest
import requests
from django.db import connection

from financing import ratelimit
from financing.models import Prescreen, PrescreenOptOut, PrescreenRun
from financing.services import prescreen
from financing.services.prescreen import RUN_TASK, next_business_day, runs_to_start
from tests.conftest import make_user
from tests.financing.prescreening import (
    at,
    book,
    new_patient,
    prescreen_location,
    quickscreens,
    run_day,
    start_and_run,
)

pytestmark = pytest.mark.django_db(transaction=True)

MONDAY = date(2027, 3, 15)
FRIDAY_6AM_EST = "2027-03-12T11:00:00Z"


def rows(location, day=MONDAY) -> dict:
    return {
        row.patient_id: (row.patient_short_name, row.result, row.amount, row.expires_on, row.planned_fees)
        for row in Prescreen.objects.filter(location=location, day=day)
    }


# --- when it runs ------------------------------------------------------------------------------


def screened_days() -> dict:
    """Location code → the appointment days it has a run for."""
    days = {}
    for code, day in PrescreenRun.objects.order_by("day").values_list("location__code", "day"):
        days.setdefault(code, []).append(day)
    return days


def test_each_location_runs_at_its_own_hour_on_its_own_clock(template, sandboxes, tasks):
    prescreen_location(template, sandboxes, "east")  # New York, 6:00
    prescreen_location(template, sandboxes, "west", timezone="America/Los_Angeles")  # 6:00
    prescreen_location(template, sandboxes, "tokyo", timezone="Asia/Tokyo", prescreen_hour=7)
    with at("2027-03-12T10:59:00Z"):  # 5:59 AM in New York, 2:59 AM in Los Angeles, 7:59 PM in Tokyo
        runs_to_start()
    # Tokyo's Friday 7:59 PM is past its hour: its next business day is its Monday.
    assert screened_days() == {"tokyo": [MONDAY]}
    with at("2027-03-12T11:00:00Z"):  # 6:00 AM EST
        runs_to_start()
    assert screened_days() == {"tokyo": [MONDAY], "east": [MONDAY]}
    assert PrescreenRun.objects.get(location__code="east").run_on == date(2027, 3, 12)
    with at("2027-03-12T13:59:00Z"):  # 5:59 AM PST
        runs_to_start()
    assert "west" not in screened_days()
    with at("2027-03-12T14:00:00Z"):  # 6:00 AM PST
        runs_to_start()
    assert screened_days() == {"tokyo": [MONDAY], "east": [MONDAY], "west": [MONDAY]}
    assert tasks.queue == []  # runs_to_start names the runs; the beat task queues them


def test_a_location_whose_utc_date_is_behind_its_own_screens_its_own_next_day(template, sandboxes, tasks):
    tokyo = prescreen_location(template, sandboxes, "tokyo", timezone="Asia/Tokyo", prescreen_hour=7)
    with at("2027-03-10T21:59:00Z"):  # Thursday 6:59 AM in Tokyo (Wednesday in UTC)
        assert runs_to_start() == []
    with at("2027-03-10T22:00:00Z"):  # Thursday 7:00 AM in Tokyo
        [run_id] = runs_to_start()
    run = PrescreenRun.objects.get(pk=run_id)
    assert (run.location, run.run_on, run.day) == (tokyo, date(2027, 3, 11), date(2027, 3, 12))


def test_the_next_business_day_after_today_is_screened_once(template, sandboxes, tasks):
    prescreen_location(template, sandboxes, "east")
    prescreen_location(template, sandboxes, "sat", business_days="tue,thu,sat")
    with at("2027-03-11T12:00:00Z"):  # Thursday
        runs_to_start()
    assert screened_days() == {"east": [date(2027, 3, 12)], "sat": [date(2027, 3, 13)]}  # Friday; Saturday
    with at("2027-03-12T12:00:00Z"):  # Friday: Monday, and Tuesday for the other
        runs_to_start()
    for moment in ("2027-03-13T12:00:00Z", "2027-03-14T16:00:00Z", "2027-03-15T09:59:00Z"):
        with at(moment):  # Saturday, Sunday: Monday's run is there already; Monday 5:59 AM EDT
            runs_to_start()
    assert screened_days() == {"east": [date(2027, 3, 12), MONDAY], "sat": [date(2027, 3, 13), date(2027, 3, 16)]}
    with at("2027-03-15T10:00:00Z"):  # Monday 6:00 AM EDT (summer time since Sunday)
        runs_to_start()
    assert screened_days() == {
        "east": [date(2027, 3, 12), MONDAY, date(2027, 3, 16)], "sat": [date(2027, 3, 13), date(2027, 3, 16)],
    }
    assert PrescreenRun.objects.count() == 5


def test_next_business_day_rule():
    weekdays = {0, 1, 2, 3, 4}
    assert next_business_day(date(2027, 3, 12), weekdays) == date(2027, 3, 15)  # Friday → Monday
    assert next_business_day(date(2027, 3, 13), weekdays) == date(2027, 3, 15)  # Saturday → Monday
    assert next_business_day(date(2027, 3, 15), weekdays) == date(2027, 3, 16)
    assert next_business_day(date(2027, 12, 31), {5}) == date(2028, 1, 1)  # a Saturday-only practice
    with pytest.raises(prescreen.PrescreenError):
        next_business_day(date(2027, 3, 12), set())


def test_a_paused_or_turned_off_location_is_not_screened(template, sandboxes, tasks):
    prescreen_location(template, sandboxes, "off", prescreen_enabled=False)
    prescreen_location(template, sandboxes, "paused", mode="paused")
    with at(FRIDAY_6AM_EST):
        assert runs_to_start() == []
    assert PrescreenRun.objects.count() == 0


# --- a day screened over HTTP ------------------------------------------------------------------


def test_a_day_is_gathered_screened_and_stored_with_each_outcome(template, sandboxes, tasks, caplog):
    caplog.set_level(logging.DEBUG)
    location = prescreen_location(template, sandboxes)
    p = {
        "ava": new_patient(sandboxes, "Thompson", fees=("1250.00", "1250.00")),  # pre-qualified up to the fee
        "cal": new_patient(sandboxes, "Cardholder-Reyes", first_name="Cal"),  # existing cardholder
        "dee": new_patient(sandboxes, "Decline-Parker", first_name="Dee"),  # not pre-qualified
        "eli": new_patient(sandboxes, "Refer-Garcia", first_name="Eli"),  # not pre-qualified
        "kim": new_patient(sandboxes, "Nomatch-Olsen", first_name="Kim"),  # no result
        "pat": new_patient(sandboxes, "Partial-Nguyen", fees=("1685.00", "1000.00"), first_name="Pat"),  # 60 %
        "ivy": new_patient(sandboxes, "Moreau", fees=("400.00", "400.00"), first_name="Ivy"),  # two visits
        # 18 on Monday, the appointment day: sent (CareCredit, judging on Friday, says not eligible).
        "ned": new_patient(sandboxes, "Young", first_name="Ned", birth_date="2009-03-15"),
        # 18 only on Tuesday: a minor on the appointment day, never sent.
        "gus": new_patient(sandboxes, "Thompson", first_name="Gus", birth_date="2009-03-16"),
        "oli": new_patient(sandboxes, "Optout-Ray", first_name="Oli"),  # opted out: never read
        "low": new_patient(sandboxes, "Lowe", fees=("255.00",), first_name="Lou"),  # under the threshold
        "far": new_patient(sandboxes, "Faraway", first_name="Fae", clinic="8"),  # another clinic's patient
        "tue": new_patient(sandboxes, "Tuesday", first_name="Tia"),  # booked another day
    }
    book(sandboxes, p["ava"], "2027-03-15T13:00:00Z")  # 9:00 AM EDT
    book(sandboxes, p["cal"], "2027-03-15T13:30:00Z")
    book(sandboxes, p["dee"], "2027-03-15T14:00:00Z")
    book(sandboxes, p["eli"], "2027-03-15T14:30:00Z")
    book(sandboxes, p["kim"], "2027-03-15T15:00:00Z")
    book(sandboxes, p["pat"], "2027-03-15T15:30:00Z")
    book(sandboxes, p["ivy"], "2027-03-15T19:00:00Z", p["ivy"]["procedure_ids"][1:])
    first_visit = book(sandboxes, p["ivy"], "2027-03-15T16:00:00Z", p["ivy"]["procedure_ids"][:1])
    book(sandboxes, p["ned"], "2027-03-15T17:00:00Z")
    book(sandboxes, p["gus"], "2027-03-15T18:00:00Z")
    book(sandboxes, p["oli"], "2027-03-15T20:00:00Z")
    book(sandboxes, p["low"], "2027-03-15T20:30:00Z")
    book(sandboxes, p["far"], "2027-03-15T13:00:00Z")
    book(sandboxes, p["tue"], "2027-03-16T13:00:00Z")
    PrescreenOptOut.objects.create(location=location, patient_id=p["oli"]["patient_id"])
    dentrix_before = len(sandboxes.dentrix_requests("GET", "/v1/patients/"))

    with at(FRIDAY_6AM_EST):
        results = start_and_run(tasks)

    assert [r for name, r in results if name == RUN_TASK] == ["gathered 10", "screened 8", "done"]
    expires = date(2027, 4, 11)  # CareCredit's date (Friday) + 30 days
    plan = lambda who: p[who]["patient_id"]  # noqa: E731
    assert rows(location) == {
        plan("ava"): ("Ava T.", "prequalified", D("2500.00"), expires, D("2500.00")),
        plan("cal"): ("Cal C.", "existing_cardholder", D("5000.00"), None, D("2500.00")),
        plan("dee"): ("Dee D.", "not_prequalified", None, None, D("2500.00")),
        plan("eli"): ("Eli R.", "not_prequalified", None, None, D("2500.00")),
        plan("kim"): ("Kim N.", "no_result", None, None, D("2500.00")),
        plan("pat"): ("Pat P.", "prequalified", D("1611.00"), expires, D("2685.00")),
        plan("ivy"): ("Ivy M.", "prequalified", D("1000.00"), expires, D("800.00")),
        plan("ned"): ("Ned Y.", "no_result", None, None, D("2500.00")),
        plan("gus"): ("Gus T.", "minor", None, None, D("2500.00")),
        plan("oli"): ("", "opted_out", None, None, D("2500.00")),
    }
    ivy = Prescreen.objects.get(location=location, patient_id=plan("ivy"))
    assert ivy.appointment_id == first_visit["appointment_id"]  # the earliest visit of the day
    assert ivy.starts_at == datetime.fromisoformat("2027-03-15T16:00:00+00:00")
    assert ivy.treatment_plan_id == p["ivy"]["treatment_plan_id"]
    run = PrescreenRun.objects.get(location=location)
    assert (run.status, run.day, run.batches, run.attempts, run.last_error) == ("done", MONDAY, 1, 0, "")
    # One batch, within the lender's limit; only the patients it needed were read from the PMS.
    assert [r["status"] for r in quickscreens(sandboxes)] == [200]
    read = [r["path"] for r in sandboxes.dentrix_requests("GET", "/v1/patients/")[dentrix_before:]]
    assert sorted(read) == sorted(
        f"/v1/patients/{plan(who)}" for who in ("ava", "cal", "dee", "eli", "kim", "pat", "ivy", "ned", "gus")
    )
    # No PHI kept in the clear or logged: names, birth dates, addresses.
    with connection.cursor() as cursor:
        cursor.execute("SELECT patient_short_name FROM financing_prescreen")
        stored = " ".join(str(value) for (value,) in cursor.fetchall())
    for secret in ("Thompson", "Cardholder", "Decline-Parker", "1980-04-12", "2009-03-16", "12 Elm St", "Springfield"):
        assert secret not in stored
        assert secret not in caplog.text, secret


def test_each_outcome_is_kept_on_the_row_with_the_lenders_word(template, sandboxes, tasks):
    location = prescreen_location(template, sandboxes)
    for i, surname in enumerate(("Thompson", "Cardholder-Lee", "Decline-Fox", "Refer-Fox", "Nomatch-Fox", "Partial-Fox")):
        book(sandboxes, new_patient(sandboxes, surname, fees=("1999.99",)), f"2027-03-15T{13 + i}:00:00Z")
    with at(FRIDAY_6AM_EST):
        start_and_run(tasks)
    words = {
        (r.result, r.raw_status, r.amount) for r in Prescreen.objects.filter(location=location)
    }
    assert words == {
        ("prequalified", "PREAPPROVED", D("2000.00")),  # rounded up to a multiple of $500
        ("existing_cardholder", "ACCOUNT_FOUND", D("5000.00")),
        ("not_prequalified", "NOT_PREAPPROVED", None),
        ("not_prequalified", "NOT_PREAPPROVED", None),
        ("no_result", "NO_MATCH", None),
        ("prequalified", "PREAPPROVED", D("1199.99")),  # 60 % of 1,999.99 (1,199.994), half up
    }


def test_the_threshold_is_the_locations_and_applies_to_the_whole_day(template, sandboxes, tasks):
    location = prescreen_location(template, sandboxes, prescreen_threshold=D("2500.00"))
    under = new_patient(sandboxes, "Under", fees=("2499.99",))
    exact = new_patient(sandboxes, "Exact", fees=("2500.00",))
    book(sandboxes, under, "2027-03-15T13:00:00Z")
    book(sandboxes, exact, "2027-03-15T14:00:00Z")
    with at(FRIDAY_6AM_EST):
        start_and_run(tasks)
    assert set(rows(location)) == {exact["patient_id"]}


# --- rerun -------------------------------------------------------------------------------------


def test_a_rerun_refreshes_the_day_and_never_duplicates(template, sandboxes, tasks):
    location = prescreen_location(template, sandboxes)
    make_user("coord", location)
    ava = new_patient(sandboxes, "Thompson")
    cal = new_patient(sandboxes, "Cardholder-Reyes", first_name="Cal", fees=("600.00",))
    book(sandboxes, ava, "2027-03-15T13:00:00Z")
    book(sandboxes, cal, "2027-03-15T14:00:00Z")
    with at(FRIDAY_6AM_EST):
        start_and_run(tasks)
    run = PrescreenRun.objects.get()
    first = {row.patient_id: row.pk for row in Prescreen.objects.all()}
    assert len(first) == 2
    from notifications.models import Notification

    sent = Notification.objects.filter(template="prescreen_morning").count()
    assert sent == 2  # the coordinator's email and SMS

    # Beat again, a duplicate message: nothing.
    with at("2027-03-12T11:30:00Z"):
        assert runs_to_start() == []
        assert prescreen.work_on_run(run.pk) == "skipped"

    # By the rerun: a new booking, the threshold raised past Cal's $600, the card's credit changed.
    ben = new_patient(sandboxes, "Lindqvist", first_name="Ben")
    book(sandboxes, ben, "2027-03-15T15:00:00Z")
    location.prescreen_threshold = D("1000.00")
    location.save()
    with at("2027-03-12T15:00:00Z"):
        again = prescreen.rerun(location)
        run_day(tasks)
    assert again.pk == run.pk
    assert PrescreenRun.objects.count() == 1
    after = {row.patient_id: row.pk for row in Prescreen.objects.all()}
    assert set(after) == {ava["patient_id"], ben["patient_id"]}
    assert after[ava["patient_id"]] == first[ava["patient_id"]]  # the same row, refreshed
    assert rows(location)[ben["patient_id"]][1:3] == ("prequalified", D("2500.00"))
    assert PrescreenRun.objects.get().status == "done"
    # (A 401 between them: CareCredit's token expired in the four hours; the client got another.)
    assert [r["status"] for r in quickscreens(sandboxes) if r["status"] != 401] == [200, 200]
    # Sent once per run.
    assert Notification.objects.filter(template="prescreen_morning").count() == sent


# --- the lender's limit ------------------------------------------------------------------------


def _hundred_and_one(sandboxes):
    for i in range(101):
        patient = new_patient(sandboxes, f"Many{i:03d}", fees=("600.00",))
        book(sandboxes, patient, f"2027-03-15T{13 + i // 30}:{(i % 30) * 2:02d}:00Z")


def test_the_lenders_batch_limit_is_held_by_our_limiter(template, sandboxes, tasks, settings):
    """CareCredit takes N Quickscreen batches a minute per merchant (1 here, 6 in production):
    the second batch waits for its slot instead of being refused, and the wait costs no
    attempt and reads no patient for nothing."""
    settings.PARTNER_RATE_LIMITS = True
    # The in-process limiter: the test moves the clock (time-machine), and Redis keeps its own.
    settings.PARTNER_RATE_LIMIT_URL = ""
    ratelimit.reset_local_state()
    sandboxes.carecredit_config(prescreen_batches_per_minute=1)
    location = prescreen_location(
        template, sandboxes, lender_prescreen_batches_per_minute=1,
        pms_requests_per_second=D("1000.00"), lender_requests_per_second=D("1000.00"),
    )
    _hundred_and_one(sandboxes)
    with at(FRIDAY_6AM_EST):
        runs_to_start()
        run = PrescreenRun.objects.get(location=location)
        assert prescreen.work_on_run(run.pk) == "gathered 101"
        assert prescreen.work_on_run(run.pk) == "screened 100"  # a full batch of the lender's 100
        reads_before = len(sandboxes.dentrix_requests("GET", "/v1/patients/"))
        tasks.queue.clear()
        assert prescreen.work_on_run(run.pk) == "rate_limited"
        [waiting] = tasks.queue
        run.refresh_from_db()
        assert waiting.name == RUN_TASK and waiting.args == [run.pk]
        assert 60 <= waiting.countdown <= 80  # the slot frees 63 s after the first batch (5 % guard)
        assert run.attempts == 0  # given back: nothing failed
        assert run.status == "screening" and run.last_error == ""
        assert len(sandboxes.dentrix_requests("GET", "/v1/patients/")) == reads_before  # nobody read for nothing
        assert [r["status"] for r in quickscreens(sandboxes)] == [200]
        # A duplicate message before the slot: turned away by the claim.
        assert prescreen.work_on_run(run.pk) == "skipped"
        # A minute later (the sandbox's and our limiter's, without sleeping through it).
        requests.post(f"{sandboxes.carecredit_url}/_sandbox/clock", json={"advance_seconds": 61}, timeout=5).raise_for_status()
        ratelimit.reset_local_state()
        tasks.queue.clear()
        PrescreenRun.objects.filter(pk=run.pk).update(next_attempt_at=None)
        assert prescreen.work_on_run(run.pk) == "screened 1"
        assert prescreen.work_on_run(run.pk) == "done"
    assert [r["status"] for r in quickscreens(sandboxes)] == [200, 200]  # never a 429
    assert Prescreen.objects.filter(location=location, result="prequalified").count() == 101


def test_a_lender_429_is_waited_out_not_a_failure(template, sandboxes, tasks):
    """Without our limiter (another system spent the merchant's minute), CareCredit's 429 and
    its Retry-After: the batch is sent again later, the rows kept pending meanwhile."""
    sandboxes.carecredit_config(prescreen_batches_per_minute=1)
    location = prescreen_location(template, sandboxes)
    _hundred_and_one(sandboxes)
    with at(FRIDAY_6AM_EST):
        runs_to_start()
        run = PrescreenRun.objects.get(location=location)
        assert prescreen.work_on_run(run.pk) == "gathered 101"
        assert prescreen.work_on_run(run.pk) == "screened 100"
        tasks.queue.clear()
        assert prescreen.work_on_run(run.pk) == "retry"
        run.refresh_from_db()
        [again] = tasks.queue
        assert again.countdown >= 59  # CareCredit's Retry-After
        assert run.attempts == 1 and "429" in run.last_error
        assert Prescreen.objects.filter(location=location, result="pending").count() == 1
        requests.post(f"{sandboxes.carecredit_url}/_sandbox/clock", json={"advance_seconds": 61}, timeout=5).raise_for_status()
        PrescreenRun.objects.filter(pk=run.pk).update(next_attempt_at=None)
        assert prescreen.work_on_run(run.pk) == "screened 1"
        assert prescreen.work_on_run(run.pk) == "done"
    assert [r["status"] for r in quickscreens(sandboxes)] == [200, 429, 200]


# --- failures ----------------------------------------------------------------------------------


def test_a_pms_outage_backs_off_then_stops_the_run_with_its_reason(template, sandboxes, tasks, settings):
    settings.STEP_MAX_ATTEMPTS = 3
    location = prescreen_location(template, sandboxes)
    book(sandboxes, new_patient(sandboxes, "Thompson"), "2027-03-15T13:00:00Z")
    sandboxes.dentrix_fault(method="GET", path_prefix="/v1/appointments", mode="error", status=503, count=None)
    with at(FRIDAY_6AM_EST):
        [run_id] = runs_to_start()
        outcomes = [prescreen.work_on_run(run_id) for _ in range(1)]
        for _ in range(2):
            PrescreenRun.objects.filter(pk=run_id).update(next_attempt_at=None)
            outcomes.append(prescreen.work_on_run(run_id))
    run = PrescreenRun.objects.get(pk=run_id)
    assert outcomes == ["retry", "retry", "failed"]
    assert run.status == "failed"
    assert run.last_error.startswith("Stopped after 3 failed attempts in a row; the last error was: ")
    assert "503" in run.last_error
    assert not Prescreen.objects.exists()
    assert quickscreens(sandboxes) == []
    # The beat does not pick a stopped run up again; Screen again does.
    sandboxes.clear_faults()
    with at("2027-03-12T12:00:00Z"):
        assert runs_to_start() == []
        prescreen.rerun(location)
        run_day(tasks)
    assert PrescreenRun.objects.get(pk=run_id).status == "done"
    assert Prescreen.objects.get().result == "prequalified"


def test_a_lost_message_is_queued_again_by_beat(template, sandboxes, tasks):
    prescreen_location(template, sandboxes)
    with at(FRIDAY_6AM_EST):
        [run_id] = runs_to_start()  # its message lost: never run
    with at("2027-03-12T11:00:30Z"):
        assert runs_to_start() == []  # not yet: it was queued 30 s ago
    with at("2027-03-12T11:01:01Z"):
        assert runs_to_start() == [run_id]
    with at("2027-03-12T11:01:30Z"):
        assert runs_to_start() == []  # queued again just now


# --- the demo's command ------------------------------------------------------------------------


def test_the_prescreen_command_screens_now_and_prints_the_list(template, sandboxes, tasks):
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    location = prescreen_location(template, sandboxes, name="Main Street Dental")
    prescreen_location(template, sandboxes, "other", pms_clinic_ids="9")
    book(sandboxes, new_patient(sandboxes, "Thompson", fees=("1680.00",)), "2027-03-15T13:00:00Z")
    book(sandboxes, new_patient(sandboxes, "Gus", first_name="Gus", birth_date="2015-01-01"), "2027-03-15T14:00:00Z")
    out = StringIO()
    with at("2027-03-12T09:00:00Z"):  # Friday 4:00 AM EST: before the hour, the command does not wait for it
        call_command("prescreen", location=["main"], stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[:4] == [
        "Main Street Dental (main) · Monday, Mar 15, 2027",
        "  Monday at Main Street Dental: 1 patient pre-qualified up to $2,000.00.",
        "   9:00 AM EDT  Ava T.     $1,680.00  Pre-qualified up to $2,000.00, until Apr 11, 2027",
        "  10:00 AM EDT  Gus G.     $2,500.00  Not screened: under 18",
    ]
    assert lines[4] == "  Not screened: 1 under 18."
    assert lines[5].startswith("  (1 batch, ")
    assert PrescreenRun.objects.get(location=location).status == "done"
    assert not PrescreenRun.objects.exclude(location=location).exists()
    with pytest.raises(CommandError, match="nowhere"):
        call_command("prescreen", location=["nowhere"], stdout=StringIO())


def test_a_pms_bridge_that_does_not_list_appointments_is_never_started(template, sandboxes, tasks, monkeypatch):
    """A PMS bridge without `appointments_on` (a connector bridge of before contract 2.1): the
    guard, read from the registry's client class."""
    from dentrix_bridge.client import DentrixConnectorClient

    location = prescreen_location(template, sandboxes, name="Main Street Dental")
    monkeypatch.delattr(DentrixConnectorClient, "appointments_on")
    with at(FRIDAY_6AM_EST):
        assert runs_to_start() == []
        with pytest.raises(prescreen.PrescreenError, match="^Dentrix does not list appointments to Chairside yet"):
            prescreen.rerun(location)
    assert not PrescreenRun.objects.exists()
    # A run made anyway (the location switched overnight to such a PMS) stops with the reason.
    run = PrescreenRun.objects.create(location=location, day=MONDAY, run_on=date(2027, 3, 12), started_at=datetime.fromisoformat("2027-03-12T11:00:00+00:00"))
    assert prescreen.work_on_run(run.pk) == "failed"
    run.refresh_from_db()
    assert (run.status, run.last_error) == ("failed", "Dentrix does not list appointments to Chairside yet: its patients cannot be pre-screened.")
