"""Financing terms: from a lender's decision to the numbers of a payment arrangement.

Pure Python (no Django): given the plan total, the down payment the patient asked for,
the amount the lender approved and the promotion chosen, compute what is financed, the
recurring payment, the number of payments, the APR, the finance charge and the full
monthly schedule. See DESIGN.md, "Financing terms".

Money is `Decimal`, in cents, rounded ROUND_HALF_UP. Floats are refused. Every
computation runs in a local decimal context, so the caller's context never matters.

Public API:

- `compute_terms(...) -> Terms` (raises `TermsError`)
- `fit_level_payment(terms) -> Terms`: the terms for a PMS that never charges more than the
  level payment (Open Dental)
- `reschedule(...) -> Terms`: the arrangement again from terms as the PMS holds them, after
  a correction (raises `TermsError`)
- `first_payment_date(decision_date, *, offset_days=30, day_of_month=None) -> date`
- `amortized_payment(principal, apr, months) -> Decimal`
- `due_dates(first_due, count) -> tuple[date, ...]` (monthly, month-end clamped)
- `Terms`, `Installment`, `TermsError`
- `DEFERRED_MONTHS`, `REDUCED_APR_MONTHS`, `DEFERRED_MINIMUM_PAYMENT`, `MAX_REDUCED_APR`
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Context, Decimal, InvalidOperation, localcontext

from financing.ports import Interval, Offer, PromotionKind

__all__ = [
    "DEFERRED_MINIMUM_PAYMENT",
    "DEFERRED_MONTHS",
    "MAX_PAYMENTS",
    "MAX_REDUCED_APR",
    "REDUCED_APR_MONTHS",
    "Installment",
    "Terms",
    "TermsError",
    "amortized_payment",
    "compute_terms",
    "due_dates",
    "first_payment_date",
    "fit_level_payment",
    "reschedule",
]

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
DEFERRED_MONTHS = frozenset({6, 12, 18, 24})
REDUCED_APR_MONTHS = frozenset({24, 36, 48, 60})
DEFERRED_MINIMUM_PAYMENT = Decimal("30.00")
MAX_REDUCED_APR = Decimal("40")
DEFAULT_OFFSET_DAYS = 30
MAX_OFFSET_DAYS = 365
MAX_PAYMENTS = 120  # the longest agreement a correction may describe (ten years of months)

# Enough digits for any realistic amount, and for (1 + r)^-N to be exact to the cent.
_CONTEXT = Context(prec=40, rounding=ROUND_HALF_UP)


class TermsError(ValueError):
    """The decision cannot become an arrangement; .reason is a sentence a billing clerk understands."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Installment:
    number: int  # 1-based
    due_date: date
    amount: Decimal
    principal: Decimal
    interest: Decimal
    balance_after: Decimal


@dataclass(frozen=True)
class Terms:
    plan_total: Decimal
    down_payment: Decimal
    financed_amount: Decimal
    recurring_amount: Decimal  # every payment but the last
    number_of_payments: int
    final_payment: Decimal  # the last payment (may differ from recurring_amount)
    frequency: Interval
    first_payment_date: date
    apr: Decimal  # annual percentage, two places: Decimal("17.90"), Decimal("0.00")
    total_of_payments: Decimal  # sum of the schedule (excludes the down payment)
    finance_charge: Decimal  # total_of_payments - financed_amount
    promotion: str  # the offer code, e.g. "deferred_12"
    schedule: tuple[Installment, ...]


# --- helpers ------------------------------------------------------------------------------


def money(amount: Decimal | None) -> str:
    """$1,234.50 / -$5.00 — for messages; "" for no amount."""
    if amount is None:
        return ""
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"


def _cents(amount: Decimal, rounding: str = ROUND_HALF_UP) -> Decimal:
    with localcontext(_CONTEXT):
        result = amount.quantize(CENT, rounding=rounding)
    return ZERO if result == 0 else result  # never -0.00


def _amount(value: object, label: str) -> Decimal:
    """Validate a money input: a finite Decimal (or int) with at most two decimals."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise TypeError(f"{label} must be a Decimal, not {type(value).__name__}")
    value = Decimal(value)
    if not value.is_finite():
        raise TermsError(f"The {label} ({value}) is not an amount of money.")
    try:
        cents = _cents(value)
    except InvalidOperation:
        raise TermsError(f"The {label} ({value}) is not an amount of money.") from None
    if cents != value:
        raise TermsError(
            f"The {label} ({value}) has more than two decimal places: amounts are in dollars and cents."
        )
    return cents


def _add_months(anchor: date, months: int) -> date:
    """The anchor's day `months` later, clamped to the last day of a shorter month."""
    index = anchor.year * 12 + (anchor.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    last_day = calendar.monthrange(year, month)[1]
    return date(year, month, min(anchor.day, last_day))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- dates --------------------------------------------------------------------------------


def first_payment_date(
    decision_date: date, *, offset_days: int | None = DEFAULT_OFFSET_DAYS, day_of_month: int | None = None
) -> date:
    """When the first monthly payment is due.

    With `day_of_month` (1–28): the next occurrence of that day strictly after the decision
    date (it wins over `offset_days`). Otherwise the decision date plus `offset_days`
    (30 when None). Raises TermsError for a day outside 1–28 or an offset outside 0–365.
    """
    if day_of_month is not None:
        if not _is_int(day_of_month) or not 1 <= day_of_month <= 28:
            raise TermsError(
                f"The first payment day of the month must be between 1 and 28, not {day_of_month}."
            )
        candidate = decision_date.replace(day=day_of_month)
        if candidate <= decision_date:
            candidate = _add_months(candidate, 1)
        return candidate
    if offset_days is None:
        offset_days = DEFAULT_OFFSET_DAYS
    if not _is_int(offset_days) or not 0 <= offset_days <= MAX_OFFSET_DAYS:
        raise TermsError(
            f"The first payment must fall 0 to {MAX_OFFSET_DAYS} days after the decision, not {offset_days}."
        )
    return decision_date + timedelta(days=offset_days)


def due_dates(first_due: date, count: int) -> tuple[date, ...]:
    """`count` monthly due dates anchored on `first_due`'s day (31 Jan → 28/29 Feb → 31 Mar)."""
    return tuple(_add_months(first_due, k) for k in range(count))


# --- payments -----------------------------------------------------------------------------


def amortized_payment(principal: Decimal, apr: Decimal, months: int) -> Decimal:
    """The fixed monthly payment P·r / (1 − (1 + r)^−N), r = APR/1200, ROUND_HALF_UP to the cent.

    With an APR of 0 it is principal / months rounded *up* to the cent (so N payments cover it).
    """
    if not _is_int(months) or months <= 0:
        raise ValueError(f"months must be a positive integer, not {months!r}")
    principal = Decimal(principal)
    apr = Decimal(apr)
    if apr < 0:
        raise ValueError(f"apr cannot be negative, not {apr}")
    with localcontext(_CONTEXT):
        if apr == 0:
            return _cents(principal / months, ROUND_CEILING)
        r = apr / Decimal(1200)
        payment = principal * r / (1 - (1 + r) ** -months)
    return _cents(payment)


def _monthly_interest(balance: Decimal, apr: Decimal) -> Decimal:
    # balance × APR / 1200 rather than balance × r: r is a repeating decimal, and an exact
    # half cent must round up, not be truncated to x.xx4999….
    with localcontext(_CONTEXT):
        return _cents(balance * apr / Decimal(1200))


# --- terms --------------------------------------------------------------------------------


def _terms(plan_total: Decimal, down_payment: Decimal, recurring: Decimal, apr: Decimal, promotion: str, schedule) -> Terms:
    """The Terms of a schedule: its count, last payment, first due date and totals."""
    financed = plan_total - down_payment
    total_of_payments = sum((row.amount for row in schedule), ZERO)
    return Terms(
        plan_total=plan_total,
        down_payment=down_payment,
        financed_amount=financed,
        recurring_amount=recurring,
        number_of_payments=len(schedule),
        final_payment=schedule[-1].amount,
        frequency=Interval.MONTHLY,
        first_payment_date=schedule[0].due_date,
        apr=apr,
        total_of_payments=total_of_payments,
        finance_charge=total_of_payments - financed,
        promotion=promotion,
        schedule=schedule,
    )



def _promotion_name(offer: Offer) -> str:
    if offer.kind == PromotionKind.DEFERRED:
        return f"{offer.months}-month deferred interest"
    return f"{offer.months}-month reduced APR ({offer.apr:.2f}%)"


def _validate_offer(offer: Offer) -> Decimal:
    """Check the promotion; return its APR as used by the arrangement."""
    try:
        kind = PromotionKind(offer.kind)
    except ValueError:
        raise TermsError(f"The promotion “{offer.code}” is of a kind Chairside does not support.") from None
    if kind == PromotionKind.DEFERRED:
        if offer.months not in DEFERRED_MONTHS:
            raise TermsError(
                f"A deferred-interest promotion runs 6, 12, 18 or 24 months, not {offer.months}."
            )
        return ZERO  # 0% during the promotion, whatever the post-promotion rate
    if offer.months not in REDUCED_APR_MONTHS:
        raise TermsError(f"A reduced-APR promotion runs 24, 36, 48 or 60 months, not {offer.months}.")
    apr = Decimal(offer.apr)
    if not apr.is_finite() or apr <= 0 or apr > MAX_REDUCED_APR:
        raise TermsError(
            f"A reduced-APR promotion needs an APR above 0% and at most {MAX_REDUCED_APR}%, "
            f"not {apr}%."
        )
    if _cents(apr) != apr:
        raise TermsError(f"The promotion's APR ({apr}%) has more than two decimal places.")
    return _cents(apr)


class _PaidOffEarly(Exception):
    """The balance would be paid off before the last payment: too many payments for the amount."""


def _level_schedule(financed: Decimal, apr: Decimal, payment: Decimal, count: int, dates_from: date):
    """`count` monthly payments of `payment`, interest accrued each month on the balance
    (rounded each month), the last paying off the exact balance: it absorbs the rounding.
    Raises _PaidOffEarly when the balance would be paid off before the last payment."""
    rows = []
    balance = financed
    for number, due in enumerate(due_dates(dates_from, count), start=1):
        interest = _monthly_interest(balance, apr)
        if number < count:
            amount = payment
            principal = payment - interest
            if principal >= balance:
                raise _PaidOffEarly
        else:
            principal = balance
            amount = balance + interest
        balance -= principal
        rows.append(Installment(number, due, amount, principal, interest, _cents(balance)))
    return tuple(rows)


def _deferred_schedule(financed: Decimal, months: int, dates_from: date):
    recurring = max(amortized_payment(financed, ZERO, months), DEFERRED_MINIMUM_PAYMENT)
    with localcontext(_CONTEXT):
        count = int((financed / recurring).to_integral_value(rounding=ROUND_CEILING))
    # ceil(financed / recurring) payments always leave a positive balance for the last one.
    return recurring, _level_schedule(financed, ZERO, recurring, count, dates_from)


def _reduced_apr_schedule(financed: Decimal, apr: Decimal, months: int, dates_from: date):
    payment = amortized_payment(financed, apr, months)
    too_small = TermsError(
        f"{money(financed)} is too small to spread over {months} monthly payments at {apr}%."
    )
    if payment <= _monthly_interest(financed, apr):  # only with a tiny amount and no minimum
        raise too_small
    try:
        return payment, _level_schedule(financed, apr, payment, months, dates_from)
    except _PaidOffEarly:  # cent rounding would overpay before the last month
        raise too_small from None


def compute_terms(
    *,
    plan_total: Decimal,
    requested_down_payment: Decimal,
    approved_amount: Decimal,
    offer: Offer,
    decision_date: date,
    first_payment_offset_days: int | None = DEFAULT_OFFSET_DAYS,
    first_payment_day_of_month: int | None = None,
) -> Terms:
    """The arrangement for a decision, or TermsError with a reason a billing clerk understands.

    financed = min(plan total − requested down payment, approved amount); the down payment is
    the rest of the plan (a partial approval moves the shortfall onto the down payment).
    """
    plan_total = _amount(plan_total, "plan total")
    requested_down_payment = _amount(requested_down_payment, "requested down payment")
    approved_amount = _amount(approved_amount, "approved amount")

    if plan_total <= 0:
        raise TermsError(f"The plan total ({money(plan_total)}) must be more than $0.00.")
    if requested_down_payment < 0:
        raise TermsError(
            f"The requested down payment ({money(requested_down_payment)}) cannot be negative."
        )
    if requested_down_payment >= plan_total:
        raise TermsError(
            f"The requested down payment ({money(requested_down_payment)}) covers the whole plan "
            f"({money(plan_total)}): there is nothing to finance."
        )
    if approved_amount <= 0:
        raise TermsError(f"The approved amount ({money(approved_amount)}) must be more than $0.00.")

    apr = _validate_offer(offer)

    financed = min(plan_total - requested_down_payment, approved_amount)
    down_payment = plan_total - financed
    min_amount = _cents(Decimal(offer.min_amount))
    if financed < min_amount:
        raise TermsError(
            f"{money(financed)} financed is below the {money(min_amount)} minimum "
            f"for {_promotion_name(offer)}."
        )

    first_due = first_payment_date(
        decision_date, offset_days=first_payment_offset_days, day_of_month=first_payment_day_of_month
    )

    if offer.kind == PromotionKind.DEFERRED:
        recurring, schedule = _deferred_schedule(financed, offer.months, first_due)
    else:
        recurring, schedule = _reduced_apr_schedule(financed, apr, offer.months, first_due)

    return _terms(plan_total, down_payment, recurring, apr, offer.code, schedule)


# --- terms as the PMS holds them ------------------------------------------------------------


def _payments_needed(financed: Decimal, apr: Decimal, payment: Decimal) -> int:
    """How many monthly payments of `payment` pay `financed` off: at 0%, as many as it takes
    (the last one the remainder); with interest, the term whose amortised payment it is
    (to the cent, as the PMS checks it). MAX_PAYMENTS + 1 when no term up to the maximum."""
    if apr == 0:
        with localcontext(_CONTEXT):
            return int((financed / payment).to_integral_value(rounding=ROUND_CEILING))
    # The amortised payment falls as the term grows: the first term it reaches is the one.
    for count in range(1, MAX_PAYMENTS + 1):
        if amortized_payment(financed, apr, count) <= payment + CENT:
            return count
    return MAX_PAYMENTS + 1


def _misfit(financed: Decimal, apr: Decimal, payment: Decimal, count: int) -> str:
    """Why `count` level payments of `payment` do not pay `financed` off the way the PMS
    checks an agreement, or "" when they do: at 0% the last payment is the remainder, more
    than nothing and no more than the others; with interest, the payment is the amortised
    one to the cent."""
    if apr == 0:
        if payment * count < financed:
            return f"{count} payments of {money(payment)} pay {money(payment * count)} of the {money(financed)} financed."
        if payment * (count - 1) >= financed:
            return f"{count} payments of {money(payment)} pay more than the {money(financed)} financed: {count - 1} already cover it."
        return ""
    level = amortized_payment(financed, apr, count)
    if abs(payment - level) > CENT:
        return f"At {apr}%, {count} payments pay off {money(financed)} with {money(level)} a month, not {money(payment)}."
    return ""


def fit_level_payment(terms: Terms) -> Terms:
    """The terms for a PMS that charges the level payment until the plan is paid and never
    more (Open Dental): where the payment rounded half up rounded down, the last payment
    is the largest and such a PMS would add one more payment of a few cents. The payment
    becomes the smallest cent above it whose last payment is no larger (a cent or two), the
    number of payments kept; the schedule, totals and finance charge follow. Terms whose
    last payment is no larger come back as they are."""
    if terms.final_payment <= terms.recurring_amount:
        return terms
    payment = terms.recurring_amount
    for _ in range(_MAX_FIT_CENTS):
        payment += CENT
        try:
            fitted = reschedule(
                plan_total=terms.plan_total, down_payment=terms.down_payment, apr=terms.apr,
                first_payment_date=terms.first_payment_date, promotion=terms.promotion,
                payment=payment, number_of_payments=terms.number_of_payments,
            )
        except TermsError:
            return terms  # no level payment fits: the PMS's rules say so before anything is written
        if fitted.final_payment <= fitted.recurring_amount:
            return fitted
    return terms


_MAX_FIT_CENTS = 100  # at most a dollar above the standard payment


def reschedule(
    *,
    plan_total: Decimal,
    down_payment: Decimal,
    apr: Decimal,
    first_payment_date: date,
    promotion: str,
    payment: Decimal | None = None,
    number_of_payments: int | None = None,
) -> Terms:
    """The whole arrangement from terms as the PMS holds them (after a billing clerk
    corrected one there), or TermsError with a reason a clerk understands.

    Like a PMS's agreement screen, it works out the one the caller leaves out: the number
    of payments from the payment (as many as pay the amount off), or the payment from the
    number of payments (the level payment: amount ÷ months rounded up at 0%, amortised
    otherwise). Given both, they must fit each other. The schedule, the last payment, the
    total of payments and the finance charge always follow, with the month-by-month
    arithmetic of `compute_terms`.
    """
    plan_total = _amount(plan_total, "plan total")
    down_payment = _amount(down_payment, "down payment")
    apr = _cents(Decimal(apr))
    if down_payment < 0:
        raise TermsError(f"The down payment ({money(down_payment)}) cannot be negative.")
    financed = plan_total - down_payment
    if financed <= 0:
        raise TermsError(
            f"A down payment of {money(down_payment)} covers the whole plan ({money(plan_total)}): "
            "there would be nothing to finance."
        )
    if apr < 0:
        raise TermsError(f"The APR cannot be negative, not {apr}%.")
    if payment is None and number_of_payments is None:
        raise ValueError("give the payment, the number of payments or both")
    if payment is None:
        payment = amortized_payment(financed, apr, number_of_payments)
    payment = _amount(payment, "payment")
    if payment <= 0:
        raise TermsError("The payment must be more than $0.00.")
    if payment <= _monthly_interest(financed, apr):
        raise TermsError(
            f"A payment of {money(payment)} never pays off {money(financed)} at {apr}%: "
            "each month's interest is more than the payment."
        )
    if payment > financed and number_of_payments is None:
        raise TermsError(f"A payment of {money(payment)} is more than the {money(financed)} financed.")
    if number_of_payments is None:
        number_of_payments = _payments_needed(financed, apr, payment)
        if number_of_payments > MAX_PAYMENTS:
            raise TermsError(
                f"Payments of {money(payment)} would take more than {MAX_PAYMENTS} months to pay off "
                f"{money(financed)}."
            )
    if not _is_int(number_of_payments) or not 1 <= number_of_payments <= MAX_PAYMENTS:
        raise TermsError(f"The number of payments must be 1 to {MAX_PAYMENTS}, not {number_of_payments}.")
    misfit = _misfit(financed, apr, payment, number_of_payments)
    if misfit:
        raise TermsError(misfit)
    try:
        schedule = _level_schedule(financed, apr, payment, number_of_payments, first_payment_date)
    except _PaidOffEarly:  # only a tiny amount over many months at interest
        raise TermsError(
            f"{money(financed)} is too small to spread over {number_of_payments} monthly payments at {apr}%."
        ) from None
    return _terms(plan_total, down_payment, payment, apr, promotion, schedule)
