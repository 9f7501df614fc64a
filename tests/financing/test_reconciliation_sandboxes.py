"""Reconciliation over real HTTP: the CareCredit sandbox's settlement report and the Dentrix
sandbox's ledger, read by the real clients through the partner registry.

The money is made at the partners for real (purchases, a void, a refund through the
CareCredit client; payments and adjustments through the Dentrix client); Chairside's rows
are written straight to the database as the flow would leave them. The sandbox's clock is
moved to 10:00 New York time tomorrow, so the lender's day is fixed whatever the hour.
"""

import time as clock
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import requests

from financing import partners
from financing.models import CaseState, FinancedCase, LedgerPosting, Purchase, ReconciliationItem
from financing.ports import Address, Applicant, ApplicationRequest, DecisionStatus, PurchaseRequest, RefundRequest
from financing.services import reconciliation
from financing.services.posting import request_for
from tests.conftest import make_location
from tests.financing.recon_factories import charged_case, refunded

D = Decimal
NY = ZoneInfo("America/New_York")
MERCHANT = "5348120000000001"
Outcome = ReconciliationItem.Outcome
pytestmark = pytest.mark.django_db


def _clock_to(sandbox, day: date, at: str):
    moment = datetime.combine(day, time.fromisoformat(at), NY).astimezone(timezone.utc)
    requests.post(f"{sandbox.base_url}/_sandbox/clock", json={"now": moment.isoformat()}, timeout=5).raise_for_status()


def _approved(lender, sandboxes, amount: str) -> str:
    request = ApplicationRequest(
        merchant_number=MERCHANT, reference=f"recon-{clock.monotonic_ns()}", requested_amount=D(amount),
        applicant=Applicant(first_name="Ava", last_name="Smith", birth_date=date(1980, 4, 12), phone="+15555550188",
                            email="canary.patient@example.com", address=Address(line1="12 Elm St", city="Springfield", state="IL", zip="62701")),
        callback_url="",
    )
    application = lender.create_application(request)
    requests.post(f"{sandboxes.carecredit_url}/_sandbox/clock", json={"advance_seconds": 1}, timeout=5).raise_for_status()
    decision = lender.get_decision(application.application_id)
    assert decision.status == DecisionStatus.APPROVED
    return application.application_id


def _charge(location, sandboxes, case, amount):
    lender = partners.lender_for(location)
    transaction = lender.purchase(PurchaseRequest(
        merchant_number=MERCHANT, application_id=_approved(lender, sandboxes, amount), reference=case.reference,
        idempotency_key=f"{case.reference}-purchase", amount=D(amount), promotion="deferred_12",
    ))
    Purchase.objects.filter(case=case).update(lender_transaction_id=transaction.transaction_id, business_day=transaction.business_day)
    return transaction


def _post_all(location, case):
    pms = partners.pms_for(location)
    for posting in LedgerPosting.objects.filter(case=case):
        entry = pms.post_ledger_entry(request_for(case, posting))
        LedgerPosting.objects.filter(pk=posting.pk).update(pms_entry_id=entry.entry_id)


def _patient(location, sandboxes, case):
    patient = sandboxes.new_patient("Smith")
    FinancedCase.objects.filter(pk=case.pk).update(patient_id=patient["patient_id"], guarantor_id=patient.get("guarantor_id") or patient["patient_id"])
    case.refresh_from_db()
    return case


def test_a_day_at_the_sandboxes_with_one_match_and_one_of_each_exception(template, sandboxes):
    location = make_location(template, sandboxes)
    now = datetime.fromisoformat(requests.get(f"{sandboxes.carecredit_url}/_sandbox/clock", timeout=5).json()["now"].replace("Z", "+00:00"))
    day = now.astimezone(NY).date() + timedelta(days=1)
    _clock_to(sandboxes.carecredit, day, "10:00")

    # A: charged $2,000.00 at 9.90% (the sandbox's example table), payment and fee posted, a
    # $250.00 refund made and posted.
    a, purchase_a = charged_case(location, gross=D("2000.00"), day=day, txn="")
    a = _patient(location, sandboxes, a)
    txn_a = _charge(location, sandboxes, a, "2000.00")
    refund_txn = partners.lender_for(location).refund(RefundRequest(MERCHANT, txn_a.transaction_id, f"{a.reference}-refund-1", D("250.00")))
    refunded(a, purchase_a, amount=D("250.00"), day=day, txn=refund_txn.transaction_id)
    _post_all(location, a)
    # B: charged $1,500.00, never posted (stopped after the charge).
    b, _ = charged_case(location, gross=D("1500.00"), day=day, txn="", state=CaseState.PURCHASED, post=())
    b = _patient(location, sandboxes, b)
    _charge(location, sandboxes, b, "1500.00")
    # C: charged $900.00 and posted, then voided at the lender the same day (Chairside never learnt).
    c, _ = charged_case(location, gross=D("900.00"), day=day, txn="")
    c = _patient(location, sandboxes, c)
    txn_c = _charge(location, sandboxes, c, "900.00")
    partners.lender_for(location).void(MERCHANT, txn_c.transaction_id)
    _post_all(location, c)
    # D: the lender's agreement says 10.90% for deferred_12 now; the template still 9.90%.
    requests.put(f"{sandboxes.carecredit_url}/_sandbox/merchants/{MERCHANT}/fee-rates", json={"DI12": "10.90"}, timeout=5).raise_for_status()
    d, _ = charged_case(location, gross=D("3000.00"), day=day, txn="")
    d = _patient(location, sandboxes, d)
    _charge(location, sandboxes, d, "3000.00")
    _post_all(location, d)
    _clock_to(sandboxes.carecredit, day + timedelta(days=1), "07:00")  # the day is over at the lender

    run = reconciliation.reconcile_day(MERCHANT, day)

    assert run.error == ""
    assert (run.purchases, run.fees, run.refunds, run.net) == (D("6500.00"), D("673.50"), D("250.00"), D("5576.50"))
    items = {(i.case.reference, i.transaction_kind): i for i in run.items.select_related("case")}
    assert {k: v.outcome for k, v in items.items()} == {
        (a.reference, "purchase"): Outcome.MATCHED,
        (a.reference, "refund"): Outcome.MATCHED,
        (b.reference, "purchase"): Outcome.MISSING_IN_PMS,
        (c.reference, "purchase"): Outcome.MISSING_AT_LENDER,
        (d.reference, "purchase"): Outcome.AMOUNT_DIFFERS,
    }
    matched = items[(a.reference, "purchase")]
    assert (matched.lender_amount, matched.lender_fee, matched.ledger_amount, matched.ledger_fee) == (D("2000.00"), D("198.00"), D("2000.00"), D("198.00"))
    differs = items[(d.reference, "purchase")]
    assert (differs.lender_fee, differs.ledger_fee) == (D("327.00"), D("297.00"))
    assert items[(b.reference, "purchase")].lender_fee == D("148.50")
