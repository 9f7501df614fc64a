"""Open Dental's arithmetic for a Dynamic payment plan: the charges it will post.

Open Dental stores a Dynamic plan's terms (PayAmt, APR, DownPayment, ChargeFrequency,
DatePayPlanStart, DateInterestStart; the principal is the linked production) and posts
its charges over time; it never stores the number of payments (NumberOfPayments is 0).
So "how many payments, and how much is the last" is worked out here, the way Open Dental
works it out (OD src, branch 24_3, OpenDentBusiness/Db Multi Table/PayPlanEdit.cs:
GetListExpectedCharges, CalculateInterestAmountForPeriod, CalculatePrincipalAmountForPeriod,
CalcPeriodRate, CalcNextPeriodDate):

- what the payments carry is the principal less the down payment (the down payment is
  its own charge, on the day the plan is made);
- each period's interest is the principal still to be charged × APR / 100 / periods a
  year (52 weekly, 26 every other week, 12 monthly, 4 quarterly), rounded to the cent
  (`Math.Round`: half to even), from DateInterestStart on;
- each period charges PayAmt, interest first, until what is left plus its interest fits
  in one payment: that last charge is the rest, so it is never larger than the others;
- due dates are DatePayPlanStart plus k weeks / 2k weeks / k months / 3k months, each
  counted from the first date (the 31st falls back to a shorter month's last day and
  returns to the 31st after);
- terms whose payment does not cover a period's interest are invalid ("This payment
  plan will never be paid off...").

Money is Decimal throughout (Open Dental computes in doubles; the two agree to the cent
except on an exact half cent, where a double may already lie on either side).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal, localcontext

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
MAX_CHARGES = 2000  # Open Dental stops there too ("ceiling of payplan charges")

# ChargeFrequency → periods a year (CalcPeriodRate). OrdinalWeekday ("the second Tuesday
# of each month") is monthly for interest.
PERIODS_PER_YEAR = {"Weekly": 52, "EveryOtherWeek": 26, "Monthly": 12, "OrdinalWeekday": 12, "Quarterly": 4}
FREQUENCIES = tuple(PERIODS_PER_YEAR)


class NeverPaidOff(ValueError):
    """The payment does not cover a period's interest: Open Dental refuses the terms."""


@dataclass(frozen=True)
class Charge:
    number: int  # 1-based
    due: date
    principal: Decimal
    interest: Decimal

    @property
    def amount(self) -> Decimal:
        return self.principal + self.interest


def add_months(anchor: date, months: int) -> date:
    """.NET's DateTime.AddMonths: the anchor's day, clamped to a shorter month's end."""
    index = anchor.year * 12 + anchor.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(anchor.day, calendar.monthrange(year, month + 1)[1]))


def ordinal_of_month(day: date) -> int:
    """Which weekday of its month `day` is (1–4; a fifth counts as the fourth), as Open Dental reads it."""
    for weeks, ordinal in ((4, 4), (3, 4), (2, 3), (1, 2)):
        if (day - timedelta(days=7 * weeks)).month == day.month:
            return ordinal
    return 1


def due_date(first: date, period: int, frequency: str) -> date:
    """The due date of period `period` (0-based), CalcNextPeriodDate."""
    if frequency == "Weekly":
        return first + timedelta(days=7 * period)
    if frequency == "EveryOtherWeek":
        return first + timedelta(days=14 * period)
    if frequency == "Quarterly":
        return add_months(first, 3 * period)
    if frequency == "OrdinalWeekday":
        month = add_months(first, period)
        first_of_month = month.replace(day=1)
        offset = (first.weekday() - first_of_month.weekday()) % 7
        return first_of_month + timedelta(days=offset + 7 * (ordinal_of_month(first) - 1))
    return add_months(first, period)  # Monthly


def period_interest(balance: Decimal, apr: Decimal, frequency: str) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 40
        return (balance * apr / Decimal(100) / Decimal(PERIODS_PER_YEAR[frequency])).quantize(CENT, rounding=ROUND_HALF_EVEN)


def charges(
    financed: Decimal,
    apr: Decimal,
    pay_amt: Decimal,
    frequency: str,
    first_due: date,
    interest_start: date | None = None,
) -> tuple[Charge, ...]:
    """The charges that pay `financed` (principal less down payment) off; NeverPaidOff
    when the payment never gets there. `interest_start` None: interest from the first
    period (Open Dental's default, DateInterestStart = 0001-01-01)."""
    if frequency not in PERIODS_PER_YEAR:
        raise ValueError(f"unknown ChargeFrequency {frequency!r}")
    if pay_amt <= 0:
        raise NeverPaidOff("the payment is 0")
    rows: list[Charge] = []
    remaining = financed
    while remaining > 0:
        if len(rows) >= MAX_CHARGES:
            raise NeverPaidOff(f"more than {MAX_CHARGES} charges")
        due = due_date(first_due, len(rows), frequency)
        interest = ZERO
        if apr and (interest_start is None or due >= interest_start):
            interest = period_interest(remaining, apr, frequency)
        if remaining + interest <= pay_amt:
            principal = remaining
        else:
            principal = pay_amt - interest
            if principal <= 0:
                raise NeverPaidOff("the interest of a period is at least the payment")
        rows.append(Charge(len(rows) + 1, due, principal, interest))
        remaining -= principal
    return tuple(rows)


def payment_for(financed: Decimal, apr: Decimal, count: int, frequency: str) -> Decimal:
    """PayAmt Open Dental derives from NumberOfPayments (CalculatePeriodPayment): the
    amortised payment rounded *up* to the cent, "so the principal on the last payment is
    less than or equal to the other principal amounts"."""
    if count < 1:
        raise ValueError("count must be at least 1")
    with localcontext() as ctx:
        ctx.prec = 40
        if not apr:
            exact = financed / count
        else:
            rate = apr / Decimal(100) / Decimal(PERIODS_PER_YEAR[frequency])
            exact = financed * rate / (1 - (1 + rate) ** -count)
        return exact.quantize(CENT, rounding=ROUND_CEILING)
