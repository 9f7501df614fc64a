"""The connector's JSON conventions, as CONTRACT.md ("Conventions") states them.

Money and percentages are JSON strings with at most 2 decimals ("1250.00"; "500" is
fine in a request); a JSON number is refused because floats lose cents. Dates are
"YYYY-MM-DD"; timestamps ISO 8601 in UTC; ids strings.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

CENT = Decimal("0.01")
REQUIRED = "This field is required."
MSG_BAD_MONEY = 'Send the amount as text, e.g. "1250.00".'
MSG_BAD_DATE = "Enter a date as YYYY-MM-DD."
MSG_BAD_TEXT = "This field must be text."

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")  # no exponent, no "+", no thousands separators


def read_money(value: Any) -> Decimal | None:
    """A wire decimal, or None when it is not one (a number, "1e3", "1,250.00"...)."""
    return Decimal(value) if isinstance(value, str) and _DECIMAL.match(value) else None


def read_date(value: Any) -> date | None:
    if not isinstance(value, str) or not _DATE.match(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def money(value: str | Decimal) -> str:
    """A valid amount as the connector stores it: "500" -> "500.00"."""
    return f"{Decimal(value).quantize(CENT):f}"


def timestamp(moment: float) -> str:
    """ISO 8601 in UTC, to the second: "2025-03-01T14:05:09Z"."""
    return datetime.fromtimestamp(int(moment), timezone.utc).isoformat().replace("+00:00", "Z")
