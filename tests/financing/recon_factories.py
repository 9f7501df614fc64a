"""Cases charged to CareCredit and posted to the ledger, written straight to the database
(the flow's tests prove the services make such rows), for the reconciliation tests."""

from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from financing.markers import posting_marker
from financing.models import CaseState, LedgerPosting, Purchase, Recording, Refund, WriteStatus
from tests.console.console_factories import make_case

D = Decimal
NY = ZoneInfo("America/New_York")


def fee_of(gross: Decimal, rate: Decimal) -> Decimal:
    return (gross * rate / 100).quantize(D("0.01"), rounding=ROUND_HALF_UP)


def charged_case(location, *, gross, rate=D("9.90"), day: date, txn: str, state=CaseState.COMPLETED,
                 post=("payment", "merchant_fee")):
    """A case charged `gross` on the lender's business day `day` (transaction `txn`), with the
    postings named in `post` written (their PMS entries are the test's to make)."""
    case = make_case(location, state=state, plan_total=gross)
    type(case).objects.filter(pk=case.pk).update(recording=Recording.PAYMENT)
    fee = fee_of(gross, rate)
    purchase = Purchase.objects.create(
        case=case, idempotency_key=f"{case.reference}-purchase", amount=gross, promotion="deferred_12",
        fee_rate=rate, merchant_fee=fee, net_amount=gross - fee, status=Purchase.Status.SETTLED, attempts=1,
        lender_transaction_id=txn, authorization_code="A1", business_day=day,
        charged_at=datetime.combine(day, time(11), tzinfo=NY),
    )
    for kind in post:
        if kind == "payment":
            posting(case, LedgerPosting.Kind.PAYMENT, "payment", "CareCredit Payment", gross - fee, day)
        else:
            posting(case, LedgerPosting.Kind.MERCHANT_FEE, "adjustment", "CareCredit Merchant Fee", -fee, day)
    case.refresh_from_db()
    return case, purchase


def posting(case, kind, entry_kind, type_name, amount, day, refund=None, number=None):
    marker = posting_marker(case.reference, kind, number)
    return LedgerPosting.objects.create(
        case=case, refund=refund, kind=kind, entry_kind=entry_kind, type_name=type_name, amount=amount,
        entry_date=day, marker=marker, note=f"CareCredit {marker}", pms_entry_id="",
        write_status=WriteStatus.WRITTEN, write_attempts=1,
    )


def refunded(case, purchase, *, amount, day: date, txn: str, post=True):
    refund = Refund.objects.create(
        case=case, purchase=purchase, idempotency_key=f"{case.reference}-refund-1", amount=amount, why="Crown not placed",
        status=Refund.Status.REFUNDED, attempts=1, lender_transaction_id=txn,
        refunded_at=datetime.combine(day, time(14), tzinfo=NY),
    )
    if post:
        posting(case, LedgerPosting.Kind.REFUND, "adjustment", "CareCredit Refund", amount, day, refund=refund, number=1)
    return refund
