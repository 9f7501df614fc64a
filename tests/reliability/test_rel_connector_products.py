"""Every connector product at once with a real worker and beat: four locations, each on its
own product's sandbox over HTTP (Dentrix G-series, Enterprise, Ascend, Eaglesoft). Per product,
a case whose treatment is done and one approved before it: each ends with exactly one record
in the product's shape with exactly the computed terms, and one ledger note; at Ascend and
Eaglesoft the second waits, writing nothing, until the front desk posts the treatment."""

import pytest
from rest_framework.test import APIClient

from financing.models import ArrangementTemplate, CaseState, FinancedCase, Membership
from sandboxes.dentrix import serve_in_thread
from tests.conftest import make_location
from tests.products.connector_products import (
    KINDS, NEEDS_POSTED_PRODUCTION, RECORD_WRITES, expected_record, ours, post_production, treated_patient,
)
from tests.reliability.harness import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def connectors(sandboxes):
    """product → its sandbox; the G-series one is the suite's (reset by `sandboxes`)."""
    started = {product: serve_in_thread(port=0, product=product) for product in KINDS if product != "dentrix_g"}
    yield {"dentrix_g": sandboxes.dentrix, **started}
    for running in started.values():
        running.stop()


def test_each_product_writes_its_own_record_once_with_a_real_worker(celery_processes, sandboxes, connectors, coordinator):
    processes = celery_processes(PRODUCTION_CHECK_SECONDS=1)
    logs = processes.all_logs()
    template = ArrangementTemplate.objects.create(name="Products", first_payment_day_of_month=15)
    api = APIClient()
    api.force_authenticate(coordinator)
    # product → (its sandboxes, location); the coordinator works at all four.
    at = {}
    for product, running in connectors.items():
        view = type(sandboxes)(running, sandboxes.carecredit)
        location = make_location(template, view, code=product.replace("_", "-"), pms_kind=KINDS[product])
        Membership.objects.create(user=coordinator, location=location, role=Membership.Role.COORDINATOR)
        at[product] = (view, location)

    cases = {}  # (product, "treated" | "planned") → case id
    for product, (view, location) in at.items():
        for kind, patient in (("treated", treated_patient(view, product)), ("planned", view.new_patient("Thompson"))):
            answer = api.post("/api/v1/cases/", {"location": location.code, "patient_id": patient["patient_id"],
                                                 "treatment_plan_id": patient["treatment_plan_id"], "promotion": "deferred_12"}, format="json")
            assert answer.status_code == 201, answer.json()
            cases[product, kind] = (answer.json()["id"], patient)

    def state(key):
        return FinancedCase.objects.get(pk=cases[key][0]).state

    # The planned treatment waits where the product needs it posted; elsewhere all complete.
    waiting = [(p, "planned") for p in NEEDS_POSTED_PRODUCTION]
    wait_for(lambda: all(state(k) == (CaseState.AWAITING_PRODUCTION if k in waiting else CaseState.COMPLETED) for k in cases), 60, *logs)
    for product, kind in waiting:
        view = at[product][0]
        assert ours(view, FinancedCase.objects.get(pk=cases[product, kind][0])) == []
        post_production(view, cases[product, kind][1]["patient_id"])
    wait_for(lambda: all(state(k) == CaseState.COMPLETED for k in cases), 60, *logs)

    for (product, kind), (case_id, patient) in cases.items():
        view = at[product][0]
        case = FinancedCase.objects.get(pk=case_id)
        [stored] = ours(view, case)
        stored.pop("created_at")
        assert stored == expected_record(product, case), (product, kind)
        assert case.arrangement.verified_at is not None
        notes = [n for n in view.ledger_notes(case.patient_id) if case.marker in n["text"]]
        assert [n["note_id"] for n in notes] == [case.ledger_note.pms_note_id], (product, kind)
    for product, (view, _) in at.items():
        # Two cases, two records, nothing written twice.
        assert [r["status"] for r in view.dentrix_requests("POST", RECORD_WRITES)] == [201, 201], product
    for product in NEEDS_POSTED_PRODUCTION:
        case = FinancedCase.objects.get(pk=cases[product, "planned"][0])
        assert case.production_awaited_at < case.production_posted_at < case.arrangement_written_at
