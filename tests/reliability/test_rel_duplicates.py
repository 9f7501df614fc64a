"""Promise 2 under duplicates: the same signed webhook five times at once, the same step
enqueued twice at once, a step redelivered while it backs off. One decision, one
agreement, one note, every webhook answered 2xx."""

import json
import re
import threading
import time
from datetime import datetime, timezone as dt_timezone

import pytest
import requests

from carecredit_bridge.signing import SIGNATURE_HEADER, sign
from financing import services, tasks as step_tasks
from financing.models import WAITING_FOR_LENDER, CaseState, Decision, FinancedCase, InboundEvent, Location

from tests.conftest import capture_and_decide
from tests.reliability.harness import posts, start_case, state_of, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def webhook_deliveries(sandboxes) -> list[dict]:
    return requests.get(f"{sandboxes.carecredit_url}/_sandbox/webhooks", timeout=5).json()


def signed_post(url, body: bytes):
    header = sign("whsec_sandbox", body, int(time.time()))
    return requests.post(url, data=body, headers={"Content-Type": "application/json", SIGNATURE_HEADER: header}, timeout=20)


@pytest.mark.faults
def test_five_concurrent_copies_of_a_webhook_and_a_doubled_step_act_once(celery_processes, sandboxes, location, api, live_server):
    # The five copies must be what decides the case, so the two other ways a decision
    # arrives are shut: the sandbox's own webhook goes to a callback URL where nothing
    # listens (the worker builds it from CHAIRSIDE_PUBLIC_URL), and beat's batch poll of the
    # merchant finds its lease held by "another poll" (the per-case fallback, which this
    # lender does not use, would skip the case for its last_polled_at). Beat runs, as in
    # production; its polls answer "skipped".
    processes = celery_processes(concurrency=2, CHAIRSIDE_PUBLIC_URL="http://127.0.0.1:9")
    Location.objects.filter(pk=location.pk).update(lender_poll_lease_until=datetime(2100, 1, 1, tzinfo=dt_timezone.utc))
    sandboxes.carecredit_config(decision_delay=0.3)
    case = start_case(api, sandboxes, location)
    wait_for(lambda: FinancedCase.objects.get(pk=case.pk).application_id, 20, *processes.all_logs())
    case.refresh_from_db()
    FinancedCase.objects.filter(pk=case.pk).update(last_polled_at=datetime(2100, 1, 1, tzinfo=dt_timezone.utc))

    def lender_status():
        return {a["application_id"]: a["status"] for a in sandboxes.carecredit_applications()}.get(case.application_id)

    def own_webhook_refused():
        deliveries = [d for d in webhook_deliveries(sandboxes) if d["application_id"] == case.application_id]
        return deliveries and all(d["status_code"] is None for d in deliveries)

    # The lender has decided and tried to say so; Chairside has heard nothing of it yet.
    wait_for(lambda: lender_status() == "APPROVED" and own_webhook_refused(), 20, *processes.all_logs())
    assert state_of(case) in WAITING_FOR_LENDER
    assert not Decision.objects.filter(case=case).exists()
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
    # One copy applied the decision ("approved", not "ignored": nobody had decided before
    # it), the four others were recognised as the same event.
    assert sorted(outcome for _, outcome in answers) == ["approved"] + ["duplicate"] * 4
    [event] = InboundEvent.objects.filter(case=case)  # the sandbox's own event never got in
    assert event.event_id == "evt_dup_1"
    assert Decision.objects.filter(case=case).count() == 1
    approved = case.history.get(state=CaseState.APPROVED)
    assert approved.history_date >= event.received_at  # the transition came with the event

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

    # The poller decided nothing: it never completed a listing of the merchant nor looked
    # the case up, and each batch poll that came while the case waited was held off.
    assert Location.objects.get(pk=location.pk).lender_polled_until is None
    assert FinancedCase.objects.get(pk=case.pk).last_polled_at.year == 2100
    polls = re.findall(r"Task financing\.poll_lender_decisions\[[^\]]+\] succeeded in [\d.]+s: '([^']*)'", processes.log.read_text())
    assert set(polls) <= {"skipped"}, polls


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
