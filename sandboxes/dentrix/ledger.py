"""A patient's ledger payments and adjustments, and the practice's types for them
(CONTRACT.md v2.2, "Ledger payments and adjustments"), the same in every product.

Written from the contract, never from Chairside's bridge. A payment or an adjustment names
its type by the practice's own name for it ("CareCredit Payment"); the connector resolves
the name against the practice's types (`GET /v1/ledger-types`), exactly as written: an
unknown or inactive type is **422** naming it, with nothing stored. The order of the
checks: the patient (404), the fields (400, every problem at once), the type (422).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from ..kit.http import SandboxError, field_errors, json_response, read_json
from .api import patient_or_404
from .wire import CENT, MSG_BAD_DATE, MSG_BAD_MONEY, MSG_BAD_TEXT, REQUIRED, money, read_date, read_money, timestamp

MAX_NOTE = 255


class Kind:
    """What differs between a payment and an adjustment on the wire."""

    def __init__(self, kind: str, table: str, id_field: str, type_field: str, word: str):
        self.kind, self.table, self.id_field, self.type_field, self.word = kind, table, id_field, type_field, word

    @property
    def Word(self) -> str:
        return self.word[:1].upper() + self.word[1:]


PAYMENT = Kind("payment", "payments", "payment_id", "payment_type", "payment")
ADJUSTMENT = Kind("adjustment", "adjustments", "adjustment_id", "adjustment_type", "adjustment")


def check_entry(kind: Kind, body: dict[str, Any], today) -> dict[str, str]:
    """Every field problem of a payment or adjustment body; `today` is the connector's date."""
    errors: dict[str, str] = {}
    entry_date = body.get("date")
    if entry_date is None:
        errors["date"] = REQUIRED
    elif (day := read_date(entry_date)) is None:
        errors["date"] = MSG_BAD_DATE
    elif day > today + timedelta(days=1):  # the agreement date's day of grace for time zones
        errors["date"] = f"{kind.Word} date cannot be set for the future."
    amount = body.get("amount")
    if amount is None:
        errors["amount"] = REQUIRED
    elif (value := read_money(amount)) is None:
        errors["amount"] = MSG_BAD_MONEY
    elif value != value.quantize(CENT):
        errors["amount"] = "Amounts can have at most 2 decimal places."
    elif kind is PAYMENT and value <= 0:
        # A payment lowers the balance by what was paid: money given back is a refund
        # adjustment, never a negative payment.
        errors["amount"] = "Payment amount must be greater than 0."
    elif kind is ADJUSTMENT and value == 0:
        errors["amount"] = "Adjustment amount cannot be 0."
    type_name = body.get(kind.type_field)
    if type_name is None or type_name == "":
        errors[kind.type_field] = REQUIRED
    elif not isinstance(type_name, str):
        errors[kind.type_field] = MSG_BAD_TEXT
    note = body.get("note")
    if note is None:
        errors["note"] = REQUIRED
    elif not isinstance(note, str):
        errors["note"] = MSG_BAD_TEXT
    elif len(note) > MAX_NOTE:
        errors["note"] = f"{kind.Word} notes are limited to {MAX_NOTE} characters."
    return errors


def resolve_type(app, kind: Kind, name: str) -> dict:
    """The practice's active type of that kind called exactly `name`; 422 otherwise."""
    for ledger_type in app.store.ledger_types.values():
        if ledger_type["kind"] == kind.kind and ledger_type["name"] == name:
            if not ledger_type["active"]:
                message = f'{kind.Word} type "{name}" is inactive in {app.product.name}: choose an active one.'
                raise SandboxError(422, message, fields={kind.type_field: message})
            return ledger_type
    message = (
        f'{kind.Word} type "{name}" is not one of the practice\'s {kind.word} types in {app.product.name}: '
        f"add it in {app.product.name}, or choose another."
    )
    raise SandboxError(422, message, fields={kind.type_field: message})


def _lister(kind: Kind):
    def list_entries(app, request: Request, patient_id: str) -> Response:
        with app.store.lock:
            patient_or_404(app, patient_id)
            return json_response(app.store.entries_for(kind.table, patient_id))

    return list_entries


def _poster(kind: Kind):
    def post_entry(app, request: Request, patient_id: str) -> Response:
        body = read_json(request)
        with app.store.lock:
            patient = patient_or_404(app, patient_id)
            errors = check_entry(kind, body, app.clock.today())
            if errors:
                raise field_errors(errors, kind.word)
            ledger_type = resolve_type(app, kind, body[kind.type_field])
            record = app.store.put(kind.table, {
                kind.id_field: app.store.new_id(kind.table),
                "patient_id": patient_id,
                "guarantor_id": patient["guarantor_id"],
                "date": body["date"],
                "amount": money(body["amount"]),
                kind.type_field: ledger_type["name"],
                "note": body["note"],
                "created_at": timestamp(app.clock.now()),
            })
        return json_response(record, 201)

    return post_entry


def list_types(app, request: Request) -> Response:
    with app.store.lock:
        return json_response(list(app.store.ledger_types.values()))


def put_type(app, request: Request) -> Response:
    """Sandbox control: the practice adds a type, or (in)activates one, by kind and name."""
    body = read_json(request)
    errors: dict[str, str] = {}
    kind, name, active = body.get("kind"), body.get("name"), body.get("active", True)
    if kind not in ("payment", "adjustment"):
        errors["kind"] = "Kind must be payment or adjustment."
    if not isinstance(name, str) or not name.strip():
        errors["name"] = REQUIRED
    elif len(name) > 50:
        errors["name"] = "Type names are limited to 50 characters."
    if not isinstance(active, bool):
        errors["active"] = "Active must be true or false."
    if errors:
        raise field_errors(errors, "type")
    with app.store.lock:
        existing = next(
            (t for t in app.store.ledger_types.values() if t["kind"] == kind and t["name"] == name), None
        )
        if existing is not None:
            return json_response(app.store.put("ledger_types", {**existing, "active": active}))
        record = {"type_id": app.store.new_id("ledger_types"), "kind": kind, "name": name, "active": active}
        return json_response(app.store.put("ledger_types", record), 201)


ROUTES = [
    Rule("/v1/ledger-types", methods=["GET"], endpoint=list_types),
    Rule("/v1/patients/<patient_id>/payments", methods=["GET"], endpoint=_lister(PAYMENT)),
    Rule("/v1/patients/<patient_id>/payments", methods=["POST"], endpoint=_poster(PAYMENT)),
    Rule("/v1/patients/<patient_id>/adjustments", methods=["GET"], endpoint=_lister(ADJUSTMENT)),
    Rule("/v1/patients/<patient_id>/adjustments", methods=["POST"], endpoint=_poster(ADJUSTMENT)),
]
CONTROL_ROUTES = [
    Rule("/_sandbox/ledger-types", methods=["PUT"], endpoint=put_type),
]
