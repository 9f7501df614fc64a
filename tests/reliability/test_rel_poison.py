"""Promise 5 against poison: a step that kills its worker every time ends, after the attempt
cap, in needs_attention with one alert, and the queues are empty afterwards.

Each claim counts the attempt before any side effect, so even a step that never returns
(the process dies inside it) moves the count on; task_reject_on_worker_lost hands the
message back, the live lease turns that redelivery away, and the sweeper brings the case
back once the lease has run out.
"""

from pathlib import Path

import pytest
from celery import current_app
from django.conf import settings

from financing.models import CaseState, PaymentArrangement, WriteStatus
from notifications.models import Notification

from tests.reliability.harness import QUEUES, on_redis, posts, start_case, state_of, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


def queued_messages() -> int:
    if on_redis():
        with current_app.connection_for_write() as conn:
            client = conn.default_channel.client
            return sum(client.llen(queue) for queue in QUEUES) + client.hlen("unacked")
    folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
    return len([f for f in folder.iterdir() if f.name.endswith(".msg") and f.name.rsplit(".", 2)[-2] in QUEUES])


def test_a_step_that_crashes_its_worker_every_time_ends_in_needs_attention(celery_processes, sandboxes, location, api, billing):
    processes = celery_processes(concurrency=1, STEP_MAX_ATTEMPTS="2", CHAIRSIDE_FAULT_POINTS="before_pms_agreement_write:exit")
    case = start_case(api, sandboxes, location)
    wait_for(lambda: state_of(case) == CaseState.NEEDS_ATTENTION, 60, *processes.all_logs())
    case.refresh_from_db()
    assert case.state_reason == (
        "Writing the payment agreement to Dentrix was interrupted 2 times without finishing. Chairside stopped retrying."
    )
    assert case.resume_state == CaseState.APPROVED
    log = processes.log.read_text()
    # Two attempts, each killed its pool process just before the POST; the third claim stopped.
    assert log.count("fault point before_pms_agreement_write: exiting the process") == 2
    assert "exitcode 137" in log
    assert posts(sandboxes, "/v1/accounts") == []  # it died before every POST: nothing written
    assert PaymentArrangement.objects.get(case=case).write_status == WriteStatus.UNKNOWN
    wait_for(lambda: Notification.objects.filter(template="case_needs_attention", status="sent").count() == 1, 20, processes.log)
    assert Notification.objects.filter(template="case_needs_attention").count() == 1
    # Drained: the sweeper has nothing to bring back, so nothing stays queued.
    wait_for(lambda: queued_messages() == 0, 10, processes.log)
    assert "before_pms_agreement_write" in log
