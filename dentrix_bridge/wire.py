"""The connector contract's JSON shapes (CONTRACT.md), translated to and from
`financing.ports` dataclasses: every product's answers, and the request fields every
product shares (each product's own fields are its module's `request_fields`, in
`dentrix_bridge/products/`). CONTRACT.md is the prose version of what is here.

Wire conventions: money is a JSON string with 2 decimals ("1250.00", never a JSON number:
floats lose cents); dates are "YYYY-MM-DD"; ids are strings. Contract v2 only adds fields:
an answer without them (a v1 connector) reads with their defaults, but a field that is
there must have its type.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from financing.ports import (
    Address,
    Agreement,
    AgreementRequest,
    AppliedProcedure,
    Appointment,
    ConnectorInfo,
    Interval,
    LedgerEntry,
    LedgerEntryKind,
    LedgerEntryRequest,
    LedgerNoteRecord,
    LedgerNoteType,
    Patient,
    Procedure,
    TreatmentPlan,
)

from .rules import CENT

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A moment: date, time and its offset ("Z" or "+hh:mm"); without one it names no moment.
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")
# A plain decimal: no exponent, no sign other than a leading minus, no thousands
# separators. Whether it has the right number of decimals is a rule (rules.py).
_DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")

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


def parse_timestamp(value: Any) -> datetime:
    """Strictly read an ISO 8601 moment ("2027-02-15T14:00:00Z"), as an aware UTC datetime.
    A time without its offset is a contract mismatch, never read as some zone's."""
    if not isinstance(value, str) or not _TIMESTAMP.match(value):
        raise ValueError("not an ISO 8601 time with its offset")
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


def parse_clinic_id(value: Any) -> str:
    """A patient's clinic: an id string, "" or null for none. Strict, because which
    location may reach the patient depends on it: a number or an object is a contract
    mismatch, never read as some clinic."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError("clinic_id is not a string")
    return value.strip()


def parse_id(value: Any) -> str:
    """An id: a JSON string (the contract never sends ids as numbers)."""
    if not isinstance(value, str):
        raise ValueError("an id is not a string")
    return value


def _required_id(value: Any) -> str:
    """An id that must name something: a non-empty string."""
    if not parse_id(value):
        raise ValueError("an id is empty")
    return value


def _optional_id(value: Any) -> str:
    """An id or null ("" for none)."""
    return "" if value is None else parse_id(value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("not a string")
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError("not a list")
    return tuple(_text(v) for v in value)


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
    posted = data.get("posted", False)
    if not isinstance(posted, bool):
        raise ValueError("posted is not a boolean")
    return Procedure(
        code=str(data["code"]),
        tooth=str(data.get("tooth") or ""),
        surface=str(data.get("surface") or ""),
        fee=parse_money(data["fee"]),
        # v2; a v1 connector sends none of these: no id, not posted, nothing owed yet.
        procedure_id=_optional_id(data.get("procedure_id")),
        posted=posted,
        balance=parse_money(data["balance"]) if data.get("balance") is not None else Decimal("0.00"),
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
        # v2: each product's own fields; absent from a v1 connector (and from the products
        # that do not keep them), so each defaults to "none".
        product=_text(data.get("product") or ""),
        name=_text(data.get("name") or ""),
        patient_ids=_strings(data.get("patient_ids") or []),
        procedures=tuple(applied_procedure_from_json(p) for p in _list(data.get("procedures") or [])),
        supersedes=_optional_id(data.get("supersedes")),
        superseded_by=_optional_id(data.get("superseded_by")),
        start_date=parse_date(data["start_date"]) if data.get("start_date") is not None else None,
        contract_amount=parse_money(data["contract_amount"]) if data.get("contract_amount") is not None else None,
    )


def applied_procedure_from_json(data: dict[str, Any]) -> AppliedProcedure:
    return AppliedProcedure(procedure_id=parse_id(data["procedure_id"]), amount=parse_money(data["applied_amount"]))


def connector_info_from_json(data: dict[str, Any]) -> ConnectorInfo:
    """`GET /v1/connector`, strictly: which product a location writes for is checked
    against it, so a field of the wrong type is a contract mismatch, never a guess."""
    product = _text(data["product"])
    if not product:
        raise ValueError("the connector names no product")
    return ConnectorInfo(
        product=product,
        version=_text(data["version"]),
        database_id=_text(data["database_id"]) if data.get("database_id") is not None else "",
        capabilities=_strings(data["capabilities"]),
    )


def _list(value: Any) -> list:
    if not isinstance(value, list):
        raise ValueError("not a list")
    return value


def appointment_from_json(data: dict[str, Any]) -> Appointment:
    """One entry of `GET /v1/appointments` (v2.1), strictly: the nightly pre-screen picks
    patients and amounts from it, so a field of the wrong type is a contract mismatch, never
    a guess. `procedure_ids` is checked but not kept (the port carries the fees)."""
    _strings(data["procedure_ids"])
    planned_fees = parse_money(data["planned_fees"])
    if planned_fees < 0 or planned_fees != planned_fees.quantize(CENT):
        raise ValueError("planned_fees is not an amount of money")
    return Appointment(
        appointment_id=_required_id(data["appointment_id"]),
        patient_id=_required_id(data["patient_id"]),
        guarantor_id=_required_id(data["guarantor_id"]),
        starts_at=parse_timestamp(data["starts_at"]),
        clinic_id=parse_clinic_id(data["clinic_id"]),
        treatment_plan_id=_optional_id(data["treatment_plan_id"]),
        planned_fees=planned_fees,
    )


def ledger_note_from_json(data: dict[str, Any]) -> LedgerNoteRecord:
    return LedgerNoteRecord(
        note_id=str(data["note_id"]),
        patient_id=str(data["patient_id"]),
        type=LedgerNoteType(data["type"]),
        text=str(data["text"]),
    )


# A ledger entry's id and type fields, per kind (contract v2.2): the paths are its plural.
ENTRY_FIELDS = {
    LedgerEntryKind.PAYMENT: ("payment_id", "payment_type"),
    LedgerEntryKind.ADJUSTMENT: ("adjustment_id", "adjustment_type"),
}


def ledger_entry_from_json(kind: LedgerEntryKind, data: dict[str, Any]) -> LedgerEntry:
    """A payment or an adjustment (v2.2), strictly: Chairside finds its own by the marker in
    `note` and reads the amount back, so a field of the wrong type is a contract mismatch."""
    id_field, type_field = ENTRY_FIELDS[kind]
    amount = parse_money(data["amount"])
    if amount != amount.quantize(CENT):
        raise ValueError("amount is not an amount of money")
    return LedgerEntry(
        entry_id=_required_id(data[id_field]),
        kind=kind,
        patient_id=_required_id(data["patient_id"]),
        entry_date=parse_date(data["date"]),
        amount=amount,
        type_name=_text(data[type_field]),
        note=_text(data["note"]),
    )


# --- requests: dataclasses → connector JSON (used by the client) -------------------------


def ledger_entry_request_to_json(request: LedgerEntryRequest) -> dict[str, Any]:
    """The POST body of a payment or an adjustment (v2.2); the URL names the patient."""
    _, type_field = ENTRY_FIELDS[request.kind]
    return {
        "date": format_date(request.entry_date),
        "amount": format_money(request.amount),
        type_field: request.type_name,
        "note": request.note,
    }



def agreement_request_to_json(request: AgreementRequest) -> dict[str, Any]:
    """The POST body's fields every product shares (v1's). guarantor_id is not in it: the
    URL names the account. The client adds the product's own (`request_fields`)."""
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
