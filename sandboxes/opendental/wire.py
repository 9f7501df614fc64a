"""Open Dental's JSON conventions, as the sandbox reads and writes them.

From https://www.opendental.com/site/apiimplementation.html and the resource pages:
PascalCase fields, ids as JSON numbers, booleans as the strings "true" / "false", dates
"yyyy-MM-dd" ("0001-01-01" = none), datetimes "yyyy-MM-dd HH:mm:ss", enums as text.
Money: requests send JSON numbers (PayAmt 81.48) — a numeric string is read too; answers
carry JSON numbers (PayAmt 81.48, DownPayment 100.0), except a procedure's ProcFee,
which Open Dental sends as a string ("130.00").

The sandbox keeps amounts as Decimal strings in its store ("81.48") and writes them as
numbers on the way out: a 2-decimal amount survives a float's shortest repr exactly.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.01")
NO_DATE = "0001-01-01"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def read_number(value: Any) -> Decimal | None:
    """A JSON number (Decimal or int from the parser) or a plain numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        try:
            return Decimal(value.strip())
        except InvalidOperation:  # pragma: no cover - the pattern excludes these
            return None
    return None


def read_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def read_date(value: Any) -> date | None:
    if not isinstance(value, str) or not _DATE.match(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def read_bool(value: Any) -> bool | None:
    """Open Dental's "true" / "false" (any case); None for anything else."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def amount(value: Decimal | str) -> str:
    """An amount as the store keeps it: "100.00"."""
    return f"{Decimal(value).quantize(CENT):f}"


def number(value: str | Decimal) -> float:
    """A stored amount as the JSON number Open Dental answers with (81.48, 100.0)."""
    return float(Decimal(value))


def boolean(value: bool) -> str:
    return "true" if value else "false"


def stamp(moment: float) -> str:
    """A datetime as Open Dental writes one: "2025-01-21 11:23:27" (the office's local time)."""
    return datetime.fromtimestamp(int(moment)).strftime("%Y-%m-%d %H:%M:%S")


def one_line(text: str) -> str:
    """Open Dental serializes CR/LF in a string as spaces."""
    return text.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
