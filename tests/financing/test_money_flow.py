"""A case recorded as a payment (Recording.PAYMENT), over HTTP against the CareCredit and
connector sandboxes: approval → the wait for posted treatment (or *Charge now*) → the
purchase → the payment (net) and the merchant fee (−fee) on the ledger → the note →
completed; and the ways it does not go that way."""

from datetime import timedelta
from decimal import Decimal as D

import pytest
import requests
from django.contrib.admin.models import LogEntry
from django.core import mail
from django.utils import timezone

from financing import reasons, services
from financing.markers import posting_marker
from financing.models import CaseState, ChargeWhen, FinancedCase, LedgerPosting, Purchase, Recording, WriteStatus
from financing.services.purchase import local_today
from financing.services.states import PURCHASE_STEP, step_for
from tests.conftest import dentrix_get, make_user

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLE_RATES = {"deferred_12": "9.90", "deferred_6": "5.90", "reduced_apr_36": "7.90"}
# $1,234.57 + $1,000.00 = $2,234.57; 9.90% of it is $221.22243 → $221.22 (half-up); net $2,013.35.
FEES = ("1234.57", "1000.00")
GROSS, FEE, NET = D("2234.57"), D("221.22"), D("2013.35")
TRANSACT = "/v1/credit/transact"


@pytest.fixture
def payment_template(template):
    template.recording = Recording.PAYMENT
    template.merchant_fee_rates = dict(EXAMPLE_RATES)
    template.save()
    return template


def lender_transactions(sandboxes):
    return requests.get(f"{sandboxes.carecredit_url}/_sandbox/transactions", timeout=5).json()


def ledger(sandboxes, patient_id):
    return {
        "payments": dentrix_get(sandboxes, f"/v1/patients/{patient_id}/payments"),
        "adjustments": dentrix_get(sandboxes, f"/v1/patients/{patient_id}/adjustments"),
    }


def post_production(sandboxes, patient_id):
    requests.post(f"{sandboxes.dentrix_url}/_sandbox/patients/{patient_id}/post-production", json={}, timeout=5).raise_for_status()


def approve(sandboxes, location, coordinator, tasks, last_name="Thompson", fees=FEES):
    patient = sandboxes.new_patient(last_name, fees=fees)
    case = services.capture_case(
        location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"],
        promotion="deferred_12", actor=coordinator,
    )
    tasks.drain(include_delayed=False)
    if FinancedCase.objects.get(pk=case.pk).state != CaseState.APPROVED:
        assert services.refresh_decision(case.pk) == "approved"
    return FinancedCase.objects.get(pk=case.pk), patient


def run_until_waiting(tasks, case):
    tasks.drain()
    case.refresh_from_db()
    return case


def check_and_drain(tasks, case):
    """Beat's production check for one case, then everything it queues."""
    assert services.check_posted_production(case.pk) == "posted"
    tasks.drain()
    case.refresh_from_db()
    return case


def test_approval_waits_for_posted_treatment_then_charges_posts_net_and_fee_and_completes(
    sandboxes, payment_template, location, coordinator, billing, tasks
):
    case, patient = approve(sandboxes, location, coordinator, tasks)
    assert case.recording == Recording.PAYMENT
    assert step_for(case) == PURCHASE_STEP
    # The approval's last day comes from CareCredit's decision.
    application = next(a for a in sandboxes.carecredit_applications() if a["application_id"] == case.application_id)
    assert case.decision.expires_on is not None
    assert case.decision.expires_on.isoformat() == application["expires_on"]

    case = run_until_waiting(tasks, case)
    assert case.state == CaseState.AWAITING_PRODUCTION
    assert case.state_reason == reasons.waiting_to_charge(location.pms_name)
    assert lender_transactions(sandboxes) == []  # nothing charged before the treatment is posted
    assert not Purchase.objects.filter(case=case).exists()
    # Not posted yet: the beat's check leaves it waiting.
    assert services.check_posted_production(case.pk) == "waiting"

    post_production(sandboxes, patient["patient_id"])
    case = check_and_drain(tasks, case)
    assert case.state == CaseState.COMPLETED, case.state_reason

    purchase = case.purchase
    assert (purchase.amount, purchase.fee_rate, purchase.merchant_fee, purchase.net_amount) == (GROSS, D("9.90"), FEE, NET)
    assert purchase.status == Purchase.Status.SETTLED and purchase.attempts == 1
    assert purchase.idempotency_key == f"{case.reference}-purchase"
    assert purchase.authorization_code and purchase.lender_transaction_id and purchase.business_day
    assert purchase.charged_by is None
    [charged] = lender_transactions(sandboxes)
    assert (charged["clientTransId"], D(charged["amount"]), charged["status"]) == (purchase.idempotency_key, GROSS, "SETTLED")

    held = ledger(sandboxes, patient["patient_id"])
    assert [(D(p["amount"]), p["payment_type"]) for p in held["payments"]] == [(NET, "CareCredit Payment")]
    assert [(D(a["amount"]), a["adjustment_type"]) for a in held["adjustments"]] == [(-FEE, "CareCredit Merchant Fee")]
    assert posting_marker(case.reference, "payment") in held["payments"][0]["note"]
    assert posting_marker(case.reference, "merchant_fee") in held["adjustments"][0]["note"]
    postings = {p.kind: p for p in LedgerPosting.objects.filter(case=case)}
    assert {k: (p.amount, p.write_status, p.write_attempts) for k, p in postings.items()} == {
        LedgerPosting.Kind.PAYMENT: (NET, WriteStatus.WRITTEN, 1),
        LedgerPosting.Kind.MERCHANT_FEE: (-FEE, WriteStatus.WRITTEN, 1),
    }
    assert postings[LedgerPosting.Kind.PAYMENT].pms_entry_id == held["payments"][0]["payment_id"]
    # The note speaks of the money: gross, fee and net.
    note = case.ledger_note.text
    assert "$2,234.57" in note and "$221.22" in note and "$2,013.35" in note and case.marker in note
    assert [n["text"] for n in sandboxes.ledger_notes(patient["patient_id"])] == [note]
    # No payment agreement in the payment way (the whole plan was charged).
    assert sandboxes.agreements(case.guarantor_id) == []
    assert case.purchased_at and case.posted_at and case.completed_at
    # The coordinator is told, with the money.
    [approved] = [m for m in mail.outbox if m.to == [coordinator.email]]
    assert "$2,234.57" in approved.subject and "$221.22" in approved.body


def test_charge_now_inside_the_window_outside_it_and_only_by_billing(
    sandboxes, payment_template, location, coordinator, billing, tasks
):
    payment_template.charge_when = ChargeWhen.STAFF
    payment_template.charge_window_days = 30
    payment_template.save()
    case, patient = approve(sandboxes, location, coordinator, tasks)
    case = run_until_waiting(tasks, case)
    assert case.state == CaseState.AWAITING_PRODUCTION
    assert case.state_reason == reasons.waiting_for_charge_now()
    # Posted treatment does not end this wait: only Charge now does.
    post_production(sandboxes, patient["patient_id"])
    assert services.check_posted_production(case.pk) == "waiting_for_staff"

    today = local_today(location)
    with pytest.raises(services.InvalidTransition, match="more than 30 days away"):
        services.charge_now(case.pk, treatment_day=today + timedelta(days=31), actor=billing)
    with pytest.raises(services.InvalidTransition, match="Only billing staff"):
        services.charge_now(case.pk, treatment_day=today + timedelta(days=30), actor=coordinator)
    case.refresh_from_db()
    assert case.state == CaseState.AWAITING_PRODUCTION
    assert lender_transactions(sandboxes) == [] and not Purchase.objects.filter(case=case).exists()
    assert tasks.queue == []

    services.charge_now(case.pk, treatment_day=today + timedelta(days=30), actor=billing)
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED, case.state_reason
    assert case.purchase.charged_by == billing
    assert len(lender_transactions(sandboxes)) == 1
    [entry] = LogEntry.objects.filter(object_id=str(case.pk), user=billing)
    assert entry.change_message.startswith("Charge now: $2,234.57 to CareCredit")
    # Charged once: a second click is refused.
    with pytest.raises(services.InvalidTransition):
        services.charge_now(case.pk, treatment_day=today, actor=billing)


def test_no_fee_rate_for_the_promotion_needs_attention_and_charges_nothing(
    sandboxes, payment_template, location, coordinator, billing, tasks
):
    payment_template.merchant_fee_rates = {"deferred_6": "5.90"}
    payment_template.save()
    case, patient = approve(sandboxes, location, coordinator, tasks)
    post_production(sandboxes, patient["patient_id"])
    case = run_until_waiting(tasks, case)
    assert case.state == CaseState.NEEDS_ATTENTION
    assert case.state_reason == reasons.no_fee_rate(case.get_promotion_display())
    assert reasons.kind_of(case.state_reason) == "no_fee_rate"
    assert lender_transactions(sandboxes) == []
    assert not Purchase.objects.filter(case=case).exists()
    assert ledger(sandboxes, patient["patient_id"]) == {"payments": [], "adjustments": []}


def test_a_purchase_whose_answer_is_lost_after_the_lender_committed_is_settled_by_lookup(
    sandboxes, payment_template, location, coordinator, tasks
):
    case, patient = approve(sandboxes, location, coordinator, tasks)
    post_production(sandboxes, patient["patient_id"])
    sandboxes.carecredit_fault(method="POST", path_prefix=TRANSACT, mode="drop", count=1)
    tasks.drain(include_delayed=False)
    case.refresh_from_db()
    assert case.state == CaseState.APPROVED
    assert case.purchase.status == Purchase.Status.UNKNOWN and case.purchase.attempts == 1
    assert len(lender_transactions(sandboxes)) == 1  # the lender did charge
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED, case.state_reason
    # Settled by the lookup: no second request, one transaction, one payment.
    assert case.purchase.attempts == 1
    [charged] = lender_transactions(sandboxes)
    assert charged["transactionId"] == case.purchase.lender_transaction_id
    assert len(ledger(sandboxes, patient["patient_id"])["payments"]) == 1


def test_a_posting_whose_answer_is_lost_is_adopted_by_its_marker(sandboxes, payment_template, location, coordinator, tasks):
    case, patient = approve(sandboxes, location, coordinator, tasks)
    post_production(sandboxes, patient["patient_id"])
    sandboxes.dentrix_fault(method="POST", path_prefix=f"/v1/patients/{patient['patient_id']}/payments", mode="drop", count=1)
    tasks.drain(include_delayed=False)
    case.refresh_from_db()
    assert case.state == CaseState.PURCHASED
    payment = LedgerPosting.objects.get(case=case, kind=LedgerPosting.Kind.PAYMENT)
    assert payment.write_status == WriteStatus.UNKNOWN
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED, case.state_reason
    payment.refresh_from_db()
    held = ledger(sandboxes, patient["patient_id"])
    assert len(held["payments"]) == 1 and len(held["adjustments"]) == 1
    assert payment.write_attempts == 1 and payment.pms_entry_id == held["payments"][0]["payment_id"]
    assert len(sandboxes.dentrix_requests("POST", f"/v1/patients/{patient['patient_id']}/payments")) == 1


def test_a_declined_purchase_needs_attention_with_the_lenders_reason_and_posts_nothing(
    sandboxes, payment_template, location, coordinator, billing, tasks
):
    # Another purchase on the same approval took most of it first (at the lender): ours is over.
    case, patient = approve(sandboxes, location, coordinator, tasks)
    post_production(sandboxes, patient["patient_id"])
    from financing import partners
    from financing.ports import PurchaseRequest

    partners.lender_for(location).purchase(PurchaseRequest(
        merchant_number=location.merchant_number, application_id=case.application_id, reference="elsewhere",
        idempotency_key="elsewhere-1", amount=D("2000.00"), promotion="deferred_12",
    ))
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.NEEDS_ATTENTION
    assert reasons.kind_of(case.state_reason) == "purchase_declined"
    assert "more than the $234.57 left" in case.state_reason
    assert case.purchase.status == Purchase.Status.DECLINED
    assert ledger(sandboxes, patient["patient_id"]) == {"payments": [], "adjustments": []}
    assert not LedgerPosting.objects.filter(case=case).exists()


def test_an_approval_expiring_unused_ends_the_case_and_tells_billing(
    sandboxes, payment_template, location, coordinator, billing, tasks
):
    case, patient = approve(sandboxes, location, coordinator, tasks)
    case = run_until_waiting(tasks, case)
    assert case.state == CaseState.AWAITING_PRODUCTION
    expires_on = case.decision.expires_on
    mail.outbox.clear()
    # On its last day it still stands; the day after, the sweep ends it.
    last_day = timezone.now() + (expires_on - local_today(location))
    assert services.expire_unused_approvals(now=last_day) == 0
    assert services.expire_unused_approvals(now=last_day + timedelta(days=1, hours=1)) == 1
    case.refresh_from_db()
    assert case.state == CaseState.EXPIRED
    day = f"{expires_on:%b} {expires_on.day}, {expires_on.year}"
    assert case.state_reason == f"The CareCredit approval expired unused on {day}."
    tasks.drain()
    assert [m.to for m in mail.outbox] == [[billing.email]]
    assert "Approval expired unused" in mail.outbox[0].subject
    assert lender_transactions(sandboxes) == []
    # Once is enough.
    assert services.expire_unused_approvals(now=last_day + timedelta(days=2)) == 0


def test_an_approved_arrangement_case_is_not_expired_by_the_calendar(sandboxes, template, location, coordinator, tasks):
    """Recorded as an arrangement, an approved case's step writes the arrangement (the
    practice charges the account itself): an approval's last day passing while that step
    waits for the PMS ends nothing."""
    case, _ = approve(sandboxes, location, coordinator, tasks)
    assert (case.recording, case.state) == (Recording.ARRANGEMENT, CaseState.APPROVED)
    later = timezone.now() + (case.decision.expires_on - local_today(location)) + timedelta(days=2)
    assert services.expire_unused_approvals(now=later) == 0
    case.refresh_from_db()
    assert case.state == CaseState.APPROVED


def test_changing_the_template_mid_flight_does_not_change_a_cases_recording(
    sandboxes, payment_template, location, coordinator, tasks
):
    case, patient = approve(sandboxes, location, coordinator, tasks)
    payment_template.recording = Recording.ARRANGEMENT
    payment_template.save()
    post_production(sandboxes, patient["patient_id"])
    tasks.drain()
    case.refresh_from_db()
    assert case.recording == Recording.PAYMENT
    assert case.state == CaseState.COMPLETED, case.state_reason
    assert len(lender_transactions(sandboxes)) == 1
    assert sandboxes.agreements(case.guarantor_id) == []
    # A case captured now follows the template as it is now.
    later, _ = approve(sandboxes, location, coordinator, tasks, last_name="Nguyen")
    assert later.recording == Recording.ARRANGEMENT


def test_an_arrangement_case_is_unchanged(sandboxes, template, location, coordinator, tasks):
    case, patient = approve(sandboxes, location, coordinator, tasks)
    assert case.recording == Recording.ARRANGEMENT and step_for(case) == "financing.write_arrangement"
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    assert len(sandboxes.agreements(case.guarantor_id)) == 1
    assert lender_transactions(sandboxes) == []
    assert not LedgerPosting.objects.filter(case=case).exists()


def test_the_sweeper_redrives_the_purchase_and_the_posting_steps_whose_message_was_lost(
    sandboxes, payment_template, location, coordinator, tasks, empty_queues
):
    case, patient = approve(sandboxes, location, coordinator, tasks)
    post_production(sandboxes, patient["patient_id"])
    tasks.queue.clear()  # the purchase step's message is lost
    later = timezone.now() + timedelta(minutes=5)
    assert services.stuck_cases(now=later) == [case.pk]
    services.redrive(case.pk)
    assert tasks.names() == ["financing.charge_purchase"]
    tasks.run_next()
    case.refresh_from_db()
    assert case.state == CaseState.PURCHASED
    tasks.queue.clear()  # and the posting step's too
    assert services.stuck_cases(now=timezone.now() + timedelta(minutes=5)) == [case.pk]
    services.redrive(case.pk)
    assert tasks.names() == ["financing.post_payment"]
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    assert len(lender_transactions(sandboxes)) == 1
