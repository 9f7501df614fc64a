"""Open Dental's rules for what the API creates, as the sandbox enforces them.

Written from Open Dental's API pages (apipayplans.html "PayPlans POST Dynamic",
apicommlogs.html "Commlogs POST") and its source (branch 24_3:
PayPlanEdit.ValidateDynamicPaymentPlanTerms, FormPayPlan's never-paid-off check,
FormPayPlanCredits' "This procedure is already linked to a payment plan."), never from
Chairside's `opendental_bridge.rules`. A refusal is a plain-text explanation, as Open
Dental answers one; several term problems come back together, one sentence after the
other (Open Dental joins its validation lines; its API writes line breaks as spaces).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from ..kit.http import SandboxError
from . import arithmetic
from .wire import read_bool, read_date, read_int, read_number

FREQUENCIES = ("Weekly", "EveryOtherWeek", "Monthly", "Quarterly", "OrdinalWeekday")
TP_OPTIONS = ("AwaitComplete", "TreatAsComplete")
MODES = ("None", "Email", "Mail", "Phone", "In Person", "Text", "Email and Text", "Phone and Text")
SENT_OR_RECEIVED = ("Neither", "Sent", "Received")
# definition.DefNum → ItemName for Category 27 (commlog types) in the demo office.
COMM_TYPES = {235: "ApptRelated", 236: "Insurance", 237: "Financial", 238: "Recall", 239: "Misc"}

ALREADY_LINKED = "This procedure is already linked to a payment plan."
NEVER_PAID_OFF = (
    "This payment plan will never be paid off. The interest being charged on each payment is greater than the payment amount."
)
MUST_LOCK = "Payment plans with APR must be locked. Remove the APR or check the box for FullLock."


def bad(message: str, status: int = 400) -> SandboxError:
    return SandboxError(status, message)


@dataclass
class PlanTerms:
    pat_num: int
    guarantor: int
    procedures: list[dict]
    principal: Decimal
    plan_date: date
    apr: Decimal
    down_payment: Decimal
    frequency: str
    first_due: date
    interest_start: date | None
    is_locked: bool
    tp_option: str
    pay_amt: Decimal
    note: str
    charges: list[dict]  # the full periodic schedule


def _optional_number(body: dict, name: str, default: Decimal) -> Decimal:
    if name not in body or body[name] is None:
        return default
    value = read_number(body[name])
    if value is None or value < 0:
        raise bad(f"{name} is invalid.")
    return value


def _optional_date(body: dict, name: str, default: date | None) -> date | None:
    if name not in body or body[name] in (None, ""):
        return default
    value = read_date(body[name])
    if value is None:
        raise bad(f"{name} is invalid. Use yyyy-MM-dd.")
    return value


def _choice(body: dict, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = body.get(name, default)
    if value not in allowed:
        raise bad(f"{name} must be " + ", ".join(f'"{a}"' for a in allowed[:-1]) + f', or "{allowed[-1]}".')
    return value


def check_payplan(body: dict, store, today: date) -> PlanTerms:
    """POST /payplans/Dynamic: the terms of a valid request, or the SandboxError Open Dental answers."""
    pat_num = read_int(body.get("PatNum"))
    if body.get("PatNum") is None:
        raise bad("PatNum is required.")
    if pat_num is None:
        raise bad("PatNum is invalid.")
    if store.get("patients", pat_num) is None:
        raise bad("Patient not found.", 404)
    guarantor = read_int(body.get("Guarantor", pat_num))
    if guarantor is None:
        raise bad("Guarantor is invalid.")
    if store.get("patients", guarantor) is None:
        raise bad("Guarantor not found.", 404)

    proc_nums, adj_nums = body.get("procNums"), body.get("adjNums")
    if not proc_nums and not adj_nums:
        raise bad("procNums and/or adjNums is required.")
    if adj_nums:
        if not isinstance(adj_nums, list) or any(read_int(a) is None for a in adj_nums):
            raise bad("adjNums must be an array of AdjNums, in [1,2,3] format.")
        raise bad(f"Adjustment {adj_nums[0]} not found.")  # the demo office has no adjustments
    if not isinstance(proc_nums, list) or any(isinstance(p, bool) or not isinstance(p, int) for p in proc_nums):
        raise bad("procNums must be an array of ProcNums, in [1,2,3] format.")
    if len(set(proc_nums)) != len(proc_nums):
        raise bad("procNums lists a procedure more than once.")
    linked = {int(link["FKey"]) for link in store.all("links")
              if link["LinkType"] == "Procedure" and not _closed(store, link["PayPlanNum"])}
    procedures = []
    for proc_num in proc_nums:
        proc = store.get("procedures", proc_num)
        if proc is None:
            raise bad(f"Procedure {proc_num} not found.")
        if proc["PatNum"] != pat_num:
            raise bad(f"Procedure {proc_num} is not attached to patient {pat_num}.")
        if proc["ProcStatus"] not in ("TP", "C"):
            raise bad(f"Procedure {proc_num} must be treatment planned or complete.")
        if proc_num in linked:
            raise bad(ALREADY_LINKED)
        procedures.append(proc)

    pay_amt = _optional_number(body, "PayAmt", Decimal(0))
    count = 0
    if body.get("NumberOfPayments") is not None:
        value = body["NumberOfPayments"]
        count = value if isinstance(value, int) and not isinstance(value, bool) else read_int(value)
        if count is None:
            raise bad("NumberOfPayments is invalid.")
    plan_date = _optional_date(body, "PayPlanDate", today)
    apr = _optional_number(body, "APR", Decimal(0))
    down = _optional_number(body, "DownPayment", Decimal(0))
    frequency = _choice(body, "ChargeFrequency", FREQUENCIES, "Monthly")
    first_due = _optional_date(body, "DatePayPlanStart", arithmetic.add_months(plan_date, 1))
    interest_start = _optional_date(body, "DateInterestStart", None)
    locked = True
    if "IsLocked" in body:
        locked = read_bool(body["IsLocked"])
        if locked is None:
            raise bad('IsLocked must be "true" or "false".')
    tp_option = _choice(body, "DynamicPayPlanTPOption", TP_OPTIONS, "AwaitComplete")
    note = body.get("Note", "")
    if not isinstance(note, str):
        raise bad("Note is invalid.")

    principal = sum((Decimal(p["ProcFee"]) for p in procedures), Decimal("0.00"))
    # PayPlanEdit.ValidateDynamicPaymentPlanTerms, in its order.
    lines = []
    if pay_amt == 0 and count == 0:
        lines.append("Please enter a term or payment amount first.")
    if plan_date > today:
        lines.append("Payment plan date cannot be set for the future.")
    if count == 0 and pay_amt == 0:
        lines.append("Payment cannot be 0.")
    if count != 0 and pay_amt != 0:
        lines.append("Please choose either Number of Payments or Payment Amt.")
    if pay_amt == 0 and count < 1:
        lines.append("Term cannot be less than 1.")
    if principal - down < 0:
        lines.append("Down payment must be less than or equal to total amount.")
    if apr > 0 and not locked:
        lines.append(MUST_LOCK)
    if lines:
        raise bad(" ".join(lines))

    financed = principal - down
    if count:
        pay_amt = arithmetic.pay_amt_for(financed, apr, count, frequency)
    try:
        charges = arithmetic.schedule(financed, apr, pay_amt, frequency, first_due, interest_start)
    except arithmetic.NeverPaidOff:
        raise bad(NEVER_PAID_OFF) from None
    return PlanTerms(pat_num, guarantor, procedures, principal, plan_date, apr, down, frequency, first_due,
                     interest_start, locked, tp_option, pay_amt, note, charges)


def _closed(store, pay_plan_num: int) -> bool:
    plan = store.get("payplans", int(pay_plan_num))
    return plan is not None and plan["IsClosed"] == "true"


@dataclass
class CommlogFields:
    pat_num: int
    note: str
    when: str | None
    comm_type: int
    mode: str
    sent_or_received: str


def check_commlog(body: dict, store) -> CommlogFields:
    """POST /commlogs: the fields of a valid request, or the SandboxError Open Dental answers."""
    if body.get("PatNum") is None:
        raise bad("PatNum is required.")
    pat_num = read_int(body["PatNum"])
    if pat_num is None:
        raise bad("PatNum is invalid.")
    note = body.get("Note")
    if not isinstance(note, str) or not note.strip():
        raise bad("Note is required.")
    if store.get("patients", pat_num) is None:
        raise bad("Patient not found.", 404)
    when = body.get("CommDateTime")
    if when is not None:
        try:
            datetime.strptime(str(when), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise bad("CommDateTime is invalid. Use yyyy-MM-dd HH:mm:ss.") from None
    comm_type = 239  # Misc
    if body.get("commType") is not None:
        by_name = {name: num for num, name in COMM_TYPES.items()}
        if body["commType"] not in by_name:
            raise bad("commType is invalid.")
        comm_type = by_name[body["commType"]]
    elif body.get("CommType") is not None:
        comm_type = read_int(body["CommType"])
        if comm_type not in COMM_TYPES:
            raise bad("CommType is invalid.")
    mode = _choice(body, "Mode_", MODES, "Phone")
    sent = _choice(body, "SentOrReceived", SENT_OR_RECEIVED, "Sent")
    return CommlogFields(pat_num, note, when, comm_type, mode, sent)
