"""The sandbox's own control routes (no key, no throttle); the shared ones (health,
reset, requests, faults, clock) come from the kit.

`POST /_sandbox/patients` takes the Dentrix sandbox's body (dentrix_bridge/CONTRACT.md,
"Sandbox only"), so one script can feed either sandbox, and answers with Open Dental's
numbers: {"PatNum", "Guarantor", "TreatPlanNum", "ProcNums"}.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from ..kit.http import SandboxError, field_errors, json_response, read_json
from . import api, schedule
from .rules import CommlogFields
from .store import MAIN_CLINIC, patient_record, procedure_record, treatplan_record
from .wire import amount, read_date, read_number, stamp

REQUIRED = "This field is required."
CODE = re.compile(r"^D\d{4}$")
TOOTH = re.compile(r"^([1-9]|[12][0-9]|3[0-2]|[A-T])?$")
SURFACE = re.compile(r"^[MODBFLIV]{0,5}$")
PERMISSIONS = ("Read All", "Comm", "PayPlans", "Payments")
PLAN_STATUSES = ("Active", "Inactive", "Saved")
# An appointment's start: the office's wall-clock time, or a moment with its offset.
STARTS_AT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?(Z|[+-]\d{2}:\d{2})?$")
MSG_STARTS_AT = (
    "Enter the start as YYYY-MM-DDTHH:MM (the office's wall-clock time, on a whole minute) or as a moment "
    "with its offset, e.g. 2027-02-15T14:00:00Z."
)


def read_procedure(item, index: int, errors: dict) -> dict | None:
    where = f"procedures[{index}]"
    if not isinstance(item, dict):
        errors[where] = "Each procedure is {code, tooth, surface, fee}."
        return None
    fee = read_number(item.get("fee")) if isinstance(item.get("fee"), str) else None
    problems = {
        "code": not isinstance(item.get("code"), str) or not CODE.match(item["code"]),
        "tooth": not isinstance(item.get("tooth", ""), str) or not TOOTH.match(item.get("tooth", "")),
        "surface": not isinstance(item.get("surface", ""), str) or not SURFACE.match(item.get("surface", "")),
        "fee": fee is None or fee <= 0 or fee != fee.quantize(Decimal("0.01")),
    }
    messages = {"code": "A CDT code, e.g. D2740.", "tooth": "1–32, A–T or empty.", "surface": "Surface letters, e.g. MO.",
                "fee": 'An amount above 0 as text, e.g. "1250.00".'}
    for name, wrong in problems.items():
        if wrong:
            errors[f"{where}.{name}"] = messages[name]
    if any(problems.values()):
        return None
    return {"code": item["code"], "tooth": item.get("tooth", ""), "surface": item.get("surface", ""), "fee": amount(fee)}


def create_patient(app, request: Request) -> Response:
    body = read_json(request)
    errors: dict[str, str] = {}
    fields = {}
    for name, column in (("first_name", "FName"), ("last_name", "LName"), ("phone", "WirelessPhone"), ("email", "Email")):
        value = body.get(name)
        if not isinstance(value, str) or not value.strip() or len(value) > 100:
            errors[name] = REQUIRED
        else:
            fields[column] = value.strip()
    birth = read_date(body.get("birth_date"))
    if birth is None or birth > app.clock.today():
        errors["birth_date"] = "A past date, yyyy-MM-dd."
    else:
        fields["Birthdate"] = birth.isoformat()
    address = body.get("address")
    if not isinstance(address, dict):
        errors["address"] = "Enter an address with line1, city, state and zip."
    else:
        for name, column in (("line1", "Address"), ("city", "City"), ("state", "State"), ("zip", "Zip")):
            value = address.get(name)
            if not isinstance(value, str) or not value.strip():
                errors[f"address.{name}"] = REQUIRED
            else:
                fields[column] = value.strip()
    clinic = body.get("clinic_id", str(MAIN_CLINIC))
    if not isinstance(clinic, str) or not (clinic == "" or clinic.isdigit()):
        errors["clinic_id"] = 'A ClinicNum: digits, or "" for none.'
        clinic = "0"
    procedures = []
    items = body.get("procedures") or []
    if not isinstance(items, list):
        errors["procedures"] = "A list of {code, tooth, surface, fee}."
        items = []
    for index, item in enumerate(items):
        procedure = read_procedure(item, index, errors)
        if procedure:
            procedures.append(procedure)
    guarantor_id = body.get("guarantor_id")
    with app.store.lock:
        guarantor = None
        if guarantor_id is not None:
            guarantor = app.store.get("patients", int(guarantor_id)) if str(guarantor_id).isdigit() else None
            if guarantor is None:
                errors["guarantor_id"] = "No such patient."
            elif guarantor["Guarantor"] != guarantor["PatNum"]:
                errors["guarantor_id"] = f"Patient {guarantor_id} is in the family of {guarantor['Guarantor']}."
        if errors:
            raise field_errors(errors, "patient")
        now = stamp(app.clock.now())
        today = app.clock.today().isoformat()
        pat_num = app.store.new_key("patients")
        clinic_num = int(clinic or 0)
        app.store.put("patients", patient_record(pat_num, fields, guarantor["PatNum"] if guarantor else pat_num, clinic_num, now))
        plan_num, proc_nums = None, []
        if procedures:
            plan_num = app.store.new_key("treatplans")
            app.store.put("treatplans", treatplan_record(plan_num, pat_num, today, now))
            for p in procedures:
                proc_num = app.store.new_key("procedures")
                app.store.put("procedures", procedure_record(proc_num, pat_num, p["code"], p["tooth"], p["surface"], p["fee"],
                                                             "TP", clinic_num, today, now))
                app.store.put("attaches", {"TreatPlanAttachNum": app.store.new_key("attaches"), "TreatPlanNum": plan_num,
                                           "ProcNum": proc_num, "Priority": 0, "priority": ""})
                proc_nums.append(proc_num)
        record = app.store.get("patients", pat_num)
    return json_response({"PatNum": pat_num, "Guarantor": record["Guarantor"], "TreatPlanNum": plan_num, "ProcNums": proc_nums}, 201)


def _patient(app, pat_num: int) -> dict:
    patient = app.store.get("patients", pat_num)
    if patient is None:
        raise SandboxError(404, "Patient not found.")
    return patient


def post_production(app, request: Request, pat_num: int) -> Response:
    """The patient's treatment-planned procedures on the Active plan are done: ProcStatus C,
    dated today (Open Dental's ledger then carries their fees)."""
    with app.store.lock:
        _patient(app, pat_num)
        today = app.clock.today().isoformat()
        done = []
        for plan in app.store.owned("treatplans", pat_num):
            if plan["TPStatus"] != "Active":
                continue
            for attach in app.store.owned("attaches", plan["TreatPlanNum"]):
                proc = app.store.get("procedures", attach["ProcNum"])
                if proc and proc["ProcStatus"] == "TP":
                    app.store.put("procedures", {**proc, "ProcStatus": "C", "ProcDate": today, "DateTStamp": stamp(app.clock.now())})
                    done.append(proc["ProcNum"])
    return json_response({"PatNum": pat_num, "ProcNums": done})


def add_procedure(app, request: Request, pat_num: int) -> Response:
    """A procedure outside the treatment plan (e.g. one already done, for a plan the front
    desk enters by hand): {code, tooth, surface, fee, ProcStatus "TP" | "C"}."""
    body = read_json(request)
    errors: dict[str, str] = {}
    procedure = read_procedure(body, 0, errors)
    status = body.get("ProcStatus", "C")
    if status not in ("TP", "C"):
        errors["ProcStatus"] = 'ProcStatus must be "TP" or "C".'
    if errors:
        raise field_errors({k.replace("procedures[0].", ""): v for k, v in errors.items()}, "procedure")
    with app.store.lock:
        patient = _patient(app, pat_num)
        proc_num = app.store.new_key("procedures")
        app.store.put("procedures", procedure_record(proc_num, pat_num, procedure["code"], procedure["tooth"], procedure["surface"],
                                                     procedure["fee"], status, patient["ClinicNum"], app.clock.today().isoformat(),
                                                     stamp(app.clock.now())))
    return json_response({"ProcNum": proc_num}, 201)


def add_commlogs(app, request: Request, pat_num: int) -> Response:
    """{"count": n, "Note": "..."}: n commlogs at once (an office's history of reminders)."""
    body = read_json(request)
    count = body.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1000:
        raise SandboxError(400, "count must be 1 to 1000.")
    with app.store.lock:
        _patient(app, pat_num)
        nums = [api.make_commlog(app, CommlogFields(pat_num, str(body.get("Note", "Appointment reminder sent.")), None, 239,
                                                    "Text", "Sent"))["CommlogNum"] for _ in range(count)]
    return json_response({"CommlogNums": nums}, 201)


def set_treatplan(app, request: Request, plan_num: int) -> Response:
    status = read_json(request).get("TPStatus")
    if status not in PLAN_STATUSES:
        raise SandboxError(400, "TPStatus must be Active, Inactive or Saved.")
    with app.store.lock:
        plan = app.store.get("treatplans", plan_num)
        if plan is None:
            raise SandboxError(404, "TreatPlan not found.")
        return json_response(app.store.put("treatplans", {**plan, "TPStatus": status}))


def set_payplan(app, request: Request, plan_num: int) -> Response:
    """Close (or reopen) a plan, as a clerk would in Open Dental: {"IsClosed": "true"}."""
    closed = read_json(request).get("IsClosed")
    if closed not in ("true", "false"):
        raise SandboxError(400, 'IsClosed must be "true" or "false".')
    with app.store.lock:
        plan = app.store.get("payplans", plan_num)
        if plan is None:
            raise SandboxError(404, "PayPlan not found.")
        app.store.put("payplans", {**plan, "IsClosed": closed})
        return json_response(api.plan_out(app, app.store.get("payplans", plan_num)))


def refuse_next_plan(app, request: Request, pat_num: int) -> Response:
    """The next POST /payplans/Dynamic for this patient is refused, once, with a 400 in
    Open Dental's manner (plain text): {"message": "..."} (a default one otherwise)."""
    message = read_json(request).get("message") or "The payment plan could not be saved (sandbox refusal)."
    with app.store.lock:
        _patient(app, pat_num)
        app.refusals[pat_num] = str(message)
    return json_response({"PatNum": pat_num, "message": message})


def permissions(app, request: Request) -> Response:
    """The customer key's API permissions: {"permissions": ["Read All", "Comm", "PayPlans", "Payments"]}."""
    if request.method == "PUT":
        granted = read_json(request).get("permissions")
        if not isinstance(granted, list) or not set(granted) <= set(PERMISSIONS):
            raise SandboxError(400, "permissions: a list of " + ", ".join(PERMISSIONS) + ".")
        app.permissions = set(granted)
    return json_response({"permissions": sorted(app.permissions)})


def throttle(app, request: Request) -> Response:
    """{"requests_per_second": 1}: the customer key's allowance; 0 for none (the Local API)."""
    if request.method == "PUT":
        rate = read_json(request).get("requests_per_second")
        if isinstance(rate, bool) or not isinstance(rate, (int, Decimal, float)) or not 0 <= rate <= 1000:
            raise SandboxError(400, "requests_per_second: a number from 0 (no throttle) to 1000.")
        app.set_rate(float(rate))
    return json_response({"requests_per_second": app.rate_for_key()})


def read_start(value, zone) -> str | None:
    """The office's "yyyy-MM-dd HH:mm:00" for a start, or None when `value` is not one."""
    if not isinstance(value, str) or not STARTS_AT.match(value):
        return None
    try:
        start = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if start.tzinfo is not None:
            start = start.astimezone(zone).replace(tzinfo=None)
    except (ValueError, OverflowError):
        return None
    return None if start.second else schedule.wall_clock(start)


def _number(value) -> int | None:
    """An id as the Dentrix body sends it ("101") or as Open Dental numbers it (101)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


def book_appointment(app, request: Request) -> Response:
    """Book an appointment as the front desk does: the Dentrix sandbox's body (`patient_id`,
    `starts_at`, `procedure_ids`, optional `clinic_id`) plus Open Dental's optional `AptStatus`
    (Scheduled). Its procedures must be the patient's, treatment planned, and on no other
    appointment; their AptNum becomes the new one. Answers the appointment as Open Dental does."""
    body = read_json(request)
    errors: dict[str, str] = {}
    with app.store.lock:
        pat_num = _number(body.get("patient_id"))
        patient = app.store.get("patients", pat_num) if pat_num is not None else None
        if patient is None:
            errors["patient_id"] = REQUIRED if body.get("patient_id") is None else "No such patient."
        when = read_start(body.get("starts_at"), app.time_zone)
        if when is None:
            errors["starts_at"] = REQUIRED if body.get("starts_at") is None else MSG_STARTS_AT
        status = body.get("AptStatus", "Scheduled")
        if status not in schedule.STATUSES:
            errors["AptStatus"] = "AptStatus must be one of " + ", ".join(schedule.STATUSES) + "."
        clinic = body.get("clinic_id", str(patient["ClinicNum"]) if patient else str(MAIN_CLINIC))
        if not isinstance(clinic, str) or not (clinic == "" or clinic.isdigit()):
            errors["clinic_id"] = 'A ClinicNum: digits, or "" for none.'
            clinic = "0"
        items = body.get("procedure_ids", [])
        procedures: list[dict] = []
        if not isinstance(items, list):
            errors["procedure_ids"] = "A list of ProcNums."
            items = []
        booked = {apt["AptNum"] for apt in schedule.appointments(app)}
        for index, item in enumerate(items):
            key, proc_num = f"procedure_ids[{index}]", _number(item)
            proc = app.store.get("procedures", proc_num) if proc_num is not None else None
            if proc is None or patient is None or proc["PatNum"] != patient["PatNum"]:
                errors[key] = f"Procedure {item} is not one of this patient's."
            elif proc["ProcStatus"] != "TP":
                errors[key] = f"Procedure {proc_num} is not treatment planned (ProcStatus {proc['ProcStatus']})."
            elif any(p is proc for p in procedures):
                errors[key] = f"Procedure {proc_num} is listed twice."
            elif proc["AptNum"] in booked:
                errors[key] = f"Procedure {proc_num} is already on appointment {proc['AptNum']}."
            else:
                procedures.append(proc)
        if errors:
            raise field_errors(errors, "appointment")
        apt_num = app.store.new_key("appointments")
        now = stamp(app.clock.now())
        record = app.store.put("appointments", schedule.appointment_record(
            apt_num, patient["PatNum"], when, int(clinic or 0), status, [p["procCode"] for p in procedures], now,
        ))
        for proc in procedures:
            app.store.put("procedures", {**proc, "AptNum": apt_num, "DateTStamp": now})
        answer = schedule.with_server_time(app, record)
    return json_response(answer, 201)


ROUTES = [
    Rule("/_sandbox/patients", methods=["POST"], endpoint=create_patient),
    Rule("/_sandbox/patients/<int:pat_num>/post-production", methods=["POST"], endpoint=post_production),
    Rule("/_sandbox/patients/<int:pat_num>/procedures", methods=["POST"], endpoint=add_procedure),
    Rule("/_sandbox/patients/<int:pat_num>/commlogs", methods=["POST"], endpoint=add_commlogs),
    Rule("/_sandbox/patients/<int:pat_num>/refuse-next-plan", methods=["POST"], endpoint=refuse_next_plan),
    Rule("/_sandbox/treatplans/<int:plan_num>", methods=["PUT"], endpoint=set_treatplan),
    Rule("/_sandbox/payplans/<int:plan_num>", methods=["PUT"], endpoint=set_payplan),
    Rule("/_sandbox/appointments", methods=["POST"], endpoint=book_appointment),
    Rule("/_sandbox/permissions", methods=["GET", "PUT"], endpoint=permissions),
    Rule("/_sandbox/throttle", methods=["GET", "PUT"], endpoint=throttle),
]
