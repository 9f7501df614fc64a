"""Payments, adjustments and the definitions that type them, as Open Dental's API pages
document them (https://opendental.com/site/apipayments.html, apiadjustments.html,
apidefinitions.html), never from Chairside's bridge.

- `GET /definitions?Category=&includeHidden=`: the office's definitions; Category 10 is
  PaymentTypes, Category 1 AdjTypes (an adjustment type's ItemValue "+" or "-" says which
  way it moves the balance). Hidden ones only with includeHidden=true.
- `POST /payments` (PatNum, PayAmt required; PayType a PaymentTypes DefNum, PayDate,
  PayNote optional) and `GET /payments?PatNum=` (PayType, DateEntry filters).
- `POST /adjustments` (PatNum, AdjType an AdjTypes DefNum, AdjAmt required; AdjDate,
  ProvNum, ProcNum, AdjNote optional) and `GET /adjustments?PatNum=` (AdjType, ProcNum).

Where the pages say less than a rule needs, the sandbox follows Open Dental's program and
says so: a date in the future is refused (the office's FutureTransDatesAllowed preference
is off, its default); an adjustment's amount takes its type's sign (Open Dental's Edit
Adjustment window signs the amount by the type: a "-" type with a positive amount is
refused rather than silently flipped, so a client's sign error shows); an amount with more
than 2 decimals is refused (the sandbox's own strictness: cents are what a ledger holds).
"""

from __future__ import annotations

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from ..kit.http import SandboxError, json_response, read_json
from .api import _int_arg, page
from .demo_data import ADJ_TYPES, CATEGORY_NAMES, PAYMENT_TYPES
from .rules import bad
from .wire import CENT, amount, boolean, number, one_line, read_bool, read_date, read_int, read_number, stamp

DEFAULT_PAY_TYPE = 69  # Check: the office's PaymentsDefaultType when a payment names none
DEFAULT_PROVIDER = 1


def _definition(app, def_num: int | None, category: int) -> dict | None:
    """A visible definition of that category, or None."""
    record = app.store.get("definitions", def_num) if def_num is not None else None
    if record is None or record["Category"] != category or record["isHidden"] == "true":
        return None
    return record


def _pat_num(app, body: dict) -> int:
    if body.get("PatNum") is None:
        raise bad("PatNum is required.")
    pat_num = read_int(body["PatNum"])
    if pat_num is None:
        raise bad("PatNum is invalid.")
    if app.store.get("patients", pat_num) is None:
        raise bad("Patient not found.", 404)
    return pat_num


def _amount(body: dict, name: str):
    if body.get(name) is None:
        raise bad(f"{name} is required.")
    value = read_number(body[name])
    if value is None or value != value.quantize(CENT):
        raise bad(f"{name} is invalid.")
    if value == 0:
        raise bad(f"{name} cannot be zero.")
    return value


def _date(app, body: dict, name: str) -> str:
    today = app.clock.today()
    if body.get(name) is None:
        return today.isoformat()
    day = read_date(body[name])
    if day is None:
        raise bad(f"{name} is invalid. Use yyyy-MM-dd.")
    if day > today:
        raise bad(f"{name} cannot be in the future.")
    return day.isoformat()


def _note(body: dict, name: str) -> str:
    note = body.get(name, "")
    if note is None:
        return ""
    if not isinstance(note, str):
        raise bad(f"{name} is invalid.")
    return one_line(note)


def payment_out(record: dict) -> dict:
    return {**record, "PayAmt": number(record["PayAmt"])}


def adjustment_out(record: dict) -> dict:
    return {**record, "AdjAmt": number(record["AdjAmt"])}


# --- definitions -----------------------------------------------------------------------------


def list_definitions(app, request: Request) -> Response:
    raw = request.args.get("Category")
    category = read_int(raw) if raw is not None else None
    if raw is not None and category is None:
        raise bad("Category is invalid.")
    hidden = read_bool(request.args.get("includeHidden", "false"))
    if hidden is None:
        raise bad("includeHidden is invalid.")
    with app.store.lock:
        rows = [d for d in app.store.all("definitions")
                if (category is None or d["Category"] == category) and (hidden or d["isHidden"] == "false")]
        return page(request, rows)


# --- payments --------------------------------------------------------------------------------


def create_payment(app, request: Request) -> Response:
    body = read_json(request)
    with app.store.lock:
        pat_num = _pat_num(app, body)
        pay_amt = _amount(body, "PayAmt")
        pay_type = DEFAULT_PAY_TYPE if body.get("PayType") is None else read_int(body["PayType"])
        definition = _definition(app, pay_type, PAYMENT_TYPES)
        if definition is None:
            raise bad("PayType is invalid.")
        pay_date = _date(app, body, "PayDate")
        note = _note(body, "PayNote")
        patient = app.store.get("patients", pat_num)
        now = stamp(app.clock.now())
        record = app.store.put("payments", {
            "PayNum": app.store.new_key("payments"), "PayType": definition["DefNum"], "payType": definition["ItemName"],
            "PayDate": pay_date, "PayAmt": amount(pay_amt), "CheckNum": "", "BankBranch": "", "PayNote": note,
            "PatNum": pat_num, "ClinicNum": patient["ClinicNum"], "DateEntry": now[:10], "DepositNum": 0,
            "Receipt": "", "IsRecurringCC": "false", "PaymentSource": "API", "ProcessStatus": "OfficeProcessed",
            "RecurringChargeDate": "0001-01-01", "IsCcCompleted": "false",
        })
        answer = payment_out(record)
    return json_response(answer, 201, headers={"Location": f"{app.server_url}/api/v1/payments/{record['PayNum']}"})


def list_payments(app, request: Request) -> Response:
    pat_num = _int_arg(request, "PatNum")
    pay_type = _int_arg(request, "PayType")
    since = request.args.get("DateEntry")
    if since is not None and read_date(since) is None:
        raise bad("DateEntry is invalid. Use yyyy-MM-dd.")
    with app.store.lock:
        if pat_num is not None and app.store.get("patients", pat_num) is None:
            raise bad("Patient not found.", 404)
        rows = app.store.owned("payments", pat_num) if pat_num is not None else app.store.all("payments")
        server_time = stamp(app.clock.now())
        return page(request, [
            {**payment_out(p), "serverDateTime": server_time} for p in rows
            if (pay_type is None or p["PayType"] == pay_type) and (since is None or p["DateEntry"] >= since)
        ])


# --- adjustments -----------------------------------------------------------------------------


def create_adjustment(app, request: Request) -> Response:
    body = read_json(request)
    with app.store.lock:
        pat_num = _pat_num(app, body)
        if body.get("AdjType") is None:
            raise bad("AdjType is required.")
        definition = _definition(app, read_int(body["AdjType"]), ADJ_TYPES)
        if definition is None:
            raise bad("AdjType is invalid.")
        adj_amt = _amount(body, "AdjAmt")
        if definition["ItemValue"] == "-" and adj_amt > 0:
            raise bad(f"AdjAmt must be negative: {definition['ItemName']} is a negative adjustment type.")
        if definition["ItemValue"] == "+" and adj_amt < 0:
            raise bad(f"AdjAmt must be positive: {definition['ItemName']} is a positive adjustment type.")
        adj_date = _date(app, body, "AdjDate")
        proc_num = 0 if body.get("ProcNum") is None else read_int(body["ProcNum"])
        if proc_num is None or (proc_num and (
            (proc := app.store.get("procedures", proc_num)) is None or proc["PatNum"] != pat_num
        )):
            raise bad("ProcNum is invalid.")
        prov_num = DEFAULT_PROVIDER if body.get("ProvNum") is None else read_int(body["ProvNum"])
        if prov_num is None:
            raise bad("ProvNum is invalid.")
        note = _note(body, "AdjNote")
        patient = app.store.get("patients", pat_num)
        now = stamp(app.clock.now())
        record = app.store.put("adjustments", {
            "AdjNum": app.store.new_key("adjustments"), "AdjDate": adj_date, "AdjAmt": amount(adj_amt),
            "PatNum": pat_num, "AdjType": definition["DefNum"], "adjType": definition["ItemName"],
            "ProvNum": prov_num, "AdjNote": note, "ProcDate": adj_date, "ProcNum": proc_num, "DateEntry": now[:10],
            "ClinicNum": patient["ClinicNum"], "SecUserNumEntry": 0, "SecDateTEdit": now,
        })
        answer = adjustment_out(record)
    return json_response(answer, 201, headers={"Location": f"{app.server_url}/api/v1/adjustments/{record['AdjNum']}"})


def list_adjustments(app, request: Request) -> Response:
    pat_num = _int_arg(request, "PatNum", required=True)
    adj_type = _int_arg(request, "AdjType")
    proc_num = _int_arg(request, "ProcNum")
    with app.store.lock:
        if app.store.get("patients", pat_num) is None:
            raise bad("Patient not found.", 404)
        return page(request, [
            adjustment_out(a) for a in app.store.owned("adjustments", pat_num)
            if (adj_type is None or a["AdjType"] == adj_type) and (proc_num is None or a["ProcNum"] == proc_num)
        ])


def put_definition(app, request: Request) -> Response:
    """Sandbox control: the office adds a payment or adjustment type, or hides / shows one
    ({"category": "PaymentTypes" | "AdjTypes", "ItemName", "ItemValue": "+" | "-", "isHidden"})."""
    body = read_json(request)
    categories = {"PaymentTypes": PAYMENT_TYPES, "AdjTypes": ADJ_TYPES}
    category = categories.get(body.get("category"))
    name = body.get("ItemName")
    hidden = read_bool(body.get("isHidden", "false"))
    value = body.get("ItemValue", "" if category == PAYMENT_TYPES else "-")
    errors = {}
    if category is None:
        errors["category"] = "category must be PaymentTypes or AdjTypes."
    if not isinstance(name, str) or not name.strip():
        errors["ItemName"] = "ItemName is required."
    if hidden is None:
        errors["isHidden"] = 'isHidden must be "true" or "false".'
    if category == ADJ_TYPES and value not in ("+", "-"):
        errors["ItemValue"] = 'An adjustment type\'s ItemValue is "+" or "-".'
    if errors:
        raise SandboxError(400, next(iter(errors.values())), fields=errors)
    with app.store.lock:
        existing = next((d for d in app.store.all("definitions")
                         if d["Category"] == category and d["ItemName"] == name), None)
        if existing is not None:
            return json_response(app.store.put("definitions", {**existing, "isHidden": boolean(hidden)}))
        record = {"DefNum": app.store.new_key("definitions"), "ItemName": name, "ItemValue": value if category == ADJ_TYPES else "",
                  "Category": category, "category": CATEGORY_NAMES[category], "isHidden": boolean(hidden)}
        return json_response(app.store.put("definitions", record), 201)


# Payments POST needs the Payments permission (apipermissions.html: Payments is its own
# group); the page's excerpt names no group for Adjustments POST, so the sandbox asks the
# same Payments permission of it (to check against the full permission table).
WRITE_PERMISSIONS = {("POST", "/api/v1/payments"): "Payments", ("POST", "/api/v1/adjustments"): "Payments"}

ROUTES = [
    Rule("/api/v1/definitions", methods=["GET"], endpoint=list_definitions),
    Rule("/api/v1/payments", methods=["GET"], endpoint=list_payments),
    Rule("/api/v1/payments", methods=["POST"], endpoint=create_payment),
    Rule("/api/v1/adjustments", methods=["GET"], endpoint=list_adjustments),
    Rule("/api/v1/adjustments", methods=["POST"], endpoint=create_adjustment),
]
CONTROL_ROUTES = [
    Rule("/_sandbox/definitions", methods=["PUT"], endpoint=put_definition),
]
