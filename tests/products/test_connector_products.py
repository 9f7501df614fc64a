"""Every connector product by its own rules, through every step, against its sandbox over
HTTP (tasks run one by one): Dentrix G-series, Dentrix Enterprise, Dentrix Ascend, Eaglesoft.

Each test runs once per product (tests/products/conftest.py). What must hold everywhere: the
record lands once, in the product's shape, with exactly the computed terms, and one ledger
note; what differs is each product's: the fields it adds, and whether a record already on
the account leaves room for ours.
"""

from decimal import Decimal as D

import pytest
import requests

from financing import services
from financing.models import CaseState, PaymentArrangement, WriteStatus

from tests.products.connector_products import NEEDS_POSTED_PRODUCTION, a_month_before, post_production, practice

pytestmark = pytest.mark.django_db(transaction=True)

NAMES = {"dentrix_g": "Dentrix", "dentrix_enterprise": "Dentrix Enterprise", "dentrix_ascend": "Dentrix Ascend", "eaglesoft": "Eaglesoft"}
RECORD_WRITES = "/v1/accounts"


def treated_patient(sandboxes, product, last_name="Thompson", fees=("1250.00", "1250.00"), **extra):
    """A patient with an accepted plan whose treatment is done: posted to the ledger where the
    product writes a plan only over posted production."""
    patient = sandboxes.new_patient(last_name, fees=fees, **extra)
    if product in NEEDS_POSTED_PRODUCTION:
        post_production(sandboxes, patient["patient_id"])
    return patient


def run_case(location, coordinator, tasks, patient, down_payment=D("0.00"), promotion="deferred_12"):
    """Capture, send, decide, write, note: every step the flow takes, one by one."""
    case = services.capture_case(
        location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"],
        down_payment=down_payment, promotion=promotion, actor=coordinator,
    )
    tasks.drain()
    services.refresh_decision(case.pk)
    tasks.drain()
    case.refresh_from_db()
    return case


def expected_record(product, case) -> dict:
    """The record the product must hold for the case: the computed terms, in its shape."""
    a = case.arrangement
    record = {
        "agreement_id": a.pms_arrangement_id,
        "guarantor_id": case.guarantor_id,
        "product": product,
        "status": "active",
        "agreement_date": a.agreement_date.isoformat(),
        "interval": "monthly",
        "total_agreed_amount": f"{case.plan_total:.2f}",
        "down_payment": f"{a.down_payment:.2f}",
        "payment_amount": f"{a.recurring_amount:.2f}",
        "number_of_payments": a.number_of_payments,
        "first_payment_due": a.first_payment_date.isoformat(),
        "annual_finance_charge_pct": f"{a.apr:.2f}",
        "note": a.note,
    }
    if product == "dentrix_enterprise":
        record.update(name=f"CareCredit {case.reference}", patient_ids=[case.patient_id], supersedes=None, superseded_by=None)
    elif product == "dentrix_ascend":
        record.update(
            start_date=a_month_before(a.first_payment_date).isoformat(),
            procedures=[{"procedure_id": p["procedure_id"], "applied_amount": p["fee"]} for p in case.procedures],
        )
    elif product == "eaglesoft":
        record.update(contract_amount=f"{case.plan_total - a.down_payment:.2f}")
    return record


def ours(sandboxes, case) -> list[dict]:
    return [r for r in sandboxes.agreements(case.guarantor_id) if case.marker in r["note"]]


def assert_written_once(sandboxes, product, case):
    """Exactly one record carries the case's marker, in the product's shape with the exact
    terms, read back and verified; exactly one ledger note."""
    assert case.state == CaseState.COMPLETED, case.state_reason
    [stored] = ours(sandboxes, case)
    created_at = stored.pop("created_at")
    assert created_at.endswith("Z")
    assert stored == expected_record(product, case)
    a = case.arrangement
    assert a.write_status == WriteStatus.WRITTEN and a.verified_at is not None and a.write_attempts == 1
    notes = sandboxes.ledger_notes(case.patient_id)
    assert [n["note_id"] for n in notes if case.marker in n["text"]] == [case.ledger_note.pms_note_id]
    assert len(notes) == 1


def test_an_approval_writes_one_record_in_the_products_shape_and_one_note(sandboxes, product, location, coordinator, tasks):
    patient = treated_patient(sandboxes, product)
    case = run_case(location, coordinator, tasks, patient)
    a = case.arrangement
    assert (a.down_payment, a.financed_amount, a.recurring_amount, a.number_of_payments, a.final_payment) == (
        D("0.00"), D("2500.00"), D("208.34"), 12, D("208.26")
    )
    assert a.first_payment_date.day == 15
    assert_written_once(sandboxes, product, case)
    assert len(sandboxes.agreements(case.guarantor_id)) == 1
    assert len(sandboxes.dentrix_requests("POST", RECORD_WRITES)) == 1
    assert "$208.34" in sandboxes.ledger_notes(case.patient_id)[0]["text"]


def test_a_down_payment_stays_in_the_total_and_out_of_the_amount_financed(sandboxes, product, location, coordinator, tasks):
    case = run_case(location, coordinator, tasks, treated_patient(sandboxes, product), down_payment=D("500.00"))
    a = case.arrangement
    assert (a.down_payment, a.financed_amount, a.recurring_amount, a.number_of_payments, a.final_payment) == (
        D("500.00"), D("2000.00"), D("166.67"), 12, D("166.63")
    )
    assert_written_once(sandboxes, product, case)
    [stored] = ours(sandboxes, case)
    assert (stored["total_agreed_amount"], stored["down_payment"]) == ("2500.00", "500.00")
    if product == "eaglesoft":
        assert stored["contract_amount"] == "2000.00"
    if product == "dentrix_ascend":  # the procedures pay for the whole total, the down payment included
        assert sum(D(p["applied_amount"]) for p in stored["procedures"]) == D("2500.00")


def test_a_partial_approval_puts_the_rest_on_the_down_payment(sandboxes, product, location, coordinator, tasks):
    case = run_case(location, coordinator, tasks, treated_patient(sandboxes, product, "Partial-Nguyen"))
    assert case.decision.approved_amount == D("1500.00")
    a = case.arrangement
    assert (a.down_payment, a.financed_amount, a.recurring_amount, a.number_of_payments) == (D("1000.00"), D("1500.00"), D("125.00"), 12)
    assert_written_once(sandboxes, product, case)
    [stored] = ours(sandboxes, case)
    assert (stored["down_payment"], stored["total_agreed_amount"], stored["payment_amount"]) == ("1000.00", "2500.00", "125.00")
    if product == "eaglesoft":
        assert stored["contract_amount"] == "1500.00"


def test_a_dependents_treatment_is_written_on_the_guarantors_account(sandboxes, product, location, coordinator, tasks):
    guarantor = sandboxes.new_patient("Thompson", fees=("400.00",))
    dependent = treated_patient(sandboxes, product, first_name="Gus", guarantor_id=guarantor["patient_id"])
    assert dependent["guarantor_id"] == guarantor["patient_id"] != dependent["patient_id"]
    case = run_case(location, coordinator, tasks, dependent)
    assert (case.patient_id, case.guarantor_id) == (dependent["patient_id"], guarantor["patient_id"])
    assert_written_once(sandboxes, product, case)
    [stored] = sandboxes.agreements(guarantor["patient_id"])
    assert stored["guarantor_id"] == guarantor["patient_id"]
    if product == "dentrix_enterprise":  # the plan covers the dependent, not the guarantor
        assert stored["patient_ids"] == [dependent["patient_id"]]
    if product == "dentrix_ascend":  # built over the dependent's procedures
        [plan] = requests.get(
            f"{sandboxes.dentrix_url}/v1/patients/{dependent['patient_id']}/treatment-plans", headers={"X-API-Key": "sandbox"}, timeout=5
        ).json()
        assert [p["procedure_id"] for p in stored["procedures"]] == [p["procedure_id"] for p in plan["procedures"]]
    # The note is on the treated patient's ledger; none on the guarantor's.
    assert sandboxes.ledger_notes(guarantor["patient_id"]) == []


def test_an_account_that_already_has_a_record(sandboxes, product, location, coordinator, tasks):
    """One record per account (G-series, Eaglesoft) or per guarantor (Ascend) needs the billing
    team, with a reason naming the product and its record; Enterprise writes beside it."""
    patient = treated_patient(sandboxes, product)
    practice(sandboxes).enter_by_hand(patient)
    [by_hand] = sandboxes.agreements(patient["guarantor_id"])
    case = run_case(location, coordinator, tasks, patient)
    g, other = patient["guarantor_id"], by_hand["agreement_id"]
    if product == "dentrix_enterprise":
        assert_written_once(sandboxes, product, case)
        assert [r["agreement_id"] for r in sandboxes.agreements(g)] == [other, case.arrangement.pms_arrangement_id]
        assert len(sandboxes.dentrix_requests("POST", RECORD_WRITES)) == 2  # the front desk's, then ours
        return
    assert case.state == CaseState.NEEDS_ATTENTION
    assert case.state_reason == {
        "dentrix_g": f"Guarantor account {g} already has an active payment agreement (Dentrix id {other}); Dentrix "
                     "allows one per account. Close or adjust it in Dentrix, then resume this case.",
        "dentrix_ascend": f"Guarantor account {g} already has a payment plan (Dentrix Ascend id {other}); Dentrix Ascend "
                          "allows one per guarantor, active or not. Delete it in Dentrix Ascend if it is no longer needed, "
                          "then resume this case.",
        "eaglesoft": f"Guarantor account {g} already has an active payment plan contract (Eaglesoft id {other}); "
                     "Eaglesoft allows one per account. Close or adjust it in Eaglesoft, then resume this case.",
    }[product]
    assert case.resume_state == CaseState.APPROVED
    assert sandboxes.agreements(g) == [by_hand]  # nothing of ours
    assert len(sandboxes.dentrix_requests("POST", RECORD_WRITES)) == 1  # only the front desk's
    assert sandboxes.ledger_notes(case.patient_id) == []
    assert case.arrangement.write_status == WriteStatus.PENDING


def test_a_closed_record_leaves_room_except_where_any_record_counts(sandboxes, product, location, coordinator, billing, tasks):
    """A record the clerk inactivated no longer counts, except at Dentrix Ascend (one plan per
    guarantor, whatever its status), where the clerk deletes it and resumes the case."""
    patient = treated_patient(sandboxes, product)
    practice(sandboxes).enter_by_hand(patient)
    [by_hand] = sandboxes.agreements(patient["guarantor_id"])
    requests.put(
        f"{sandboxes.dentrix_url}/_sandbox/payment-agreements/{by_hand['agreement_id']}", json={"status": "inactive"}, timeout=5
    ).raise_for_status()
    case = run_case(location, coordinator, tasks, patient)
    if product != "dentrix_ascend":
        assert_written_once(sandboxes, product, case)
        return
    assert case.state == CaseState.NEEDS_ATTENTION
    assert "allows one per guarantor, active or not" in case.state_reason
    assert len(sandboxes.dentrix_requests("POST", RECORD_WRITES)) == 1
    deleted = requests.delete(
        f"{sandboxes.dentrix_url}/v1/accounts/{patient['guarantor_id']}/payment-agreements/{by_hand['agreement_id']}",
        headers={"X-API-Key": "sandbox"}, timeout=5,
    )
    assert deleted.status_code == 204
    services.resume_case(case.pk, actor=billing)
    tasks.drain()
    case.refresh_from_db()
    assert_written_once(sandboxes, product, case)
    assert len(sandboxes.agreements(case.guarantor_id)) == 1


def test_a_write_whose_answer_is_lost_is_looked_up_and_adopted_not_written_again(sandboxes, product, location, coordinator, tasks, settings):
    patient = treated_patient(sandboxes, product)
    case = services.capture_case(
        location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"], actor=coordinator,
    )
    tasks.drain()
    services.refresh_decision(case.pk)
    # The connector commits the record, then the connection drops before Chairside hears back.
    sandboxes.dentrix_fault(method="POST", path_prefix=RECORD_WRITES, mode="drop", count=1)
    assert tasks.run_next() == "retry"
    arrangement = PaymentArrangement.objects.get(case=case)
    assert (arrangement.write_status, arrangement.pms_arrangement_id) == (WriteStatus.UNKNOWN, "")
    assert len(sandboxes.agreements(case.guarantor_id)) == 1
    [retry] = tasks.queue
    assert retry.name == "financing.write_arrangement" and retry.countdown == settings.AMBIGUOUS_WRITE_SETTLE_SECONDS

    assert tasks.run_next() == "written"  # the lookup finds the marker: adopted, no second write
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    [stored] = sandboxes.agreements(case.guarantor_id)
    assert stored["agreement_id"] == case.arrangement.pms_arrangement_id
    assert len(sandboxes.dentrix_requests("POST", RECORD_WRITES)) == 1
    assert len(sandboxes.ledger_notes(case.patient_id)) == 1
    stored.pop("created_at")
    assert stored == expected_record(product, case)


def test_a_refused_write_names_the_product_and_its_record(sandboxes, product, location, coordinator, tasks):
    patient = treated_patient(sandboxes, product)
    practice(sandboxes).refuse_next_write(patient)
    case = run_case(location, coordinator, tasks, patient)
    assert case.state == CaseState.NEEDS_ATTENTION
    name, record = NAMES[product], {"dentrix_g": "payment agreement", "eaglesoft": "payment plan contract"}.get(product, "payment plan")
    assert case.state_reason.startswith(f"{name} refused the {record}: {name} rejected the {record}")
    assert sandboxes.agreements(case.guarantor_id) == []
    assert case.arrangement.write_status == WriteStatus.FAILED
