"""Open Dental's plan arithmetic and rules as Chairside checks them before writing."""

from datetime import date
from decimal import Decimal as D

import pytest

from financing.ports import AgreementRequest, AppliedProcedure, Interval, LedgerNoteType
from financing.terms import compute_terms, fit_level_payment
from financing.ports import Offer, PromotionKind
from opendental_bridge import rules, schedule

TODAY = date(2025, 3, 1)


def request(**changes):
    values = dict(
        guarantor_id="72", patient_id="72", agreement_date=TODAY, interval=Interval.MONTHLY,
        total_agreed_amount=D("2500.00"), down_payment=D("0.00"), payment_amount=D("208.34"), number_of_payments=12,
        first_payment_due=date(2025, 3, 31), annual_finance_charge_pct=D("0.00"), note="[chairside:CS-1]",
        procedures=(AppliedProcedure("901", D("1250.00")), AppliedProcedure("902", D("1250.00"))),
    )
    values.update(changes)
    return AgreementRequest(**values)


def test_the_payment_open_dental_derives_from_a_number_of_payments_is_rounded_up():
    # apipayplans.html: 728.00 with 100.00 down, 8 payments at 10 % → PayAmt 81.48.
    assert schedule.payment_for(D("628.00"), D("10"), 8, "Monthly") == D("81.48")
    assert schedule.payment_for(D("1000.00"), D("17.90"), 36, "Monthly") == D("36.11")
    assert schedule.payment_for(D("2500.00"), D("0"), 12, "Monthly") == D("208.34")


def test_open_dentals_charges_never_exceed_the_payment_and_follow_the_first_date():
    rows = schedule.charges(D("2500.00"), D("0"), D("208.34"), "Monthly", date(2025, 1, 31))
    assert len(rows) == 12 and rows[-1].amount == D("208.26") and all(r.amount == D("208.34") for r in rows[:-1])
    assert [r.due for r in rows[:4]] == [date(2025, 1, 31), date(2025, 2, 28), date(2025, 3, 31), date(2025, 4, 30)]
    rows = schedule.charges(D("1000.00"), D("17.90"), D("36.10"), "Monthly", date(2025, 1, 1))
    assert len(rows) == 37 and rows[-1].amount == D("0.12")  # one longer: the last is never larger
    assert rows[0].interest == D("14.92")  # 1000.00 × 17.90 / 1200, to the cent
    with pytest.raises(schedule.NeverPaidOff):
        schedule.charges(D("1000.00"), D("17.90"), D("14.92"), "Monthly", date(2025, 1, 1))


def test_ordinal_weekday_and_other_frequencies_date_like_open_dental():
    first = date(2025, 1, 14)  # the 2nd Tuesday of January
    assert [schedule.due_date(first, n, "OrdinalWeekday") for n in range(3)] == [date(2025, 1, 14), date(2025, 2, 11), date(2025, 3, 11)]
    assert schedule.due_date(first, 2, "EveryOtherWeek") == date(2025, 2, 11)
    assert schedule.due_date(first, 1, "Quarterly") == date(2025, 4, 14)


def test_valid_terms_pass():
    assert rules.validate_agreement(request(), today=TODAY) == {}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"procedures": ()}, "procedures", rules.MSG_NO_PROCEDURES),
        ({"procedures": (AppliedProcedure("", D("2500.00")),)}, "procedures", "Every procedure needs its Open Dental ProcNum."),
        ({"procedures": (AppliedProcedure("901", D("2400.00")),)}, "total_agreed_amount",
         "Open Dental takes a plan's total from its procedures' fees ($2,400.00), not $2,500.00: check the fees in "
         "Open Dental and capture the case again."),
        ({"agreement_date": date(2025, 3, 3)}, "agreement_date", "Payment plan date cannot be set for the future."),
        ({"interval": Interval.SEMIMONTHLY}, "interval", rules.MSG_FREQUENCY),
        ({"down_payment": D("2600.00")}, "down_payment", "Down payment must be less than or equal to total amount."),
        ({"payment_amount": D("0.00")}, "payment_amount", "Payment cannot be 0."),
        ({"number_of_payments": 0}, "number_of_payments", "Term cannot be less than 1."),
        ({"annual_finance_charge_pct": D("-1")}, "annual_finance_charge_pct", "APR must be between 0 and 99.99."),
        ({"patient_id": ""}, "patient_id", "Open Dental needs the patient's PatNum."),
        ({"annual_finance_charge_pct": D("17.90"), "payment_amount": D("37.29")}, "payment_amount", rules.MSG_NEVER_PAID_OFF),
        ({"payment_amount": D("200.00")}, "number_of_payments",
         "Open Dental would schedule 13 payments, not 12: $200.00 each and a last one of $100.00 (it never charges more "
         "than the payment amount, and this plan's last payment is larger than the others). Over 12 payments Open "
         "Dental's payment is $208.34: enter the plan in Open Dental by hand if the patient agrees."),
    ],
)
def test_each_rule(changes, field, message):
    assert rules.validate_agreement(request(**changes), today=TODAY) == {field: message}


def test_an_interval_read_back_from_the_database_as_text_is_understood():
    assert rules.validate_agreement(request(interval="monthly"), today=TODAY) == {}


@pytest.mark.parametrize("months", [24, 36, 48, 60])
def test_chairside_terms_pass_exactly_when_their_last_payment_is_no_larger(months):
    """The rule's promise, measured: compute Chairside's terms for many amounts; the rule
    accepts a plan exactly when Open Dental's charges are Chairside's schedule."""
    accepted = refused = 0
    for cents in range(100_000, 400_000, 997):
        total = D(cents) / 100
        terms = compute_terms(plan_total=total, requested_down_payment=D("0.00"), approved_amount=total,
                              offer=Offer(f"reduced_apr_{months}", PromotionKind.REDUCED_APR, months, D("17.90"), D("1000")),
                              decision_date=TODAY)
        problems = rules.validate_agreement(request(
            total_agreed_amount=total, payment_amount=terms.recurring_amount, number_of_payments=months,
            annual_finance_charge_pct=terms.apr, first_payment_due=terms.first_payment_date,
            procedures=(AppliedProcedure("901", total),)), today=TODAY)
        od = schedule.charges(total, terms.apr, terms.recurring_amount, "Monthly", terms.first_payment_date)
        assert (problems == {}) == (len(od) == months) == (terms.final_payment <= terms.recurring_amount), total
        if problems:
            refused += 1
            continue
        accepted += 1
        # The same charges, but where a month's interest is an exact half cent: Chairside
        # rounds it up, Open Dental to even, and the last payment differs by that cent.
        for ours, theirs in zip(terms.schedule, od):
            if ours.interest != theirs.interest:
                exact = (ours.balance_after + ours.principal) * terms.apr / 1200
                assert exact == exact.quantize(D("0.001")) and str(exact.quantize(D("0.001")))[-1] == "5", total
                assert ours.interest - theirs.interest == D("0.01")
        assert terms.schedule[-1].amount - od[-1].amount in (D("0.00"), D("0.01"))
    assert accepted and refused  # both happen: about half of Chairside's level payments round down


def test_a_commlog_note():
    assert rules.validate_ledger_note(LedgerNoteType.ACCOUNT, "[chairside:CS-1] written") == {}
    assert rules.validate_ledger_note(LedgerNoteType.BILLING_STATEMENT, "x" * 200) == {}  # no 82-character statement note here
    assert rules.validate_ledger_note(LedgerNoteType.ACCOUNT, "  ") == {"text": "Note text cannot be empty."}
    assert rules.validate_ledger_note(LedgerNoteType.ACCOUNT, "é" * 40_000) == {"text": rules.MSG_NOTE_LONG}
    assert rules.validate_ledger_note("memo", "x") == {"type": "Note type must be account or billing_statement."}


@pytest.mark.parametrize("months", [24, 36, 48, 60])
def test_fitted_terms_are_always_accepted_and_stay_within_two_cents_of_the_standard_payment(months):
    """fit_level_payment (partners.fit_terms, for Open Dental) turns every plan the rule above refuses
    into one it accepts: a level payment a cent or two higher whose last payment is no
    larger, the number of payments kept; terms already accepted are left exactly as they are."""
    fitted_count = 0
    for cents in range(100_000, 400_000, 997):
        total = D(cents) / 100
        terms = compute_terms(plan_total=total, requested_down_payment=D("0.00"), approved_amount=total,
                              offer=Offer(f"reduced_apr_{months}", PromotionKind.REDUCED_APR, months, D("17.90"), D("1000")),
                              decision_date=TODAY)
        fitted = fit_level_payment(terms)
        if terms.final_payment <= terms.recurring_amount:
            assert fitted is terms, total
            continue
        fitted_count += 1
        assert fitted.number_of_payments == months and fitted.final_payment <= fitted.recurring_amount, total
        assert D("0.01") <= fitted.recurring_amount - terms.recurring_amount <= D("0.02"), total
        assert fitted.financed_amount == total and fitted.total_of_payments - fitted.finance_charge == total
        problems = rules.validate_agreement(request(
            total_agreed_amount=total, payment_amount=fitted.recurring_amount, number_of_payments=months,
            annual_finance_charge_pct=fitted.apr, first_payment_due=fitted.first_payment_date,
            procedures=(AppliedProcedure("901", total),)), today=TODAY)
        assert problems == {}, total
    assert fitted_count  # about half of the plans need it


def test_fitting_leaves_interest_free_terms_alone():
    terms = compute_terms(plan_total=D("2500.00"), requested_down_payment=D("0.00"), approved_amount=D("2500.00"),
                          offer=Offer("deferred_12", PromotionKind.DEFERRED, 12, D("0"), D("200")), decision_date=TODAY)
    assert fit_level_payment(terms) is terms
