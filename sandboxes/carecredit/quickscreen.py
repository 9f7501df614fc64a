"""The CareCredit sandbox's Quickscreen (batch pre-screening) and cardholder rules.

Quickscreen is CareCredit's soft check "using only a customer's name and address"; practice
systems run it in a batch for the next day's scheduled patients and the estimated fee of
each appointment (Open Dental's daily batch). Each applicant gets one result, by surname
(case-insensitive prefix) like the application personas:

| surname | status | with |
|---|---|---|
| ``Cardholder…`` | ``ACCOUNT_FOUND`` (already holds the card) | ``available_credit`` (the configured ``cardholder_available_credit``, $5,000.00) |
| ``Nomatch…`` | ``NO_MATCH`` (name and address not matched) | nothing |
| ``Decline…``, ``Refer…`` | ``NOT_PREAPPROVED`` ("refer the patient to the credit application") | nothing |
| ``Partial…`` | ``PREAPPROVED`` | ``preapproved_amount`` 60% of the fee (half-up to the cent), ``expires_on`` |
| anyone else | ``PREAPPROVED`` | ``preapproved_amount`` the fee rounded up to a multiple of $500, ``expires_on`` |

whatever the surname, an applicant under 18 on the sandbox's date is ``NOT_ELIGIBLE`` (minors
are screened through their guarantor), and an entry with invalid fields is ``INVALID`` with
its ``fields`` (the rest of the batch is still screened). A pre-approval expires
``prescreen_valid_days`` (30) after the sandbox's date. Dates are the sandbox clock's UTC date.

A pre-screen is computed, not stored: the same applicant on the same day gets the same answer,
so a client may send a batch again after a lost answer. No demographics are kept.

Cardholder confirmation: an existing cardholder's account is found by identity (names, birth
date, address; no SSN, no card number). Only ``Cardholder…`` surnames aged 18 or more hold an
account; its available credit is ``cardholder_available_credit``. An amount within it is
``APPROVED`` with the promotions the amount qualifies for, a larger one
``INSUFFICIENT_CREDIT``. The account is named by ``account_last4`` and ``account_token``, never
by its full number.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from .personas import (
    AMOUNT_RE,
    CENT,
    address_errors,
    credit_limit_for,
    is_past_iso_date,
    money,
    non_empty_str,
)

# Raw Quickscreen statuses.
PREAPPROVED = "PREAPPROVED"
ACCOUNT_FOUND = "ACCOUNT_FOUND"
NOT_PREAPPROVED = "NOT_PREAPPROVED"
NO_MATCH = "NO_MATCH"
NOT_ELIGIBLE = "NOT_ELIGIBLE"
INVALID = "INVALID"

# Raw cardholder confirmation statuses.
CONFIRMED = "APPROVED"
INSUFFICIENT_CREDIT = "INSUFFICIENT_CREDIT"

MAX_BATCH = 100  # applicants per Quickscreen batch
MAX_REFERENCE = 64
ADULT_AGE = 18
PARTIAL_SHARE = Decimal("0.60")


def prescreen_persona_for(surname: str) -> str:
    """cardholder, nomatch, decline (Decline… and Refer…), partial or approve."""
    upper = surname.strip().upper()
    for prefix, persona in (
        ("CARDHOLDER", "cardholder"), ("NOMATCH", "nomatch"), ("DECLINE", "decline"),
        ("REFER", "decline"), ("PARTIAL", "partial"),
    ):
        if upper.startswith(prefix):
            return persona
    return "approve"


def age_on(birth_date: date, today: date) -> int:
    return today.year - birth_date.year - ((today.month, today.day) < (birth_date.month, birth_date.day))


def person_errors(person: Any, path: str, today: date) -> dict[str, str]:
    """Field errors of a person to screen or confirm (names, birth date, address)."""
    if not isinstance(person, dict):
        return {path or "body": "must be a JSON object"}
    prefix = f"{path}." if path else ""
    errors: dict[str, str] = {}
    for name in ("first_name", "last_name"):
        if not non_empty_str(person.get(name)):
            errors[f"{prefix}{name}"] = "is required"
    if not is_past_iso_date(person.get("birth_date"), today):
        errors[f"{prefix}birth_date"] = "must be a date in the past, YYYY-MM-DD"
    errors.update(address_errors(person.get("address"), f"{prefix}address"))
    return errors


def amount_errors(value: Any, name: str) -> dict[str, str]:
    if not isinstance(value, str) or not AMOUNT_RE.match(value):
        return {name: 'must be a decimal string with at most 2 decimal places, e.g. "1234.00"'}
    if Decimal(value) <= 0:
        return {name: "must be greater than 0.00"}
    return {}


def batch_errors(body: Any) -> dict[str, str]:
    """What makes a whole batch unreadable (400): not its entries' own fields."""
    if not isinstance(body, dict):
        return {"body": "must be a JSON object"}
    errors: dict[str, str] = {}
    if not non_empty_str(body.get("merchant_number")):
        errors["merchant_number"] = "is required"
    applicants = body.get("applicants")
    if not isinstance(applicants, list) or not applicants:
        errors["applicants"] = "must be a non-empty list"
        return errors
    if len(applicants) > MAX_BATCH:
        errors["applicants"] = f"must hold at most {MAX_BATCH} applicants per batch"
        return errors
    seen: set[str] = set()
    for index, entry in enumerate(applicants):
        reference = entry.get("reference") if isinstance(entry, dict) else None
        if not non_empty_str(reference) or len(reference) > MAX_REFERENCE:
            errors[f"applicants[{index}].reference"] = f"is required, at most {MAX_REFERENCE} characters"
        elif reference in seen:
            errors[f"applicants[{index}].reference"] = "must be unique in the batch"
        else:
            seen.add(reference)
    return errors


def screen(entry: dict[str, Any], today: date, *, valid_days: int, available_credit: Decimal) -> dict[str, Any]:
    """One applicant's Quickscreen result (wire format); the entry's reference is valid."""
    result: dict[str, Any] = {
        "reference": entry["reference"],
        "status": None,
        "preapproved_amount": None,
        "available_credit": None,
        "expires_on": None,
    }
    fields = {**person_errors(entry, "", today), **amount_errors(entry.get("requested_amount"), "requested_amount")}
    if fields:
        return {**result, "status": INVALID, "fields": fields}
    if age_on(date.fromisoformat(entry["birth_date"]), today) < ADULT_AGE:
        return {**result, "status": NOT_ELIGIBLE}
    requested = Decimal(entry["requested_amount"])
    persona = prescreen_persona_for(entry["last_name"])
    if persona == "cardholder":
        return {**result, "status": ACCOUNT_FOUND, "available_credit": money(available_credit)}
    if persona == "nomatch":
        return {**result, "status": NO_MATCH}
    if persona == "decline":
        return {**result, "status": NOT_PREAPPROVED}
    if persona == "partial":
        amount = (requested * PARTIAL_SHARE).quantize(CENT, rounding=ROUND_HALF_UP)
    else:
        amount = credit_limit_for(requested)
    return {
        **result,
        "status": PREAPPROVED,
        "preapproved_amount": money(amount),
        "expires_on": date.fromordinal(today.toordinal() + valid_days).isoformat(),
    }


def confirmation_errors(body: Any, today: date) -> dict[str, str]:
    """Field errors of a cardholder confirmation request; empty if valid."""
    if not isinstance(body, dict):
        return {"body": "must be a JSON object"}
    errors: dict[str, str] = {}
    if not non_empty_str(body.get("merchant_number")):
        errors["merchant_number"] = "is required"
    reference = body.get("reference")
    if not non_empty_str(reference) or len(reference) > MAX_REFERENCE:
        errors["reference"] = f"is required, at most {MAX_REFERENCE} characters"
    errors.update(amount_errors(body.get("requested_amount"), "requested_amount"))
    errors.update(person_errors(body.get("cardholder"), "cardholder", today))
    return errors


def holds_account(cardholder: dict[str, Any], today: date) -> bool:
    """Whether a (valid) identity is one of the sandbox's cardholders."""
    adult = age_on(date.fromisoformat(cardholder["birth_date"]), today) >= ADULT_AGE
    return adult and prescreen_persona_for(cardholder["last_name"]) == "cardholder"


def account_for(key: bytes, cardholder: dict[str, Any]) -> tuple[str, str]:
    """(last four digits, token) of a cardholder's account, stable for the same identity.

    A keyed hash of the identity (the key is the sandbox's own, random per run), so the
    same person gets the same account and nothing about them can be read back from it.
    """
    identity = "|".join(
        str(value).strip().upper()
        for value in (cardholder["first_name"], cardholder["last_name"], cardholder["birth_date"], cardholder["address"]["zip"])
    )
    digest = hmac.new(key, identity.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{int(digest[:8], 16) % 10000:04d}", "acct_" + digest[8:32]
