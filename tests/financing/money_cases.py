"""Helpers for the refund and in-house tests: a payment-recording case approved by the
CareCredit sandbox and charged there over HTTP (the purchase row as the purchase step
records it), then posted by the posting step."""

from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction
from django.utils import timezone

from financing import partners, services
from financing.models import CaseState, FinancedCase, Purchase, effective_template
from financing.ports import PurchaseRequest
from financing.services.leases import locked
from financing.services.states import transition
from tests.conftest import dentrix_get

D = Decimal
RATES = {"deferred_6": "5.90", "deferred_12": "9.90", "deferred_18": "12.90", "deferred_24": "14.90"}


def _stand_in_for_missing_steps():
    """Until the purchase step's tasks are registered (FLOW's branch), a stand-in that does
    nothing, so a transition can queue them: these tests charge and post by hand."""
    from celery import current_app

    def stand_in(case_id):
        return "stand-in"

    for name in ("financing.charge_purchase", "financing.post_payment"):
        if name not in current_app.tasks:
            current_app.task(name=name)(stand_in)


def payment_template(template, **fields):
    _stand_in_for_missing_steps()
    values = dict(recording="payment", merchant_fee_rates=RATES, **fields)
    for name, value in values.items():
        setattr(template, name, value)
    template.save()
    return template


def approved_case(sandboxes, location, coordinator, tasks, surname="Thompson", fees=("1250.00", "1250.00")) -> FinancedCase:
    patient = sandboxes.new_patient(surname, fees=fees)
    case = services.capture_case(
        location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"],
        down_payment=D("0.00"), promotion="deferred_12", actor=coordinator,
    )
    tasks.drain()
    services.refresh_decision(case.pk)
    tasks.queue.clear()  # the purchase step is charged by `charge` below
    case.refresh_from_db()
    assert case.state == CaseState.APPROVED and case.recording == "payment"
    return case


def charge(case: FinancedCase) -> Purchase:
    """Charge the case's account at the sandbox (AUTH_SETTLE), record the purchase, PURCHASED."""
    location = case.location
    gross = min(case.decision.approved_amount, case.plan_total - case.requested_down_payment)
    rate = effective_template(location).merchant_fee_rate(case.promotion)
    key = f"{case.reference}-purchase"
    made = partners.lender_for(location).purchase(PurchaseRequest(
        merchant_number=location.merchant_number, application_id=case.application_id, reference=case.reference,
        idempotency_key=key, amount=gross, promotion=case.promotion,
    ))
    fee = (gross * rate / 100).quantize(D("0.01"), rounding=ROUND_HALF_UP)
    purchase = Purchase.objects.create(
        case=case, idempotency_key=key, amount=gross, promotion=case.promotion, fee_rate=rate, merchant_fee=fee,
        net_amount=gross - fee, status=Purchase.Status.SETTLED, attempts=1, lender_transaction_id=made.transaction_id,
        authorization_code=made.authorization_code, business_day=made.business_day, charged_at=timezone.now(),
    )
    with transaction.atomic():
        locked_case = locked(case.pk)
        locked_case.purchased_at = timezone.now()
        transition(locked_case, CaseState.PURCHASED, update_fields=["purchased_at"])
    return purchase


def post(case: FinancedCase, tasks) -> str:
    """The posting step (and the note and confirmation it leads to)."""
    from financing.services.posting import post_payment

    tasks.queue[:] = [t for t in tasks.queue if t.name != "financing.post_payment"]
    outcome = post_payment(case.pk)
    tasks.drain(include_delayed=False)  # the note and the confirmation; a retry waits its turn
    tasks.queue[:] = [t for t in tasks.queue if t.name != "financing.post_payment"]
    return outcome


def ledger(sandboxes, patient_id):
    """The patient's payments and adjustments in the Dentrix sandbox."""
    return dentrix_get(sandboxes, f"/v1/patients/{patient_id}/payments"), dentrix_get(sandboxes, f"/v1/patients/{patient_id}/adjustments")


def lender_transactions(sandboxes):
    import requests

    return requests.get(f"{sandboxes.carecredit_url}/_sandbox/transactions", timeout=5).json()
