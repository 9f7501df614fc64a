"""The connector contract's /v1 routes (CONTRACT.md "Endpoints"), judged by `rules`.

Every route needs the connector's key in ``X-API-Key`` (checked by the app before the
route runs). Errors are ``{"error": "<one line>", "fields": {...}}``, ids only, never
patient data.
"""

from __future__ import annotations

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from ..kit.http import SandboxError, field_errors, json_response, read_json
from . import rules
from .wire import money, timestamp

ONE_ACTIVE = "Dentrix allows one active agreement per account."


def patient_or_404(app, patient_id: str) -> dict:
    patient = app.store.patients.get(patient_id)
    if patient is None:
        raise SandboxError(404, f"Patient {patient_id} was not found in Dentrix.")
    return patient


def account_or_404(app, guarantor_id: str) -> dict:
    """Agreements belong to an account, and an account is a guarantor's."""
    patient = app.store.patients.get(guarantor_id)
    if patient is None:
        raise SandboxError(404, f"Account {guarantor_id} was not found in Dentrix.")
    if patient["guarantor_id"] != guarantor_id:
        raise SandboxError(
            404,
            f"Account {guarantor_id} was not found in Dentrix: patient {guarantor_id} is on "
            f"account {patient['guarantor_id']}.",
        )
    return patient


def refuse_second_active(app, guarantor_id: str, except_id: str | None = None) -> None:
    """409 when the account already has another active agreement (store lock held)."""
    for other in app.store.agreements_for(guarantor_id):
        if other["status"] == "active" and other["agreement_id"] != except_id:
            raise SandboxError(
                409,
                f"Account {guarantor_id} already has an active payment agreement "
                f"(agreement {other['agreement_id']}). {ONE_ACTIVE}",
            )


def get_patient(app, request: Request, patient_id: str) -> Response:
    with app.store.lock:
        return json_response(patient_or_404(app, patient_id))


def list_plans(app, request: Request, patient_id: str) -> Response:
    with app.store.lock:
        patient_or_404(app, patient_id)
        return json_response(app.store.plans_for(patient_id))


def list_agreements(app, request: Request, guarantor_id: str) -> Response:
    with app.store.lock:
        account_or_404(app, guarantor_id)
        return json_response(app.store.agreements_for(guarantor_id))


def create_agreement(app, request: Request, guarantor_id: str) -> Response:
    body = read_json(request)
    # The contract's order: the account, then the fields, then one active agreement;
    # all under the lock, so the last rule holds under concurrent requests too.
    with app.store.lock:
        account_or_404(app, guarantor_id)
        errors = rules.check_agreement(body, app.clock.today())
        if errors:
            raise field_errors(errors, "payment agreement")
        refuse_second_active(app, guarantor_id)
        record = {
            "agreement_id": app.store.new_id("agreements"),
            "guarantor_id": guarantor_id,
            "status": "active",
            "agreement_date": body["agreement_date"],
            "interval": body["interval"],
            **{name: money(body[name]) for name in ("total_agreed_amount", "down_payment", "payment_amount")},
            "number_of_payments": body["number_of_payments"],
            "first_payment_due": body["first_payment_due"],
            "annual_finance_charge_pct": money(body["annual_finance_charge_pct"]),
            "note": body["note"],
            "created_at": timestamp(app.clock.now()),
        }
        app.store.put("agreements", record)
    return json_response(record, 201)


def list_notes(app, request: Request, patient_id: str) -> Response:
    with app.store.lock:
        patient_or_404(app, patient_id)
        return json_response(app.store.notes_for(patient_id))


def create_note(app, request: Request, patient_id: str) -> Response:
    body = read_json(request)
    with app.store.lock:
        patient_or_404(app, patient_id)
        errors = rules.check_ledger_note(body)
        if errors:
            raise field_errors(errors, "ledger note")
        record = {
            "note_id": app.store.new_id("notes"),
            "patient_id": patient_id,
            "type": body["type"],
            "text": body["text"],
            "created_at": timestamp(app.clock.now()),
        }
        app.store.put("notes", record)
    return json_response(record, 201)


ROUTES = [
    Rule("/v1/patients/<patient_id>", methods=["GET"], endpoint=get_patient),
    Rule("/v1/patients/<patient_id>/treatment-plans", methods=["GET"], endpoint=list_plans),
    Rule("/v1/accounts/<guarantor_id>/payment-agreements", methods=["GET"], endpoint=list_agreements),
    Rule("/v1/accounts/<guarantor_id>/payment-agreements", methods=["POST"], endpoint=create_agreement),
    Rule("/v1/patients/<patient_id>/ledger-notes", methods=["GET"], endpoint=list_notes),
    Rule("/v1/patients/<patient_id>/ledger-notes", methods=["POST"], endpoint=create_note),
]
