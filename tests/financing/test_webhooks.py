"""The CareCredit webhook receiver: verify, de-duplicate, re-fetch, apply, then 2xx."""

import json
import time

import pytest
import time_machine
from django.test import Client

from financing import services
from financing.models import CaseState, Decision, FinancedCase, InboundEvent
from tests.conftest import deliver_carecredit_webhook

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/webhooks/carecredit/"


deliver = deliver_carecredit_webhook


@pytest.fixture
def sent_case(sandboxes, location, coordinator, tasks):
    patient = sandboxes.new_patient("Thompson")
    case = services.capture_case(location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"], actor=coordinator)
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.APPLICATION_SENT
    return case


def event(case, event_id="evt_1"):
    return {"event_id": event_id, "type": "application.status_changed", "application_id": case.application_id, "status": "APPROVED", "created": int(time.time())}


def test_a_signed_event_refetches_and_applies_the_decision(sent_case, tasks):
    response = deliver(event(sent_case))
    assert response.status_code == 200 and response.json() == {"status": "approved"}
    sent_case.refresh_from_db()
    assert sent_case.state == CaseState.APPROVED
    assert InboundEvent.objects.filter(event_id="evt_1", case=sent_case).count() == 1
    assert tasks.names() == ["financing.write_arrangement"]


def test_the_same_event_five_times_acts_once(sent_case, tasks):
    answers = [deliver(event(sent_case)).json()["status"] for _ in range(5)]
    assert answers == ["approved", "duplicate", "duplicate", "duplicate", "duplicate"]
    assert InboundEvent.objects.count() == 1 and Decision.objects.count() == 1
    assert tasks.names() == ["financing.write_arrangement"]
    # A new event about a case that already moved on is recorded and changes nothing.
    assert deliver(event(sent_case, "evt_2")).json() == {"status": "ignored"}


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda raw: {"secret": "whsec_wrong"}, "Invalid signature"),
        (lambda raw: {"at": time.time() - 301}, "Invalid signature"),
        (lambda raw: {"at": time.time() + 301}, "Invalid signature"),
    ],
)
def test_forged_or_stale_events_are_refused_and_change_nothing(sent_case, tasks, mutate, reason):
    raw = json.dumps(event(sent_case)).encode()
    # The clock stands still: under load a second could pass between signing and checking,
    # and 301 s would become 300 s, inside the window.
    with time_machine.travel(time.time(), tick=False):
        response = deliver(None, raw=raw, **mutate(raw))
    assert response.status_code == 400 and response.json()["error"].startswith(reason)
    assert InboundEvent.objects.count() == 0
    sent_case.refresh_from_db()
    assert sent_case.state == CaseState.APPLICATION_SENT


def test_a_missing_header_or_malformed_event_is_a_400(sent_case):
    assert Client().post(URL, data=b"{}", content_type="application/json").status_code == 400
    response = deliver(None, raw=b'{"event_id": 7}')
    assert response.status_code == 400 and "event_id and application_id" in response.json()["error"]
    assert deliver(None, raw=b"not json").status_code == 400
    assert InboundEvent.objects.count() == 0


def test_rotation_accepts_both_secrets(sent_case, settings):
    settings.CARECREDIT_WEBHOOK_SECRETS = ["whsec_new", "whsec_sandbox"]
    assert deliver(event(sent_case, "evt_a"), secret="whsec_new").status_code == 200
    assert deliver(event(sent_case, "evt_b"), secret="whsec_sandbox").status_code == 200


def test_when_carecredit_cannot_be_asked_nothing_is_recorded_and_it_asks_for_redelivery(sent_case, sandboxes, tasks):
    sandboxes.carecredit_fault(method="GET", path_prefix="/v1/applications", mode="error", status=503, count=1)
    response = deliver(event(sent_case))
    assert response.status_code == 503
    assert InboundEvent.objects.count() == 0
    sent_case.refresh_from_db()
    assert sent_case.state == CaseState.APPLICATION_SENT
    assert deliver(event(sent_case)).json() == {"status": "approved"}  # the redelivery lands


def test_an_event_for_an_unknown_application_is_acknowledged(sent_case):
    response = deliver({"event_id": "evt_x", "type": "application.status_changed", "application_id": "app_nobody"})
    assert response.status_code == 200 and response.json() == {"status": "unknown_application"}
    assert FinancedCase.objects.get().state == CaseState.APPLICATION_SENT
