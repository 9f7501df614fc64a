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
    "agreement_differs": reasons.agreement_differs("Dentrix", "7001", "payment_amount: sent 130.00, stored 131.00"),
    "production_plan_changed": reasons.plan_changed_before_posting("5001", "Dentrix Ascend", "it is rejected"),
    "production_check_refused": reasons.production_check_refused("Dentrix Ascend", "5001", "Dentrix Ascend refused the request (HTTP 403)."),
    "note_rules": reasons.note_rules("Dentrix", {"text": "Billing statement notes are limited to 82 characters."}),
    "note_refused": reasons.note_refused("Dentrix", "Dentrix refused the request (HTTP 404)."),
    "step_interrupted": reasons.step_interrupted("Writing the payment agreement to Dentrix", 12),
    "step_failing": reasons.step_failing("Posting the ledger note to Dentrix", 12, "Dentrix did not answer within 10 s."),
}


def test_every_kind_has_an_example_and_each_example_is_of_its_own_kind():
    assert set(EXAMPLES) | {"terms"} == set(reasons.KIND)
    for key, text in EXAMPLES.items():
        assert reasons.kind_of(text) == key, (key, text)


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
