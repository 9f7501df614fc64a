"""How Open Dental charges a Dynamic payment plan, as the sandbox computes it.

Written from Open Dental's source (branch 24_3, OpenDentBusiness/Db Multi Table/
PayPlanEdit.cs: GetListExpectedCharges, CalculateInterestAmountForPeriod,
CalculatePrincipalAmountForPeriod, CalcPeriodRate, CalcNextPeriodDate,
CalculatePeriodPayment; Data Interface/PayPlanCharges.cs: GetForDownPayment), never from
Chairside's code. Open Dental computes a period's interest in doubles and rounds it with
Math.Round (half to even on the double's value): so does this, with Python floats, which
are the same IEEE doubles. Principal still to charge is a C# decimal: a Decimal here.

- the down payment is charged on the day the plan is made (or on DatePayPlanStart if
  that is earlier), without interest, against the linked production in link order;
- every period, from DatePayPlanStart: interest = Math.Round(principal not yet charged ×
  APR/100/periods a year, 2) (from DateInterestStart on); the charge is PayAmt, or the
  rest when what is left plus its interest fits in one payment;
- a period whose payment does not cover its interest: the terms never pay the plan off;
- PayAmt from NumberOfPayments: the amortised payment rounded *up* to the cent.
"""

from __future__ import annotations

import calendar
import math
from datetime import date, timedelta
from decimal import Decimal

PERIODS = {"Weekly": 52, "EveryOtherWeek": 26, "OrdinalWeekday": 12, "Monthly": 12, "Quarterly": 4}
MAX_CHARGES = 2000


class NeverPaidOff(Exception):
    pass


def add_months(day: date, months: int) -> date:
    total = day.year * 12 + (day.month - 1) + months
    year, month0 = divmod(total, 12)
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(day.day, last))


def _ordinal(day: date) -> int:
    if (day - timedelta(days=28)).month == day.month or (day - timedelta(days=21)).month == day.month:
        return 4
    if (day - timedelta(days=14)).month == day.month:
        return 3
    if (day - timedelta(days=7)).month == day.month:
        return 2
    return 1


def period_date(first: date, n: int, frequency: str) -> date:
    if frequency == "Weekly":
        return first + timedelta(weeks=n)
    if frequency == "EveryOtherWeek":
        return first + timedelta(weeks=2 * n)
    if frequency == "Quarterly":
        return add_months(first, 3 * n)
    if frequency == "OrdinalWeekday":
        rough = add_months(first, n)
        start = rough.replace(day=1)
        while start.weekday() != first.weekday():
            start += timedelta(days=1)
        return start + timedelta(weeks=_ordinal(first) - 1)
    return add_months(first, n)


def _round2(value: float) -> Decimal:
    """.NET Math.Round(value, 2): scale by 100, round half to even, scale back."""
    return Decimal(round(value * 100)) / 100


def interest(remaining: Decimal, apr: Decimal, frequency: str) -> Decimal:
    rate = float(apr) / 100 / PERIODS[frequency]
    return _round2(float(remaining) * rate).quantize(Decimal("0.01"))


def schedule(financed: Decimal, apr: Decimal, pay_amt: Decimal, frequency: str, first: date,
             interest_start: date | None) -> list[dict]:
    """Every periodic charge: [{"date", "principal", "interest"}] (Decimals)."""
    rows: list[dict] = []
    remaining = financed
    while remaining > 0:
        if len(rows) >= MAX_CHARGES or pay_amt <= 0:
            raise NeverPaidOff
        when = period_date(first, len(rows), frequency)
        owed = Decimal("0.00")
        if apr > 0 and (interest_start is None or when >= interest_start):
            owed = interest(remaining, apr, frequency)
        if remaining < pay_amt - owed or remaining + owed <= pay_amt:
            principal = remaining
        else:
            principal = pay_amt - owed
        if principal <= 0:
            raise NeverPaidOff
        rows.append({"date": when, "principal": principal, "interest": owed})
        remaining -= principal
    return rows


def pay_amt_for(financed: Decimal, apr: Decimal, count: int, frequency: str) -> Decimal:
    """CalculatePeriodPayment: PayAmt for NumberOfPayments, rounded up to the cent."""
    principal = float(financed)
    if apr == 0:
        exact = principal / count
    else:
        rate = float(apr) / 100 / PERIODS[frequency]
        exact = principal * rate / (1 - math.pow(1 + rate, -count))
    return (Decimal(math.ceil(exact * 100)) / 100).quantize(Decimal("0.01"))


def split(amount: Decimal, production: list[dict]) -> list[tuple[dict, Decimal]]:
    """`amount` of principal against the production still uncharged, in link order:
    [(entry, part)], each entry {"LinkType", "FKey", "remaining"} (remaining is updated)."""
    parts = []
    for entry in production:
        if amount <= 0:
            break
        take = min(amount, entry["remaining"])
        if take > 0:
            entry["remaining"] -= take
            amount -= take
            parts.append((entry, take))
    return parts
