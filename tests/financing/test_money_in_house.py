"""The practice's own remainder over HTTP: a partial approval, CareCredit charged what it
approved, and the rest carried by an in-house payment arrangement in the PMS sandbox."""

from datetime import timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.utils import timezone

from financing.models import CaseState, PaymentArrangement, WriteStatus
from notifications.sms import LocmemBackend
from tests.financing.money_cases import approved_case, charge, ledger, payment_template, post

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_partial_approval_leaves_the_practice_an_in_house_arrangement(sandboxes, location, template, coordinator, tasks):
    payment_template(template, shortfall="in_house", in_house_max_months=6, in_house_min_payment=D("50.00"))
    # $1,250.00 plan; the Partial persona approves 60%: $750.00 charged, $500.00 left.
    case = approved_case(sandboxes, location, coordinator, tasks, surname="Partial-Nguyen", fees=("625.00", "625.00"))
    assert case.decision.approved_amount == D("750.00")
    purchase = charge(case)
    assert (purchase.amount, purchase.merchant_fee, purchase.net_amount) == (D("750.00"), D("74.25"), D("675.75"))

    assert post(case, tasks) == "posted"
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED

    a = case.arrangement
    today = timezone.localdate(purchase.charged_at, ZoneInfo(location.timezone))
    assert a.kind == PaymentArrangement.Kind.IN_HOUSE and a.write_status == WriteStatus.WRITTEN and a.verified_at
    assert (a.plan_total, a.down_payment, a.financed_amount) == (D("1250.00"), D("750.00"), D("500.00"))
    assert (a.number_of_payments, a.recurring_amount, a.final_payment, a.apr) == (6, D("83.34"), D("83.30"), D("0.00"))
    assert a.first_payment_date == today + timedelta(days=30)

    [stored] = sandboxes.agreements(case.guarantor_id)
    assert stored["agreement_id"] == a.pms_arrangement_id and case.marker in stored["note"]
    assert (stored["total_agreed_amount"], stored["down_payment"], stored["payment_amount"]) == ("1250.00", "750.00", "83.34")
    assert (stored["number_of_payments"], stored["annual_finance_charge_pct"]) == (6, "0.00")
    assert stored["first_payment_due"] == a.first_payment_date.isoformat()

    payments, adjustments = ledger(sandboxes, case.patient_id)
    assert [(p["amount"], p["payment_type"]) for p in payments] == [("675.75", "CareCredit Payment")]
    assert [(x["amount"], x["adjustment_type"]) for x in adjustments] == [("-74.25", "CareCredit Merchant Fee")]

    first_due = a.first_payment_date.strftime("%b %-d, %Y")
    in_house = f"In-house: 6 payments of $83.34 (last $83.30) at 0.00% APR, first due {first_due}"
    [note] = sandboxes.ledger_notes(case.patient_id)
    assert in_house in note["text"] and case.marker in note["text"]
    assert len(mail.outbox) == 1 and in_house in mail.outbox[0].body
    assert "The practice carries the rest" in mail.outbox[0].body and "Down payment at the office: $0.00" in mail.outbox[0].body
    assert len(LocmemBackend.outbox) == 1 and in_house in LocmemBackend.outbox[0]["body"]


def test_with_the_down_payment_way_nothing_in_house_is_written(sandboxes, location, template, coordinator, tasks):
    payment_template(template, shortfall="down_payment")
    case = approved_case(sandboxes, location, coordinator, tasks, surname="Partial-Ruiz", fees=("625.00", "625.00"))
    charge(case)
    assert post(case, tasks) == "posted"
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    assert not PaymentArrangement.objects.filter(case=case).exists()
    assert sandboxes.agreements(case.guarantor_id) == []
    assert "In-house" not in mail.outbox[0].body


def test_an_ambiguous_in_house_write_is_adopted_by_its_marker_never_written_twice(sandboxes, location, template, coordinator, tasks):
    payment_template(template, shortfall="in_house", in_house_max_months=6)
    case = approved_case(sandboxes, location, coordinator, tasks, surname="Partial-Okafor", fees=("625.00", "625.00"))
    charge(case)
    sandboxes.dentrix_fault(path_prefix="/v1/accounts", method="POST", mode="commit_then_error", count=1)
    assert post(case, tasks) == "retry"
    case.refresh_from_db()
    assert case.state == CaseState.PURCHASED and case.arrangement.write_status == WriteStatus.UNKNOWN
    sandboxes.clear_faults()
    case.__class__.objects.filter(pk=case.pk).update(next_attempt_at=None)
    assert post(case, tasks) == "posted"
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED and case.arrangement.write_status == WriteStatus.WRITTEN
    assert len(sandboxes.agreements(case.guarantor_id)) == 1
    payments, adjustments = ledger(sandboxes, case.patient_id)
    assert (len(payments), len(adjustments)) == (1, 1)
