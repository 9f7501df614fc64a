"""The lease heartbeat, in one process: a live holder's case is never taken; a gone
holder's (certainly dead on this host, or silent for a whole lease anywhere) is handed back
once and queued at once, its attempt still counted, or after the settle time when it died
in the middle of a write; what this process holds is renewed while its task runs.

The real thing, kill -9 with production's lease settings, is in
tests/reliability/test_rel_worker_kill.py.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from core import heartbeat, holders, leases
from core.faults import InjectedFault
from financing import services
from financing.models import CaseState, FinancedCase, WriteStatus

pytestmark = pytest.mark.django_db(transaction=True)

@pytest.fixture(autouse=True)
def _nothing_held():
    heartbeat.release_thread()
    yield
    heartbeat.release_thread()


def elsewhere(holder: str) -> str:
    """The same process as if on another host (another machine, or another container)."""
    return holder.rsplit(":", 1)[0] + ":0123456789ab"


def claimed_case(sandboxes, location, coordinator, tasks, holder=None, **lease):
    """A captured case claimed by its first step, as `holder` would leave it."""
    patient = sandboxes.new_patient("Thompson")
    case = services.capture_case(location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"], actor=coordinator)
    tasks.queue.clear()  # the step's own message: lost with its worker
    assert services.claim(case.pk, CaseState.CAPTURED) is not None
    heartbeat.release_thread()
    if holder is not None:
        FinancedCase.objects.filter(pk=case.pk).update(lease_holder=holder, **lease)
    return case


def test_a_case_whose_holder_died_on_this_host_is_queued_again_at_once(other_process, sandboxes, location, coordinator, tasks):
    holder, stop = other_process()
    case = claimed_case(sandboxes, location, coordinator, tasks, holder)
    assert heartbeat.beat() == (0, 0)  # alive: its lease is its own, however long it works

    stop()
    assert heartbeat.beat() == (0, 1)
    case.refresh_from_db()
    assert case.lease_holder == "" and case.lease_until <= timezone.now()
    assert case.step_attempts == 1  # the dead claim still counts
    assert [(t.name, t.args, t.countdown) for t in tasks.queue] == [("financing.send_application", [case.pk], None)]
    assert heartbeat.beat() == (0, 0)  # handed back once

    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.APPLICATION_SENT
    assert len(sandboxes.carecredit_applications()) == 1


def test_a_holder_elsewhere_keeps_its_case_until_its_lease_runs_out(other_process, sandboxes, location, coordinator, tasks):
    holder, stop = other_process()
    stop()  # dead, but on "another host": this worker cannot know it
    case = claimed_case(sandboxes, location, coordinator, tasks, elsewhere(holder))
    assert heartbeat.beat() == (0, 0)
    assert heartbeat.beat(now=timezone.now() + timedelta(seconds=leases.lease_seconds() - 1)) == (0, 0)
    assert tasks.queue == []

    # A whole lease without a renewal: gone, wherever it was.
    assert heartbeat.beat(now=timezone.now() + timedelta(seconds=leases.lease_seconds() + 1)) == (0, 1)
    assert [t.name for t in tasks.queue] == ["financing.send_application"]


def test_a_live_holder_on_this_host_is_presumed_gone_too_once_silent_for_a_whole_lease(other_process, sandboxes, location, coordinator, tasks):
    holder, _ = other_process()  # alive, but not renewing (frozen, or cut off from the database)
    claimed_case(sandboxes, location, coordinator, tasks, holder)
    assert heartbeat.beat() == (0, 0)
    assert heartbeat.beat(now=timezone.now() + timedelta(seconds=leases.lease_seconds() + 1)) == (0, 1)


def test_the_heartbeat_renews_what_this_process_holds_until_the_task_ends(sandboxes, location, coordinator, tasks):
    patient = sandboxes.new_patient("Thompson")
    case = services.capture_case(location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"], actor=coordinator)
    tasks.queue.clear()
    assert services.claim(case.pk, CaseState.CAPTURED) is not None  # held by this process's task
    case.refresh_from_db()
    assert case.lease_holder == holders.me()

    later = timezone.now() + timedelta(seconds=leases.lease_seconds() - 2)
    assert heartbeat.beat(now=later) == (1, 0)  # a step still at work keeps its case
    case.refresh_from_db()
    assert case.lease_until == later + timedelta(seconds=leases.lease_seconds())

    heartbeat.release_thread()  # the task ended without letting go (a bug, say)
    much_later = later + timedelta(seconds=leases.lease_seconds() + 1)
    assert heartbeat.beat(now=much_later) == (0, 1)  # renewed no more: it runs out and is handed back
    assert [t.name for t in tasks.queue] == ["financing.send_application"]


def test_two_heartbeats_hand_a_case_back_once(other_process, sandboxes, location, coordinator, tasks):
    holder, stop = other_process()
    case = claimed_case(sandboxes, location, coordinator, tasks, holder)
    stop()
    seen = FinancedCase.objects.values_list("lease_holder", "lease_until").get(pk=case.pk)
    # Another worker's heartbeat won the compare-and-set between our read and our update.
    FinancedCase.objects.filter(pk=case.pk).update(lease_holder="", lease_until=timezone.now())
    assert FinancedCase.objects.filter(pk=case.pk, lease_holder=seen[0], lease_until=seen[1]).update(lease_holder="") == 0
    assert heartbeat.beat() == (0, 0)
    assert tasks.queue == []


def approved_case(sandboxes, location, coordinator, tasks):
    """A case the lender approved, its write_arrangement step not run yet."""
    patient = sandboxes.new_patient("Thompson")
    case = services.capture_case(location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"], actor=coordinator)
    tasks.drain(include_delayed=False)
    services.refresh_decision(case.pk)
    tasks.queue.clear()  # the step's message: run by hand below
    case.refresh_from_db()
    assert case.state == CaseState.APPROVED
    return case


def test_a_write_whose_worker_died_is_looked_up_only_after_the_settle_time(other_process, sandboxes, location, coordinator, tasks, settings):
    case = approved_case(sandboxes, location, coordinator, tasks)
    settings.CHAIRSIDE_FAULT_POINTS = ["before_pms_agreement_write"]
    with pytest.raises(InjectedFault):  # the worker dies as it sends the agreement
        services.write_arrangement(case.pk)
    settings.CHAIRSIDE_FAULT_POINTS = []
    heartbeat.release_thread()
    holder, stop = other_process()
    stop()
    FinancedCase.objects.filter(pk=case.pk).update(lease_holder=holder)  # ... and it was that process
    case.refresh_from_db()
    assert case.arrangement.write_status == WriteStatus.UNKNOWN
    lookups_before = len(sandboxes.dentrix_requests("GET", "/v1/accounts"))

    assert heartbeat.beat() == (0, 1)
    [step] = tasks.queue
    assert step.name == "financing.write_arrangement"
    assert settings.AMBIGUOUS_WRITE_SETTLE_SECONDS - 2 < step.countdown <= settings.AMBIGUOUS_WRITE_SETTLE_SECONDS
    # Early (a redelivered message): not due, nothing asked of Dentrix.
    assert services.write_arrangement(case.pk) == "skipped"
    assert len(sandboxes.dentrix_requests("GET", "/v1/accounts")) == lookups_before

    tasks.drain()  # the settle time has passed: look up, find nothing, write once
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    assert len(sandboxes.agreements(case.guarantor_id)) == 1
    assert len(sandboxes.dentrix_requests("POST", "/v1/accounts")) == 1
