"""Open Dental end to end with real processes: a Celery worker and beat, the web app for
CareCredit's webhooks, the Open Dental sandbox throttled as Open Dental is (one request a
second per customer key) and Chairside's limiter pacing for real. Two cases on one key, one
of whose plans Open Dental commits and whose answer is lost: each ends with exactly one
plan and one commlog; with Redis (one limiter for every process) the sandbox never had to
refuse a request."""

import pytest
from rest_framework.test import APIClient

from financing.models import CaseState, FinancedCase, PaymentArrangement, WriteStatus
from tests.reliability.harness import on_redis, state_of, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


def test_two_cases_on_one_customer_key_with_a_lost_answer(celery_processes, sandboxes, od, od_location, od_coordinator, settings):
    od.throttle(1)
    settings.PARTNER_RATE_LIMITS = True  # intake, in this process, paces too
    # The limiter paces for real (1 a second): a step's calls take seconds, within its bounds.
    processes = celery_processes(PARTNER_RATE_LIMITS="true", CELERY_TASK_SOFT_TIME_LIMIT="20",
                                 CELERY_TASK_TIME_LIMIT="25", AMBIGUOUS_WRITE_SETTLE_SECONDS="2")
    api = APIClient()
    api.force_authenticate(od_coordinator)
    patients = [od.control("POST", "/patients", {
        "first_name": "Ava", "last_name": "Thompson", "birth_date": "1980-04-12", "phone": "+15555550188",
        "email": "canary.patient@example.com", "address": {"line1": "12 Elm St", "city": "Springfield", "state": "IL", "zip": "62701"},
        "procedures": [{"code": "D2740", "tooth": "3", "surface": "", "fee": fee}], "clinic_id": "1",
    }) for fee in ("1200.00", "900.00")]
    od.fault(method="POST", path_prefix="/api/v1/payplans", mode="drop", count=1)
    cases = []
    for patient in patients:
        response = api.post("/api/v1/cases/", {"location": od_location.code, "patient_id": str(patient["PatNum"]),
                                               "treatment_plan_id": str(patient["TreatPlanNum"]), "promotion": "deferred_12"},
                            format="json")
        assert response.status_code == 201, response.json()
        cases.append(FinancedCase.objects.get(pk=response.json()["id"]))

    wait_for(lambda: all(state_of(c) == CaseState.COMPLETED for c in cases), 120, *processes.all_logs())
    chairsides = od.requests()  # every API request so far is Chairside's
    od.throttle(0)  # the test's own reads
    for case, patient in zip(cases, patients):
        case.refresh_from_db()
        [plan] = od.plans(patient["Guarantor"])
        [commlog] = od.commlogs(patient["PatNum"])
        assert case.marker in plan["Note"] and case.marker in commlog["Note"]
        assert case.arrangement.pms_arrangement_id == str(plan["PayPlanNum"])
        assert case.arrangement.write_status == WriteStatus.WRITTEN
    posts = [r["status"] for r in od.requests("POST", "/payplans")]
    # Embedded, a POST may meet Open Dental's 429 (below): refused before anything is done,
    # it is an attempt that committed nothing, and the next one goes on.
    refused = posts.count(429)
    assert [status for status in posts if status != 429] == [None, 201]  # the dropped one committed
    assert sum(PaymentArrangement.objects.filter(case__in=cases).values_list("write_attempts", flat=True)) == 2 + refused
    if on_redis():
        # One limiter for every process (Redis): the key is never over its rate.
        assert 429 not in {r["status"] for r in chairsides}
        gaps = [b["at"] - a["at"] for a, b in zip(chairsides, chairsides[1:])]
        assert min(gaps) >= 0.99, gaps
    # Embedded, each process paces itself alone and may meet Open Dental's 429: a wait, never
    # a failure (above: completed, one plan and one commlog each).
