"""A clerk's refund amount: dollars and cents as the console shows them, nothing else."""

from decimal import Decimal

import pytest

from financing.services.refunds import RefundError, parse_amount


@pytest.mark.parametrize("text, amount", [
    ("100", "100"), ("100.5", "100.5"), ("1,234.56", "1234.56"), ("$80", "80"), (" $1,000.00 ", "1000.00"),
    (Decimal("12.34"), "12.34"),
])
def test_dollars_and_cents_are_read(text, amount):
    assert parse_amount(text) == Decimal(amount)


@pytest.mark.parametrize("text, message", [
    ("1e2", "not an amount of money"),  # Decimal reads it as 100
    ("1_000", "not an amount of money"),  # and this as 1000
    ("Infinity", "not an amount of money"),
    ("NaN", "not an amount of money"),
    ("abc", "not an amount of money"),
    ("", "not an amount of money"),
    ("0x10", "not an amount of money"),
    ("10.005", "dollars and cents"),
    ("0", "more than \\$0.00"),
    ("-5", "more than \\$0.00"),
    ("-5.25", "more than \\$0.00"),
])
def test_anything_else_is_refused_in_plain_words(text, message):
    with pytest.raises(RefundError, match=message):
        parse_amount(text)
