"""Dentrix rules (dentrix_bridge.rules) and wire helpers, without a server."""

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest

from dentrix_bridge import rules, wire
from financing.ports import AgreementRequest, Interval, Procedure

TODAY = date(2025, 3, 1)


def agreement(**changes) -> AgreementRequest:
    base = AgreementRequest(
        guarantor_id="1001",
        agreement_date=TODAY,
        interval=Interval.MONTHLY,
        total_agreed_amount=Decimal("3000.00"),
        down_payment=Decimal("500.00"),
        payment_amount=Decimal("208.34"),
        number_of_payments=12,
        first_payment_due=TODAY + timedelta(days=31),
        annual_finance_charge_pct=Decimal("0.00"),
        note="[chairside:CS-1]",
    )
    return replace(base, **changes)


@pytest.mark.parametrize(
    ("financed", "pct", "months", "expected"),
    [
        ("1000.00", "17.90", 24, "49.88"),
        ("1000.00", "17.90", 36, "36.10"),
        ("1000.00", "17.90", 48, "29.32"),
        ("1000.00", "17.90", 60, "25.34"),
        ("5000.00", "17.90", 60, "126.70"),
        ("3000.00", "14.90", 24, "145.32"),
        ("2500.00", "0.00", 12, "208.34"),
    ],
)
def test_amortised_payment_matches_the_design_check_values(financed, pct, months, expected):
    payment = rules.amortised_payment(Decimal(financed), Decimal(pct), months, Interval.MONTHLY)
    assert payment == Decimal(expected)


def test_periodic_rate_uses_payments_per_year_of_the_interval():
    pct = Decimal("26.00")
    assert rules.periodic_rate(pct, Interval.MONTHLY) == Decimal("26") / Decimal("1200")
    assert rules.periodic_rate(pct, Interval.SEMIMONTHLY) == Decimal("0.26") / 24
    assert rules.periodic_rate(pct, Interval.BIWEEKLY) == Decimal("0.01")
    assert rules.periodic_rate(pct, Interval.WEEKLY) == Decimal("0.005")


def test_valid_zero_percent_agreement_has_no_errors():
    assert rules.validate_agreement(agreement(), today=TODAY) == {}


def test_valid_amortised_agreement_within_a_cent_has_no_errors():
    for payment in ("49.87", "49.88", "49.89"):
        request = agreement(
            total_agreed_amount=Decimal("1000.00"),
            down_payment=Decimal("0.00"),
            payment_amount=Decimal(payment),
            number_of_payments=24,
            annual_finance_charge_pct=Decimal("17.90"),
        )
        assert rules.validate_agreement(request, today=TODAY) == {}


def test_none_fields_are_reported_as_required():
    request = agreement(payment_amount=None, interval=None, note=None, first_payment_due=None)
    assert rules.validate_agreement(request, today=TODAY) == {
        "payment_amount": "This field is required.",
        "interval": "This field is required.",
        "note": "This field is required.",
        "first_payment_due": "This field is required.",
    }


def test_plain_string_interval_is_accepted_and_unknown_one_rejected():
    assert rules.validate_agreement(agreement(interval="monthly"), today=TODAY) == {}
    assert rules.validate_agreement(agreement(interval="quarterly"), today=TODAY) == {
        "interval": "Interval must be one of weekly, biweekly, semimonthly, monthly."
    }


def test_agreement_date_one_day_ahead_is_allowed_two_days_is_not():
    ok = agreement(agreement_date=TODAY + timedelta(days=1))
    late = agreement(agreement_date=TODAY + timedelta(days=2))
    assert rules.validate_agreement(ok, today=TODAY) == {}
    assert rules.validate_agreement(late, today=TODAY) == {
        "agreement_date": "Payment agreement date cannot be set for the future."
    }


def test_never_paid_off_wins_over_the_amortisation_mismatch():
    # 1000.00 at 17.90 % monthly accrues 14.92 in the first month.
    request = agreement(
        total_agreed_amount=Decimal("1000.00"),
        down_payment=Decimal("0.00"),
        payment_amount=Decimal("14.92"),
        number_of_payments=24,
        annual_finance_charge_pct=Decimal("17.90"),
    )
    assert rules.validate_agreement(request, today=TODAY) == {"payment_amount": rules.MSG_NEVER_PAID_OFF}


def test_validate_ledger_note():
    assert rules.validate_ledger_note("billing_statement", "x" * 82) == {}
    assert rules.validate_ledger_note("billing_statement", "x" * 83) == {
        "text": "Billing statement notes are limited to 82 characters."
    }
    assert rules.validate_ledger_note("account", "x" * 2000) == {}
    assert rules.validate_ledger_note("account", "x" * 2001) == {
        "text": "Account notes are limited to 2000 characters."
    }
    assert rules.validate_ledger_note("account", "   ") == {"text": "Note text cannot be empty."}
    assert rules.validate_ledger_note("sticky", "hello") == {
        "type": "Note type must be account or billing_statement."
    }
    assert rules.validate_ledger_note(None, None) == {
        "type": "This field is required.",
        "text": "Note text cannot be empty.",
    }


@pytest.mark.parametrize(
    ("code", "tooth", "surface", "fee", "errors"),
    [
        ("D2740", "14", "", "1250.00", {}),
        ("D2391", "30", "O", "185.00", {}),
        ("D2391", "K", "MOD", "160.00", {}),
        ("D1110", "", "", "120.00", {}),
        ("2740", "14", "", "1250.00", {"code": "Procedure code must be a CDT code: D followed by 4 digits, e.g. D2740."}),
        ("D274", "14", "", "1250.00", {"code": "Procedure code must be a CDT code: D followed by 4 digits, e.g. D2740."}),
        ("D2740", "33", "", "1250.00", {"tooth": "Tooth must be empty, 1–32 (permanent) or A–T (primary)."}),
        ("D2740", "05", "", "1250.00", {"tooth": "Tooth must be empty, 1–32 (permanent) or A–T (primary)."}),
        ("D2740", "U", "", "1250.00", {"tooth": "Tooth must be empty, 1–32 (permanent) or A–T (primary)."}),
        ("D2391", "30", "OO", "185.00", {"surface": "Surface letters cannot repeat."}),
        ("D2391", "30", "X", "185.00", {"surface": "Surface letters must be from M, O, D, B, F, L, I."}),
        ("D2391", "", "O", "185.00", {"surface": "A surface needs a tooth."}),
        ("D2391", "30", "O", "0.00", {"fee": "Amount must be greater than 0."}),
        ("D2391", "30", "O", "18.505", {"fee": "Amounts can have at most 2 decimal places."}),
    ],
)
def test_validate_procedure(code, tooth, surface, fee, errors):
    assert rules.validate_procedure(Procedure(code, tooth, surface, Decimal(fee))) == errors


def test_format_money_never_rounds_silently():
    assert wire.format_money(Decimal("500")) == "500.00"
    assert wire.format_money(Decimal("208.3")) == "208.30"
    assert wire.format_money(Decimal("208.345")) == "208.345"
    assert wire.format_money(Decimal("1E+3")) == "1000.00"


def test_parse_money_and_date_are_strict():
    assert wire.parse_money("1250.00") == Decimal("1250.00")
    for bad in (1250.0, "1,250.00", "1e3", "NaN", "", None):
        with pytest.raises(ValueError):
            wire.parse_money(bad)
    assert wire.parse_date("2025-03-01") == date(2025, 3, 1)
    for bad in ("20250301", "2025-02-30", "03/01/2025", None):
        with pytest.raises(ValueError):
            wire.parse_date(bad)
