"""The whole system for real: a Celery worker process (with beat) on the configured broker
and database, the web app serving the webhooks, both sandboxes over HTTP.

Every persona goes end to end; approved cases must hold exactly one agreement and one
ledger note in the Dentrix sandbox, with exactly the computed terms.
"""

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal as D
from pathlib import Path

import pytest
from celery import current_app
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from financing.models import CaseState, FinancedCase
from notifications.models import Notification

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

QUEUES = settings.CELERY_WORKER_QUEUES.split(",")


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker(live_server, sandboxes, tmp_path, settings):
    settings.CHAIRSIDE_PUBLIC_URL = live_server.url
    with current_app.connection_for_write() as conn:
        for queue in QUEUES:
            try:
                conn.default_channel.queue_purge(queue)
            except Exception:  # a queue that was never declared has nothing to purge
                pass
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CHAIRSIDE_PUBLIC_URL": live_server.url,
        "DECISION_POLL_SECONDS": "1",
        "SWEEP_SECONDS": "2",
        "SMS_BACKEND": "notifications.sms.FileBackend",
        "SMS_FILE_PATH": str(tmp_path / "sms"),
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp_path / "email"),
    }
    process = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "config", "worker", "--beat", "--loglevel", "INFO",
            "--queues", ",".join(QUEUES), "--concurrency", "2", "--without-mingle", "--without-gossip",
            "--schedule", str(tmp_path / "beat-schedule"),
        ],
        env=env,
        cwd=settings.BASE_DIR,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while " ready." not in log.read_text():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "worker did not start:\n" + log.read_text()
        time.sleep(0.2)
    yield process, log
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def wait_for(predicate, timeout, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError("timed out; worker log tail:\n" + log.read_text()[-4000:])


PERSONAS = [
    # surname, fees, promotion, final state
    ("Thompson", ("1250.00", "1250.00"), "deferred_12", CaseState.COMPLETED),
    ("Rivera", ("1000.00",), "reduced_apr_36", CaseState.COMPLETED),
    ("Partial-Nguyen", ("1250.00", "1250.00"), "deferred_12", CaseState.COMPLETED),
    ("Pending-Lee", ("600.00",), "deferred_6", CaseState.COMPLETED),
    ("Decline-Parker", ("900.00",), "deferred_12", CaseState.DECLINED),
    ("Refer-Garcia", ("900.00",), "deferred_12", CaseState.AWAITING_DECISION),
    ("Expire-Brown", ("900.00",), "deferred_12", CaseState.APPLICATION_SENT),
]
EXPECTED_TERMS = {  # surname → (down, financed, recurring, payments, final, apr)
    "Thompson": ("0.00", "2500.00", "208.34", 12, "208.26", "0.00"),
    "Rivera": ("0.00", "1000.00", "36.10", 36, None, "17.90"),
    "Partial-Nguyen": ("1000.00", "1500.00", "125.00", 12, "125.00", "0.00"),
    "Pending-Lee": ("0.00", "600.00", "100.00", 6, "100.00", "0.00"),
}


def test_every_persona_end_to_end_with_a_real_worker(worker, sandboxes, location, coordinator):
    _, log = worker
    sandboxes.carecredit_config(decision_delay=0.5, pending_delay=1.5)
    api = APIClient()
    api.force_authenticate(coordinator)
    cases = {}
    for surname, fees, promotion, _ in PERSONAS:
        patient = sandboxes.new_patient(surname, fees=fees)
        response = api.post(
            "/api/v1/cases/",
            {"location": location.code, "patient_id": patient["patient_id"], "treatment_plan_id": patient["treatment_plan_id"], "promotion": promotion},
            format="json",
        )
        assert response.status_code == 201, response.json()
        cases[surname] = response.json()["id"]

    def settled():
        states = dict(FinancedCase.objects.filter(pk__in=cases.values()).values_list("pk", "state"))
        return all(states[cases[s]] == final for s, _, _, final in PERSONAS) and Notification.objects.filter(status="queued").count() == 0

    wait_for(settled, 60, log)

    for surname, *_ in PERSONAS:
        case = FinancedCase.objects.get(pk=cases[surname])
        agreements = sandboxes.agreements(case.guarantor_id)
        notes = sandboxes.ledger_notes(case.patient_id)
        if surname not in EXPECTED_TERMS:
            assert agreements == [] and notes == [], surname
            continue
        down, financed, recurring, payments, final, apr = EXPECTED_TERMS[surname]
        a = case.arrangement
        assert (a.down_payment, a.financed_amount, a.recurring_amount, a.number_of_payments, a.apr) == (
            D(down), D(financed), D(recurring), payments, D(apr)
        ), surname
        if final:
            assert a.final_payment == D(final), surname
        assert len(agreements) == 1 and len(notes) == 1, surname
        assert agreements[0]["agreement_id"] == a.pms_arrangement_id
        assert (agreements[0]["payment_amount"], agreements[0]["number_of_payments"], agreements[0]["down_payment"]) == (recurring, payments, down)
        assert case.marker in agreements[0]["note"] and case.marker in notes[0]["text"]
        assert set(Notification.objects.filter(reference=case.reference).values_list("channel", "template", "status")) == {
            ("email", "case_approved", "sent"),
            ("sms", "case_approved", "sent"),
        }

    declined = FinancedCase.objects.get(pk=cases["Decline-Parker"])
    assert set(Notification.objects.filter(reference=declined.reference).values_list("template", "status")) == {("case_declined", "sent")}
    # Webhooks did the work: each decided case has at least one de-duplicated inbound event.
    assert FinancedCase.objects.get(pk=cases["Thompson"]).events.count() >= 1
    # Only one agreement POST per approved case: nothing was written twice.
    assert len(sandboxes.dentrix_requests("POST", "/v1/accounts")) == len(EXPECTED_TERMS)
    assert len(sandboxes.dentrix_requests("POST", "/v1/patients")) == len(EXPECTED_TERMS)
