"""Promise 5: partner outages degrade to waiting and recover by themselves.

Backoff grows exponentially with jitter and honours Retry-After, attempts are bounded, no
hot loop; once the partner is back the case completes, past the cap it goes to
needs_attention with the reason. The real-worker tests compress time (a 0.5 s base, a
1.5 s read timeout) so that "minutes" of outage fit in seconds; the recorder test checks
the production schedule itself.
"""

import random
import re

import pytest
import requests

from financing import services
from financing.models import CaseState, FinancedCase
from financing.ports import TransientPartnerError
from notifications.models import Notification

from tests.conftest import capture_and_decide
from tests.reliability.harness import posts, start_case, state_of, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

RETRY_LINE = re.compile(r"failed \(attempt (\d+)\), retrying in ([\d.]+)s")


def retries(log_text: str) -> list[tuple[int, float]]:
    return [(int(n), float(s)) for n, s in RETRY_LINE.findall(log_text)]


def test_the_production_backoff_doubles_with_jitter_up_to_its_cap(sandboxes, location, coordinator, tasks, settings):
    settings.STEP_MAX_ATTEMPTS = 11
    assert (settings.RETRY_BASE_SECONDS, settings.RETRY_MAX_SECONDS) == (2.0, 300.0)
    sandboxes.dentrix_fault(method="GET", path_prefix="/v1/accounts", mode="error", status=503, count=100)
    case = capture_and_decide(sandboxes, location, coordinator, tasks)
    countdowns = []
    while tasks.queue:
        [step] = [t for t in tasks.queue if t.name == "financing.write_arrangement"]
        countdowns.append(step.countdown)
        tasks.queue.remove(step)
        tasks.queue.insert(0, step)
        if tasks.run_next() != "retry":
            break
        tasks.queue = [t for t in tasks.queue if t.name == "financing.write_arrangement"]
    ceilings = [min(300.0, 2.0 * 2 ** n) for n in range(10)]  # 2, 4, 8 … 256, then 300
    assert len(countdowns) == 10
    for countdown, ceiling in zip(countdowns, ceilings):
        assert ceiling / 2 <= countdown <= ceiling
    assert len(set(countdowns)) == 10  # jittered, not a fixed schedule
    case.refresh_from_db()
    assert case.state == CaseState.NEEDS_ATTENTION
    assert case.state_reason.startswith("Writing the payment agreement to Dentrix failed 11 times")
    # One request per attempt: 11 attempts, 11 lookups, never a POST.
    assert len(sandboxes.dentrix_requests("GET", "/v1/accounts")) == 11
    assert sandboxes.dentrix_requests("POST", "/v1/accounts") == []


@pytest.mark.parametrize("draw, waited", [("shortest", 705.0), ("longest", 1410.0)])
def test_the_default_retry_budget_outlasts_a_ten_minute_outage(draw, waited, location, tasks, monkeypatch, settings):
    """The defaults, through the real _retry_later: after failed attempt n it waits between
    half and all of min(300, 2 * 2**(n-1)) s; the last attempt waits no more. Drawing every
    wait at the bottom (or top) of its window gives the shortest (longest) possible time
    before a failing step goes to needs_attention: 11 waits, 705 s (1,410 s) in all. Even
    the shortest is past ten minutes, so a case whose step began failing at the very start
    of a 10-minute partner outage is still retrying when the partner is back."""
    assert (settings.STEP_MAX_ATTEMPTS, settings.RETRY_BASE_SECONDS, settings.RETRY_MAX_SECONDS) == (12, 2.0, 300.0)
    monkeypatch.setattr(random, "uniform", (lambda low, high: low) if draw == "shortest" else (lambda low, high: high))
    case = FinancedCase.objects.create(location=location, patient_id="1", treatment_plan_id="p1", promotion="deferred_12", state=CaseState.APPROVED)
    outcomes = []
    while not outcomes or outcomes[-1] == "retry":
        FinancedCase.objects.filter(pk=case.pk).update(next_attempt_at=None)  # the wait is over
        claimed, token = services.claim(case.pk, CaseState.APPROVED)
        outcomes.append(services.retry_later(claimed, token, TransientPartnerError("Dentrix connector failed (HTTP 503)")))
    waits = [t.countdown for t in tasks.queue if t.name == "financing.write_arrangement"]
    assert outcomes == ["retry"] * 11 + ["needs_attention"]
    assert waits == [min(300.0, 2.0 * 2**n) / (2 if draw == "shortest" else 1) for n in range(11)]
    assert sum(waits) == waited
    assert sum(waits) > 10 * 60
    assert state_of(case) == CaseState.NEEDS_ATTENTION


@pytest.mark.faults
def test_429_and_503_back_off_growing_then_the_case_completes(celery_processes, sandboxes, location, api):
    processes = celery_processes()
    sandboxes.carecredit_fault(method="POST", path_prefix="/v1/applications", mode="error", status=429, retry_after=1, count=2)
    sandboxes.dentrix_fault(method="GET", path_prefix="/v1/accounts", mode="error", status=503, count=3)
    case = start_case(api, sandboxes, location)
    wait_for(lambda: state_of(case) == CaseState.COMPLETED, 40, *processes.all_logs())

    found = retries(processes.log.read_text())
    lender = found[:2]
    pms = found[2:]
    # CareCredit said "Retry-After: 1": no retry came sooner, whatever the backoff said.
    assert [n for n, _ in lender] == [1, 2] and all(delay >= 1.0 for _, delay in lender)
    # Dentrix gave no Retry-After: 0.5 s base, doubling, each delay jittered in [c/2, c].
    assert [n for n, _ in pms] == [1, 2, 3]
    for (attempt, delay), ceiling in zip(pms, (0.5, 1.0, 2.0)):
        assert ceiling / 2 <= delay <= ceiling, (attempt, delay)
    # Bounded work: exactly the failed calls plus the ones that succeeded.
    case.refresh_from_db()
    assert [r["status"] for r in sandboxes.dentrix_requests("GET", f"/v1/accounts/{case.guarantor_id}/")][:5] == [503, 503, 503, 200, 200]
    assert len(posts(sandboxes, "/v1/accounts")) == 1
    assert len(sandboxes.carecredit_applications()) == 1


@pytest.mark.faults
def test_partners_hanging_past_the_read_timeout_make_the_case_wait_not_fail(celery_processes, sandboxes, location, api):
    processes = celery_processes()
    # CareCredit takes the application and answers too late (twice); Dentrix hangs on lookups.
    sandboxes.carecredit_fault(method="POST", path_prefix="/v1/applications", mode="timeout", latency_ms=2500, count=2)
    sandboxes.dentrix_fault(method="GET", path_prefix="/v1/accounts", mode="timeout", latency_ms=2500, count=2)
    case = start_case(api, sandboxes, location)
    wait_for(lambda: state_of(case) == CaseState.COMPLETED, 60, *processes.all_logs())
    log = processes.log.read_text()
    assert "Hard time limit" not in log and "SoftTimeLimitExceeded" not in log  # HTTP timeouts fire first
    assert len([1 for n, _ in retries(log)]) == 4
    # CareCredit's idempotency key (the case reference) kept the late retries to one application.
    assert len(sandboxes.carecredit_applications()) == 1
    assert len(sandboxes.agreements(FinancedCase.objects.get(pk=case.pk).guarantor_id)) == 1
    # The sandboxes finish the requests Chairside gave up on (and log them) only now: wait,
    # so that they do not land in the next test's freshly reset sandbox.
    faulted = lambda url: [r for r in requests.get(f"{url}/_sandbox/requests", timeout=5).json() if r["fault"] == "timeout"]
    wait_for(lambda: len(faulted(sandboxes.dentrix_url)) == 2 and len(faulted(sandboxes.carecredit_url)) == 2, 10)


@pytest.mark.faults
def test_an_outage_past_the_attempt_cap_hands_the_case_to_a_human_with_the_reason(celery_processes, sandboxes, location, api, billing):
    processes = celery_processes(STEP_MAX_ATTEMPTS="3")
    sandboxes.dentrix_fault(method="GET", path_prefix="/v1/accounts", mode="error", status=503, retry_after=1, count=1000)
    case = start_case(api, sandboxes, location)
    wait_for(lambda: state_of(case) == CaseState.NEEDS_ATTENTION, 40, *processes.all_logs())
    case.refresh_from_db()
    assert case.state_reason == (
        "Writing the payment agreement to Dentrix failed 3 times; the last error was: Dentrix is unavailable "
        "(HTTP 503): The Dentrix sandbox is temporarily unavailable (sandbox fault: HTTP 503); it asked us to retry in 1 s. "
        "Chairside stopped retrying: check the partner, then resume the case."
    )
    # No hot loop: three attempts, three requests, then silence.
    wait_for(lambda: Notification.objects.filter(template="case_needs_attention", status="sent").exists(), 20, processes.log)
    assert len(sandboxes.dentrix_requests("GET", "/v1/accounts")) == 3
    assert sandboxes.dentrix_requests("POST", "/v1/accounts") == []
    assert Notification.objects.filter(template="case_needs_attention").count() == 1
