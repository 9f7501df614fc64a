"""financing.in_house: the practice's own remainder's terms. No database."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from financing.in_house import IN_HOUSE_PROMOTION, describe, in_house_terms, payments_for
from financing.terms import TermsError, amortized_payment

D = Decimal
START = date(2027, 1, 4)


def terms(shortfall: str, *, plan: str = "3000.00", apr: str = "0.00", months: int = 12, minimum: str = "50.00", **kw):
    return in_house_terms(
        plan_total=D(plan), shortfall=D(shortfall), apr=D(apr), max_months=months, min_payment=D(minimum), start=START, **kw
    )


def test_the_longest_term_whose_payment_is_still_the_minimum():
    t = terms("500.00")  # 12 months would be $41.67 < $50: ten payments of $50.00
    assert (t.number_of_payments, t.recurring_amount, t.final_payment) == (10, D("50.00"), D("50.00"))
    assert t.financed_amount == D("500.00")
    assert (t.plan_total, t.down_payment) == (D("3000.00"), D("2500.00"))
    assert t.promotion == IN_HOUSE_PROMOTION


def test_capped_at_the_most_months_the_last_payment_absorbs_the_rounding():
    t = terms("500.00", months=6)
    assert (t.number_of_payments, t.recurring_amount, t.final_payment) == (6, D("83.34"), D("83.30"))
    assert t.total_of_payments == D("500.00") and t.finance_charge == D("0.00")
    assert describe(t) == "In-house: 6 payments of $83.34 (last $83.30) at 0.00% APR"


def test_a_remainder_below_the_minimum_is_one_payment():
    t = terms("35.20")
    assert (t.number_of_payments, t.recurring_amount, t.final_payment) == (1, D("35.20"), D("35.20"))
    assert describe(t) == "In-house: 1 payment of $35.20 at 0.00% APR"


def test_with_interest_amortised_to_the_cent():
    t = terms("1200.00", apr="9.90", months=12, minimum="100.00")
    # 12 months: 105.44 ≥ 100, so the whole term
    assert t.number_of_payments == 12
    assert t.recurring_amount == amortized_payment(D("1200.00"), D("9.90"), 12) == D("105.44")
    assert sum(i.amount for i in t.schedule) == t.total_of_payments
    assert t.schedule[-1].balance_after == D("0.00")
    assert t.finance_charge == t.total_of_payments - D("1200.00")
    assert t.apr == D("9.90")


def test_first_payment_follows_the_templates_rule():
    assert terms("500.00").first_payment_date == date(2027, 2, 3)  # 30 days by default
    assert terms("500.00", first_payment_offset_days=14).first_payment_date == date(2027, 1, 18)
    t = terms("500.00", first_payment_day_of_month=15)
    assert t.first_payment_date == date(2027, 1, 15)
    assert [i.due_date for i in t.schedule[:3]] == [date(2027, 1, 15), date(2027, 2, 15), date(2027, 3, 15)]


def test_nothing_to_carry_is_refused():
    with pytest.raises(TermsError, match="no remainder"):
        terms("0.00")
    with pytest.raises(TypeError):
        in_house_terms(plan_total=D("1"), shortfall=1.5, apr=D("0"), max_months=3, min_payment=D("1"), start=START)


@settings(max_examples=200, deadline=None)
@given(
    cents=st.integers(min_value=1, max_value=2_000_000),
    months=st.integers(min_value=1, max_value=60),
    minimum=st.integers(min_value=100, max_value=50_000),
    apr=st.sampled_from(["0.00", "5.00", "12.90", "17.99"]),
)
def test_properties(cents, months, minimum, apr):
    shortfall, min_payment = D(cents) / 100, D(minimum) / 100
    try:
        t = in_house_terms(
            plan_total=shortfall + D("100.00"), shortfall=shortfall, apr=D(apr), max_months=months,
            min_payment=min_payment, start=START,
        )
    except TermsError:
        return  # a tiny amount at interest over many months: refused with a reason
    n = t.number_of_payments
    assert 1 <= n <= months
    assert sum(i.principal for i in t.schedule) == shortfall
    if apr == "0.00":
        assert D("0.00") < t.final_payment <= t.recurring_amount  # the last absorbs the rounding
    else:
        assert abs(t.final_payment - t.recurring_amount) <= n * D("0.01")  # a cent a month at most
    if n > 1:
        assert t.recurring_amount >= min_payment  # never below the minimum but for one payment
    if n < months:  # one more month would drop the payment below the minimum
        assert amortized_payment(shortfall, D(apr), n + 1) < min_payment
    assert n == payments_for(shortfall, apr=D(apr), max_months=months, min_payment=min_payment)
