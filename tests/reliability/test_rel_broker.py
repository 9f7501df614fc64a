"""Promise 1 at the broker: a message is never half-read, and a broker that is down when a
case or a decision arrives loses nothing (the sweeper re-drives what it did not take)."""

import json
import time
from datetime import timedelta

import pytest
from celery.app.task import Task
from django.test import Client
from django.utils import timezone
from kombu import Connection
from kombu.exceptions import OperationalError
from rest_framework.test import APIClient

from carecredit_bridge.signing import SIGNATURE_HEADER, sign
from financing import services
from financing.models import CaseState, FinancedCase

pytestmark = pytest.mark.django_db(transaction=True)


def filesystem_channel(folder, transport):
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False}
    return Connection("filesystem://", transport=transport, transport_options=options).default_channel


def read_during_write(monkeypatch, module, channel):
    """Make the next message write pause halfway so a consumer polls the folder right then."""
    real_open = open
    seen = []

    class HalfWay:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            try:
                seen.append(channel._get("pms"))
            except Exception as exc:  # noqa: BLE001 - what the consumer would have hit
                seen.append(exc)
            return self.f.write(data[len(data) // 2 :])

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    def halting_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return HalfWay(f) if "w" in mode else f

    monkeypatch.setattr(module, "open", halting_open, raising=False)
    return seen


def test_a_consumer_never_sees_a_half_written_message(tmp_path, monkeypatch):
    import config.broker

    channel = filesystem_channel(tmp_path, "config.broker:Transport")
    seen = read_during_write(monkeypatch, config.broker, channel)
    channel._put("pms", {"body": "x" * 200})
    assert len(seen) == 1 and type(seen[0]).__name__ == "Empty"  # nothing to read yet
    monkeypatch.undo()
    assert channel._get("pms") == {"body": "x" * 200}


def test_kombus_own_filesystem_transport_hands_out_half_written_messages(tmp_path, monkeypatch):
    """Why config/broker.py exists: if this starts failing, kombu fixed it upstream."""
    import kombu.transport.filesystem

    channel = filesystem_channel(tmp_path, "filesystem")
    seen = read_during_write(monkeypatch, kombu.transport.filesystem, channel)
    channel._put("pms", {"body": "x" * 200})
    assert isinstance(seen[0], json.JSONDecodeError)


@pytest.fixture
def broker_down(monkeypatch):
    def refuse(task, *args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(Task, "apply_async", refuse)


def test_a_case_captured_while_the_broker_is_down_is_kept_and_redriven(sandboxes, location, coordinator, broker_down, settings):
    patient = sandboxes.new_patient("Thompson")
    api = APIClient()
    api.force_authenticate(coordinator)
    response = api.post(
        "/api/v1/cases/",
        {"location": "main", "patient_id": patient["patient_id"], "treatment_plan_id": patient["treatment_plan_id"]},
        format="json",
    )
    assert response.status_code == 201
    case = FinancedCase.objects.get(pk=response.json()["id"])
    assert case.state == CaseState.CAPTURED
    later = timezone.now() + timedelta(seconds=max(5, settings.CASE_LEASE_SECONDS // 4) + 1)
    assert services.stuck_cases(now=later) == [case.pk]  # the sweeper's next pass sends it


def test_a_decision_arriving_while_the_broker_is_down_is_acknowledged_and_kept(sandboxes, location, coordinator, tasks, monkeypatch, settings):
    patient = sandboxes.new_patient("Thompson")
    case = services.capture_case(location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"], actor=coordinator)
    tasks.drain()
    case.refresh_from_db()

    def refuse(task, *args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(Task, "apply_async", refuse)
    body = json.dumps({"event_id": "evt_down", "type": "application.status_changed", "application_id": case.application_id}).encode()
    header = sign("whsec_sandbox", body, int(time.time()))
    response = Client().post(
        "/api/v1/webhooks/carecredit/", data=body, content_type="application/json",
        **{f"HTTP_{SIGNATURE_HEADER.upper().replace('-', '_')}": header},
    )
    assert response.status_code == 200 and response.json() == {"status": "approved"}
    case.refresh_from_db()
    assert case.state == CaseState.APPROVED
    later = timezone.now() + timedelta(seconds=max(5, settings.CASE_LEASE_SECONDS // 4) + 1)
    assert services.stuck_cases(now=later) == [case.pk]
