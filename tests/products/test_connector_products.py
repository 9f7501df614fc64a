"""Every connector product by its own rules, through every step, against its sandbox over
HTTP (tasks run one by one): Dentrix G-series, Dentrix Enterprise, Dentrix Ascend, Eaglesoft.

Each test runs once per product (tests/products/conftest.py). What must hold everywhere: the
record lands once, in the product's shape, with exactly the computed terms, and one ledger
note; what differs is each product's: the fields it adds, and whether a record already on
the account leaves room for ours.
"""

from dataclasses import replace
from datetime import date
from decimal import Decimal as D

import pytest
import requests

from dentrix_bridge.rules import add_months
from financing import partners, services
from financing.services import arrangement as step
from financing.models import CaseState, PaymentArrangement, WriteStatus
from tests.products.connector_products import (
    NAMES, NEEDS_POSTED_PRODUCTION, RECORD_WRITES, assert_written_once, expected_record, ours, post_production, practice,
    treated_patient,
)

pytestmark = pytest.mark.django_db(transaction=True)


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


def test_an_approval_before_the_treatment_is_posted(sandboxes, product, location, coordinator, tasks):
    """Dentrix Ascend and Eaglesoft write only over posted production: the case waits, nothing
    is written, and the check after the posting writes it once. The G-series and Enterprise
    write over the planned treatment at once."""
    patient = sandboxes.new_patient("Thompson")  # treatment planned, not done yet
    case = run_case(location, coordinator, tasks, patient)
    if product not in NEEDS_POSTED_PRODUCTION:
        assert_written_once(sandboxes, product, case)
        assert case.production_awaited_at is None
        return
    assert case.state == CaseState.AWAITING_PRODUCTION
    assert case.state_reason.startswith(f"Waiting for the treatment to be posted in {NAMES[product]}: ")
    assert sandboxes.dentrix_requests("POST", RECORD_WRITES) == [] and sandboxes.agreements(case.guarantor_id) == []
    assert services.check_posted_production(case.pk) == "waiting"

    post_production(sandboxes, patient["patient_id"])
    assert services.check_posted_production(case.pk) == "posted"
    tasks.drain()
    case.refresh_from_db()
    assert_written_once(sandboxes, product, case)
    assert case.production_awaited_at <= case.production_posted_at <= case.arrangement_written_at
    assert len(sandboxes.dentrix_requests("POST", RECORD_WRITES)) == 1


def test_a_correction_adopts_the_record_the_product_holds_in_force(sandboxes, product, location, coordinator, billing, tasks):
    """The clerk moves the first payment a month in the product, the product's way: in place
    (G-series, Eaglesoft), a new version (Enterprise), deleted and created again (Ascend).
    Recording the correction follows the record now in force."""
    case = run_case(location, coordinator, tasks, treated_patient(sandboxes, product))
    assert_written_once(sandboxes, product, case)
    first = case.arrangement.pms_arrangement_id
    [record] = sandboxes.agreements(case.guarantor_id)
    moved = add_months(date.fromisoformat(record["first_payment_due"]), 1)
    edit = requests.post(
        f"{sandboxes.dentrix_url}/_sandbox/payment-agreements/{first}/edit", json={"first_payment_due": moved.isoformat()}, timeout=5
    )
    if product == "dentrix_ascend":
        assert edit.status_code == 409  # a saved plan cannot be edited: deleted and created again
        deleted = requests.delete(f"{sandboxes.dentrix_url}/v1/accounts/{case.guarantor_id}/payment-agreements/{first}",
                                  headers={"X-API-Key": "sandbox"}, timeout=5)
        assert deleted.status_code == 204
        again = {k: v for k, v in record.items() if k not in ("agreement_id", "guarantor_id", "product", "status", "created_at")}
        again.update(first_payment_due=moved.isoformat(), start_date=add_months(date.fromisoformat(record["start_date"]), 1).isoformat(),
                     note="Typed again by billing")
        created = requests.post(f"{sandboxes.dentrix_url}/v1/accounts/{case.guarantor_id}/payment-agreements", json=again,
                                headers={"X-API-Key": "sandbox"}, timeout=5)
        assert created.status_code == 201, created.text
        in_force = created.json()["agreement_id"]
    else:
        assert edit.status_code == (201 if product == "dentrix_enterprise" else 200), edit.text
        in_force = edit.json()["agreement_id"]
    assert (in_force != first) == (product in ("dentrix_enterprise", "dentrix_ascend"))

    correction = services.record_correction(case.pk, field="first_payment_date", after=moved.isoformat(), why="Patient asked", actor=billing)
    arrangement = PaymentArrangement.objects.get(case=case)
    assert (arrangement.pms_arrangement_id, arrangement.first_payment_date) == (in_force, moved)
    expected = (first, in_force) if in_force != first else ("", "")
    assert (correction.pms_record_before, correction.pms_record_after) == expected
    held = next(r for r in sandboxes.agreements(case.guarantor_id) if r["agreement_id"] == in_force)
    assert (held["status"], held["first_payment_due"]) == ("active", moved.isoformat())
    # Chairside wrote nothing for the correction: the clerk's edit is the only change.
    assert len([r for r in sandboxes.dentrix_requests("POST", RECORD_WRITES) if r["status"] == 201]) == (2 if product == "dentrix_ascend" else 1)


def test_a_payment_that_does_not_fit_is_refused_or_rounded_and_the_read_back_catches_it(sandboxes, product, location, coordinator, tasks, monkeypatch):
    """Should Chairside's rules miss a payment that does not fit the term, the product decides:
    three refuse it; Dentrix Ascend stores the payment that fits instead, and only reading
    the record back shows it. Either way the case stops for a person, and nothing is written twice."""
    sent = step.agreement_request
    monkeypatch.setattr(step, "agreement_request", lambda case, a: replace(sent(case, a), payment_amount=D("250.00")))
    monkeypatch.setattr(partners, "agreement_problems", lambda *args, **kwargs: {})  # a rule Chairside missed
    case = run_case(location, coordinator, tasks, treated_patient(sandboxes, product))
    assert case.state == CaseState.NEEDS_ATTENTION
    assert len(sandboxes.dentrix_requests("POST", RECORD_WRITES)) == 1
    name = NAMES[product]
    if product != "dentrix_ascend":
        assert case.state_reason.startswith(f"{name} refused the ")
        assert "Payment amount × number of payments does not add up to the amount financed." in case.state_reason
        assert sandboxes.agreements(case.guarantor_id) == []
        return
    [stored] = sandboxes.agreements(case.guarantor_id)
    assert stored["payment_amount"] == "208.34"  # $2,500.00 over 12, rounded up to the cent
    assert case.state_reason == (
        f"Dentrix Ascend stored plan {stored['agreement_id']} with different terms than Chairside sent "
        "(Payment amount: sent $250.00, stored $208.34). Check it in Dentrix Ascend before resuming."
    )
    a = case.arrangement
    assert (a.write_status, a.pms_arrangement_id, a.verified_at) == (WriteStatus.WRITTEN, stored["agreement_id"], None)
    assert sandboxes.ledger_notes(case.patient_id) == []
