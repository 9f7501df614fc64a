"""Promise 3: an ambiguous partner outcome is settled by lookup, never by a blind retry.

Dentrix commits the agreement and then drops the connection, or answers 500: Chairside
cannot know whether it was written. It records `unknown`, and the next attempt looks the
marker up before it would write: the agreement count stays one. When the lookup is down
as well, nothing more is written and the case ends in needs_attention with the reason.
"""

import pytest

from financing.models import CaseState, FinancedCase, PaymentArrangement, WriteStatus
from notifications.models import Notification

from tests.reliability.harness import posts, start_case, state_of, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


def arrangement_of(case):
    return PaymentArrangement.objects.filter(case=case).first()


@pytest.mark.parametrize("mode", ["drop", "commit_then_error"])
def test_a_committed_write_with_a_lost_answer_is_adopted_by_lookup(mode, celery_processes, sandboxes, location, api):
    # A settle time long enough to watch the case sit in `unknown` between the attempts.
    processes = celery_processes(AMBIGUOUS_WRITE_SETTLE_SECONDS="2")
    sandboxes.dentrix_fault(method="POST", path_prefix="/v1/accounts", mode=mode, count=1)
    case = start_case(api, sandboxes, location)

    def unknown():
        arrangement = arrangement_of(case)
        return arrangement is not None and arrangement.write_status == WriteStatus.UNKNOWN and FinancedCase.objects.get(pk=case.pk).last_error

    wait_for(unknown, 20, *processes.all_logs(), interval=0.02)
    waiting = FinancedCase.objects.get(pk=case.pk)
    assert waiting.state == CaseState.APPROVED
    assert "may or may not have been saved: look it up before writing again" in waiting.last_error
    assert arrangement_of(case).pms_arrangement_id == ""

    wait_for(lambda: state_of(case) == CaseState.COMPLETED, 30, *processes.all_logs())
    guarantor = FinancedCase.objects.get(pk=case.pk).guarantor_id
    calls = [(r["method"], r["status"], r["fault"]) for r in sandboxes.dentrix_requests(prefix=f"/v1/accounts/{guarantor}/")]
    committed_status = None if mode == "drop" else 500
    # Lookup, the ambiguous POST; then the next attempt looks up first, adopts, reads back.
    assert calls == [("GET", 200, None), ("POST", committed_status, mode), ("GET", 200, None), ("GET", 200, None)]
    [agreement] = sandboxes.agreements(guarantor)
    arrangement = arrangement_of(case)
    assert arrangement.write_status == WriteStatus.WRITTEN
    assert arrangement.pms_arrangement_id == agreement["agreement_id"]
    assert arrangement.write_attempts == 1


def test_when_the_lookup_is_down_too_nothing_more_is_written_and_a_human_is_asked(celery_processes, sandboxes, location, api, billing):
    processes = celery_processes(STEP_MAX_ATTEMPTS="3", AMBIGUOUS_WRITE_SETTLE_SECONDS="0.5")
    sandboxes.dentrix_fault(method="POST", path_prefix="/v1/accounts", mode="drop", count=1)
    case = start_case(api, sandboxes, location)
    wait_for(lambda: len(posts(sandboxes, "/v1/accounts")) == 1, 20, *processes.all_logs())
    # From now on every lookup of the account fails.
    sandboxes.dentrix_fault(method="GET", path_prefix="/v1/accounts", mode="error", status=503, count=1000)

    wait_for(lambda: state_of(case) == CaseState.NEEDS_ATTENTION, 30, *processes.all_logs())
    case.refresh_from_db()
    assert case.state_reason.startswith("Writing the payment agreement to Dentrix failed 3 times; the last error was: Dentrix is unavailable (HTTP 503)")
    assert case.resume_state == CaseState.APPROVED
    assert arrangement_of(case).write_status == WriteStatus.UNKNOWN  # still unsettled, and says so
    sandboxes.clear_faults()
    assert len(sandboxes.agreements(case.guarantor_id)) == 1  # the one the dropped POST committed
    assert len(posts(sandboxes, "/v1/accounts")) == 1  # never a blind second POST
    assert [r["status"] for r in sandboxes.dentrix_requests("GET", f"/v1/accounts/{case.guarantor_id}/")][:3] == [200, 503, 503]
    wait_for(lambda: Notification.objects.filter(template="case_needs_attention", status="sent").count() == 1, 20, *processes.all_logs())
    assert list(Notification.objects.filter(template="case_needs_attention").values_list("recipient", flat=True)) == ["biller@example.com"]


def test_a_write_that_commits_after_the_read_timeout_is_found_not_written_twice(celery_processes, sandboxes, location, api):
    """The connector takes longer than our read timeout and commits late. The next attempt
    must not look before the partner had time to finish, or it finds nothing and writes a
    second note (Dentrix has no one-per-account rule for notes to stop it)."""
    processes = celery_processes(PARTNER_READ_TIMEOUT="1", AMBIGUOUS_WRITE_SETTLE_SECONDS="3")
    # The note POST sleeps 2 s, then commits: 1 s after Chairside gave up on it.
    sandboxes.dentrix_fault(method="POST", path_prefix="/v1/patients", mode="timeout", latency_ms=2000, count=1)
    case = start_case(api, sandboxes, location)
    wait_for(lambda: state_of(case) == CaseState.COMPLETED, 40, *processes.all_logs())
    case.refresh_from_db()
    notes = sandboxes.ledger_notes(case.patient_id)
    assert len(notes) == 1
    assert case.ledger_note.pms_note_id == notes[0]["note_id"]
    assert len(posts(sandboxes, f"/v1/patients/{case.patient_id}/")) == 1
