"""Open Dental's JSON, translated to and from `financing.ports` dataclasses.

Open Dental's conventions (https://www.opendental.com/site/apiimplementation.html and the
resource pages): PascalCase fields (a lower-case first letter marks a derived, read-only
field: `procCode`, `principalAmount`); ids are the database's numbers (PatNum 72);
booleans are the strings "true" / "false"; dates "yyyy-MM-dd" ("0001-01-01" is "none");
datetimes "yyyy-MM-dd HH:mm:ss"; enums as text ("Monthly", "TP"). Money arrives as JSON
numbers (PayAmt 81.48, DownPayment 100.0) or as strings (ProcFee "130.00"): both are read
exactly, as Decimal (the client parses JSON numbers as Decimal), never through float. We
send money as JSON numbers written from the Decimal's own digits.

Readers raise KeyError / ValueError / TypeError on a body that does not fit; the client
turns that into a partner error without echoing the body.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from financing.ports import (
    Address,
    Agreement,
    AgreementRequest,
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

from . import schedule

PRODUCT = "opendental"

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
_DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")
NO_DATE = "0001-01-01"

# Chairside's intervals as Open Dental's ChargeFrequency, and back. Open Dental has no
# twice-a-month plan (rules.py refuses one); OrdinalWeekday ("the 2nd Tuesday of each
# month") is monthly for every term Chairside compares.
FREQUENCY = {
    Interval.WEEKLY: "Weekly",
    Interval.BIWEEKLY: "EveryOtherWeek",
    Interval.MONTHLY: "Monthly",
    Interval.QUARTERLY: "Quarterly",
}
INTERVAL = {**{v: k for k, v in FREQUENCY.items()}, "OrdinalWeekday": Interval.MONTHLY}

# TPStatus → the port's plan status. The Active plan holds the patient's treatment-planned
# procedures (what they said yes to, and what a Dynamic plan links); an Inactive plan is
# an alternative not chosen; a Saved plan is a signed snapshot (ProcTPs), not live procedures.
PLAN_STATUS = {"Active": "accepted", "Inactive": "inactive", "Saved": "saved"}


# --- scalars -----------------------------------------------------------------------------


def parse_money(value: Any) -> Decimal:
    """A JSON number (already Decimal or int) or a decimal string, exactly; never a bool or float."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not an amount")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("not a finite amount")
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str) and _DECIMAL.match(value.strip()):
        return Decimal(value.strip())
    raise ValueError("not an amount")


def cents(amount: Decimal) -> Decimal:
    """An amount to the cent when it is a whole number of cents ("100.0" → 100.00): Open
    Dental writes 100.0 for $100.00. One with more digits is kept as it is, to compare unequal."""
    quantized = amount.quantize(schedule.CENT)
    return quantized if quantized == amount else amount


def parse_date(value: Any) -> date | None:
    """"yyyy-MM-dd"; None for Open Dental's "0001-01-01" (no date)."""
    if not isinstance(value, str) or not _DATE.match(value):
        raise ValueError("not a yyyy-MM-dd date")
    return None if value == NO_DATE else date.fromisoformat(value)


def parse_wall_clock(value: Any) -> datetime:
    """"yyyy-MM-dd HH:mm:ss", the office's wall-clock time (Open Dental keeps no zone), as a
    naive datetime; "0001-01-01 00:00:00" (none) is refused where a time is needed."""
    if not isinstance(value, str) or not _DATETIME.match(value) or value.startswith(NO_DATE):
        raise ValueError("not a yyyy-MM-dd HH:mm:ss time")
    return datetime.fromisoformat(value)


def parse_bool(value: Any) -> bool:
    """"true" / "false" (the documented form); a JSON boolean too (one example sends it)."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValueError("not a boolean")


def parse_id(value: Any) -> str:
    """A primary key (PatNum, ProcNum...): a whole number, as the port's id string."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not an id")
    if isinstance(value, int) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.isdigit():
        return str(int(value))
    raise ValueError("not an id")


def format_date(value: date) -> str:
    return value.isoformat()


def format_bool(value: bool) -> str:
    return "true" if value else "false"


def dumps(body: Any) -> bytes:
    """JSON for Open Dental: a Decimal amount as a JSON number with exactly its digits
    ("1250.00" → 1250.00), never through float; everything else as json writes it."""

    def write(value: Any) -> str:
        if isinstance(value, dict):
            return "{" + ",".join(f"{json.dumps(str(k))}:{write(v)}" for k, v in value.items()) + "}"
        if isinstance(value, (list, tuple)):
            return "[" + ",".join(write(v) for v in value) + "]"
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise ValueError("not a finite amount")
            return format(value, "f")
        if isinstance(value, float):
            raise TypeError("money is never a float")
        return json.dumps(value)

    return write(body).encode()


# --- responses → dataclasses --------------------------------------------------------------


def clinic_id(value: Any) -> str:
    """ClinicNum as the port's clinic id: "" for 0 (no clinic, or a database without clinics)."""
    number = parse_id(value)
    return "" if number == "0" else number


def patient_from_json(data: dict[str, Any]) -> Patient:
    phones = (data.get("WirelessPhone"), data.get("HmPhone"), data.get("WkPhone"))
    birth = parse_date(data["Birthdate"])
    return Patient(
        patient_id=parse_id(data["PatNum"]),
        guarantor_id=parse_id(data["Guarantor"]),
        first_name=str(data["FName"]),
        last_name=str(data["LName"]),
        # A patient without a birth date in Open Dental: the lender will ask for one.
        birth_date=birth or date.min,
        phone=next((str(p) for p in phones if p), ""),
        email=str(data.get("Email") or ""),
        address=Address(
            line1=str(data.get("Address") or ""),
            city=str(data.get("City") or ""),
            state=str(data.get("State") or ""),
            zip=str(data.get("Zip") or ""),
        ),
        clinic_id=clinic_id(data["ClinicNum"]),
    )


def procedure_from_json(data: dict[str, Any]) -> Procedure:
    fee = cents(parse_money(data["ProcFee"]))
    posted = data["ProcStatus"] == "C"
    return Procedure(
        code=str(data["procCode"]),
        tooth=str(data.get("ToothNum") or ""),
        surface=str(data.get("Surf") or ""),
        fee=fee,
        procedure_id=parse_id(data["ProcNum"]),
        posted=posted,
        # What the procedure leaves on the ledger until it is paid: its fee once complete.
        balance=fee if posted else Decimal("0.00"),
    )


def treatment_plan_from_json(data: dict[str, Any], procedures: list[Procedure]) -> TreatmentPlan:
    status = data["TPStatus"]
    return TreatmentPlan(
        plan_id=parse_id(data["TreatPlanNum"]),
        patient_id=parse_id(data["PatNum"]),
        status=PLAN_STATUS.get(status, str(status).lower()),
        procedures=tuple(procedures),
    )


def is_patient_plan(data: dict[str, Any]) -> bool:
    """A patient's payment plan (Dynamic, or an old Patient plan), not an insurance one
    ("An Insurance payment plan has a PlanNum and InsSubNum value greater than zero")."""
    return not (int(parse_id(data.get("PlanNum", 0))) > 0 and int(parse_id(data.get("InsSubNum", 0))) > 0)


def agreement_from_json(data: dict[str, Any]) -> Agreement:
    """A payment plan as the port's Agreement. Open Dental keeps no number of payments for
    a Dynamic plan: it is worked out from the terms as Open Dental works out its charges
    (`schedule`); 0 when they never pay the plan off."""
    principal = cents(parse_money(data["principalAmount"]))
    down = cents(parse_money(data["DownPayment"]))
    pay_amt = cents(parse_money(data["PayAmt"]))
    apr = parse_money(data["APR"])
    frequency = str(data["ChargeFrequency"])
    first_due = parse_date(data["DatePayPlanStart"])
    if parse_bool(data["IsDynamic"]):
        count = number_of_payments(principal - down, apr, pay_amt, frequency, first_due, parse_date(data.get("DateInterestStart", NO_DATE)))
    else:  # an old Patient plan stores its term
        count = int(data["NumberOfPayments"])
    return Agreement(
        agreement_id=parse_id(data["PayPlanNum"]),
        guarantor_id=parse_id(data["Guarantor"]),
        status="inactive" if parse_bool(data["IsClosed"]) else "active",
        agreement_date=parse_date(data["PayPlanDate"]),
        interval=INTERVAL[frequency],
        total_agreed_amount=principal,
        down_payment=down,
        payment_amount=pay_amt,
        number_of_payments=count,
        first_payment_due=first_due or date.min,
        annual_finance_charge_pct=cents(apr),
        # Open Dental writes the terms first ("06/30/2022 - Date of Agreement: ..., ") and
        # appends ours: the marker is found inside it.
        note=str(data.get("Note") or ""),
        product=PRODUCT,
        patient_ids=(parse_id(data["PatNum"]),),
    )


def number_of_payments(financed, apr, pay_amt, frequency, first_due, interest_start) -> int:
    if financed <= 0:
        return 0
    if first_due is None or frequency not in schedule.PERIODS_PER_YEAR:
        raise ValueError("a Dynamic plan without a first payment date or frequency")
    try:
        return len(schedule.charges(financed, apr, pay_amt, frequency, first_due, interest_start))
    except schedule.NeverPaidOff:
        return 0


class AppointmentRow(NamedTuple):
    """What Chairside reads of an Appointments GET row."""

    apt_num: str
    pat_num: str
    status: str  # AptStatus: Scheduled, Complete, Broken, UnschedList, ASAP, Planned, ...
    starts: datetime  # the office's wall-clock time, naive
    clinic_id: str


def appointment_row(data: dict[str, Any]) -> AppointmentRow:
    status = data["AptStatus"]
    if not isinstance(status, str):
        raise ValueError("AptStatus is not text")
    return AppointmentRow(
        apt_num=parse_id(data["AptNum"]),
        pat_num=parse_id(data["PatNum"]),
        status=status,
        starts=parse_wall_clock(data["AptDateTime"]),
        clinic_id=clinic_id(data["ClinicNum"]),
    )


def planned_fee(data: dict[str, Any], apt_num: str) -> Decimal | None:
    """A procedurelog row's fee when it is treatment planned (ProcStatus TP) on appointment
    `apt_num`; None otherwise (a completed or deleted procedure is no longer planned
    treatment; a row of another appointment is from an Open Dental that ignored AptNum)."""
    fee = cents(parse_money(data["ProcFee"]))
    return fee if parse_id(data["AptNum"]) == apt_num and data["ProcStatus"] == "TP" else None


def ledger_note_from_json(data: dict[str, Any]) -> LedgerNoteRecord:
    """A commlog as a ledger note. Open Dental has one kind of communication log entry for
    both of the port's note types: every commlog reads as an account note."""
    return LedgerNoteRecord(
        note_id=parse_id(data["CommlogNum"]),
        patient_id=parse_id(data["PatNum"]),
        type=LedgerNoteType.ACCOUNT,
        text=str(data["Note"]),
    )


# The definition categories that type the ledger's entries (apidefinitions.html): a
# payment's PayType is a DefNum of PaymentTypes, an adjustment's AdjType one of AdjTypes.
DEFINITION_CATEGORY = {LedgerEntryKind.PAYMENT: 10, LedgerEntryKind.ADJUSTMENT: 1}


def definition_row(data: dict[str, Any]) -> tuple[str, str, bool]:
    """(DefNum, ItemName, hidden) of a definitions row."""
    hidden = data.get("isHidden", data.get("IsHidden", "false"))
    return parse_id(data["DefNum"]), str(data["ItemName"]), parse_bool(hidden)


def ledger_entry_from_json(kind: LedgerEntryKind, data: dict[str, Any]) -> LedgerEntry:
    """A payment (PayNum, PayAmt, payType, PayNote) or an adjustment (AdjNum, AdjAmt,
    adjType, AdjNote) as a ledger entry; the type by its name as the office sees it (the
    derived payType / adjType). An adjustment's amount carries its sign."""
    if kind == LedgerEntryKind.PAYMENT:
        entry_id, amount, type_name, note, day = data["PayNum"], data["PayAmt"], data["payType"], data["PayNote"], data["PayDate"]
    else:
        entry_id, amount, type_name, note, day = data["AdjNum"], data["AdjAmt"], data["adjType"], data["AdjNote"], data["AdjDate"]
    entry_date = parse_date(day)
    if entry_date is None:
        raise ValueError("an entry without a date")
    return LedgerEntry(
        entry_id=parse_id(entry_id),
        kind=kind,
        patient_id=parse_id(data["PatNum"]),
        entry_date=entry_date,
        amount=cents(parse_money(amount)),
        type_name=str(type_name),
        note=str(note or ""),
    )


# --- requests -----------------------------------------------------------------------------


def ledger_entry_request(request: LedgerEntryRequest, def_num: str) -> dict[str, Any]:
    """POST /payments or POST /adjustments, its type already resolved to a DefNum. The
    provider is left to Open Dental (the patient's primary); no procedure is attached."""
    if request.kind == LedgerEntryKind.PAYMENT:
        return {"PatNum": int(request.patient_id), "PayAmt": request.amount, "PayType": int(def_num),
                "PayDate": format_date(request.entry_date), "PayNote": request.note}
    return {"PatNum": int(request.patient_id), "AdjType": int(def_num), "AdjAmt": request.amount,
            "AdjDate": format_date(request.entry_date), "AdjNote": request.note}



def payplan_request(request: AgreementRequest) -> dict[str, Any]:
    """POST /payplans/Dynamic. PayAmt, not NumberOfPayments (one or the other: Open Dental
    turns a NumberOfPayments into its own PayAmt, rounded up, which may differ from ours).
    The principal is the linked procedures' fees: Open Dental takes it from procNums.
    Locked when there is interest (Open Dental requires it); a 0 % plan stays unlocked so
    the office can adjust it the way it adjusts its own."""
    return {
        "PatNum": int(request.patient_id),
        "Guarantor": int(request.guarantor_id),
        "PayPlanDate": format_date(request.agreement_date),
        "APR": request.annual_finance_charge_pct,
        "IsLocked": format_bool(request.annual_finance_charge_pct > 0),
        "DownPayment": request.down_payment,
        "ChargeFrequency": FREQUENCY[Interval(request.interval)],
        "DatePayPlanStart": format_date(request.first_payment_due),
        "PayAmt": request.payment_amount,
        "DynamicPayPlanTPOption": "AwaitComplete",
        "procNums": [int(p.procedure_id) for p in request.procedures],
        "Note": request.note,
    }


def commlog_request(patient_id: str, text: str) -> dict[str, Any]:
    """POST /commlogs: the ledger note as a communication log entry of the default type
    (Misc), neither sent nor received, in no medium: a note for the record."""
    return {"PatNum": int(patient_id), "Note": text, "Mode_": "None", "SentOrReceived": "Neither"}
