"""Promise 1 at the broker: a message is never half-read, and a broker that is down when a
case or a decision arrives loses nothing (the sweeper re-drives what it did not take), and
the sweeper re-drives only what can really have been lost: never into a queue that still
holds messages, unless the work is much older (SWEEP_BUSY_QUEUE_SECONDS)."""

import json
from datetime import timedelta

import pytest
from celery import current_app
from celery.app.task import Task
from django.test import Client
from django.utils import timezone
from kombu import Connection
from kombu.exceptions import OperationalError
from rest_framework.test import APIClient

from config import broker
from financing import services
from financing.services.sweeps import message_grace_seconds
from financing import tasks as financing_tasks
from financing.models import CaseState, FinancedCase
from notifications import services as notification_services
from notifications.models import Channel, ContactPreference, Notification
from notifications.tasks import redrive_notifications, send_notification
from tests.conftest import deliver_carecredit_webhook

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


def test_a_case_captured_while_the_broker_is_down_is_kept_and_redriven(sandboxes, location, coordinator, broker_down, settings, empty_queues):
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
    later = timezone.now() + timedelta(seconds=message_grace_seconds() + 1)
    assert services.stuck_cases(now=later) == [case.pk]  # the sweeper's next pass sends it


def test_a_decision_arriving_while_the_broker_is_down_is_acknowledged_and_kept(sandboxes, location, coordinator, tasks, monkeypatch, settings, empty_queues):
    patient = sandboxes.new_patient("Thompson")
    case = services.capture_case(location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"], actor=coordinator)
    tasks.drain()
    case.refresh_from_db()

    def refuse(task, *args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(Task, "apply_async", refuse)
    response = deliver_carecredit_webhook({"event_id": "evt_down", "type": "application.status_changed", "application_id": case.application_id})
    assert response.status_code == 200 and response.json() == {"status": "approved"}
    case.refresh_from_db()
    assert case.state == CaseState.APPROVED
    later = timezone.now() + timedelta(seconds=message_grace_seconds() + 1)
    assert services.stuck_cases(now=later) == [case.pk]


def test_a_decline_arriving_while_the_broker_is_down_is_acknowledged_and_its_notice_kept(sandboxes, location, coordinator, tasks, monkeypatch, settings, empty_queues):
    ContactPreference.objects.filter(user=coordinator).update(by_sms=False)  # one notice: by email
    patient = sandboxes.new_patient("Decline-Parker")
    case = services.capture_case(location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"], actor=coordinator)
    tasks.drain()
    case.refresh_from_db()

    def refuse(task, *args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(Task, "apply_async", refuse)
    response = deliver_carecredit_webhook(
        {"event_id": "evt_down_decline", "type": "application.status_changed", "application_id": case.application_id},
        client=Client(raise_request_exception=False),
    )
    assert response.status_code == 200 and response.json() == {"status": "declined"}
    case.refresh_from_db()
    assert case.state == CaseState.DECLINED
    [notice] = Notification.objects.all()
    assert (notice.template, notice.status, notice.reference) == ("case_declined", Notification.Status.QUEUED, case.reference)
    # The notification sweeper sends it once the grace has passed.
    assert notification_services.stuck(timezone.now() + timedelta(seconds=31)) == [notice.pk]


def notification(key: str) -> Notification:
    return notification_services.queue(
        notification_services.Message(
            dedupe_key=key, reference="CS-TEST0007", channel=Channel.EMAIL, recipient="coord@example.com",
            template="case_approved", subject="Approved: CS-TEST0007", body="CS-TEST0007 is approved.",
        )
    )


def test_queuing_a_notification_while_the_broker_is_down_returns_normally(broker_down, empty_queues):
    from django.db import transaction

    with transaction.atomic():
        inside = notification("inside-a-transaction")  # sent on commit: the commit meets the broker
    outside = notification("outside-a-transaction")  # autocommit: sent at once
    assert notification("inside-a-transaction").pk == inside.pk  # queued again: the same record
    assert sorted(Notification.objects.values_list("pk", "status")) == [
        (inside.pk, Notification.Status.QUEUED), (outside.pk, Notification.Status.QUEUED),
    ]
    assert notification_services.stuck(timezone.now() + timedelta(seconds=31)) == [inside.pk, outside.pk]


# --- the sweepers and the depth of the queues -------------------------------------------------


def messages_in(queue: str) -> list[tuple[str, list]]:
    """Take every message waiting in `queue` off the real broker: (task name, args) each."""
    taken = []
    with current_app.connection_for_read() as conn, conn.SimpleQueue(queue, no_ack=True) as waiting:
        while True:
            try:
                message = waiting.get(block=False)
            except waiting.Empty:
                return sorted(taken)
            taken.append((message.headers["task"], message.decode()[0]))


def make_broker_unreadable(monkeypatch):
    """From now on, reading a queue's depth meets a broker that refuses connections."""
    monkeypatch.setattr(current_app._get_current_object(), "connection_for_read", lambda *a, **kw: Connection("redis://127.0.0.1:9/0"))


def case_in(location, state, age_seconds):
    plan = f"p{FinancedCase.objects.count() + 1}"
    case = FinancedCase.objects.create(location=location, patient_id="1", treatment_plan_id=plan, promotion="deferred_12", state=state)
    FinancedCase.objects.filter(pk=case.pk).update(state_changed_at=timezone.now() - timedelta(seconds=age_seconds))
    return case


def test_the_depth_of_a_queue_is_read_from_the_broker(empty_queues, monkeypatch):
    assert broker.queue_for("financing.send_application") == "lender"
    assert broker.queue_for("financing.write_arrangement") == broker.queue_for("financing.post_ledger_note") == "pms"
    assert broker.queue_for("notifications.send") == "notify"
    # Redis deletes an empty queue's list: a queue with nothing in it, or never used, is 0.
    assert broker.queue_depth("pms") == 0
    for case_id in (1, 2, 3):
        financing_tasks.write_arrangement.delay(case_id)
    assert (broker.queue_depth("pms"), broker.queue_depth("lender")) == (3, 0)
    assert messages_in("pms") == [("financing.write_arrangement", [n]) for n in (1, 2, 3)]
    assert broker.queue_depth("pms") == 0
    make_broker_unreadable(monkeypatch)
    assert broker.queue_depth("pms") is None  # unknown, not "empty"


def test_a_lost_case_is_redriven_into_its_empty_queue_once(location, empty_queues):
    case = case_in(location, CaseState.CAPTURED, age_seconds=60)  # its message was lost a minute ago
    assert financing_tasks.redrive_stuck_cases.run() == 1
    # The next sweeps find the case still unclaimed, but its message now waits in the queue.
    assert financing_tasks.redrive_stuck_cases.run() == 0
    assert financing_tasks.redrive_stuck_cases.run() == 0
    assert messages_in("lender") == [("financing.send_application", [case.pk])]


def test_a_case_is_not_redriven_into_a_queue_holding_messages_until_it_is_older_than_the_bound(location, empty_queues, settings):
    assert settings.SWEEP_BUSY_QUEUE_SECONDS == 600
    financing_tasks.send_application.delay(0)  # another case's step, still waiting in the lender queue
    captured = case_in(location, CaseState.CAPTURED, age_seconds=60)
    approved = case_in(location, CaseState.APPROVED, age_seconds=60)
    # Only the step whose queue is empty (pms) is re-driven; a busy lender queue holds back
    # nothing but the lender's steps.
    assert services.stuck_cases() == [approved.pk]
    assert financing_tasks.redrive_stuck_cases.run() == 1
    assert services.stuck_cases() == []
    assert services.stuck_cases(now=timezone.now() + timedelta(seconds=settings.SWEEP_BUSY_QUEUE_SECONDS - 90)) == []
    # Older than the bound: re-driven even though the queue never emptied.
    FinancedCase.objects.filter(pk=captured.pk).update(state_changed_at=timezone.now() - timedelta(seconds=settings.SWEEP_BUSY_QUEUE_SECONDS + 1))
    assert financing_tasks.redrive_stuck_cases.run() == 1
    assert messages_in("lender") == [("financing.send_application", [0]), ("financing.send_application", [captured.pk])]
    assert messages_in("pms") == [("financing.write_arrangement", [approved.pk])]


def test_a_broker_whose_depth_cannot_be_read_leaves_the_sweeper_as_it_was(location, empty_queues, monkeypatch):
    financing_tasks.send_application.delay(0)  # a message waits in the lender queue ...
    captured = case_in(location, CaseState.CAPTURED, age_seconds=60)
    make_broker_unreadable(monkeypatch)  # ... but the sweeper cannot see it: the grace alone, as before
    assert services.stuck_cases() == [captured.pk]


def test_the_notification_sweeper_redrives_once_and_never_into_a_busy_queue(empty_queues, settings, monkeypatch):
    lost = notification("lost")
    assert messages_in("notify") == [("notifications.send", [lost.pk])]  # ... and lost
    Notification.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(seconds=60))
    assert redrive_notifications.run() == 1
    assert redrive_notifications.run() == 0  # its message waits in the queue now
    assert messages_in("notify") == [("notifications.send", [lost.pk])]

    send_notification.delay(0)  # another notification, waiting in the queue
    assert redrive_notifications.run() == 0
    assert notification_services.stuck(timezone.now() + timedelta(seconds=settings.SWEEP_BUSY_QUEUE_SECONDS - 90)) == []
    Notification.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(seconds=settings.SWEEP_BUSY_QUEUE_SECONDS + 1))
    assert redrive_notifications.run() == 1
    assert messages_in("notify") == [("notifications.send", [0]), ("notifications.send", [lost.pk])]

    # The broker cannot say how deep the queue is: the 30-second grace alone, as before.
    send_notification.delay(0)
    Notification.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(seconds=60))
    make_broker_unreadable(monkeypatch)
    assert notification_services.stuck() == [lost.pk]
