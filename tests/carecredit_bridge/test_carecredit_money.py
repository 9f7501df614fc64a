"""The CareCredit client's money calls against the sandbox, over real HTTP: purchase,
lookup by key, void, refund, the settlement report, and approval expiry.

Time is the sandbox's clock, moved to fixed moments of the lender's day (America/New_York),
so the tests pass at any hour: nothing here sleeps to make a day pass.
"""

from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import requests

from carecredit_bridge.client import CareCreditClient
from financing.ports import (
    AmbiguousWriteError,
    DecisionStatus,
    DeclineCode,
    PermanentPartnerError,
    PurchaseRequest,
    RefundRequest,
    TransactionKind,
    TransactionStatus,
)

D = Decimal
NY = ZoneInfo("America/New_York")
MERCHANT = "5348120000000001"


# --- helpers ----------------------------------------------------------------------------


def sandbox_now(sandbox) -> datetime:
    now = requests.get(f"{sandbox.base_url}/_sandbox/clock", timeout=5).json()["now"]
    return datetime.fromisoformat(now.replace("Z", "+00:00"))


def move_to(sandbox, day: date, at: str) -> None:
    """The sandbox clock to `at` ("HH:MM") of the lender's day `day` (never backwards)."""
    moment = datetime.combine(day, time.fromisoformat(at), NY).astimezone(timezone.utc)
    response = requests.post(f"{sandbox.base_url}/_sandbox/clock", json={"now": moment.isoformat()}, timeout=5)
    assert response.status_code == 200, response.text


def advance(sandbox, seconds: float) -> None:
    requests.post(f"{sandbox.base_url}/_sandbox/clock", json={"advance_seconds": seconds}, timeout=5).raise_for_status()


def add_fault(sandbox, **fault):
    response = requests.post(f"{sandbox.base_url}/_sandbox/faults", json=fault, timeout=5)
    assert response.status_code == 201, response.text


def transactions(sandbox):
    return requests.get(f"{sandbox.base_url}/_sandbox/transactions", timeout=5).json()


@pytest.fixture
def day(cc_sandbox) -> date:
    """Tomorrow on the lender's calendar, the sandbox clock at 10:00 New York time on it."""
    tomorrow = sandbox_now(cc_sandbox).astimezone(NY).date() + timedelta(days=1)
    move_to(cc_sandbox, tomorrow, "10:00")
    return tomorrow


@pytest.fixture
def approved(cc_client, cc_sandbox, new_application_request):
    """approved(amount) -> an APPROVED decision for `amount` (the sandbox decides it now)."""

    def make(amount="1500.00", last_name="Smith"):
        application = cc_client.create_application(new_application_request(last_name, amount))
        advance(cc_sandbox, 1)  # past the sandbox's 0.2 s decision delay, without waiting
        decision = cc_client.get_decision(application.application_id)
        assert decision.status == DecisionStatus.APPROVED
        return decision

    return make


def purchase_request(decision, key, amount, promotion="deferred_12", *, reference=None):
    return PurchaseRequest(
        merchant_number=MERCHANT,
        application_id=decision.application_id,
        reference=reference or f"CS-{key}",
        idempotency_key=key,
        amount=D(amount),
        promotion=promotion,
    )


def refund_request(purchase, key, amount):
    return RefundRequest(merchant_number=MERCHANT, purchase_id=purchase.transaction_id, idempotency_key=key, amount=D(amount))


# --- the approval's expiry ----------------------------------------------------------------


def test_an_approval_carries_its_expiry_30_lender_days_after_the_decision(cc_client, approved, day):
    decision = approved("1500.00")

    assert decision.expires_on == day + timedelta(days=30)


def test_an_undecided_application_has_no_expiry(cc_client, new_application_request, day):
    application = cc_client.create_application(new_application_request("Smith", "1500.00"))

    assert cc_client.get_decision(application.application_id).expires_on is None


def test_an_approval_can_be_charged_on_its_last_day_and_is_declined_the_day_after(cc_client, cc_sandbox, approved, day):
    on_time, too_late = approved("1500.00"), approved("1500.00")
    last_day = day + timedelta(days=30)

    move_to(cc_sandbox, last_day, "23:00")
    settled = cc_client.purchase(purchase_request(on_time, "on-time", "1000.00"))
    move_to(cc_sandbox, last_day + timedelta(days=1), "00:30")
    declined = cc_client.purchase(purchase_request(too_late, "too-late", "1000.00"))

    assert settled.status == TransactionStatus.SETTLED
    assert declined.status == TransactionStatus.DECLINED
    assert declined.decline_reason == f"The CareCredit approval expired on {last_day:%b} {last_day.day}, {last_day.year}"
    assert declined.decline_code == DeclineCode.APPROVAL_EXPIRED
    assert declined.authorization_code == ""
    assert cc_client.settlement_report(MERCHANT, last_day + timedelta(days=1)).lines == ()


# --- purchase -------------------------------------------------------------------------------


def test_a_purchase_settles_for_the_exact_amount(cc_client, cc_sandbox, approved, day):
    decision = approved("1500.00")

    transaction = cc_client.purchase(purchase_request(decision, "CS-1-purchase", "1234.56", reference="CS-1"))

    assert transaction.kind == TransactionKind.PURCHASE
    assert transaction.status == TransactionStatus.SETTLED
    assert transaction.amount == D("1234.56") and isinstance(transaction.amount, Decimal)
    assert (transaction.reference, transaction.idempotency_key, transaction.promotion) == (
        "CS-1", "CS-1-purchase", "deferred_12"
    )
    assert len(transaction.authorization_code) == 6 and transaction.authorization_code.isdigit()
    assert transaction.business_day == day
    assert transaction.created_at.tzinfo is not None
    assert (transaction.purchase_id, transaction.decline_reason, transaction.decline_code) == ("", "", None)
    [kept] = transactions(cc_sandbox)
    assert (kept["transactionId"], kept["amount"], kept["fee"]) == (transaction.transaction_id, "1234.56", "122.22")


def test_the_same_key_twice_is_one_transaction(cc_client, cc_sandbox, approved, day):
    decision = approved("1500.00")
    request = purchase_request(decision, "CS-2-purchase", "1000.00")

    first = cc_client.purchase(request)
    second = cc_client.purchase(request)

    assert second == first
    assert len(transactions(cc_sandbox)) == 1
    assert cc_client.settlement_report(MERCHANT, day).purchases == D("1000.00")


@pytest.mark.parametrize("mode", ["drop", "commit_then_error"])
def test_a_lost_answer_after_the_commit_is_found_by_its_key_and_never_charged_twice(cc_client, cc_sandbox, approved, day, mode):
    decision = approved("1500.00")
    request = purchase_request(decision, "CS-3-purchase", "1200.00")
    add_fault(cc_sandbox, method="POST", path_prefix="/v1/credit/transact", mode=mode)

    with pytest.raises(AmbiguousWriteError):
        cc_client.purchase(request)
    found = cc_client.find_transaction(MERCHANT, "CS-3-purchase")
    again = cc_client.purchase(request)

    assert found.status == TransactionStatus.SETTLED and found.amount == D("1200.00")
    assert again == found
    assert [t["clientTransId"] for t in transactions(cc_sandbox)] == ["CS-3-purchase"]
    assert cc_client.settlement_report(MERCHANT, day).purchases == D("1200.00")


def test_a_timed_out_purchase_sent_again_with_its_key_is_charged_once(cc_sandbox, cc_client, approved, day, wait_until):
    decision = approved("1500.00")
    request = purchase_request(decision, "CS-4-purchase", "700.00")
    config = cc_sandbox.app.config
    impatient = CareCreditClient(cc_sandbox.base_url, config.client_id, config.client_secret, read_timeout=0.3)
    add_fault(cc_sandbox, method="POST", path_prefix="/v1/credit/transact", mode="timeout", latency_ms=1500)

    with pytest.raises(AmbiguousWriteError):
        impatient.purchase(request)
    resent = cc_client.purchase(request)  # while the first one is still on its way in
    # The late first request then reaches the sandbox and finds the key taken.
    wait_until(lambda: any(
        entry["fault"] == "timeout" and entry["status"] == 200
        for entry in requests.get(f"{cc_sandbox.base_url}/_sandbox/requests", timeout=5).json()
    ), timeout=5)

    assert resent.status == TransactionStatus.SETTLED
    assert [t["transactionId"] for t in transactions(cc_sandbox)] == [resent.transaction_id]


def test_the_lookup_of_an_unused_key_finds_nothing(cc_client, day):
    assert cc_client.find_transaction(MERCHANT, "CS-never-purchase") is None


def test_more_than_is_left_of_the_approval_is_declined_and_refunds_give_room_back(cc_client, cc_sandbox, approved, day):
    decision = approved("1000.00")
    first = cc_client.purchase(purchase_request(decision, "a", "600.00"))

    over = cc_client.purchase(purchase_request(decision, "b", "500.00"))
    cc_client.refund(refund_request(first, "a-refund-1", "200.00"))
    within = cc_client.purchase(purchase_request(decision, "c", "500.00"))

    assert over.status == TransactionStatus.DECLINED
    assert over.decline_reason == "The purchase of $500.00 is more than the $400.00 left on the CareCredit approval"
    assert over.decline_code == DeclineCode.OVER_APPROVED_AMOUNT
    assert over.authorization_code == ""
    assert within.status == TransactionStatus.SETTLED
    assert cc_client.settlement_report(MERCHANT, day).purchases == D("1100.00")


def test_a_declined_purchase_is_kept_under_its_key(cc_client, cc_sandbox, approved, day):
    decision = approved("300.00")
    request = purchase_request(decision, "CS-5-purchase", "300.01")

    declined = cc_client.purchase(request)

    assert cc_client.find_transaction(MERCHANT, "CS-5-purchase") == declined
    assert cc_client.purchase(request) == declined
    assert len(transactions(cc_sandbox)) == 1


def test_an_application_that_is_not_approved_is_declined(cc_client, new_application_request, day):
    application = cc_client.create_application(new_application_request("Decline", "1500.00"))

    declined = cc_client.purchase(PurchaseRequest(MERCHANT, application.application_id, "CS-6", "CS-6-purchase", D("500.00"), "deferred_12"))

    assert declined.status == TransactionStatus.DECLINED
    assert declined.decline_reason == "The CareCredit application is not approved"
    assert declined.decline_code == DeclineCode.NOT_APPROVED


def test_a_promotion_not_offered_is_refused_and_leaves_the_key_free(cc_client, cc_sandbox, approved, day):
    decision = approved("800.00")  # reduced APR plans start at $1,000.00

    with pytest.raises(PermanentPartnerError) as refused:
        cc_client.purchase(purchase_request(decision, "CS-7-purchase", "800.00", "reduced_apr_36"))
    assert refused.value.status == 422
    assert str(refused.value) == "CareCredit does not offer a reduced APR for 36 months on this approval; nothing was charged"
    assert transactions(cc_sandbox) == []

    settled = cc_client.purchase(purchase_request(decision, "CS-7-purchase", "800.00", "deferred_6"))
    assert settled.status == TransactionStatus.SETTLED


def test_the_same_key_with_another_amount_is_refused_and_charges_nothing_more(cc_client, cc_sandbox, approved, day):
    decision = approved("1500.00")
    cc_client.purchase(purchase_request(decision, "CS-8-purchase", "1000.00"))

    with pytest.raises(PermanentPartnerError) as refused:
        cc_client.purchase(purchase_request(decision, "CS-8-purchase", "1100.00"))

    assert refused.value.status == 409
    assert "already has a different transaction under this key" in str(refused.value)
    assert [t["amount"] for t in transactions(cc_sandbox)] == ["1000.00"]


def test_a_cardholder_confirmation_is_charged_like_an_approval(cc_client, day):
    from financing.ports import Address, CardholderRequest

    confirmation = cc_client.confirm_cardholder(CardholderRequest(
        merchant_number=MERCHANT, reference="CS-9", requested_amount=D("2400.00"), first_name="Zelda",
        last_name="Cardholder", birth_date=date(1971, 3, 9), address=Address("742 Evergreen Terrace", "Shelbyville", "IL", "62565"),
    ))
    assert confirmation.decision.expires_on == day + timedelta(days=30)

    charged = cc_client.purchase(PurchaseRequest(
        MERCHANT, confirmation.decision.application_id, "CS-9", "CS-9-purchase", D("2400.00"), "reduced_apr_48"
    ))

    assert (charged.status, charged.amount, charged.promotion) == (TransactionStatus.SETTLED, D("2400.00"), "reduced_apr_48")


# --- void -------------------------------------------------------------------------------


def test_a_purchase_voided_on_its_own_day_is_never_funded(cc_client, cc_sandbox, approved, day):
    decision = approved("1500.00")
    purchase = cc_client.purchase(purchase_request(decision, "CS-10-purchase", "900.00"))
    move_to(cc_sandbox, day, "23:59")

    voided = cc_client.void(MERCHANT, purchase.transaction_id)
    again = cc_client.void(MERCHANT, purchase.transaction_id)

    assert (voided.transaction_id, voided.status, voided.amount) == (purchase.transaction_id, TransactionStatus.VOIDED, D("900.00"))
    assert again == voided
    assert cc_client.find_transaction(MERCHANT, "CS-10-purchase").status == TransactionStatus.VOIDED
    report = cc_client.settlement_report(MERCHANT, day)
    assert (report.lines, report.purchases, report.fees, report.net) == ((), D("0.00"), D("0.00"), D("0.00"))


def test_a_purchase_cannot_be_voided_once_its_day_has_closed(cc_client, cc_sandbox, approved, day):
    decision = approved("1500.00")
    purchase = cc_client.purchase(purchase_request(decision, "CS-11-purchase", "900.00"))
    move_to(cc_sandbox, day + timedelta(days=1), "00:01")

    with pytest.raises(PermanentPartnerError) as refused:
        cc_client.void(MERCHANT, purchase.transaction_id)

    assert refused.value.status == 422
    assert str(refused.value) == (
        f"CareCredit can no longer void this purchase: its business day ({day:%b} {day.day}, {day.year}) "
        "has closed; refund it instead"
    )
    assert cc_client.find_transaction(MERCHANT, "CS-11-purchase").status == TransactionStatus.SETTLED
    assert cc_client.settlement_report(MERCHANT, day).purchases == D("900.00")


# --- refunds ----------------------------------------------------------------------------


def test_partial_and_full_refunds_and_never_more_than_is_left(cc_client, cc_sandbox, approved, day):
    decision = approved("1500.00")
    purchase = cc_client.purchase(purchase_request(decision, "CS-12-purchase", "1000.00", reference="CS-12"))

    partial = cc_client.refund(refund_request(purchase, "CS-12-refund-1", "250.00"))
    with pytest.raises(PermanentPartnerError) as refused:
        cc_client.refund(refund_request(purchase, "CS-12-refund-2", "750.01"))
    refused_lookup = cc_client.find_transaction(MERCHANT, "CS-12-refund-2")
    rest = cc_client.refund(refund_request(purchase, "CS-12-refund-2", "750.00"))
    with pytest.raises(PermanentPartnerError) as nothing_left:
        cc_client.refund(refund_request(purchase, "CS-12-refund-3", "0.01"))

    assert (partial.kind, partial.status, partial.amount, partial.purchase_id, partial.reference) == (
        TransactionKind.REFUND, TransactionStatus.SETTLED, D("250.00"), purchase.transaction_id, "CS-12"
    )
    assert partial.authorization_code == ""
    assert str(refused.value) == "CareCredit refused the refund: only $750.00 of the purchase is left to refund"
    assert refused.value.status == 422
    assert refused_lookup is None
    assert rest.amount == D("750.00")
    assert str(nothing_left.value) == "CareCredit refused the refund: only $0.00 of the purchase is left to refund"
    assert cc_client.refund(refund_request(purchase, "CS-12-refund-1", "250.00")) == partial
    assert [t["amount"] for t in transactions(cc_sandbox) if t["type"] == "REFUND"] == ["250.00", "750.00"]


def test_a_refunded_purchase_can_no_longer_be_voided(cc_client, approved, day):
    decision = approved("1500.00")
    purchase = cc_client.purchase(purchase_request(decision, "CS-13-purchase", "1000.00"))
    cc_client.refund(refund_request(purchase, "CS-13-refund-1", "10.00"))

    with pytest.raises(PermanentPartnerError, match="part of it was already refunded"):
        cc_client.void(MERCHANT, purchase.transaction_id)


def test_a_voided_purchase_cannot_be_refunded(cc_client, approved, day):
    decision = approved("1500.00")
    purchase = cc_client.purchase(purchase_request(decision, "CS-14-purchase", "1000.00"))
    cc_client.void(MERCHANT, purchase.transaction_id)

    with pytest.raises(PermanentPartnerError, match="it was voided or declined"):
        cc_client.refund(refund_request(purchase, "CS-14-refund-1", "10.00"))
    assert cc_client.find_transaction(MERCHANT, "CS-14-refund-1") is None


def test_a_dropped_refund_is_found_by_its_key_and_made_once(cc_client, cc_sandbox, approved, day):
    decision = approved("1500.00")
    purchase = cc_client.purchase(purchase_request(decision, "CS-15-purchase", "1000.00"))
    request = refund_request(purchase, "CS-15-refund-1", "400.00")
    add_fault(cc_sandbox, method="POST", path_prefix="/v1/credit/transact", mode="drop")

    with pytest.raises(AmbiguousWriteError):
        cc_client.refund(request)
    found = cc_client.find_transaction(MERCHANT, "CS-15-refund-1")

    assert (found.kind, found.amount, found.purchase_id) == (TransactionKind.REFUND, D("400.00"), purchase.transaction_id)
    assert cc_client.refund(request) == found
    assert cc_client.settlement_report(MERCHANT, day).refunds == D("400.00")


# --- the settlement report ----------------------------------------------------------------


def test_the_daily_report_totals_to_the_cent_without_voided_or_declined_purchases(cc_client, cc_sandbox, approved, day):
    requests.put(
        f"{cc_sandbox.base_url}/_sandbox/merchants/{MERCHANT}/fee-rates", json={"DI24": "10.50"}, timeout=5
    ).raise_for_status()
    a, b, c, e, f = (approved(amount) for amount in ("1234.56", "2000.00", "333.33", "999.99", "500.00"))
    pa = cc_client.purchase(purchase_request(a, "A", "1234.56", "deferred_12", reference="CS-A"))  # fee 9.90% 122.22
    pb = cc_client.purchase(purchase_request(b, "B", "2000.00", "reduced_apr_36", reference="CS-B"))  # 7.90% 158.00
    pc = cc_client.purchase(purchase_request(c, "C", "333.33", "deferred_6", reference="CS-C"))  # 5.90% 19.67
    pe = cc_client.purchase(purchase_request(e, "E", "999.99", "deferred_24", reference="CS-E"))  # 10.50% 105.00
    pf = cc_client.purchase(purchase_request(f, "F", "500.00", "deferred_18", reference="CS-F"))
    cc_client.void(MERCHANT, pf.transaction_id)
    declined = cc_client.purchase(purchase_request(f, "G", "500.01", "deferred_18", reference="CS-G"))
    refund = cc_client.refund(refund_request(pb, "B-refund-1", "100.00"))
    # The next day: a refund of the first purchase, on the next day's report only.
    move_to(cc_sandbox, day + timedelta(days=1), "09:00")
    late_refund = cc_client.refund(refund_request(pa, "A-refund-1", "50.00"))

    report = cc_client.settlement_report(MERCHANT, day)
    next_day = cc_client.settlement_report(MERCHANT, day + timedelta(days=1))

    assert declined.status == TransactionStatus.DECLINED
    assert [(line.transaction_id, line.kind, line.reference, line.amount, line.fee, line.net, line.promotion) for line in report.lines] == [
        (pa.transaction_id, TransactionKind.PURCHASE, "CS-A", D("1234.56"), D("122.22"), D("1112.34"), "deferred_12"),
        (pb.transaction_id, TransactionKind.PURCHASE, "CS-B", D("2000.00"), D("158.00"), D("1842.00"), "reduced_apr_36"),
        (pc.transaction_id, TransactionKind.PURCHASE, "CS-C", D("333.33"), D("19.67"), D("313.66"), "deferred_6"),
        (pe.transaction_id, TransactionKind.PURCHASE, "CS-E", D("999.99"), D("105.00"), D("894.99"), "deferred_24"),
        (refund.transaction_id, TransactionKind.REFUND, "CS-B", D("100.00"), D("0.00"), D("-100.00"), "reduced_apr_36"),
    ]
    assert report.lines[-1].purchase_id == pb.transaction_id
    assert (report.merchant_number, report.day) == (MERCHANT, day)
    assert (report.purchases, report.refunds, report.fees, report.net) == (
        D("4567.88"), D("100.00"), D("404.89"), D("4062.99")
    )
    assert [(line.transaction_id, line.net) for line in next_day.lines] == [(late_refund.transaction_id, D("-50.00"))]
    assert (next_day.purchases, next_day.refunds, next_day.fees, next_day.net) == (
        D("0.00"), D("50.00"), D("0.00"), D("-50.00")
    )


def test_the_report_holds_only_the_merchants_own_transactions(cc_client, approved, day):
    decision = approved("1500.00")
    cc_client.purchase(purchase_request(decision, "CS-16-purchase", "1000.00"))

    other = cc_client.settlement_report("5348120000000999", day)

    assert (other.merchant_number, other.lines, other.net) == ("5348120000000999", (), D("0.00"))
