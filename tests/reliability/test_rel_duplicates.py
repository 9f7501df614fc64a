"""Promise 2 under duplicates: the same signed webhook five times at once, the same step
enqueued twice at once, a step redelivered while it backs off. One decision, one
agreement, one note, every webhook answered 2xx."""

import json
import re
import threading
import time

import pytest
import requests

from carecredit_bridge.signing import SIGNATURE_HEADER, sign
from financing import services, tasks as step_tasks
from financing.models import CaseState, Decision, FinancedCase, InboundEvent

from tests.conftest import capture_and_decide
from tests.reliability.harness import posts, start_case, state_of, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def signed_post(url, body: bytes):
    header = sign("whsec_sandbox", body, int(time.time()))
    return requests.post(url, data=body, headers={"Content-Type": "application/json", SIGNATURE_HEADER: header}, timeout=20)


@pytest.mark.faults
def test_five_concurrent_copies_of_a_webhook_and_a_doubled_step_act_once(celery_processes, sandboxes, location, api, live_server):
    processes = celery_processes(concurrency=2)
    sandboxes.carecredit_config(decision_delay=0.3)
    case = start_case(api, sandboxes, location)
    wait_for(lambda: FinancedCase.objects.get(pk=case.pk).application_id, 20, *processes.all_logs())
    case.refresh_from_db()
    # Take the case out of the poller's hands so the webhooks are what decides it.
    FinancedCase.objects.filter(pk=case.pk).update(last_polled_at="2100-01-01T00:00:00Z")
    time.sleep(0.5)  # the sandbox's decision is made
    body = json.dumps(
        {"event_id": "evt_dup_1", "type": "application.status_changed", "application_id": case.application_id, "status": "APPROVED", "created": int(time.time())}
    ).encode()
    url = live_server.url + "/api/v1/webhooks/carecredit/"
    barrier = threading.Barrier(5)
    answers = []

    def deliver():
        barrier.wait()
        response = signed_post(url, body)
        answers.append((response.status_code, response.json()["status"]))

    threads = [threading.Thread(target=deliver) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert [status for status, _ in answers] == [200] * 5
    outcomes = sorted(outcome for _, outcome in answers)
    assert outcomes.count("approved") + outcomes.count("ignored") == 1, outcomes
    assert outcomes.count("duplicate") == 4, outcomes
    assert InboundEvent.objects.filter(event_id="evt_dup_1").count() == 1
    assert Decision.objects.filter(case=case).count() == 1

    # The step the decision enqueued, enqueued twice more at the same moment.
    step_tasks.write_arrangement.delay(case.pk)
    step_tasks.write_arrangement.delay(case.pk)
    finished = re.compile(r"Task financing\.write_arrangement\[[^\]]+\] succeeded in [\d.]+s: '(\w+)'")
    wait_for(lambda: len(finished.findall(processes.log.read_text())) == 3, 30, *processes.all_logs())
    assert sorted(finished.findall(processes.log.read_text())) == ["skipped", "skipped", "written"]
    wait_for(lambda: state_of(case) == CaseState.COMPLETED, 30, *processes.all_logs())
    case.refresh_from_db()
    assert len(sandboxes.agreements(case.guarantor_id)) == 1
    assert len(sandboxes.ledger_notes(case.patient_id)) == 1
    assert len(posts(sandboxes, "/v1/accounts")) == 1
    assert len(posts(sandboxes, "/v1/patients")) == 1
    states = [h.state for h in case.history.order_by("history_date", "history_id")]
    assert states.count(CaseState.APPROVED) == 1 and states.count(CaseState.COMPLETED) == 1
    # The case can complete before the two extra deliveries are even picked up: wait for them.
    wait_for(lambda: processes.log.read_text().count("financing.write_arrangement[") >= 3 * 2, 30, *processes.all_logs())


def test_a_step_delivered_again_during_its_backoff_waits_for_the_backoff(sandboxes, location, coordinator, tasks):
    """A duplicate or redelivered message must not cut a backoff short (and burn an attempt)."""
    sandboxes.dentrix_fault(method="GET", path_prefix="/v1/accounts", mode="error", status=503, count=10)
    case = capture_and_decide(sandboxes, location, coordinator, tasks)
    assert ("financing.write_arrangement", "retry") in tasks.ran
    [retry] = tasks.queue
    assert retry.countdown > 0

    assert services.write_arrangement(case.pk) == "skipped"  # the duplicate, right away
    case.refresh_from_db()
    assert case.step_attempts == 1
    assert case.next_attempt_at is not None
    assert len(sandboxes.dentrix_requests(prefix="/v1/accounts")) == 1  # the duplicate asked nobody
