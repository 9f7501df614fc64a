"""The wait for posted production with a real worker and beat: a case approved before its
treatment waits in awaiting_production while beat checks the PMS again and again, writes
nothing meanwhile, and is written once (exactly one plan) soon after the front desk posts the
treatment. Against the Dentrix Ascend and Eaglesoft sandboxes over HTTP."""

import time

import pytest

from financing.models import CaseState, FinancedCase
from tests.financing.posted_production import (  # noqa: F401
    agreement_posts, location, needs_posted_production, post_production, product_sandbox, sandboxes,
)
from tests.reliability.harness import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def plan_reads(sandboxes, patient_id) -> int:
    return len(sandboxes.dentrix_requests("GET", f"/v1/patients/{patient_id}/treatment-plans"))


def test_beat_moves_a_waiting_case_on_as_soon_as_its_treatment_is_posted(celery_processes, sandboxes, api, location):
    processes = celery_processes(PRODUCTION_CHECK_SECONDS=1)
    logs = processes.all_logs()
    patient = sandboxes.new_patient("Thompson")
    response = api.post("/api/v1/cases/", {"location": location.code, "patient_id": patient["patient_id"],
                                           "treatment_plan_id": patient["treatment_plan_id"], "promotion": "deferred_12"}, format="json")
    assert response.status_code == 201, response.json()
    case_id = response.json()["id"]
    wait_for(lambda: FinancedCase.objects.get(pk=case_id).state == CaseState.AWAITING_PRODUCTION, 30, *logs)

    # Beat asks the PMS again and again; nothing is written while the treatment is not posted.
    reads = plan_reads(sandboxes, patient["patient_id"])
    wait_for(lambda: plan_reads(sandboxes, patient["patient_id"]) >= reads + 3, 20, *logs)
    # Between two checks (no lease held: a check in flight holds its claim's attempt), the
    # checks have given back every attempt they counted: waiting is not failing.
    # One read of the row, so a check starting meanwhile cannot be half-seen.
    between_checks = FinancedCase.objects.filter(pk=case_id, lease_token="", state=CaseState.AWAITING_PRODUCTION)
    wait_for(lambda: between_checks.filter(step_attempts=0).exists(), 10, *logs)
    assert agreement_posts(sandboxes) == []

    post_production(sandboxes, patient["patient_id"])
    posted = time.monotonic()
    wait_for(lambda: FinancedCase.objects.get(pk=case_id).state == CaseState.COMPLETED, 30, *logs)
    took = time.monotonic() - posted
    case = FinancedCase.objects.get(pk=case_id)
    assert case.production_awaited_at < case.production_posted_at < case.arrangement_written_at
    [stored] = sandboxes.agreements(case.guarantor_id)
    assert stored["agreement_id"] == case.arrangement.pms_arrangement_id and case.marker in stored["note"]
    assert len(agreement_posts(sandboxes)) == 1
    assert took < 15, f"written {took:.1f} s after the posting"
