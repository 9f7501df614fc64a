"""The sandbox's Open Dental API routes (under /api/v1), as Open Dental's pages document them.

Every route needs `Authorization: ODFHIR <DeveloperKey>/<CustomerKey>`, the permission
the call needs (Read All for a GET, PayPlans for POST /payplans/Dynamic, Comm for POST
/commlogs), and room in the customer key's throttle: the app checks all three before
the route runs. Lists are pages of at most 100 (Limit / Offset).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from ..kit.http import SandboxError, json_response, read_json
from . import arithmetic, rules, schedule
from .store import total
from .wire import amount, boolean, number, one_line, read_date, read_int, stamp

PAGE = 100
PLAN_MONEY = ("APR", "CompletedAmt", "PayAmt", "DownPayment", "principalAmount")
CHARGE_MONEY = ("Principal", "Interest")


def _int_arg(request: Request, name: str, *, required: bool = False) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        if required:
            raise SandboxError(400, f"{name} is required.")
        return None
    value = read_int(raw)
    if value is None:
        raise SandboxError(400, f"{name} is invalid.")
    return value


def page(request: Request, items: list) -> Response:
    """Limit / Offset: at most 100 items an answer (Open Dental's hard limit)."""
    offset = _int_arg(request, "Offset") or 0
    limit = min(_int_arg(request, "Limit") or PAGE, PAGE)
    return json_response(items[offset:offset + limit])


def _out(record: dict, money: tuple[str, ...]) -> dict:
    return {k: (number(v) if k in money else v) for k, v in record.items()}


def patient_out(record: dict) -> dict:
    return _out(record, ("EstBalance", "BalTotal"))


def _patient(app, pat_num: int) -> dict:
    patient = app.store.get("patients", pat_num)
    if patient is None:
        raise SandboxError(404, "Patient not found.")
    return patient


# --- patients, treatment plans, procedures ------------------------------------------------


def get_patient(app, request: Request, pat_num: int) -> Response:
    with app.store.lock:
        return json_response(patient_out(_patient(app, pat_num)))


def list_treatplans(app, request: Request) -> Response:
    pat_num = _int_arg(request, "PatNum")
    status = request.args.get("TPStatus")
    with app.store.lock:
        plans = app.store.owned("treatplans", pat_num) if pat_num is not None else app.store.all("treatplans")
        return page(request, [p for p in plans if status is None or p["TPStatus"] == status])


def list_attaches(app, request: Request) -> Response:
    plan_num = _int_arg(request, "TreatPlanNum")
    with app.store.lock:
        rows = app.store.owned("attaches", plan_num) if plan_num is not None else app.store.all("attaches")
        return page(request, rows)


def list_procedures(app, request: Request) -> Response:
    pat_num = _int_arg(request, "PatNum")
    apt_num = _int_arg(request, "AptNum")  # 22.3.32: the procedures on one appointment
    status = request.args.get("ProcStatus")
    with app.store.lock:
        rows = app.store.owned("procedures", pat_num) if pat_num is not None else app.store.all("procedures")
        return page(request, [r for r in rows if (status is None or r["ProcStatus"] == status)
                              and (apt_num is None or r["AptNum"] == apt_num)])


# --- appointments -----------------------------------------------------------------------------


def _date_arg(request: Request, name: str) -> date | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    value = read_date(raw)
    if value is None:
        raise SandboxError(400, f'{name} is invalid. Use the format "yyyy-MM-dd".')
    return value


def list_appointments(app, request: Request) -> Response:
    """Appointments GET (multiple): a day (`date`) or a range (`dateStart`, `dateEnd`, both
    inclusive) of the office's book, by AptStatus, ClinicNum (0: none) and PatNum."""
    day, start, end = _date_arg(request, "date"), _date_arg(request, "dateStart"), _date_arg(request, "dateEnd")
    if day is not None:
        start = end = day
    status = request.args.get("AptStatus")
    if status is not None and status not in schedule.STATUSES:
        raise SandboxError(400, "AptStatus is invalid. Use one of: " + ", ".join(schedule.STATUSES) + ".")
    clinic, pat_num = _int_arg(request, "ClinicNum"), _int_arg(request, "PatNum")
    with app.store.lock:
        rows = [
            row for row in schedule.appointments(app)
            if (start is None or row["AptDateTime"][:10] >= start.isoformat())
            and (end is None or row["AptDateTime"][:10] <= end.isoformat())
            and (status is None or row["AptStatus"] == status)
            and (clinic is None or row["ClinicNum"] == clinic)
            and (pat_num is None or row["PatNum"] == pat_num)
        ]
        return page(request, [schedule.with_server_time(app, row) for row in rows])


def get_appointment(app, request: Request, apt_num: int) -> Response:
    with app.store.lock:
        row = next((r for r in schedule.appointments(app) if r["AptNum"] == apt_num), None)
        if row is None:
            raise SandboxError(404, "Appointment not found.")
        return json_response(schedule.with_server_time(app, row))


# --- payment plans --------------------------------------------------------------------------


def plan_out(app, plan: dict) -> dict:
    """A plan as Open Dental answers it; CompletedAmt is the linked production completed."""
    links = app.store.owned("links", plan["PayPlanNum"])
    completed = total(
        app.store.get("procedures", int(link["FKey"]))["ProcFee"] for link in links
        if app.store.get("procedures", int(link["FKey"]))["ProcStatus"] == "C"
    )
    return _out({**plan, "CompletedAmt": amount(completed)}, PLAN_MONEY)


def list_payplans(app, request: Request) -> Response:
    pat_num, guarantor = _int_arg(request, "PatNum"), _int_arg(request, "Guarantor")
    if pat_num is None and guarantor is None:
        raise SandboxError(400, "PatNum or Guarantor is required.")
    with app.store.lock:
        if app.store.get("patients", pat_num if pat_num is not None else guarantor) is None:
            raise SandboxError(404, "Patient or Guarantor not found.")
        plans = [p for p in app.store.all("payplans")
                 if (pat_num is None or p["PatNum"] == pat_num) and (guarantor is None or p["Guarantor"] == guarantor)]
        return page(request, [plan_out(app, p) for p in plans])


def get_payplan(app, request: Request, plan_num: int) -> Response:
    with app.store.lock:
        plan = app.store.get("payplans", plan_num)
        if plan is None:
            raise SandboxError(404, "PayPlan not found.")
        return json_response(plan_out(app, plan))


def create_payplan_deprecated(app, request: Request) -> Response:
    raise SandboxError(410, "PayPlans POST (create) is deprecated. Use PayPlans POST Dynamic.")


def _terms_note(terms: rules.PlanTerms, today) -> str:
    """Open Dental writes the terms first, then the caller's note."""
    cost = terms.principal + sum((c["interest"] for c in terms.charges), Decimal("0.00"))
    apr = f"{terms.apr.normalize():f}" if terms.apr else "0"
    text = (f"{today:%m/%d/%Y} - Date of Agreement: {terms.plan_date:%m/%d/%Y}, Total Amount: {terms.principal:.2f}, "
            f"APR: {apr}, Total Cost of Loan: {cost:.2f}")
    return f"{text}, {one_line(terms.note)}" if terms.note else text


def create_payplan(app, request: Request) -> Response:
    body = read_json(request)
    today = app.clock.today()
    with app.store.lock:
        refusal = app.refusals.pop(read_int(body.get("PatNum")), None)
        if refusal:
            raise SandboxError(400, refusal)
        terms = rules.check_payplan(body, app.store, today)
        plan_num = app.store.new_key("payplans")
        now = stamp(app.clock.now())
        plan = {
            "PayPlanNum": plan_num, "PatNum": terms.pat_num, "Guarantor": terms.guarantor,
            "PayPlanDate": terms.plan_date.isoformat(), "APR": amount(terms.apr), "Note": _terms_note(terms, today),
            "PlanNum": 0, "CompletedAmt": "0.00", "InsSubNum": 0,
            "PaySchedule": {"EveryOtherWeek": "BiWeekly", "OrdinalWeekday": "MonthlyDayOfWeek"}.get(terms.frequency, terms.frequency),
            "NumberOfPayments": 0, "PayAmt": amount(terms.pay_amt), "DownPayment": amount(terms.down_payment),
            "IsClosed": "false", "PlanCategory": 0, "planCategory": "", "IsDynamic": "true",
            "ChargeFrequency": terms.frequency, "DatePayPlanStart": terms.first_due.isoformat(),
            "IsLocked": boolean(terms.is_locked),
            "DateInterestStart": terms.interest_start.isoformat() if terms.interest_start else "0001-01-01",
            "DynamicPayPlanTPOption": terms.tp_option, "principalAmount": amount(terms.principal), "SheetDefNum": 0,
        }
        app.store.put("payplans", plan)
        for proc in terms.procedures:
            app.store.put("links", {"PayPlanLinkNum": app.store.new_key("links"), "PayPlanNum": plan_num,
                                    "LinkType": "Procedure", "FKey": proc["ProcNum"], "AmountOverride": "0.00",
                                    "SecDateTEntry": now})
        if terms.down_payment > 0:
            # Charged today, or on the first payment's date if that was back-dated, without interest.
            when = min(today, terms.first_due)
            for entry, part in arithmetic.split(terms.down_payment, _production(app, plan)):
                _charge(app, plan, entry, when, part, Decimal("0.00"), "Down Payment", now)
        answer = plan_out(app, plan)
    location = f"{app.server_url}/api/v1/payplans/{plan_num}"
    return json_response(answer, 201, headers={"Location": location})


def _production(app, plan: dict) -> list[dict]:
    """The plan's linked production, in link order, with what is not charged yet."""
    charges = app.store.owned("charges", plan["PayPlanNum"])
    rows = []
    for link in app.store.owned("links", plan["PayPlanNum"]):
        fee = Decimal(app.store.get("procedures", int(link["FKey"]))["ProcFee"])
        charged = total(c["Principal"] for c in charges if c["FKey"] == link["FKey"] and c["LinkType"] == link["LinkType"])
        rows.append({"LinkType": link["LinkType"], "FKey": link["FKey"], "remaining": fee - charged})
    return rows


def _charge(app, plan, entry, when, principal, interest, note, now) -> None:
    patient = app.store.get("patients", plan["PatNum"])
    app.store.put("charges", {
        "PayPlanChargeNum": app.store.new_key("charges"), "PayPlanNum": plan["PayPlanNum"],
        "Guarantor": plan["Guarantor"], "PatNum": plan["PatNum"], "ChargeDate": when.isoformat(),
        "Principal": amount(principal), "Interest": amount(interest), "Note": note, "ProvNum": 1,
        "ClinicNum": patient["ClinicNum"], "ChargeType": "Debit",
        "ProcNum": entry["FKey"] if entry["LinkType"] == "Procedure" else 0, "SecDateTEntry": now, "SecDateTEdit": now,
        "StatementNum": 0, "FKey": entry["FKey"], "LinkType": entry["LinkType"], "IsOffset": "false",
    })


def issue_due_charges(app, plan: dict) -> None:
    """What Open Dental's service does each day: post the periodic charges that have come
    due. With AwaitComplete, nothing until every linked procedure is complete (the sandbox
    waits for all of them; Open Dental charges complete production first). Held lock."""
    if plan["IsClosed"] == "true":
        return
    links = app.store.owned("links", plan["PayPlanNum"])
    if plan["DynamicPayPlanTPOption"] == "AwaitComplete" and any(
        app.store.get("procedures", int(link["FKey"]))["ProcStatus"] != "C" for link in links
    ):
        return
    interest_start = None if plan["DateInterestStart"] == "0001-01-01" else _date(plan["DateInterestStart"])
    financed = Decimal(plan["principalAmount"]) - Decimal(plan["DownPayment"])
    full = arithmetic.schedule(financed, Decimal(plan["APR"]), Decimal(plan["PayAmt"]), plan["ChargeFrequency"],
                               _date(plan["DatePayPlanStart"]), interest_start)
    issued = {c["ChargeDate"] for c in app.store.owned("charges", plan["PayPlanNum"]) if c["Note"] != "Down Payment"}
    today, now = app.clock.today(), stamp(app.clock.now())
    production = _production(app, plan)
    for period in full[len(issued):]:
        if period["date"] > today:
            break
        interest = period["interest"]
        for entry, part in arithmetic.split(period["principal"], production):
            _charge(app, plan, entry, period["date"], part, interest, "", now)
            interest = Decimal("0.00")  # a period's interest goes on its first charge


def _date(text: str) -> date:
    return date.fromisoformat(text)


def list_charges(app, request: Request) -> Response:
    plan_num = _int_arg(request, "PayPlanNum", required=True)
    with app.store.lock:
        plan = app.store.get("payplans", plan_num)
        if plan is None:
            raise SandboxError(404, "PayPlan not found.")
        issue_due_charges(app, plan)
        rows = sorted(app.store.owned("charges", plan_num), key=lambda c: (c["ChargeDate"], c["PayPlanChargeNum"]))
        return page(request, [_out(c, CHARGE_MONEY) for c in rows])


def list_links(app, request: Request) -> Response:
    plan_num = _int_arg(request, "PayPlanNum")
    with app.store.lock:
        rows = app.store.owned("links", plan_num) if plan_num is not None else app.store.all("links")
        return page(request, [_out(r, ("AmountOverride",)) for r in rows])


# --- commlogs, preferences ------------------------------------------------------------------


def list_commlogs(app, request: Request) -> Response:
    pat_num = _int_arg(request, "PatNum")
    with app.store.lock:
        if pat_num is not None:
            _patient(app, pat_num)
        rows = app.store.owned("commlogs", pat_num) if pat_num is not None else app.store.all("commlogs")
        return page(request, rows)


def make_commlog(app, fields: rules.CommlogFields) -> dict:
    now = stamp(app.clock.now())
    return app.store.put("commlogs", {
        "CommlogNum": app.store.new_key("commlogs"), "PatNum": fields.pat_num,
        "CommDateTime": fields.when or now, "CommType": str(fields.comm_type),
        "commType": rules.COMM_TYPES[fields.comm_type], "Note": one_line(fields.note), "Mode_": fields.mode,
        "SentOrReceived": fields.sent_or_received, "UserNum": 0, "DateTStamp": now, "CommSource": "User",
        "ProgramNum": 0, "DateTEntry": now, "ReferralNum": 0,
    })


def create_commlog(app, request: Request) -> Response:
    body = read_json(request)
    with app.store.lock:
        record = make_commlog(app, rules.check_commlog(body, app.store))
    return json_response(record, 201,
                         headers={"Location": f"{app.server_url}/api/v1/commlogs/{record['CommlogNum']}"})


PREFERENCES = [
    {"PrefNum": 1105, "PrefName": "ProgramVersion", "ValueString": "25.3.31.0"},
    {"PrefNum": 1106, "PrefName": "PracticeTitle", "ValueString": "Chairside Sandbox Dental"},
]


def list_preferences(app, request: Request) -> Response:
    name = request.args.get("PrefName")
    return page(request, [p for p in PREFERENCES if name is None or p["PrefName"] == name])


# Which permission each write needs (https://opendental.com/site/apipermissions.html);
# every GET needs Read All.
WRITE_PERMISSIONS = {("POST", "/api/v1/payplans/Dynamic"): "PayPlans", ("POST", "/api/v1/commlogs"): "Comm"}

ROUTES = [
    Rule("/api/v1/patients/<int:pat_num>", methods=["GET"], endpoint=get_patient),
    Rule("/api/v1/treatplans", methods=["GET"], endpoint=list_treatplans),
    Rule("/api/v1/treatplanattaches", methods=["GET"], endpoint=list_attaches),
    Rule("/api/v1/procedurelogs", methods=["GET"], endpoint=list_procedures),
    Rule("/api/v1/appointments", methods=["GET"], endpoint=list_appointments),
    Rule("/api/v1/appointments/<int:apt_num>", methods=["GET"], endpoint=get_appointment),
    Rule("/api/v1/payplans", methods=["GET"], endpoint=list_payplans),
    Rule("/api/v1/payplans", methods=["POST"], endpoint=create_payplan_deprecated),
    Rule("/api/v1/payplans/<int:plan_num>", methods=["GET"], endpoint=get_payplan),
    Rule("/api/v1/payplans/Dynamic", methods=["POST"], endpoint=create_payplan),
    Rule("/api/v1/payplancharges", methods=["GET"], endpoint=list_charges),
    Rule("/api/v1/payplanlinks", methods=["GET"], endpoint=list_links),
    Rule("/api/v1/commlogs", methods=["GET"], endpoint=list_commlogs),
    Rule("/api/v1/commlogs", methods=["POST"], endpoint=create_commlog),
    Rule("/api/v1/preferences", methods=["GET"], endpoint=list_preferences),
]
