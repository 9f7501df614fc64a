"""The CareCredit sandbox's scripted decisions and its validation of a new application.

Decisions are deterministic, from the applicant's surname (case-insensitive prefix):

- ``DECLINE…`` -> DECLINED
- ``PENDING…`` -> PENDING, then APPROVED for the requested amount after pending_delay
- ``PARTIAL…`` -> APPROVED for 60% of the requested amount (rounded half-up to the cent)
- ``REFER…``   -> REFERRED, and stays referred
- ``EXPIRE…``  -> never decided: stays APPLICATION_SENT forever
- anyone else  -> APPROVED for the requested amount

credit_limit is the approved amount rounded up to a multiple of $500. An approved
application offers the promotions its approved amount qualifies for: deferred interest
6/12/18/24 months from $200 (APR 0.00) and reduced APR 24/36/48/60 months from $1,000.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import urlsplit

# Raw statuses, upper case as CareCredit sends them.
APPLICATION_SENT = "APPLICATION_SENT"
PENDING = "PENDING"
REFERRED = "REFERRED"
APPROVED = "APPROVED"
DECLINED = "DECLINED"

CENT = Decimal("0.01")
DEFERRED_MONTHS = (6, 12, 18, 24)
DEFERRED_MIN_PURCHASE = Decimal("200.00")
REDUCED_APR_MONTHS = (24, 36, 48, 60)
REDUCED_APR_MIN_PURCHASE = Decimal("1000.00")
PARTIAL_SHARE = Decimal("0.60")
CREDIT_LIMIT_STEP = Decimal("500")

AMOUNT_RE = re.compile(r"^\d{1,9}(\.\d{1,2})?$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_STATE_RE = re.compile(r"^[A-Za-z]{2}$")
_ZIP_RE = re.compile(r"^\d{5}$")


def persona_for(surname: str) -> str:
    """The scripted outcome for an applicant's surname: decline, pending, partial, refer, expire or approve."""
    upper = surname.strip().upper()
    for prefix in ("DECLINE", "PENDING", "PARTIAL", "REFER", "EXPIRE"):
        if upper.startswith(prefix):
            return prefix.lower()
    return "approve"


def approved_amount_for(persona: str, requested: Decimal) -> Decimal:
    if persona == "partial":
        return (requested * PARTIAL_SHARE).quantize(CENT, rounding=ROUND_HALF_UP)
    return requested


def credit_limit_for(approved: Decimal) -> Decimal:
    """The approved amount rounded up to the next multiple of $500 (an exact multiple stays)."""
    steps = (approved / CREDIT_LIMIT_STEP).to_integral_value(rounding=ROUND_CEILING)
    return (steps * CREDIT_LIMIT_STEP).quantize(CENT)


def promotions_for(amount: Decimal, reduced_apr: Decimal) -> list[dict[str, Any]]:
    """The promotions (wire format) a purchase of `amount` qualifies for."""
    promotions: list[dict[str, Any]] = []
    if amount >= DEFERRED_MIN_PURCHASE:
        for months in DEFERRED_MONTHS:
            promotions.append({
                "code": f"DI{months}",
                "type": "DEFERRED_INTEREST",
                "months": months,
                "apr": "0.00",
                "min_purchase": money(DEFERRED_MIN_PURCHASE),
            })
    if amount >= REDUCED_APR_MIN_PURCHASE:
        for months in REDUCED_APR_MONTHS:
            promotions.append({
                "code": f"RA{months}",
                "type": "REDUCED_APR",
                "months": months,
                "apr": money(reduced_apr),
                "min_purchase": money(REDUCED_APR_MIN_PURCHASE),
            })
    return promotions


def validate_application(body: Any, today: date | None = None) -> dict[str, str]:
    """Field errors of a create-application body, ``{"field.path": "message"}``; empty if valid.

    Messages describe the rule, never the value: they travel back to the client and may
    end up in an error a billing clerk reads, so they must not echo PHI.
    """
    errors: dict[str, str] = {}
    if not isinstance(body, dict):
        return {"body": "must be a JSON object"}

    for name in ("merchant_number", "reference"):
        if not non_empty_str(body.get(name)):
            errors[name] = "is required"

    amount = body.get("requested_amount")
    if not isinstance(amount, str) or not AMOUNT_RE.match(amount):
        errors["requested_amount"] = 'must be a decimal string with at most 2 decimal places, e.g. "1234.00"'
    elif Decimal(amount) <= 0:
        errors["requested_amount"] = "must be greater than 0.00"

    callback_url = body.get("callback_url")
    if callback_url not in (None, ""):
        parts = urlsplit(callback_url) if isinstance(callback_url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            errors["callback_url"] = "must be an http or https URL"

    applicant = body.get("applicant")
    if not isinstance(applicant, dict):
        errors["applicant"] = "is required"
        return errors
    for name in ("first_name", "last_name"):
        if not non_empty_str(applicant.get(name)):
            errors[f"applicant.{name}"] = "is required"
    if not is_past_iso_date(applicant.get("birth_date"), today or date.today()):
        errors["applicant.birth_date"] = "must be a date in the past, YYYY-MM-DD"
    for name in ("phone", "email"):
        if applicant.get(name) is not None and not isinstance(applicant.get(name), str):
            errors[f"applicant.{name}"] = "must be a string"
    email = applicant.get("email")
    if isinstance(email, str) and email and "@" not in email:
        errors["applicant.email"] = "must be an email address"

    errors.update(address_errors(applicant.get("address"), "applicant.address"))
    return errors


def address_errors(address: Any, path: str) -> dict[str, str]:
    """Field errors of a postal address at `path` ("applicant.address"); empty if valid."""
    if not isinstance(address, dict):
        return {path: "is required"}
    errors: dict[str, str] = {}
    for name in ("line1", "city"):
        if not non_empty_str(address.get(name)):
            errors[f"{path}.{name}"] = "is required"
    if not (isinstance(address.get("state"), str) and _STATE_RE.match(address["state"])):
        errors[f"{path}.state"] = "must be a 2-letter state code"
    if not (isinstance(address.get("zip"), str) and _ZIP_RE.match(address["zip"])):
        errors[f"{path}.zip"] = "must be 5 digits"
    return errors


def non_empty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def is_past_iso_date(value: Any, today: date) -> bool:
    # The regex first: date.fromisoformat also accepts "20200101" and week dates.
    if not isinstance(value, str) or not _DATE_RE.match(value):
        return False
    try:
        return date.fromisoformat(value) < today
    except ValueError:
        return False


def money(amount: Decimal) -> str:
    return f"{amount.quantize(CENT):f}"
