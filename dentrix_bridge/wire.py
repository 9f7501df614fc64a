"""The connector contract's JSON shapes, translated to and from `financing.ports` dataclasses.

Both sides of the contract use this module: the client to read responses and send
requests, the sandbox to read requests. Keeping the translation in one place means the
two can only disagree about a rule (rules.py), never about a shape. CONTRACT.md is the
prose version of what is here.

Wire conventions: money is a JSON string with 2 decimals ("1250.00", never a JSON number:
floats lose cents); dates are "YYYY-MM-DD"; ids are strings.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from financing.ports import (
    Address,
    Agreement,
    AgreementRequest,
    Interval,
    LedgerNoteRecord,
    LedgerNoteType,
    Patient,
    Procedure,
    TreatmentPlan,
)

from .rules import CENT, REQUIRED

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A plain decimal: no exponent, no sign other than a leading minus, no thousands
# separators. Whether it has the right number of decimals is a rule (rules.py).
_DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")

MSG_BAD_MONEY = 'Send the amount as text, e.g. "1250.00".'
MSG_BAD_DATE = "Enter a date as YYYY-MM-DD."
MSG_BAD_INTEGER = "Enter a whole number of payments."
MSG_BAD_TEXT = "This field must be text."


# --- scalars -----------------------------------------------------------------------------


def format_money(amount: Decimal) -> str:
    """Money for the wire: "1250.00". An amount with more than 2 decimals is sent as it
    is (never silently rounded) so the connector rejects it instead of storing a
    different number."""
    quantized = amount.quantize(CENT)
    return format(quantized if quantized == amount else amount, "f")


def format_date(value: date) -> str:
    return value.isoformat()


def parse_money(value: Any) -> Decimal:
    """Strictly read a wire decimal; ValueError when it is not one."""
    if not isinstance(value, str) or not _DECIMAL.match(value):
        raise ValueError("not a decimal string")
    try:
        return Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - the regex already excludes these
        raise ValueError("not a decimal string") from exc


def parse_date(value: Any) -> date:
    """Strictly read "YYYY-MM-DD" (date.fromisoformat alone also accepts "20240131")."""
    if not isinstance(value, str) or not _DATE.match(value):
        raise ValueError("not a YYYY-MM-DD date")
    return date.fromisoformat(value)


def parse_clinic_id(value: Any) -> str:
    """A patient's clinic: an id string, "" or null for none. Strict, because which
    location may reach the patient depends on it: a number or an object is a contract
    mismatch, never read as some clinic."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError("clinic_id is not a string")
    return value.strip()


# --- responses: connector JSON → dataclasses (used by the client) ------------------------
# These raise KeyError / ValueError / TypeError on a malformed body; the client turns
# that into a partner error without echoing the body.


def patient_from_json(data: dict[str, Any]) -> Patient:
    address = data["address"]
    return Patient(
        patient_id=str(data["patient_id"]),
        guarantor_id=str(data["guarantor_id"]),
        first_name=str(data["first_name"]),
        last_name=str(data["last_name"]),
        birth_date=parse_date(data["birth_date"]),
        phone=str(data["phone"]),
        email=str(data["email"]),
        address=Address(
            line1=str(address["line1"]),
            city=str(address["city"]),
            state=str(address["state"]),
            zip=str(address["zip"]),
        ),
        clinic_id=parse_clinic_id(data["clinic_id"]),
    )


def procedure_from_json(data: dict[str, Any]) -> Procedure:
    return Procedure(
        code=str(data["code"]),
        tooth=str(data.get("tooth") or ""),
        surface=str(data.get("surface") or ""),
        fee=parse_money(data["fee"]),
    )


def treatment_plan_from_json(data: dict[str, Any]) -> TreatmentPlan:
    return TreatmentPlan(
        plan_id=str(data["treatment_plan_id"]),
        patient_id=str(data["patient_id"]),
        # Dentrix shows "Accepted"; the port promises lower case.
        status=str(data["status"]).lower(),
        procedures=tuple(procedure_from_json(p) for p in data["procedures"]),
    )


def agreement_from_json(data: dict[str, Any]) -> Agreement:
    number_of_payments = data["number_of_payments"]
    if isinstance(number_of_payments, bool) or not isinstance(number_of_payments, int):
        raise ValueError("number_of_payments is not an integer")
    return Agreement(
        agreement_id=str(data["agreement_id"]),
        guarantor_id=str(data["guarantor_id"]),
        status=str(data["status"]).lower(),
        agreement_date=parse_date(data["agreement_date"]),
        interval=Interval(data["interval"]),
        total_agreed_amount=parse_money(data["total_agreed_amount"]),
        down_payment=parse_money(data["down_payment"]),
        payment_amount=parse_money(data["payment_amount"]),
        number_of_payments=number_of_payments,
        first_payment_due=parse_date(data["first_payment_due"]),
        annual_finance_charge_pct=parse_money(data["annual_finance_charge_pct"]),
        note=str(data["note"]),
    )


def ledger_note_from_json(data: dict[str, Any]) -> LedgerNoteRecord:
    return LedgerNoteRecord(
        note_id=str(data["note_id"]),
        patient_id=str(data["patient_id"]),
        type=LedgerNoteType(data["type"]),
        text=str(data["text"]),
    )


# --- requests: dataclasses → connector JSON (used by the client) -------------------------


def agreement_request_to_json(request: AgreementRequest) -> dict[str, Any]:
    """The POST body. guarantor_id is not in it: the URL names the account."""
    return {
        "agreement_date": format_date(request.agreement_date),
        "interval": str(request.interval),
        "total_agreed_amount": format_money(request.total_agreed_amount),
        "down_payment": format_money(request.down_payment),
        "payment_amount": format_money(request.payment_amount),
        "number_of_payments": request.number_of_payments,
        "first_payment_due": format_date(request.first_payment_due),
        "annual_finance_charge_pct": format_money(request.annual_finance_charge_pct),
        "note": request.note,
    }


# --- requests: connector JSON → dataclasses (used by the sandbox) ------------------------


def agreement_request_from_json(
    guarantor_id: str, payload: dict[str, Any]
) -> tuple[AgreementRequest, dict[str, str]]:
    """Read a POST body into an AgreementRequest, leniently.

    Returns the request with None for every field that is missing or unreadable, plus
    the shape errors ({field: message}) for fields that were present but unreadable. The
    caller then runs rules.validate_agreement on the request (which reports the missing
    ones as required) and lets these shape errors win for the fields they name. That way
    one response lists every problem with the request, not just the first.
    """
    errors: dict[str, str] = {}

    def money(name: str) -> Decimal | None:
        if payload.get(name) is None:
            return None
        try:
            return parse_money(payload[name])
        except ValueError:
            errors[name] = MSG_BAD_MONEY
            return None

    def day(name: str) -> date | None:
        if payload.get(name) is None:
            return None
        try:
            return parse_date(payload[name])
        except ValueError:
            errors[name] = MSG_BAD_DATE
            return None

    interval = payload.get("interval")
    if interval is not None and not isinstance(interval, str):
        errors["interval"] = "Interval must be one of weekly, biweekly, semimonthly, monthly."
        interval = None
    elif isinstance(interval, str) and interval in {i.value for i in Interval}:
        interval = Interval(interval)
    # else: a plain unknown string, reported by the rules with the same message

    number_of_payments = payload.get("number_of_payments")
    if number_of_payments is not None and (
        isinstance(number_of_payments, bool) or not isinstance(number_of_payments, int)
    ):
        errors["number_of_payments"] = MSG_BAD_INTEGER
        number_of_payments = None

    note = payload.get("note")
    if note is not None and not isinstance(note, str):
        errors["note"] = MSG_BAD_TEXT
        note = None

    request = AgreementRequest(
        guarantor_id=guarantor_id,
        agreement_date=day("agreement_date"),
        interval=interval,
        total_agreed_amount=money("total_agreed_amount"),
        down_payment=money("down_payment"),
        payment_amount=money("payment_amount"),
        number_of_payments=number_of_payments,
        first_payment_due=day("first_payment_due"),
        annual_finance_charge_pct=money("annual_finance_charge_pct"),
        note=note,
    )
    return request, errors


def procedure_request_from_json(payload: Any) -> tuple[Procedure | None, dict[str, str]]:
    """Read one {code, tooth, surface, fee} of a sandbox patient; None plus errors if it
    cannot even be read. tooth and surface may be left out (no tooth / no surface)."""
    if not isinstance(payload, dict):
        return None, {"": "Each procedure must be an object with code, tooth, surface and fee."}
    errors: dict[str, str] = {}
    fee = None
    if payload.get("fee") is None:
        errors["fee"] = REQUIRED
    else:
        try:
            fee = parse_money(payload["fee"])
        except ValueError:
            errors["fee"] = MSG_BAD_MONEY
    texts = {}
    for name in ("code", "tooth", "surface"):
        value = payload.get(name, "" if name != "code" else None)
        if value is None:
            errors[name] = REQUIRED
        elif not isinstance(value, str):
            errors[name] = MSG_BAD_TEXT
        texts[name] = value if isinstance(value, str) else ""
    procedure = Procedure(code=texts["code"], tooth=texts["tooth"], surface=texts["surface"], fee=fee)
    return procedure, errors
