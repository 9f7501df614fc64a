"""Dentrix Enterprise (11.0.2 Update 4 and later): named payment plans, several per account,
each covering one or more patients of the account.

Its terms follow the G-series rules (intervals included). What it adds: a name of 1 to 30
characters, and the patients the plan covers. Chairside's plan covers the case's patient,
whose own record named the account (the guarantor), so the patient is on the account by
construction; the connector checks it again ("Patient 1234 is not on account 1001.").
Several active plans on one account are allowed: the registry says so
(`plans_per_account: None`), and Chairside writes beside the plans already there.
"""

from datetime import date

from financing.ports import Agreement, AgreementRequest

from .. import rules

KEY = "dentrix_enterprise"
NAME = "Dentrix Enterprise"
RECORD = "payment plan"

MAX_NAME_LENGTH = 30
MSG_NAME_REQUIRED = "Dentrix Enterprise needs a name for the payment plan."
MSG_NAME_TOO_LONG = f"Dentrix Enterprise payment plan names are limited to {MAX_NAME_LENGTH} characters."
MSG_PATIENT_REQUIRED = "Dentrix Enterprise needs the patient the payment plan covers."


def validate_agreement(request: AgreementRequest, *, today: date | None = None) -> dict[str, str]:
    errors = rules.validate_agreement(request, today=today)
    name = request.name
    if not isinstance(name, str) or not name.strip():
        errors["name"] = MSG_NAME_REQUIRED
    elif len(name) > MAX_NAME_LENGTH:
        errors["name"] = MSG_NAME_TOO_LONG
    if not request.patient_id:
        errors["patient_id"] = MSG_PATIENT_REQUIRED
    return errors


def request_fields(request: AgreementRequest) -> dict:
    return {"name": request.name, "patient_ids": [request.patient_id]}


def stored_differences(request: AgreementRequest, stored: Agreement) -> list[tuple[str, str, str]]:
    differences = []
    if stored.name != request.name:
        differences.append(("Plan name", request.name, stored.name or "none"))
    if sorted(stored.patient_ids) != [request.patient_id]:
        differences.append(("Patients covered", request.patient_id, ", ".join(stored.patient_ids) or "none"))
    return differences
