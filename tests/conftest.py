"""Shared fixtures: the two partner sandboxes as real HTTP servers, a location wired to
them, staff, and a task recorder that runs Celery tasks on demand with their arguments
round-tripped through JSON (as the broker would)."""

import json
import os
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
import requests
from celery.app.task import Task
from django.contrib.auth import get_user_model
from django.utils import timezone

from carecredit_bridge.client import clear_token_cache
from carecredit_bridge.signing import SIGNATURE_HEADER, sign
from financing.models import ArrangementTemplate, CaseState, FinancedCase, Location, Membership
from notifications.models import ContactPreference
from notifications.sms import LocmemBackend

# `make test TEST_CLOCK=23:30` pins the wall clock of every Python process of the run
# (tests/_clock/chairside_test_clock.py): Python's startup does it when tests/_clock is on
# PYTHONPATH, as `make test` puts it; a bare `CHAIRSIDE_TEST_CLOCK=23:30 pytest` gets it here,
# and the processes it starts (workers, beat, manage.py) through PYTHONPATH.
_CLOCK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_clock")
if os.environ.get("CHAIRSIDE_TEST_CLOCK"):
    _paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if _CLOCK_DIR not in _paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([_CLOCK_DIR, *_paths])
    if _CLOCK_DIR not in sys.path:
        sys.path.insert(0, _CLOCK_DIR)
    import chairside_test_clock

    chairside_test_clock.pin()


def pytest_report_header(config):
    offset = getattr(sys, "_chairside_test_clock_offset", None)
    if offset is None:
        return "clock: real (make test TEST_CLOCK=23:30 pins it)"
    return f"clock: pinned, started at {timezone.now():%Y-%m-%d %H:%M:%S} UTC (CHAIRSIDE_TEST_CLOCK={os.environ['CHAIRSIDE_TEST_CLOCK']}, {offset:+.0f} s)"


@pytest.fixture(scope="session")
def dentrix_sandbox():
    from sandboxes.dentrix import serve_in_thread

    running = serve_in_thread(port=0)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def cc_sandbox_server():
    """A CareCredit sandbox with short real delays, for the client's and the sandbox's own
    tests (each folder's `cc_sandbox` resets it)."""
    from sandboxes.carecredit import serve_in_thread

    running = serve_in_thread(port=0, decision_delay=0.2, pending_delay=0.4)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def carecredit_sandbox():
    from sandboxes.carecredit import serve_in_thread

    # Decisions are immediate unless a test says otherwise; webhooks go nowhere by default.
    running = serve_in_thread(port=0, decision_delay=0.0, pending_delay=0.5)
    yield running
    running.stop()


def _advance_clock(sandbox, seconds):
    response = requests.post(f"{sandbox.base_url}/_sandbox/clock", json={"advance_seconds": seconds}, timeout=5)
    response.raise_for_status()
    return response.json()


@pytest.fixture
def advance_clock():
    """advance_clock(sandbox, seconds): move a sandbox's clock forward over its control
    route, instead of sleeping until its delays pass (a reset puts it back)."""
    return _advance_clock


@dataclass
class Sandboxes:
    dentrix: object
    carecredit: object

    @property
    def dentrix_url(self):
        return self.dentrix.base_url

    @property
    def carecredit_url(self):
        return self.carecredit.base_url

    def dentrix_requests(self, method=None, prefix=""):
        log = requests.get(f"{self.dentrix_url}/_sandbox/requests", timeout=5).json()
        return [r for r in log if (method is None or r["method"] == method) and r["path"].startswith(prefix)]

    def dentrix_fault(self, **fault):
        requests.post(f"{self.dentrix_url}/_sandbox/faults", json=fault, timeout=5).raise_for_status()

    def carecredit_fault(self, **fault):
        requests.post(f"{self.carecredit_url}/_sandbox/faults", json=fault, timeout=5).raise_for_status()

    def clear_faults(self):
        for url in (self.dentrix_url, self.carecredit_url):
            requests.delete(f"{url}/_sandbox/faults", timeout=5).raise_for_status()

    def carecredit_applications(self):
        return requests.get(f"{self.carecredit_url}/_sandbox/applications", timeout=5).json()

    def carecredit_config(self, **config):
        requests.put(f"{self.carecredit_url}/_sandbox/config", json=config, timeout=5).raise_for_status()

    def agreements(self, guarantor_id):
        return dentrix_get(self, f"/v1/accounts/{guarantor_id}/payment-agreements")

    def ledger_notes(self, patient_id):
        return dentrix_get(self, f"/v1/patients/{patient_id}/ledger-notes")

    def new_patient(self, last_name, fees=("1250.00", "1250.00"), first_name="Ava", guarantor_id=None):
        procedures = [{"code": "D2740", "tooth": str(3 + i), "surface": "", "fee": fee} for i, fee in enumerate(fees)]
        body = {
            "first_name": first_name,
            "last_name": last_name,
            "birth_date": "1980-04-12",
            "phone": "+15555550188",
            "email": "canary.patient@example.com",
            "address": {"line1": "12 Elm St", "city": "Springfield", "state": "IL", "zip": "62701"},
            "procedures": procedures,
        }
        if guarantor_id:
            body["guarantor_id"] = guarantor_id
        response = requests.post(f"{self.dentrix_url}/_sandbox/patients", json=body, timeout=5)
        response.raise_for_status()
        return response.json()


def dentrix_get(sandboxes, path):
    response = requests.get(f"{sandboxes.dentrix_url}{path}", headers={"X-API-Key": "sandbox"}, timeout=5)
    response.raise_for_status()
    return response.json()


@pytest.fixture
def sandboxes(dentrix_sandbox, carecredit_sandbox):
    for running in (dentrix_sandbox, carecredit_sandbox):
        requests.post(f"{running.base_url}/_sandbox/reset", timeout=5).raise_for_status()
    requests.put(
        f"{carecredit_sandbox.base_url}/_sandbox/config",
        json={"decision_delay": 0.0, "pending_delay": 0.5, "webhook_duplicates": 0, "webhook_reorder": False},
        timeout=5,
    ).raise_for_status()
    clear_token_cache()
    return Sandboxes(dentrix_sandbox, carecredit_sandbox)


@pytest.fixture(autouse=True)
def _test_settings(settings):
    # Nothing listens on the discard port: sandbox webhooks fail fast unless a test serves them.
    settings.CHAIRSIDE_PUBLIC_URL = "http://127.0.0.1:9"
    settings.SMS_BACKEND = "notifications.sms.LocmemBackend"
    settings.PARTNER_READ_TIMEOUT = 2.0
    # Every test shares one sandbox connection: a 5/s pace would slow the suite for nothing.
    # The limiter has its own tests (tests/perf), and the real-worker tests run with it.
    settings.PARTNER_RATE_LIMITS = False
    LocmemBackend.outbox.clear()


@pytest.fixture
def template(db):
    return ArrangementTemplate.objects.create(name="Group standard")


def make_location(template, sandboxes, code="main", **overrides):
    values = dict(
        code=code,
        name=f"{code.title()} Dental",
        timezone="America/New_York",
        template=template,
        pms_base_url=sandboxes.dentrix_url,
        pms_api_key="sandbox",
        lender_base_url=sandboxes.carecredit_url,
        lender_client_id="chairside-sandbox",
        lender_client_secret="sandbox-secret",
        merchant_number="5348120000000001",
    )
    values.update(overrides)
    return Location.objects.create(**values)


@pytest.fixture
def location(template, sandboxes):
    return make_location(template, sandboxes)


def make_user(username, location=None, role=Membership.Role.COORDINATOR, phone="+15555550100", **extra):
    user = get_user_model().objects.create_user(username, email=f"{username}@example.com", password="pw-" + username, **extra)
    ContactPreference.objects.create(user=user, phone=phone, by_email=True, by_sms=bool(phone))
    if location is not None:
        Membership.objects.create(user=user, location=location, role=role)
    return user


@pytest.fixture
def coordinator(location):
    return make_user("coord", location)


@pytest.fixture
def billing(location):
    return make_user("biller", location, role=Membership.Role.BILLING, phone="")


@pytest.fixture
def empty_queues():
    """The real broker's queues, empty before and after: the sweepers read their depth."""
    from tests.reliability.harness import purge_broker

    purge_broker()
    yield
    purge_broker()


@dataclass
class Enqueued:
    name: str
    args: list
    countdown: float | None


@dataclass
class TaskRecorder:
    """Stands in for the broker: records what would be enqueued, runs it when asked."""

    queue: list = field(default_factory=list)
    ran: list = field(default_factory=list)

    def names(self):
        return [t.name for t in self.queue]

    def run_next(self):
        from celery import current_app

        item = self.queue.pop(0)
        if item.countdown and item.name.startswith("financing."):
            # The broker would hold a delayed step until its countdown ran out, and the
            # step's claim refuses to start before then: let that time pass.
            FinancedCase.objects.filter(pk=item.args[0], next_attempt_at__isnull=False).update(next_attempt_at=timezone.now())
        result = current_app.tasks[item.name].run(*item.args)
        self.ran.append((item.name, result))
        return result

    def drain(self, *, include_delayed=True, limit=50):
        """Run queued tasks (and what they enqueue) in order; return what each returned."""
        results = []
        for _ in range(limit):
            ready = [t for t in self.queue if include_delayed or not t.countdown]
            if not ready:
                return results
            self.queue.remove(ready[0])
            self.queue.insert(0, ready[0])
            results.append((ready[0].name, self.run_next()))
        raise AssertionError(f"tasks still queued after {limit} runs: {self.names()}")


@pytest.fixture
def tasks(monkeypatch):
    recorder = TaskRecorder()

    def apply_async(task, args=None, kwargs=None, countdown=None, **options):
        assert not kwargs, "tasks take ids as positional arguments"
        recorder.queue.append(Enqueued(task.name, json.loads(json.dumps(list(args or []))), countdown))

    monkeypatch.setattr(Task, "apply_async", apply_async)
    return recorder


D = Decimal


def verified_login(client, user):
    """Sign a test client in as `user`, second factor passed (the admin requires one)."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user).first() or TOTPDevice.objects.create(user=user, name="test", confirmed=True)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device


CARECREDIT_WEBHOOK_URL = "/api/v1/webhooks/carecredit/"


def deliver_carecredit_webhook(body: dict, *, secret="whsec_sandbox", at=None, raw=None, client=None):
    """POST a CareCredit event to the webhook, signed as CareCredit signs it."""
    from django.test import Client

    raw = raw if raw is not None else json.dumps(body).encode()
    header = sign(secret, raw, int(at if at is not None else time.time()))
    return (client or Client()).post(
        CARECREDIT_WEBHOOK_URL, data=raw, content_type="application/json",
        **{f"HTTP_{SIGNATURE_HEADER.upper().replace('-', '_')}": header},
    )


def capture_and_decide(sandboxes, location, coordinator, tasks, last_name="Thompson"):
    """Capture a case for a new patient and run it until the lender has decided (the
    undelayed steps only; an instant decision may beat the application's commit, so the
    decision is asked for if the webhook found no case yet)."""
    from financing import services

    patient = sandboxes.new_patient(last_name)
    case = services.capture_case(location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"], actor=coordinator)
    tasks.drain(include_delayed=False)
    if FinancedCase.objects.get(pk=case.pk).state == CaseState.APPLICATION_SENT:
        services.refresh_decision(case.pk)
        tasks.drain(include_delayed=False)
    return case
