"""The money, end to end (issue 15's "Done when"): a real Celery worker with beat, the web
app, the CareCredit and Dentrix sandboxes over HTTP, at a location that records CareCredit
as a payment.

- approval → the treatment posted → the purchase → the payment (net) and the merchant fee
  (−fee) posted → the ledger note → the settlement report matched;
- a partial approval whose rest the practice carries on an in-house plan;
- a refund (the lender's, then the refund adjustment), reconciled on the same day's report;
- an ambiguous purchase (the lender committed, the answer was lost) settled by lookup,
  never a second charge;
- an approval that expires unused: reported, nothing charged;
- a reconciliation run with one of each outcome.
"""

from datetime import timedelta
from decimal import Decimal as D

import pytest
import requests
from django.utils import timezone

from financing import partners
from financing.demo.money import EXAMPLE_FEE_RATES
from financing.models import (
    CaseState,
    FinancedCase,
    LedgerPosting,
    Membership,
    Purchase,
    Recording,
    Refund,
    Shortfall,
    TemplateOverride,
)
from financing.ports import PurchaseRequest
from financing.services import reconciliation
from financing.services.purchase import expire_unused_approvals
from financing.services.refunds import request_refund
from notifications.models import Notification
from tests.conftest import dentrix_get, make_location, make_user
from tests.test_integration import wait_for, worker  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def quick_production_checks(monkeypatch):
    """The worker (started after this fixture) looks for posted treatment every second, and
    looks up a lost write's outcome after 2 s."""
    monkeypatch.setenv("PRODUCTION_CHECK_SECONDS", "1")
    monkeypatch.setenv("AMBIGUOUS_WRITE_SETTLE_SECONDS", "2")


@pytest.fixture
def paying(template, sandboxes):
    """A location recording CareCredit as a payment, carrying a partial approval's rest in house,
    at the example merchant fee rates (the sandbox's default agreement charges the same)."""
    template.merchant_fee_rates = dict(EXAMPLE_FEE_RATES)
    template.save()
    location = make_location(template, sandboxes, code="north")
    TemplateOverride.objects.create(location=location, recording=Recording.PAYMENT, shortfall=Shortfall.IN_HOUSE)
    location.nora = make_user("nora", location)
    location.bill = make_user("bill", location, role=Membership.Role.BILLING)
    return location


def start(api_user, location, patient, promotion="deferred_12") -> int:
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(api_user)
    response = api.post("/api/v1/cases/", {
        "location": location.code, "patient_id": patient["patient_id"], "treatment_plan_id": patient["treatment_plan_id"],
        "promotion": promotion,
    }, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def state_of(case_id) -> str:
    return FinancedCase.objects.get(pk=case_id).state


def post_treatment(sandboxes, patient):
    requests.post(f"{sandboxes.dentrix_url}/_sandbox/patients/{patient['patient_id']}/post-production", json={},
                  timeout=5).raise_for_status()


def ledger(sandboxes, patient_id) -> list[tuple]:
    """The patient's payments and adjustments in the Dentrix sandbox: (kind, amount, type, note)."""
    rows = []
    for kind in ("payment", "adjustment"):
        for entry in dentrix_get(sandboxes, f"/v1/patients/{patient_id}/{kind}s"):
            rows.append((kind, D(entry["amount"]), entry[f"{kind}_type"], entry["note"]))
    return rows


def lender_transactions(sandboxes) -> list[dict]:
    return requests.get(f"{sandboxes.carecredit_url}/_sandbox/transactions", timeout=5).json()


def transact_posts(sandboxes) -> int:
    log = requests.get(f"{sandboxes.carecredit_url}/_sandbox/requests", timeout=5).json()
    return sum(1 for r in log if r["method"] == "POST" and r["path"] == "/v1/credit/transact")


def fee(amount: str, rate: str) -> D:
    return (D(amount) * D(rate) / 100).quantize(D("0.01"), rounding="ROUND_HALF_UP")


def test_the_money_end_to_end(quick_production_checks, worker, sandboxes, paying):  # noqa: F811
    _, log = worker
    nora, bill = paying.nora, paying.bill
    full = sandboxes.new_patient("Thompson", fees=("1250.00", "1250.00"))
    partial = sandboxes.new_patient("Partial-Nguyen", fees=("1250.00", "1250.00"))
    ambiguous = sandboxes.new_patient("Rivera", fees=("1000.00",))
    cases = {name: start(nora, paying, patient) for name, patient in
             (("full", full), ("partial", partial), ("ambiguous", ambiguous))}

    # Approved, the cases wait for the treatment: nothing is charged before it is posted.
    wait_for(lambda: all(state_of(c) == CaseState.AWAITING_PRODUCTION for c in cases.values()), 60, log)
    assert lender_transactions(sandboxes) == [] and not Purchase.objects.exists()
    assert ledger(sandboxes, full["patient_id"]) == []

    # The treatment posted: charged, posted, the note, completed.
    post_treatment(sandboxes, full)
    post_treatment(sandboxes, partial)
    wait_for(lambda: state_of(cases["full"]) == state_of(cases["partial"]) == CaseState.COMPLETED, 60, log)

    case = FinancedCase.objects.get(pk=cases["full"])
    purchase = case.purchase
    assert case.recording == Recording.PAYMENT
    assert (purchase.status, purchase.amount, purchase.fee_rate, purchase.merchant_fee, purchase.net_amount) == (
        "settled", D("2500.00"), D("9.900"), D("247.50"), D("2252.50"))
    assert purchase.idempotency_key == f"{case.reference}-purchase" and purchase.attempts == 1
    assert case.purchased_at < case.posted_at < case.completed_at
    assert sorted(ledger(sandboxes, full["patient_id"])) == sorted([
        ("payment", D("2252.50"), "CareCredit Payment", f"[chairside:{case.reference}/payment] CareCredit payment {case.reference}"),
        ("adjustment", D("-247.50"), "CareCredit Merchant Fee",
         f"[chairside:{case.reference}/merchant_fee] CareCredit merchant fee {case.reference}"),
    ])
    assert len(sandboxes.ledger_notes(full["patient_id"])) == 1
    assert sandboxes.agreements(full["guarantor_id"]) == []  # nothing the practice carries
    assert not hasattr(case, "arrangement") or case.arrangement is None

    # The partial approval: $1,500.00 charged, the $1,000.00 rest on the practice's own plan.
    case_p = FinancedCase.objects.get(pk=cases["partial"])
    assert (case_p.purchase.amount, case_p.purchase.merchant_fee) == (D("1500.00"), D("148.50"))
    assert sorted((k, a) for k, a, *_ in ledger(sandboxes, partial["patient_id"])) == [
        ("adjustment", D("-148.50")), ("payment", D("1351.50"))]
    in_house = case_p.arrangement
    assert (in_house.kind, in_house.financed_amount, in_house.write_status) == ("in_house", D("1000.00"), "written")
    [agreement] = sandboxes.agreements(partial["guarantor_id"])
    assert agreement["agreement_id"] == in_house.pms_arrangement_id and case_p.marker in agreement["note"]

    # The ambiguous purchase: the lender commits, then the answer is lost. The lookup finds it.
    sandboxes.carecredit_fault(method="POST", path_prefix="/v1/credit/transact", mode="commit_then_error", count=1)
    post_treatment(sandboxes, ambiguous)
    wait_for(lambda: state_of(cases["ambiguous"]) == CaseState.COMPLETED, 90, log)
    case_a = FinancedCase.objects.get(pk=cases["ambiguous"])
    mine = [t for t in lender_transactions(sandboxes) if t["clientTransId"] == f"{case_a.reference}-purchase"]
    assert len(mine) == 1 and mine[0]["status"] == "SETTLED" and D(mine[0]["amount"]) == D("1000.00")
    assert case_a.purchase.lender_transaction_id == mine[0]["transactionId"]
    assert case_a.purchase.attempts >= 1
    # Never a second charge: one transact POST per purchase (the lost one resolved by lookup).
    assert transact_posts(sandboxes) == 3
    assert sorted((k, a) for k, a, *_ in ledger(sandboxes, ambiguous["patient_id"])) == [
        ("adjustment", D("-99.00")), ("payment", D("901.00"))]

    # A refund: a procedure not done. The lender first, then the refund adjustment (+amount).
    refund = request_refund(cases["full"], amount="250.00", why="One crown was not placed.", actor=bill)
    wait_for(lambda: Refund.objects.get(pk=refund.pk).status == Refund.Status.REFUNDED
             and LedgerPosting.objects.filter(refund=refund, write_status="written").exists(), 60, log)
    assert ("adjustment", D("250.00"), "CareCredit Refund") in [r[:3] for r in ledger(sandboxes, full["patient_id"])]
    refunds = [t for t in lender_transactions(sandboxes) if t["type"] == "REFUND"]
    assert len(refunds) == 1 and D(refunds[0]["amount"]) == D("250.00")

    # The day's settlement report, matched line by line to the cent.
    run = reconciliation.reconcile_day(paying.merchant_number, purchase.business_day)
    assert (run.purchases, run.refunds, run.fees, run.net) == (
        D("5000.00"), D("250.00"), D("495.00"), D("5000.00") - D("495.00") - D("250.00"))
    assert sorted((i.case_id, i.transaction_kind, i.outcome) for i in run.items.all()) == sorted([
        (cases["full"], "purchase", "matched"), (cases["partial"], "purchase", "matched"),
        (cases["ambiguous"], "purchase", "matched"), (cases["full"], "refund", "matched"),
    ])


def test_an_approval_that_expires_unused_is_reported(quick_production_checks, worker, sandboxes, paying):  # noqa: F811
    _, log = worker
    nora = paying.nora
    patient = sandboxes.new_patient("Thompson", fees=("900.00",))
    case_id = start(nora, paying, patient)
    wait_for(lambda: state_of(case_id) == CaseState.AWAITING_PRODUCTION, 60, log)
    case = FinancedCase.objects.get(pk=case_id)
    expires_on = case.decision.expires_on
    assert expires_on is not None and expires_on > timezone.localdate()

    # Until its last day the sweep leaves it waiting; the day after, it is expired and reported.
    assert expire_unused_approvals(now=timezone.now()) == 0
    after = timezone.now() + timedelta(days=(expires_on - timezone.localdate()).days + 2)
    assert expire_unused_approvals(now=after) == 1
    case.refresh_from_db()
    assert case.state == CaseState.EXPIRED
    assert case.state_reason == f"The CareCredit approval expired unused on {expires_on:%b} {expires_on.day}, {expires_on.year}."
    assert Notification.objects.filter(reference=case.reference, template="case_approval_expired").exists()
    # Nothing was charged, and the treatment posted afterwards charges nothing either.
    post_treatment(sandboxes, patient)
    assert expire_unused_approvals(now=after) == 0
    assert lender_transactions(sandboxes) == [] and not Purchase.objects.exists()
    assert ledger(sandboxes, patient["patient_id"]) == []


def test_a_reconciliation_run_with_one_of_each_outcome(quick_production_checks, worker, sandboxes, paying, template):  # noqa: F811
    _, log = worker
    nora = paying.nora
    # Another location on the same merchant account, recording the CareCredit schedule.
    other = make_location(template, sandboxes, code="main")
    cora = make_user("cora", other)
    patients = {name: sandboxes.new_patient("Thompson", fees=(fees,), first_name=name)
                for name, fees in (("Ann", "1000.00"), ("Bea", "800.00"), ("Cal", "600.00"))}
    outside = sandboxes.new_patient("Thompson", fees=("700.00",), first_name="Dee")
    cases = {name: start(nora, paying, patient) for name, patient in patients.items()}
    walk_in = start(cora, other, outside)
    wait_for(lambda: all(state_of(c) == CaseState.AWAITING_PRODUCTION for c in cases.values())
             and state_of(walk_in) == CaseState.COMPLETED, 60, log)

    # Ann and Cal charged at the agreement's rates; Cal's purchase then voided at CareCredit
    # (someone in its portal): the report does not have it.
    post_treatment(sandboxes, patients["Ann"])
    post_treatment(sandboxes, patients["Cal"])
    wait_for(lambda: state_of(cases["Ann"]) == state_of(cases["Cal"]) == CaseState.COMPLETED, 60, log)
    lender = partners.lender_for(paying)
    cal = FinancedCase.objects.get(pk=cases["Cal"])
    lender.void(paying.merchant_number, cal.purchase.lender_transaction_id)
    # CareCredit's rate for Bea's promotion changed; the template still says 9.90%.
    requests.put(f"{sandboxes.carecredit_url}/_sandbox/merchants/{paying.merchant_number}/fee-rates",
                 json={"DI12": "10.90"}, timeout=5).raise_for_status()
    post_treatment(sandboxes, patients["Bea"])
    wait_for(lambda: state_of(cases["Bea"]) == CaseState.COMPLETED, 60, log)
    # A purchase made outside Chairside, on the walk-in's approval (the other location records
    # the schedule, so Chairside charged nothing for it).
    dee = FinancedCase.objects.get(pk=walk_in)
    lender.purchase(PurchaseRequest(
        merchant_number=paying.merchant_number, application_id=dee.application_id, reference="FRONT-DESK-7",
        idempotency_key="front-desk-7", amount=D("700.00"), promotion="deferred_12",
    ))

    run = reconciliation.reconcile_day(paying.merchant_number, FinancedCase.objects.get(pk=cases["Ann"]).purchase.business_day)
    outcomes = {(i.case_id, i.outcome) for i in run.items.all()}
    assert outcomes == {
        (cases["Ann"], "matched"),
        (cases["Bea"], "amount_differs"),
        (cases["Cal"], "missing_at_lender"),
        (None, "missing_in_pms"),  # the outside purchase: no Chairside case
    }
    assert run.items.count() == 4
    # The report's totals: Ann's and Bea's purchases and the outside one (Cal's was voided).
    assert run.purchases == D("2500.00")
    assert run.fees == fee("1000.00", "9.90") + fee("800.00", "10.90") + fee("700.00", "10.90")  # after the change
    assert run.net == run.purchases - run.fees
    bea = run.items.get(case_id=cases["Bea"])
    assert (bea.lender_fee, bea.ledger_fee) == (D("87.20"), D("79.20"))
    assert "9.90% in the template" in bea.detail
