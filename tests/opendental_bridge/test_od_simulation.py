"""simulate's Open Dental plug-in (sandboxes/opendental/simulation.py) against the sandbox:
what the front desk does there, and its check of what Chairside wrote, which must catch
a plan that is not exactly the case's."""

import pytest
from rest_framework.test import APIClient

from financing import services
from financing.models import CaseState
from sandboxes.opendental import simulation

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {
    "first_name": "Cora", "last_name": "Rivera", "birth_date": "1970-03-14", "phone": "+15555551234",
    "email": "patient1@example.com", "address": {"line1": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701"},
    "procedures": [{"code": "D2740", "tooth": "14", "surface": "", "fee": "1250.00"},
                   {"code": "D2950", "tooth": "14", "surface": "", "fee": "310.00"}],
    "clinic_id": "1",
}


@pytest.fixture
def practice(od_location, monkeypatch):
    monkeypatch.setattr(simulation, "SPACING", 0.0)  # the sandbox's throttle is off in these tests
    return simulation.Practice(od_location)


def run(location, coordinator, tasks, patient, promotion="deferred_12"):
    case = services.capture_case(location=location, patient_id=patient["patient_id"],
                                 treatment_plan_id=patient["treatment_plan_id"], promotion=promotion, actor=coordinator)
    tasks.drain()
    services.refresh_decision(case.pk)
    tasks.drain()
    api = APIClient()
    api.force_authenticate(coordinator)
    return api.get(f"/api/v1/cases/{case.pk}/").json()


def test_a_completed_case_verifies_and_a_changed_plan_does_not(sandboxes, od, od_location, od_coordinator, tasks, practice):
    assert practice.name == "the Open Dental sandbox"
    patient = practice.new_patient(BODY)
    assert set(patient) >= {"patient_id", "guarantor_id", "treatment_plan_id"}
    case = run(od_location, od_coordinator, tasks, patient, promotion="reduced_apr_36")
    assert case["state"] == CaseState.COMPLETED
    assert practice.verify(case) == ""
    plan = case["arrangement"]["pms_arrangement_id"]
    od.control("PUT", f"/payplans/{plan}", {"IsClosed": "true"})
    assert practice.verify(case) == "IsClosed: Open Dental true vs computed false"
    od.control("PUT", f"/payplans/{plan}", {"IsClosed": "false"})
    stored = od.app.store.get("payplans", int(plan))
    od.app.store.put("payplans", {**stored, "PayAmt": "56.00"})
    problem = practice.verify(case)
    assert problem == "PayAmt: Open Dental 56.0 vs computed 56.32; Open Dental charges 37 payments (the last 15.28), computed 36"


def test_a_plan_entered_by_hand_sits_beside_the_cases(sandboxes, od, od_location, od_coordinator, tasks, practice):
    patient = practice.new_patient(BODY)
    practice.enter_by_hand(patient)
    case = run(od_location, od_coordinator, tasks, patient)
    assert case["state"] == CaseState.COMPLETED and practice.verify(case) == ""
    assert len(od.plans(patient["guarantor_id"])) == 2


def test_a_refused_write_needs_attention_and_nothing_is_written(sandboxes, od, od_location, od_coordinator, tasks, practice):
    patient = practice.new_patient(BODY)
    other = practice.new_patient(BODY)
    practice.refuse_next_write(patient)
    case = run(od_location, od_coordinator, tasks, patient)
    assert case["state"] == CaseState.NEEDS_ATTENTION
    assert case["state_reason"] == (
        "Open Dental refused the payment plan: Open Dental rejected the payment plan: "
        "The payment plan could not be saved (sandbox refusal)"
    )
    assert practice.nothing_written(case) == ""
    # The refusal was the patient's own: another patient's plan is written.
    assert run(od_location, od_coordinator, tasks, other)["state"] == CaseState.COMPLETED


def test_posting_production_completes_the_procedures(sandboxes, od, practice):
    patient = practice.new_patient(BODY)
    practice.post_production(patient)
    assert {p["ProcStatus"] for p in od.get("/procedurelogs", PatNum=patient["patient_id"])} == {"C"}
