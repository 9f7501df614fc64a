"""Every needs-attention reason comes from financing.reasons, and each is of one known kind."""

import ast
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from financing import reasons
from financing.ports import Offer, PromotionKind
from financing.terms import TermsError, compute_terms

D = Decimal
SERVICES = Path(__file__).resolve().parents[2] / "financing" / "services"

EXAMPLES = {
    "patient_without_clinic": reasons.patient_without_clinic("2001", "Dentrix", "clinic 1"),
    "patient_other_clinic": reasons.patient_of_another_clinic("2001", "2", "clinics 1, 3"),
    "plan_not_patients": reasons.plan_not_patients("5001", "1002"),
    "plan_not_accepted": reasons.plan_not_accepted("5001", "proposed", "Dentrix"),
    "plan_without_fees": reasons.plan_without_fees("5001"),
    "nothing_to_finance": reasons.nothing_to_finance(D("900.00"), D("900.00")),
    "application_refused": reasons.application_refused("CareCredit refused the application (HTTP 422, invalid_merchant)."),
    "unrecordable_decision": reasons.unrecordable_decision("CareCredit", "approved amount 12.345"),
    "approved_without_amount": reasons.approved_without_amount("CareCredit"),
    "promotion_not_offered": reasons.promotion_not_offered("CareCredit", "60 months reduced APR, fixed payments", "deferred_12"),
    "agreement_rules": reasons.agreement_rules("Dentrix", {"first_payment_due": "First payment due date cannot be before the agreement date."}),
    "agreement_exists": reasons.agreement_exists("Dentrix", "3001", "7001"),
    "agreement_refused": reasons.agreement_refused("Dentrix", "Dentrix refused the request (HTTP 409)."),
    "agreement_differs": reasons.agreement_differs("Dentrix", "7001", "Payment amount: sent $130.00, stored $131.00"),
    "production_plan_changed": reasons.plan_changed_before_posting("5001", "Dentrix Ascend", "it is rejected"),
    "production_check_refused": reasons.production_check_refused("Dentrix Ascend", "5001", "Dentrix Ascend refused the request (HTTP 403)."),
    "note_rules": reasons.note_rules("Dentrix", {"text": "Billing statement notes are limited to 82 characters."}),
    "note_refused": reasons.note_refused("Dentrix", "Dentrix refused the request (HTTP 404)."),
    "no_fee_rate": reasons.no_fee_rate("12 months deferred interest"),
    "purchase_declined": reasons.purchase_declined("CareCredit", D("2500.00"), "Account closed."),
    "purchase_refused": reasons.purchase_refused("CareCredit", D("2500.00"), "CareCredit refused the request (HTTP 422)."),
    "purchase_not_settled": reasons.purchase_not_settled("CareCredit"),
    "posting_refused": reasons.posting_refused("Dentrix", "merchant fee", "Unknown adjustment type 'CareCredit Fee'."),
    "posting_differs": reasons.posting_differs("Dentrix", "amount: sent $2,252.50, stored $2,250.00"),
    "step_interrupted": reasons.step_interrupted("Writing the payment agreement to Dentrix", 12),
    "step_failing": reasons.step_failing("Posting the ledger note to Dentrix", 12, "Dentrix did not answer within 10 s."),
}


def test_every_kind_has_an_example_and_each_example_is_of_its_own_kind():
    assert set(EXAMPLES) | {"terms"} == set(reasons.KIND)
    for key, text in EXAMPLES.items():
        assert reasons.kind_of(text) == key, (key, text)


# What each connector product calls its record (financing.partners' "record").
RECORDS = {"Dentrix Enterprise": "payment plan", "Dentrix Ascend": "payment plan", "Eaglesoft": "payment plan contract"}


def test_the_g_series_wording_is_unchanged():
    assert reasons.agreement_rules("Dentrix", {"note": "Payment agreement notes are limited to 255 characters."}) == (
        "Dentrix would reject this payment agreement (note: Payment agreement notes are limited to 255 characters.)."
    )
    assert reasons.agreement_exists("Dentrix", "3001", "7001") == (
        "Guarantor account 3001 already has an active payment agreement (Dentrix id 7001); Dentrix allows one per "
        "account. Close or adjust it in Dentrix, then resume this case."
    )
    assert reasons.agreement_refused("Dentrix", "Dentrix rejected the payment agreement: Payment cannot be 0.") == (
        "Dentrix refused the payment agreement: Dentrix rejected the payment agreement: Payment cannot be 0."
    )
    assert reasons.agreement_differs("Dentrix", "7001", "Payment amount: sent $130.00, stored $131.00") == (
        "Dentrix stored agreement 7001 with different terms than Chairside sent (Payment amount: sent $130.00, "
        "stored $131.00). Check it in Dentrix before resuming."
    )


@pytest.mark.parametrize(("pms", "record"), RECORDS.items())
def test_the_arrangement_reasons_name_the_products_record_and_keep_their_kind(pms, record):
    made = {
        "agreement_rules": reasons.agreement_rules(pms, {"interval": "monthly only"}, record=record),
        "agreement_exists": reasons.agreement_exists(pms, "1001", "7002", record=record),
        "agreement_refused": reasons.agreement_refused(pms, f"{pms} rejected the {record}: no (HTTP 409)", record=record),
        "agreement_differs": reasons.agreement_differs(pms, "7003", "Plan name: sent A, stored B", record=record),
    }
    assert made["agreement_rules"] == f"{pms} would reject this {record} (interval: monthly only)."
    assert made["agreement_exists"].startswith(f"Guarantor account 1001 already has an active {record} ({pms} id 7002); {pms} allows one per account.")
    assert made["agreement_refused"].startswith(f"{pms} refused the {record}: ")
    assert made["agreement_differs"].startswith(f"{pms} stored {record.split()[-1]} 7003 with different terms")
    assert "payment agreement" not in " ".join(made.values())
    for key, text in made.items():
        assert reasons.kind_of(text) == key, text


def test_a_product_that_counts_closed_plans_says_so_and_to_delete_not_close():
    text = reasons.agreement_exists("Dentrix Ascend", "1001", "7003", record="payment plan", any_status=True)
    assert text == (
        "Guarantor account 1001 already has a payment plan (Dentrix Ascend id 7003); Dentrix Ascend allows one per "
        "guarantor, active or not. Delete it in Dentrix Ascend if it is no longer needed, then resume this case."
    )
    assert reasons.kind_of(text) == "agreement_exists"


def test_a_refused_ledger_note_is_not_taken_for_a_refused_record():
    assert reasons.kind_of(reasons.note_refused("Eaglesoft", "Eaglesoft could not find patient 1 (HTTP 404)")) == "note_refused"


DEFERRED_12 = Offer(code="deferred_12", kind=PromotionKind.DEFERRED, months=12, apr=D("0.00"), min_amount=D("200.00"))


@pytest.mark.parametrize(
    "arguments",
    [
        dict(plan_total=D("150.00"), requested_down_payment=D("0.00"), approved_amount=D("150.00")),  # below the minimum
        dict(plan_total=D("900.00"), requested_down_payment=D("900.00"), approved_amount=D("900.00")),
        dict(plan_total=D("900.00"), requested_down_payment=D("0.00"), approved_amount=D("0.00")),
        dict(plan_total=D("900.00"), requested_down_payment=D("0.00"), approved_amount=D("900.00"), first_payment_offset_days=400),
        dict(plan_total=D("900.00"), requested_down_payment=D("0.00"), approved_amount=D("900.00"), offer=Offer(
            code="deferred_9", kind=PromotionKind.DEFERRED, months=9, apr=D("0.00"), min_amount=D("200.00"))),
    ],
)
def test_the_terms_codes_own_reasons_are_the_terms_kind(arguments):
    arguments = {"offer": DEFERRED_12, "decision_date": date(2026, 12, 1), **arguments}
    with pytest.raises(TermsError) as raised:
        compute_terms(**arguments)
    assert reasons.kind_of(raised.value.reason) == "terms"


def test_a_text_not_made_here_is_of_no_kind():
    assert reasons.kind_of("Resumed by billing") == ""
    assert reasons.kind_of("") == ""


def test_the_steps_never_word_a_needs_attention_reason_themselves():
    """needs_attention(…) and a transition to needs_attention take a reason from
    financing.reasons (or one already made: a plan problem, a TermsError's), never a literal."""
    offenders = []
    for path in SERVICES.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            given = []
            if name == "needs_attention" and len(node.args) >= 3:
                given.append(node.args[2])
            if name == "transition" and any(getattr(a, "attr", "") == "NEEDS_ATTENTION" for a in node.args):
                given += [k.value for k in node.keywords if k.arg == "reason"]
            if name == "TermsError":
                given += node.args
            offenders += [f"{path.name}:{node.lineno}" for g in given if isinstance(g, (ast.Constant, ast.JoinedStr, ast.BinOp))]
    assert offenders == []
