"""Helpers for the pre-screen's tests: patients and their appointments booked in the Dentrix
sandbox over HTTP (`POST /_sandbox/appointments`), a location's day driven task by task, and
the clock moved with time-machine (every moment is a literal: none is computed at import).

The moments: Friday 2027-03-12 11:00 UTC is 6:00 AM EST in New York; the US moves to summer
time on Sunday 2027-03-14, so Monday 2027-03-15's 9:00 AM in New York is 13:00 UTC.
"""

from contextlib import contextmanager
from datetime import UTC, datetime

import requests
import time_machine
from django.utils import timezone

from financing.models import PrescreenRun
from financing.services.prescreen import RUN_TASK
from tests.conftest import make_location

# A clinic of the sandbox's practice database that no demo patient belongs to, so the demo
# schedule's appointments (clinics 1 to 3, every business day) stay off a test's lists.
CLINIC = "7"
KEY = {"X-API-Key": "sandbox"}


@contextmanager
def at(moment: str):
    """Chairside and the in-process sandboxes at `moment` (ISO, UTC), the clock ticking."""
    with time_machine.travel(datetime.fromisoformat(moment.replace("Z", "+00:00")).astimezone(UTC), tick=True):
        yield


def prescreen_location(template, sandboxes, code="main", **overrides):
    values = {"timezone": "America/New_York", "pms_clinic_ids": CLINIC, **overrides}
    return make_location(template, sandboxes, code=code, **values)


def new_patient(sandboxes, last_name, *, fees=("1250.00", "1250.00"), first_name="Ava", birth_date="1980-04-12", clinic=CLINIC):
    """A patient with an accepted plan of `fees`; returns the sandbox's answer and the plan's
    procedure ids."""
    body = {
        "first_name": first_name,
        "last_name": last_name,
        "birth_date": birth_date,
        "phone": "+15555550188",
        "email": "canary.patient@example.com",
        "address": {"line1": "12 Elm St", "city": "Springfield", "state": "IL", "zip": "62701"},
        "procedures": [{"code": "D2740", "tooth": str(3 + i), "surface": "", "fee": fee} for i, fee in enumerate(fees)],
        "clinic_id": clinic,
    }
    answer = requests.post(f"{sandboxes.dentrix_url}/_sandbox/patients", json=body, timeout=5)
    assert answer.status_code == 201, answer.text
    patient = answer.json()
    plans = requests.get(f"{sandboxes.dentrix_url}/v1/patients/{patient['patient_id']}/treatment-plans", headers=KEY, timeout=5).json()
    patient["procedure_ids"] = [p["procedure_id"] for p in plans[0]["procedures"]]
    return patient


def book(sandboxes, patient, starts_at: str, procedure_ids=None) -> dict:
    """Book the patient at `starts_at` (a moment, e.g. "2027-03-15T13:00:00Z") with their plan's
    procedures (all of them unless told)."""
    body = {
        "patient_id": patient["patient_id"],
        "starts_at": starts_at,
        "procedure_ids": patient["procedure_ids"] if procedure_ids is None else procedure_ids,
    }
    answer = requests.post(f"{sandboxes.dentrix_url}/_sandbox/appointments", json=body, timeout=5)
    assert answer.status_code == 201, answer.text
    return answer.json()


def carecredit_requests(sandboxes, path):
    log = requests.get(f"{sandboxes.carecredit_url}/_sandbox/requests", timeout=5).json()
    return [r for r in log if r["path"] == path]


def quickscreens(sandboxes):
    return carecredit_requests(sandboxes, "/v1/quickscreens")


def run_day(tasks, limit=50) -> list:
    """Run the queued tasks (and what they queue) in order, each pre-screen task once its
    countdown has passed (the run is made due, as the broker's delay would have)."""
    results = []
    for _ in range(limit):
        if not tasks.queue:
            return results
        item = tasks.queue[0]
        if item.name == RUN_TASK and item.countdown:
            PrescreenRun.objects.filter(pk=item.args[0]).update(next_attempt_at=timezone.now())
        results.append((item.name, tasks.run_next()))
    raise AssertionError(f"tasks still queued after {limit} runs: {tasks.names()}")


def start_and_run(tasks) -> list:
    """What beat does, then every task it led to."""
    from financing.tasks import prescreen_locations

    prescreen_locations.run()
    return run_day(tasks)
