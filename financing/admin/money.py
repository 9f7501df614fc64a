"""The case page's money box (Recording.PAYMENT): what was (or would be) charged, the fee and
what the practice gets, the purchase at the lender, each posting in the PMS, and whether
*Charge now* is offered."""

from dataclasses import dataclass, field
from decimal import Decimal

from ..models import CaseState, LedgerPosting, Recording, effective_template, related_or_none
from ..services.purchase import charge_now_problem, gross_amount, may_charge_now, merchant_fee


@dataclass
class MoneyBox:
    gross: Decimal | None = None
    fee_rate: Decimal | None = None
    fee: Decimal | None = None
    net: Decimal | None = None
    purchase: object = None
    postings: list = field(default_factory=list)
    can_charge_now: bool = False
    charge_window_days: int = 0
    estimate: bool = False  # not charged yet: the figures are what would be charged now
    no_rate: bool = False


def money_box(case, user, *, can_change: bool) -> MoneyBox | None:
    if case.recording != Recording.PAYMENT:
        return None
    template = effective_template(case.location)
    purchase = related_or_none(case, "purchase")
    box = MoneyBox(
        purchase=purchase,
        postings=list(LedgerPosting.objects.filter(case=case).order_by("pk")),
        charge_window_days=template.charge_window_days,
    )
    if purchase is not None:
        box.gross, box.fee_rate, box.fee, box.net = purchase.amount, purchase.fee_rate, purchase.merchant_fee, purchase.net_amount
    else:
        decision = related_or_none(case, "decision")
        if decision is not None and decision.approved_amount is not None:
            box.estimate = True
            box.gross = gross_amount(case)
            box.fee_rate = template.merchant_fee_rate(case.promotion)
            box.no_rate = box.fee_rate is None
            if not box.no_rate:
                box.fee = merchant_fee(box.gross, box.fee_rate)
                box.net = box.gross - box.fee
    box.can_charge_now = (
        can_change
        and case.state in (CaseState.APPROVED, CaseState.AWAITING_PRODUCTION)
        and may_charge_now(user, case)
        and not charge_now_problem(case)
    )
    return box
