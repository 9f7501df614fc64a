"""The Dentrix sandbox's own control routes (CONTRACT.md "Sandbox only"); no API key.

The shared ones (health, reset, requests, faults, clock) come from the kit.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from ..kit.http import SandboxError, field_errors, json_response, read_json
from . import rules, schedule
from .api import agreement_or_404, patient_or_404
from .store import MAIN_CLINIC, make_plan
from .wire import MSG_BAD_DATE, REQUIRED, money, read_date

PLAN_STATUSES = ("created", "proposed", "accepted", "rejected", "completed")
# A new patient joins the main clinic unless the request names another ("" = assigned to
# no clinic, as in a single-clinic database).
CLINIC_ID = re.compile(r"^[A-Za-z0-9_-]{0,20}$")
MSG_CLINIC_ID = "A clinic id: up to 20 letters, digits, - or _ (\"\" for none)."
# An appointment's start: the clinic's wall-clock time, or a moment with its offset.
STARTS_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:\d{2})?$")
MSG_STARTS_AT = (
    "Enter the start as YYYY-MM-DDTHH:MM (the clinic's wall-clock time, on a whole minute) or as a "
    "moment with its offset, e.g. 2027-02-15T14:00:00Z."
)


def read_new_patient(body: dict, today) -> tuple[dict, dict[str, str]]:
    """Demographics of a sandbox patient; messages never repeat the values."""
    errors: dict[str, str] = {}
    fields: dict[str, Any] = {}
    for name in ("first_name", "last_name", "phone", "email"):
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            errors[name] = REQUIRED
        elif len(value) > 100:
            errors[name] = "This field is limited to 100 characters."
        else:
            fields[name] = value.strip()
    if "email" in fields and "@" not in fields["email"]:
        errors["email"] = "Enter an email address."
    birth_date = read_date(body.get("birth_date"))
    if birth_date is None:
        errors["birth_date"] = REQUIRED if body.get("birth_date") is None else MSG_BAD_DATE
    elif birth_date > today:
        errors["birth_date"] = "Birth date cannot be in the future."
    else:
        fields["birth_date"] = birth_date.isoformat()
    address = body.get("address")
    if not isinstance(address, dict):
        errors["address"] = "Enter an address with line1, city, state and zip."
    else:
        fields["address"] = {}
        for name in ("line1", "city", "state", "zip"):
            value = address.get(name)
            if not isinstance(value, str) or not value.strip():
                errors[f"address.{name}"] = REQUIRED
            else:
                fields["address"][name] = value.strip()
    clinic_id = body.get("clinic_id", MAIN_CLINIC)
    if not isinstance(clinic_id, str) or not CLINIC_ID.match(clinic_id):
        errors["clinic_id"] = MSG_CLINIC_ID
    else:
        fields["clinic_id"] = clinic_id
    return fields, errors


def read_procedures(items: Any) -> tuple[list[dict], dict[str, str]]:
    if items is None:
        return [], {}
    if not isinstance(items, list):
        return [], {"procedures": "Procedures must be a list of {code, tooth, surface, fee}."}
    procedures: list[dict] = []
    errors: dict[str, str] = {}
    for index, item in enumerate(items):
        item_errors = rules.check_procedure(item)
        for name, message in item_errors.items():
            errors[f"procedures[{index}].{name}" if name else f"procedures[{index}]"] = message
        if not item_errors:
            procedures.append({
                "code": item["code"], "tooth": item.get("tooth", ""),
                "surface": item.get("surface", ""), "fee": money(item["fee"]),
            })
    return procedures, errors


def create_patient(app, request: Request) -> Response:
    body = read_json(request)
    fields, errors = read_new_patient(body, app.clock.today())
    procedures, procedure_errors = read_procedures(body.get("procedures"))
    errors.update(procedure_errors)
    guarantor_id = body.get("guarantor_id")
    with app.store.lock:
        if guarantor_id is not None:
            guarantor = app.store.patients.get(str(guarantor_id))
            if guarantor is None:
                errors["guarantor_id"] = f"Patient {guarantor_id} was not found in {app.product.name}."
            elif guarantor["guarantor_id"] != guarantor["patient_id"]:
                errors["guarantor_id"] = (
                    f"Patient {guarantor_id} cannot be a guarantor: they are on account {guarantor['guarantor_id']}."
                )
        if errors:
            raise field_errors(errors, "patient")
        patient_id = app.store.new_id("patients")
        patient = {
            "patient_id": patient_id,
            "guarantor_id": str(guarantor_id) if guarantor_id is not None else patient_id,
            **fields,
            "status": "patient",
        }
        app.store.put("patients", patient)
        plan_id = None
        if procedures:
            plan_id = app.store.new_id("plans")
            app.store.put("plans", make_plan(plan_id, patient_id, procedures))
    return json_response(
        {"patient_id": patient_id, "guarantor_id": patient["guarantor_id"], "treatment_plan_id": plan_id}, 201
    )


def _status(request: Request, allowed: tuple[str, ...]) -> str:
    status = read_json(request).get("status")
    if status not in allowed:
        message = "Status must be one of " + ", ".join(allowed) + "."
        raise SandboxError(400, message, fields={"status": message})
    return status


def set_plan_status(app, request: Request, plan_id: str) -> Response:
    status = _status(request, PLAN_STATUSES)
    with app.store.lock:
        plan = app.store.plans.get(plan_id)
        if plan is None:
            raise SandboxError(404, f"Treatment plan {plan_id} was not found in {app.product.name}.")
        return json_response(app.store.put("plans", {**plan, "status": status}))


def set_agreement_status(app, request: Request, agreement_id: str) -> Response:
    """Inactivate (or reactivate) an agreement, as a billing clerk would in the product."""
    status = _status(request, ("active", "inactive"))
    with app.store.lock:
        return json_response(app.product.set_status(app, agreement_or_404(app, agreement_id), status))


def edit_agreement(app, request: Request, agreement_id: str) -> Response:
    """Change a saved record's terms as a clerk does in the product (a correction): in
    place (G, Eaglesoft), as a new version (Enterprise), or not at all (Ascend: 409)."""
    changes = read_json(request)
    with app.store.lock:
        record, status = app.product.edit(app, agreement_or_404(app, agreement_id), changes)
    return json_response(record, status)


def post_production(app, request: Request, patient_id: str) -> Response:
    """The patient's planned procedures are done and posted to the ledger: each becomes
    completed and posted, its balance its fee (what Ascend and Eaglesoft wait for).
    Answers the patient's plans; procedures posted before keep their date."""
    read_json(request, object_only=False)  # any body is ignored, but it must be JSON
    with app.store.lock:
        patient_or_404(app, patient_id)
        today = app.clock.today().isoformat()
        plans = []
        for plan in app.store.plans_for(patient_id):
            procedures = [
                procedure if procedure["posted"] else
                {**procedure, "status": "completed", "posted": True, "balance": procedure["fee"], "posted_on": today}
                for procedure in plan["procedures"]
            ]
            plans.append(app.store.put("plans", {**plan, "procedures": procedures}) if procedures != plan["procedures"] else plan)
    return json_response(plans)


def read_start(value: Any, zone) -> tuple[str, str] | None:
    """(date, "HH:MM") on the clinic's appointment book, or None when `value` is not a start.
    A moment with an offset is moved into the clinic's zone, as Dentrix would show it."""
    if not isinstance(value, str) or not STARTS_AT.match(value):
        return None
    try:
        start = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if start.tzinfo is not None:
            start = start.astimezone(zone)
    except (ValueError, OverflowError):
        return None
    if start.second:
        return None  # the appointment book has no seconds: never round one away
    return start.date().isoformat(), start.strftime("%H:%M")


def read_procedure_ids(value: Any, patient_id: str, plans: list[dict]) -> tuple[list[str], dict[str, str]]:
    """Planned procedures of one of the patient's plans, each once."""
    if not isinstance(value, list):
        return [], {"procedure_ids": 'Procedure ids must be a list of ids, e.g. ["9001", "9002"].'}
    on_plans = {p["procedure_id"]: (plan["treatment_plan_id"], p) for plan in plans for p in plan["procedures"]}
    errors: dict[str, str] = {}
    ids: list[str] = []
    plan_ids = set()
    for index, procedure_id in enumerate(value):
        key = f"procedure_ids[{index}]"
        if not isinstance(procedure_id, str) or not procedure_id:
            errors[key] = 'A procedure id is text, e.g. "9001".'
        elif procedure_id in ids:
            errors[key] = f"Procedure {procedure_id} is listed twice."
        elif procedure_id not in on_plans:
            errors[key] = f"Procedure {procedure_id} is not on patient {patient_id}'s treatment plans."
        elif on_plans[procedure_id][1]["status"] != "planned":
            errors[key] = f"Procedure {procedure_id} is completed: only planned procedures are scheduled."
        else:
            ids.append(procedure_id)
            plan_ids.add(on_plans[procedure_id][0])
    if len(plan_ids) > 1 and not errors:
        errors["procedure_ids"] = "Book one treatment plan's procedures on an appointment: these are on plans " + (
            ", ".join(sorted(plan_ids)) + "."
        )
    return ids, errors


def book_appointment(app, request: Request) -> Response:
    """Book an appointment as the front desk would (v2.1): a patient, a start on the clinic's
    book, and planned procedures of one of the patient's plans (none for a visit with no
    planned treatment). Answers it as GET /v1/appointments lists it."""
    body = read_json(request)
    errors: dict[str, str] = {}
    with app.store.lock:
        patient_id = body.get("patient_id")
        patient = app.store.patients.get(patient_id) if isinstance(patient_id, str) else None
        if patient_id is None:
            errors["patient_id"] = REQUIRED
        elif not isinstance(patient_id, str):
            errors["patient_id"] = 'A patient id is text, e.g. "1001".'
        elif patient is None:
            errors["patient_id"] = f"Patient {patient_id} was not found in {app.product.name}."
        clinic_id = body.get("clinic_id", patient["clinic_id"] if patient else MAIN_CLINIC)
        if not isinstance(clinic_id, str) or not CLINIC_ID.match(clinic_id):
            errors["clinic_id"] = MSG_CLINIC_ID
            clinic_id = MAIN_CLINIC
        start = read_start(body.get("starts_at"), schedule.zone_for(app, clinic_id))
        if start is None:
            errors["starts_at"] = REQUIRED if body.get("starts_at") is None else MSG_STARTS_AT
        procedure_ids: list[str] = []
        if patient is not None:
            procedure_ids, procedure_errors = read_procedure_ids(
                body.get("procedure_ids", []), patient["patient_id"], app.store.plans_for(patient["patient_id"]),
            )
            errors.update(procedure_errors)
        if errors:
            raise field_errors(errors, "appointment")
        day, at = start
        record = app.store.put("appointments", {
            "appointment_id": app.store.new_id("appointments"),
            "patient_id": patient["patient_id"],
            "clinic_id": clinic_id,
            "date": day,
            "time": at,
            "procedure_ids": procedure_ids,
        })
        return json_response(schedule.to_wire(app, record), 201)


ROUTES = [
    Rule("/_sandbox/patients", methods=["POST"], endpoint=create_patient),
    Rule("/_sandbox/treatment-plans/<plan_id>", methods=["PUT"], endpoint=set_plan_status),
    Rule("/_sandbox/payment-agreements/<agreement_id>", methods=["PUT"], endpoint=set_agreement_status),
    Rule("/_sandbox/payment-agreements/<agreement_id>/edit", methods=["POST"], endpoint=edit_agreement),
    Rule("/_sandbox/patients/<patient_id>/post-production", methods=["POST"], endpoint=post_production),
    Rule("/_sandbox/appointments", methods=["POST"], endpoint=book_appointment),
]
