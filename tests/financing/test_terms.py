"""financing.terms: check values, branches, errors, dates and properties. No database."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from financing.ports import Interval, Offer, PromotionKind
from financing.terms import (
    Installment,
    Terms,
    TermsError,
    amortized_payment,
    compute_terms,
    due_dates,
    first_payment_date,
    reschedule,
)

D = Decimal
DECISION = date(2025, 3, 10)


def deferred(months: int, min_amount: str = "200.00") -> Offer:
    return Offer(f"deferred_{months}", PromotionKind.DEFERRED, months, D("0"), D(min_amount))


def reduced(months: int, apr: str = "17.90", min_amount: str = "1000.00") -> Offer:
    return Offer(f"reduced_apr_{months}", PromotionKind.REDUCED_APR, months, D(apr), D(min_amount))


def terms_for(amount: str, offer: Offer, **kwargs) -> Terms:
    """The whole plan financed, no down payment."""
    params = dict(
        plan_total=D(amount),
        requested_down_payment=D("0.00"),
        approved_amount=D(amount),
        offer=offer,
        decision_date=DECISION,
    )
    params.update(kwargs)
    return compute_terms(**params)


def assert_schedule_consistent(terms: Terms) -> None:
    schedule = terms.schedule
    assert len(schedule) == terms.number_of_payments
    assert [row.number for row in schedule] == list(range(1, terms.number_of_payments + 1))
    assert sum((row.amount for row in schedule), D("0")) == terms.total_of_payments
    assert sum((row.principal for row in schedule), D("0")) == terms.financed_amount
    assert terms.total_of_payments - terms.financed_amount == terms.finance_charge
    assert all(row.amount == row.principal + row.interest for row in schedule)
    assert all(row.amount == terms.recurring_amount for row in schedule[:-1])
    assert schedule[-1].amount == terms.final_payment
    assert schedule[-1].balance_after == D("0.00")
    assert all(row.balance_after > 0 for row in schedule[:-1])
    assert terms.down_payment + terms.financed_amount == terms.plan_total
    assert schedule[0].due_date == terms.first_payment_date
    assert terms.frequency is Interval.MONTHLY


# --- amortized_payment check values -------------------------------------------------------


@pytest.mark.parametrize(
    ("principal", "apr", "months", "payment"),
    [
        ("1000.00", "17.90", 24, "49.88"),
        ("1000.00", "17.90", 36, "36.10"),
        ("1000.00", "17.90", 48, "29.32"),
        ("1000.00", "17.90", 60, "25.34"),
        ("5000.00", "17.90", 60, "126.70"),
        ("3000.00", "14.90", 24, "145.32"),
    ],
)
def test_amortized_payment_check_values(principal, apr, months, payment):
    assert amortized_payment(D(principal), D(apr), months) == D(payment)


def test_amortized_payment_at_zero_apr_rounds_up_to_the_cent():
    assert amortized_payment(D("1000.00"), D("0"), 12) == D("83.34")
    assert amortized_payment(D("1200.00"), D("0"), 12) == D("100.00")


# --- reduced APR --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "months", "apr", "payment"),
    [
        ("1000.00", 24, "17.90", "49.88"),
        ("1000.00", 36, "17.90", "36.10"),
        ("1000.00", 48, "17.90", "29.32"),
        ("1000.00", 60, "17.90", "25.34"),
        ("5000.00", 60, "17.90", "126.70"),
        ("3000.00", 24, "14.90", "145.32"),
    ],
)
def test_reduced_apr_terms_use_the_check_value_payment(amount, months, apr, payment):
    terms = terms_for(amount, reduced(months, apr))
    assert terms.recurring_amount == D(payment)
    assert terms.number_of_payments == months
    assert terms.apr == D(apr)
    assert terms.finance_charge > 0
    assert_schedule_consistent(terms)


def test_reduced_apr_5000_over_60_full_figures():
    terms = terms_for("5000.00", reduced(60))
    assert terms.recurring_amount == D("126.70")
    assert terms.final_payment == D("126.29")
    assert terms.total_of_payments == D("7601.59")
    assert terms.finance_charge == D("2601.59")
    assert terms.promotion == "reduced_apr_60"
    first = terms.schedule[0]
    # 5000 × 17.90 / 1200 = 74.5833… → 74.58
    assert first == Installment(1, DECISION + timedelta(days=30), D("126.70"), D("52.12"), D("74.58"), D("4947.88"))
    last = terms.schedule[-1]
    assert (last.principal, last.interest, last.balance_after) == (D("124.43"), D("1.86"), D("0.00"))


def test_reduced_apr_interest_rounds_an_exact_half_cent_up():
    # 1001.00 × 6.00 / 1200 = 5.005 exactly → 5.01 (HALF_UP; HALF_EVEN would give 5.00,
    # and balance × a truncated r would give 5.004999…)
    terms = terms_for("1001.00", reduced(24, "6.00"))
    assert terms.schedule[0].interest == D("5.01")


# --- deferred interest --------------------------------------------------------------------


def test_deferred_2500_over_12():
    terms = terms_for("2500.00", deferred(12))
    assert terms.recurring_amount == D("208.34")
    assert terms.number_of_payments == 12
    assert terms.final_payment == D("208.26")
    assert [row.amount for row in terms.schedule] == [D("208.34")] * 11 + [D("208.26")]
    assert terms.apr == D("0.00")
    assert terms.finance_charge == D("0.00")
    assert terms.total_of_payments == D("2500.00")
    assert terms.promotion == "deferred_12"
    assert_schedule_consistent(terms)


def test_deferred_500_over_24_hits_the_30_dollar_floor():
    terms = terms_for("500.00", deferred(24))
    assert terms.recurring_amount == D("30.00")
    assert terms.number_of_payments == 17
    assert terms.final_payment == D("20.00")
    assert terms.total_of_payments == D("500.00")
    assert_schedule_consistent(terms)


def test_deferred_200_over_6():
    terms = terms_for("200.00", deferred(6))
    assert [row.amount for row in terms.schedule] == [D("33.34")] * 5 + [D("33.30")]
    assert terms.number_of_payments == 6
    assert_schedule_consistent(terms)


def test_deferred_exact_multiple_has_an_equal_last_payment():
    terms = terms_for("1200.00", deferred(12))
    assert terms.recurring_amount == terms.final_payment == D("100.00")
    assert terms.number_of_payments == 12


def test_deferred_ignores_the_offers_post_promotion_apr_and_charges_no_interest():
    offer = Offer("deferred_12", PromotionKind.DEFERRED, 12, D("26.99"), D("200.00"))
    terms = terms_for("2500.00", offer)
    assert terms.apr == D("0.00")
    assert terms.finance_charge == D("0.00")
    assert all(row.interest == D("0.00") for row in terms.schedule)
    assert [row.balance_after for row in terms.schedule[:2]] == [D("2291.66"), D("2083.32")]


# --- down payment and partial approval ----------------------------------------------------


def test_partial_approval_puts_the_rest_on_the_down_payment():
    terms = compute_terms(
        plan_total=D("3000.00"),
        requested_down_payment=D("0"),
        approved_amount=D("1800.00"),
        offer=reduced(36),
        decision_date=DECISION,
    )
    assert terms.down_payment == D("1200.00")
    assert terms.financed_amount == D("1800.00")
    assert terms.plan_total == D("3000.00")


def test_requested_down_payment_is_kept_when_the_approval_covers_the_rest():
    terms = compute_terms(
        plan_total=D("3000.00"),
        requested_down_payment=D("500.00"),
        approved_amount=D("5000.00"),
        offer=deferred(12),
        decision_date=DECISION,
    )
    assert terms.down_payment == D("500.00")
    assert terms.financed_amount == D("2500.00")


def test_partial_approval_larger_than_the_requested_down_payment():
    terms = compute_terms(
        plan_total=D("3000.00"),
        requested_down_payment=D("500.00"),
        approved_amount=D("2000.00"),
        offer=deferred(12),
        decision_date=DECISION,
    )
    assert (terms.down_payment, terms.financed_amount) == (D("1000.00"), D("2000.00"))


def test_amounts_are_normalised_to_cents():
    terms = compute_terms(
        plan_total=D("2500"),
        requested_down_payment=D("0"),
        approved_amount=D("2500.0"),
        offer=deferred(12),
        decision_date=DECISION,
    )
    assert str(terms.plan_total) == "2500.00"
    assert str(terms.down_payment) == "0.00"
    assert str(terms.financed_amount) == "2500.00"


# --- errors -------------------------------------------------------------------------------


def reason(**overrides) -> str:
    params = dict(
        plan_total=D("3000.00"),
        requested_down_payment=D("0.00"),
        approved_amount=D("3000.00"),
        offer=deferred(12),
        decision_date=DECISION,
    )
    params.update(overrides)
    with pytest.raises(TermsError) as caught:
        compute_terms(**params)
    assert str(caught.value) == caught.value.reason
    assert isinstance(caught.value, ValueError)
    return caught.value.reason


def test_error_plan_total_not_positive():
    assert reason(plan_total=D("0.00")) == "The plan total ($0.00) must be more than $0.00."
    assert reason(plan_total=D("-10.00")) == "The plan total (-$10.00) must be more than $0.00."


def test_error_negative_down_payment():
    assert reason(requested_down_payment=D("-1.00")) == (
        "The requested down payment (-$1.00) cannot be negative."
    )


def test_error_down_payment_covers_the_whole_plan():
    expected = "The requested down payment ($3,000.00) covers the whole plan ($3,000.00): there is nothing to finance."
    assert reason(requested_down_payment=D("3000.00")) == expected
    assert "covers the whole plan" in reason(requested_down_payment=D("3500.00"))


def test_error_approved_amount_not_positive():
    assert reason(approved_amount=D("0")) == "The approved amount ($0.00) must be more than $0.00."


def test_error_more_than_two_decimals():
    assert reason(plan_total=D("100.005")) == (
        "The plan total (100.005) has more than two decimal places: amounts are in dollars and cents."
    )
    assert "requested down payment (0.001)" in reason(requested_down_payment=D("0.001"))
    assert "approved amount (1.999)" in reason(approved_amount=D("1.999"))


def test_error_not_an_amount():
    assert reason(plan_total=D("NaN")) == "The plan total (NaN) is not an amount of money."


def test_floats_are_refused():
    with pytest.raises(TypeError):
        compute_terms(
            plan_total=3000.0,
            requested_down_payment=D("0"),
            approved_amount=D("3000"),
            offer=deferred(12),
            decision_date=DECISION,
        )


def test_error_below_the_deferred_minimum():
    assert reason(plan_total=D("150.00"), approved_amount=D("150.00")) == (
        "$150.00 financed is below the $200.00 minimum for 12-month deferred interest."
    )


def test_error_below_the_minimum_after_a_partial_approval():
    assert reason(approved_amount=D("150.00")) == (
        "$150.00 financed is below the $200.00 minimum for 12-month deferred interest."
    )


def test_error_below_the_reduced_apr_minimum():
    assert reason(plan_total=D("999.99"), approved_amount=D("999.99"), offer=reduced(36)) == (
        "$999.99 financed is below the $1,000.00 minimum for 36-month reduced APR (17.90%)."
    )


@pytest.mark.parametrize("months", [3, 9, 36, 60])
def test_error_unsupported_deferred_months(months):
    assert reason(offer=deferred(months)) == (
        f"A deferred-interest promotion runs 6, 12, 18 or 24 months, not {months}."
    )


@pytest.mark.parametrize("months", [6, 12, 18, 72])
def test_error_unsupported_reduced_apr_months(months):
    assert reason(offer=reduced(months)) == (
        f"A reduced-APR promotion runs 24, 36, 48 or 60 months, not {months}."
    )


@pytest.mark.parametrize("apr", ["0", "0.00", "-1.00", "40.01", "99"])
def test_error_reduced_apr_out_of_range(apr):
    assert reason(offer=reduced(36, apr)) == (
        f"A reduced-APR promotion needs an APR above 0% and at most 40%, not {apr}%."
    )


def test_reduced_apr_of_exactly_40_is_accepted():
    assert terms_for("1000.00", reduced(24, "40.00")).apr == D("40.00")


def test_error_reduced_apr_with_more_than_two_decimals():
    assert reason(offer=reduced(36, "17.899")) == (
        "The promotion's APR (17.899%) has more than two decimal places."
    )


def test_error_bad_first_payment_day():
    assert reason(first_payment_day_of_month=29) == (
        "The first payment day of the month must be between 1 and 28, not 29."
    )
    assert "not 0" in reason(first_payment_day_of_month=0)


def test_error_amount_too_small_to_amortise_when_the_offer_has_no_minimum():
    assert reason(plan_total=D("0.50"), approved_amount=D("0.50"), offer=reduced(60, "1.00", "0")) == (
        "$0.50 is too small to spread over 60 monthly payments at 1.00%."
    )


def test_error_bad_offset():
    assert reason(first_payment_offset_days=-1) == (
        "The first payment must fall 0 to 365 days after the decision, not -1."
    )


# --- dates --------------------------------------------------------------------------------


def test_first_payment_date_defaults_to_30_days():
    assert first_payment_date(date(2025, 3, 10)) == date(2025, 4, 9)
    assert first_payment_date(date(2025, 3, 10), offset_days=None) == date(2025, 4, 9)
    assert first_payment_date(date(2025, 3, 10), offset_days=15) == date(2025, 3, 25)


def test_first_payment_date_day_of_month_is_strictly_after_the_decision():
    assert first_payment_date(date(2025, 3, 10), day_of_month=15) == date(2025, 3, 15)
    assert first_payment_date(date(2025, 3, 15), day_of_month=15) == date(2025, 4, 15)
    assert first_payment_date(date(2025, 3, 20), day_of_month=1) == date(2025, 4, 1)
    assert first_payment_date(date(2025, 12, 20), day_of_month=5) == date(2026, 1, 5)
    assert first_payment_date(date(2025, 1, 31), day_of_month=28) == date(2025, 2, 28)


def test_day_of_month_wins_over_the_offset():
    assert first_payment_date(date(2025, 3, 10), offset_days=30, day_of_month=1) == date(2025, 4, 1)


def test_due_dates_clamp_to_month_end_and_keep_the_anchor_day():
    assert due_dates(date(2025, 1, 31), 4) == (
        date(2025, 1, 31),
        date(2025, 2, 28),
        date(2025, 3, 31),
        date(2025, 4, 30),
    )
    assert due_dates(date(2024, 1, 31), 2) == (date(2024, 1, 31), date(2024, 2, 29))
    assert due_dates(date(2025, 11, 30), 3) == (date(2025, 11, 30), date(2025, 12, 30), date(2026, 1, 30))


def test_schedule_dates_with_an_offset_landing_on_the_31st():
    terms = terms_for("1200.00", deferred(6), decision_date=date(2025, 1, 1))
    assert terms.first_payment_date == date(2025, 1, 31)
    assert [row.due_date for row in terms.schedule] == [
        date(2025, 1, 31),
        date(2025, 2, 28),
        date(2025, 3, 31),
        date(2025, 4, 30),
        date(2025, 5, 31),
        date(2025, 6, 30),
    ]


def test_schedule_dates_with_a_day_of_month():
    terms = terms_for("1200.00", deferred(6), first_payment_day_of_month=5)
    assert terms.first_payment_date == date(2025, 4, 5)  # decision 10 March
    assert terms.schedule[-1].due_date == date(2025, 9, 5)


# --- properties ---------------------------------------------------------------------------


def dollars(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


offers = st.one_of(
    st.sampled_from([6, 12, 18, 24]).map(deferred),
    st.builds(
        lambda m, apr_cents: reduced(m, str(dollars(apr_cents))),
        st.sampled_from([24, 36, 48, 60]),
        st.integers(min_value=1, max_value=4000),
    ),
)


@st.composite
def decisions(draw):
    """(offer, plan total, requested down payment, approved amount, expected financed)."""
    offer = draw(offers)
    minimum = int(offer.min_amount * 100)
    financed = draw(st.integers(min_value=minimum, max_value=5_000_000))
    rest = draw(st.integers(min_value=0, max_value=1_000_000))  # the down payment that results
    if draw(st.booleans()):  # partial approval: the lender approved less than asked
        requested_down = draw(st.integers(min_value=0, max_value=rest))
        approved = financed
    else:  # full approval (or more): the requested down payment stands
        requested_down = rest
        approved = draw(st.integers(min_value=financed, max_value=financed + 1_000_000))
    return offer, dollars(financed + rest), dollars(requested_down), dollars(approved), dollars(financed)


@settings(max_examples=150, deadline=None)
@given(decision=decisions(), day=st.none() | st.integers(1, 28))
def test_property_schedule_is_consistent(decision, day):
    offer, plan_total, down, approved, financed = decision
    terms = compute_terms(
        plan_total=plan_total,
        requested_down_payment=down,
        approved_amount=approved,
        offer=offer,
        decision_date=DECISION,
        first_payment_day_of_month=day,
    )
    assert terms.financed_amount == financed
    assert terms.down_payment + terms.financed_amount == terms.plan_total
    assert sum((row.amount for row in terms.schedule), D("0")) == terms.total_of_payments
    assert terms.total_of_payments - terms.financed_amount == terms.finance_charge
    assert all(row.amount == terms.recurring_amount for row in terms.schedule[:-1])
    assert len(terms.schedule) == terms.number_of_payments
    assert terms.schedule[-1].balance_after == D("0.00")
    assert all(row.amount.as_tuple().exponent == -2 for row in terms.schedule)
    dates = [row.due_date for row in terms.schedule]
    assert dates == sorted(set(dates))
    assert dates[0] > DECISION
    if offer.kind is PromotionKind.DEFERRED:
        assert terms.number_of_payments <= offer.months
        assert D("0") < terms.final_payment <= terms.recurring_amount
        assert terms.finance_charge == D("0.00")
        assert all(row.interest == D("0.00") for row in terms.schedule)
    else:
        assert terms.number_of_payments == offer.months
        assert terms.finance_charge >= 0


@settings(max_examples=100, deadline=None)
@given(
    financed=st.integers(min_value=100_000, max_value=5_000_000).map(dollars),
    months=st.sampled_from([24, 36, 48, 60]),
    apr_cents=st.integers(min_value=1, max_value=4000),
)
def test_property_reduced_apr_last_payment_only_absorbs_rounding(financed, months, apr_cents):
    apr = dollars(apr_cents)
    terms = terms_for(str(financed), reduced(months, str(apr)))
    assert_schedule_consistent(terms)
    assert abs(terms.final_payment - terms.recurring_amount) <= D("1.00")


# --- reschedule: the terms again, from what the PMS holds after a correction ----------------


def again(terms: Terms, **changes) -> Terms:
    values = dict(
        plan_total=terms.plan_total, down_payment=terms.down_payment, apr=terms.apr,
        first_payment_date=terms.first_payment_date, promotion=terms.promotion,
    )
    values.update(changes)
    return reschedule(**values)


@settings(max_examples=150, deadline=None)
@given(decision=decisions(), day=st.none() | st.integers(1, 28))
def test_property_reschedule_gives_back_the_computed_terms(decision, day):
    """Whichever of the payment and the count it is given, reschedule works the other out as
    compute_terms did: a correction recomputes with the very same arithmetic."""
    offer, plan_total, down, approved, financed = decision
    terms = compute_terms(
        plan_total=plan_total, requested_down_payment=down, approved_amount=approved, offer=offer,
        decision_date=DECISION, first_payment_day_of_month=day,
    )
    assert again(terms, payment=terms.recurring_amount, number_of_payments=terms.number_of_payments) == terms
    assert again(terms, payment=terms.recurring_amount) == terms
    if offer.kind is PromotionKind.REDUCED_APR:
        assert again(terms, number_of_payments=terms.number_of_payments) == terms


def test_reschedule_moves_every_due_date_with_the_first():
    terms = terms_for("2500.00", deferred(12))
    moved = again(terms, payment=terms.recurring_amount, number_of_payments=12, first_payment_date=date(2027, 1, 15))
    assert [row.due_date for row in moved.schedule] == [date(2027 + m // 12, m % 12 + 1, 15) for m in range(12)]
    assert [row.amount for row in moved.schedule] == [row.amount for row in terms.schedule]


def test_reschedule_works_out_the_count_from_the_payment():
    terms = terms_for("2500.00", deferred(12))
    rounded = again(terms, payment=D("209.00"))
    assert (rounded.number_of_payments, rounded.final_payment, rounded.total_of_payments) == (12, D("201.00"), D("2500.00"))
    bigger = again(terms, payment=D("250.00"))
    assert (bigger.number_of_payments, bigger.final_payment) == (10, D("250.00"))


def test_reschedule_amortises_the_payment_from_the_count():
    terms = terms_for("1000.00", reduced(36))
    shorter = again(terms, number_of_payments=24)
    assert (shorter.recurring_amount, shorter.number_of_payments) == (D("49.88"), 24)  # the README's check value


@pytest.mark.parametrize(
    "amount, offer, changes, reason",
    [
        ("2500.00", deferred(12), dict(payment=D("208.34"), number_of_payments=10), "10 payments of $208.34 pay $2,083.40 of the $2,500.00 financed."),
        ("2500.00", deferred(12), dict(payment=D("208.34"), number_of_payments=13), "13 payments of $208.34 pay more than the $2,500.00 financed: 12 already cover it."),
        ("2500.00", deferred(12), dict(payment=D("3000.00")), "A payment of $3,000.00 is more than the $2,500.00 financed."),
        ("2500.00", deferred(12), dict(payment=D("20.00")), "Payments of $20.00 would take more than 120 months to pay off $2,500.00."),
        ("1000.00", reduced(36), dict(payment=D("10.00")), "A payment of $10.00 never pays off $1,000.00 at 17.90%: each month's interest is more than the payment."),
        ("1000.00", reduced(36), dict(payment=D("40.00")), "At 17.90%, 32 payments pay off $1,000.00 with $39.53 a month, not $40.00."),
        ("1000.00", reduced(36), dict(payment=D("36.10"), number_of_payments=30), "At 17.90%, 30 payments pay off $1,000.00 with $41.59 a month, not $36.10."),
        ("2500.00", deferred(12), dict(down_payment=D("2500.00"), number_of_payments=12), "A down payment of $2,500.00 covers the whole plan ($2,500.00): there would be nothing to finance."),
    ],
)
def test_reschedule_refuses_terms_that_do_not_work_out(amount, offer, changes, reason):
    with pytest.raises(TermsError) as refused:
        again(terms_for(amount, offer), **changes)
    assert refused.value.reason == reason
