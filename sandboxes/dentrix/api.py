"""The connector contract's /v1 routes (CONTRACT.md "Endpoints"), judged by the
sandbox's product (`products`: the G-series' `rules`, and what each product changes).

Every route needs the connector's key in ``X-API-Key`` (checked by the app before the
route runs). Errors are ``{"error": "<one line>", "fields": {...}}``, ids only, never
patient data.
"""

from __future__ import annotations

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from ..kit.http import SandboxError, field_errors, json_response, read_json
from . import rules, schedule
from .wire import money, read_date, timestamp

MSG_DATE_REQUIRED = "Name the day: GET /v1/appointments?date=YYYY-MM-DD."
MSG_ONE_DATE = "Ask for one day at a time: one date=YYYY-MM-DD."
MSG_BAD_DAY = "The date must be a real day written YYYY-MM-DD, e.g. 2027-02-15."


def patient_or_404(app, patient_id: str) -> dict:
    patient = app.store.patients.get(patient_id)
    if patient is None:
        raise SandboxError(404, f"Patient {patient_id} was not found in {app.product.name}.")
    return patient


def account_or_404(app, guarantor_id: str) -> dict:
    """Agreements belong to an account, and an account is a guarantor's."""
    patient = app.store.patients.get(guarantor_id)
    name = app.product.name
    if patient is None:
        raise SandboxError(404, f"Account {guarantor_id} was not found in {name}.")
    if patient["guarantor_id"] != guarantor_id:
        raise SandboxError(
            404,
            f"Account {guarantor_id} was not found in {name}: patient {guarantor_id} is on "
            f"account {patient['guarantor_id']}.",
        )
    return patient


def agreement_or_404(app, agreement_id: str, guarantor_id: str | None = None) -> dict:
    """A saved record (on the given account, when the path names one)."""
    agreement = app.store.agreements.get(agreement_id)
    if agreement is None or (guarantor_id is not None and agreement["guarantor_id"] != guarantor_id):
        where = f" on account {guarantor_id}" if guarantor_id is not None else ""
        raise SandboxError(404, f"{app.product.Record} {agreement_id} was not found{where} in {app.product.name}.")
    return agreement


def connector(app, request: Request) -> Response:
    return json_response(app.product.describe())


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
    # The contract's order: the account, then the fields, then the rules about the
    # account's other records (409); all under the lock, so the last rule holds under
    # concurrent requests too.
    with app.store.lock:
        account_or_404(app, guarantor_id)
        record = app.product.create(app, guarantor_id, body)
    return json_response(record, 201)


def get_agreement(app, request: Request, guarantor_id: str, agreement_id: str) -> Response:
    with app.store.lock:
        account_or_404(app, guarantor_id)
        return json_response(agreement_or_404(app, agreement_id, guarantor_id))


def replace_agreement(app, request: Request, guarantor_id: str, agreement_id: str) -> Response:
    body = read_json(request)
    with app.store.lock:
        account_or_404(app, guarantor_id)
        return json_response(app.product.replace(app, agreement_or_404(app, agreement_id, guarantor_id), body))


def delete_agreement(app, request: Request, guarantor_id: str, agreement_id: str) -> Response:
    with app.store.lock:
        account_or_404(app, guarantor_id)
        app.product.delete(app, agreement_or_404(app, agreement_id, guarantor_id))
    return Response(status=204)


def aging(app, request: Request, guarantor_id: str) -> Response:
    """Eaglesoft's account aging, with the contract bucket; other products have none."""
    if not hasattr(app.product, "aging"):
        raise SandboxError(404, f"No such endpoint: GET {request.path} ({app.product.name} keeps no aging here).")
    with app.store.lock:
        account_or_404(app, guarantor_id)
        buckets = app.product.aging(app, guarantor_id)
    return json_response({name: money(amount) for name, amount in buckets.items()})


def list_appointments(app, request: Request) -> Response:
    """The practice's appointments on a day of its appointment book (v2.1), every product."""
    values = request.args.getlist("date")
    problem = MSG_DATE_REQUIRED if not values else MSG_ONE_DATE if len(values) > 1 else None
    day = read_date(values[0]) if problem is None else None
    if problem is None and day is None:
        problem = MSG_BAD_DAY
    if problem is not None:
        raise SandboxError(400, problem, fields={"date": problem})
    with app.store.lock:
        return json_response(schedule.appointments_on(app, day))


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


AGREEMENT = "/v1/accounts/<guarantor_id>/payment-agreements/<agreement_id>"
ROUTES = [
    Rule("/v1/connector", methods=["GET"], endpoint=connector),
    Rule("/v1/patients/<patient_id>", methods=["GET"], endpoint=get_patient),
    Rule("/v1/patients/<patient_id>/treatment-plans", methods=["GET"], endpoint=list_plans),
    Rule("/v1/accounts/<guarantor_id>/payment-agreements", methods=["GET"], endpoint=list_agreements),
    Rule("/v1/accounts/<guarantor_id>/payment-agreements", methods=["POST"], endpoint=create_agreement),
    Rule(AGREEMENT, methods=["GET"], endpoint=get_agreement),
    Rule(AGREEMENT, methods=["PUT"], endpoint=replace_agreement),
    Rule(AGREEMENT, methods=["DELETE"], endpoint=delete_agreement),
    Rule("/v1/accounts/<guarantor_id>/aging", methods=["GET"], endpoint=aging),
    Rule("/v1/appointments", methods=["GET"], endpoint=list_appointments),
    Rule("/v1/patients/<patient_id>/ledger-notes", methods=["GET"], endpoint=list_notes),
    Rule("/v1/patients/<patient_id>/ledger-notes", methods=["POST"], endpoint=create_note),
]
