"""The practice's own remainder: the in-house terms for what CareCredit did not approve.

Pure Python (no Django), on `terms.py`'s arithmetic. When a case records CareCredit as a
payment and the location carries the shortfall itself (Shortfall.IN_HOUSE), the shortfall
(plan total − requested down payment − what CareCredit is charged) becomes a monthly
in-house payment arrangement under the group's in-house terms: the most months, the APR,
the smallest payment.

The rule for the number of payments (level monthly payments, `terms.amortized_payment`:
amount ÷ months rounded up to the cent at 0%, amortised otherwise):

- as many months as the terms allow (up to `max_months`) while the level payment stays at
  least `min_payment`: a practice that sets "at most 12 months, at least $50 a month" gives
  $500 ten payments of $50.00 and $1,000 twelve of $83.34; the count is the fewest months
  at which the payment would otherwise drop below the smallest payment (the largest
  count whose payment is still ≥ it);
- a shortfall smaller than the smallest payment is one payment of the whole (where
  possible: nothing smaller can meet the minimum);
- the last payment absorbs the cent rounding (`terms.reschedule`'s schedule).

The agreement covers the whole plan like every arrangement Chairside writes, so products
that build a plan over the treatment's procedures see their full fees: its total is the
plan total and its down payment everything paid otherwise (the patient's down payment and
the CareCredit purchase); what it finances is the shortfall.

Public API: `in_house_terms(...) -> Terms`, `payments_for(...) -> int`,
`IN_HOUSE_PROMOTION`, `describe(terms) -> str`, `summary(arrangement) -> str`.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from financing.terms import (
    MAX_PAYMENTS,
    Terms,
    TermsError,
    amortized_payment,
    first_payment_date,
    money,
    reschedule,
)

IN_HOUSE_PROMOTION = "in_house"


def payments_for(shortfall: Decimal, *, apr: Decimal, max_months: int, min_payment: Decimal) -> int:
    """How many monthly payments carry `shortfall` (the rule in the module docstring)."""
    if not 1 <= max_months <= MAX_PAYMENTS:
        raise TermsError(f"An in-house plan runs 1 to {MAX_PAYMENTS} months, not {max_months}.")
    count = 1
    for months in range(2, max_months + 1):
        if amortized_payment(shortfall, apr, months) < min_payment:
            break  # the payment only falls as the term grows
        count = months
    return count


def in_house_terms(
    *,
    plan_total: Decimal,
    shortfall: Decimal,
    apr: Decimal,
    max_months: int,
    min_payment: Decimal,
    start: date,
    first_payment_offset_days: int | None = None,
    first_payment_day_of_month: int | None = None,
) -> Terms:
    """The in-house arrangement for `shortfall` of a `plan_total` plan, the first payment per
    the template's rule counted from `start` (the day the purchase was made). TermsError
    with a clerk's reason when no schedule fits."""
    if not isinstance(shortfall, Decimal) or not isinstance(plan_total, Decimal):
        raise TypeError("amounts must be Decimal")
    if shortfall <= 0:
        raise TermsError(f"There is no remainder for the practice to carry ({money(shortfall)}).")
    if shortfall > plan_total:
        raise TermsError(f"The remainder ({money(shortfall)}) is more than the plan ({money(plan_total)}).")
    count = payments_for(shortfall, apr=Decimal(apr), max_months=max_months, min_payment=Decimal(min_payment))
    first_due = first_payment_date(start, offset_days=first_payment_offset_days, day_of_month=first_payment_day_of_month)
    return reschedule(
        plan_total=plan_total,
        down_payment=plan_total - shortfall,
        apr=Decimal(apr),
        first_payment_date=first_due,
        promotion=IN_HOUSE_PROMOTION,
        number_of_payments=count,
    )


def describe(terms) -> str:
    """What the practice carries, in words: "In-house: 6 payments of $83.34 (last $83.30) at
    0.00% APR". `terms`: a Terms or a stored PaymentArrangement (both name their count,
    payments and APR); the first due date, shown on the location's clock, is the caller's."""
    count = terms.number_of_payments
    text = f"{count} payment{'s' if count != 1 else ''} of {money(terms.recurring_amount)}"
    if count > 1 and terms.final_payment != terms.recurring_amount:
        text += f" (last {money(terms.final_payment)})"
    return f"In-house: {text} at {terms.apr:.2f}% APR"


def summary(arrangement) -> str:
    """What the practice carries, for the coordinator's confirmation and the ledger note:
    "In-house: 6 payments of $83.34 (last $83.30) at 0.00% APR, first due Feb 3, 2027";
    "" for no arrangement or one that is not in-house (PaymentArrangement.Kind)."""
    if arrangement is None or arrangement.kind != "in_house":  # PaymentArrangement.Kind.IN_HOUSE
        return ""
    from financing import display  # Django's date formats: only when a stored arrangement is shown

    return f"{describe(arrangement)}, first due {display.day(arrangement.first_payment_date)}"
