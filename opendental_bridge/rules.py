"""Open Dental's rules for a Dynamic payment plan and a commlog, checked before writing.

Chairside calls these (the registry's `agreement_rules` and `note_rules`) before it
writes, so terms Open Dental would refuse, or would schedule differently from what
Chairside computed, become a needs-attention reason instead of a refused or wrong plan.
The sandbox (sandboxes/opendental) judges the same rules with its own code.

From Open Dental's source (branch 24_3) and API pages:
- PayPlanEdit.ValidateDynamicPaymentPlanTerms: "Please enter a term or payment amount
  first." / "Payment plan date cannot be set for the future." / "Payment cannot be 0." /
  "Please choose either Number of Payments or Payment Amt." / "Term cannot be less than 1." /
  "Down payment must be less than or equal to total amount." / "Payment plans with APR
  must be locked..." (we always lock a plan with APR);
- FormPayPlan: "This payment plan will never be paid off. The interest being charged on
  each payment is greater than the payment amount.";
- apipayplans.html: procNums and/or adjNums required (a plan is built over production);
  ChargeFrequency Weekly | EveryOtherWeek | Monthly | Quarterly | OrdinalWeekday.

And one rule of Chairside's own, because Open Dental stores PayAmt and posts charges until
the plan is paid: the plan must come out as exactly the number of payments Chairside
computed. Open Dental never charges more than PayAmt, so terms whose last payment is
larger than the others (a level payment rounded down) would run one payment longer there.

What it cannot see: a month whose interest comes to an exact half cent. Chairside rounds
it up, Open Dental (in doubles, Math.Round) to even, so the last payment differs by that
cent, about one plan in two thousand (tests/opendental_bridge/test_od_rules.py measures it).

Every function returns {field: message}, empty when valid. Messages are for a billing
clerk and hold no patient data. Money is Decimal throughout.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from financing.ports import AgreementRequest, Interval, LedgerNoteType

from . import schedule
from .wire import FREQUENCY

REQUIRED = "This field is required."
MAX_APR = Decimal("99.99")
# The practice's date may be a day ahead of the server's (time zones): Open Dental judges
# "the future" by the office's own date, which Chairside cannot read.
AGREEMENT_DATE_GRACE = timedelta(days=1)
MAX_COMMLOG_BYTES = 65_535  # commlog.Note is a TEXT column

MSG_FUTURE = "Payment plan date cannot be set for the future."
MSG_PAYMENT_ZERO = "Payment cannot be 0."
MSG_TERM = "Term cannot be less than 1."
MSG_DOWN_PAYMENT = "Down payment must be less than or equal to total amount."
MSG_NEVER_PAID_OFF = (
    "This payment plan will never be paid off. "
    "The interest being charged on each payment is greater than the payment amount."
)
MSG_FREQUENCY = "Open Dental charges a payment plan weekly, every other week, monthly or quarterly, not twice a month."
MSG_NO_PROCEDURES = (
    "Open Dental builds a payment plan over procedures, and this case has no Open Dental procedure "
    "numbers (ProcNums): capture the case again from the patient's Active treatment plan."
)
MSG_APR = "APR must be between 0 and 99.99."
MSG_NOTE_EMPTY = "Note text cannot be empty."
MSG_NOTE_LONG = "Open Dental keeps at most 65,535 bytes in a commlog note."


def money(amount: Decimal) -> str:
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"


def _is_id(value) -> bool:
    return isinstance(value, str) and value.isdigit() and int(value) > 0


def validate_agreement(request: AgreementRequest, *, today: date | None = None) -> dict[str, str]:
    """What Open Dental would refuse in this plan, or schedule differently; {} when none."""
    today = today or date.today()
    errors: dict[str, str] = {}
    if not _is_id(request.patient_id):
        errors["patient_id"] = "Open Dental needs the patient's PatNum."
    if not _is_id(request.guarantor_id):
        errors["guarantor_id"] = "Open Dental needs the guarantor's PatNum."
    if not request.procedures:
        errors["procedures"] = MSG_NO_PROCEDURES
    elif not all(_is_id(p.procedure_id) for p in request.procedures):
        errors["procedures"] = "Every procedure needs its Open Dental ProcNum."
    elif len({p.procedure_id for p in request.procedures}) != len(request.procedures):
        errors["procedures"] = "A procedure can be linked to the plan once."
    elif sum((p.amount for p in request.procedures), Decimal("0.00")) != request.total_agreed_amount:
        fees = sum((p.amount for p in request.procedures), Decimal("0.00"))
        errors["total_agreed_amount"] = (
            f"Open Dental takes a plan's total from its procedures' fees ({money(fees)}), "
            f"not {money(request.total_agreed_amount)}: check the fees in Open Dental and capture the case again."
        )

    if request.agreement_date > today + AGREEMENT_DATE_GRACE:
        errors["agreement_date"] = MSG_FUTURE
    if request.first_payment_due < request.agreement_date:
        errors["first_payment_due"] = "The first payment cannot be due before the plan's date."
    # The enum, or its value as stored (an arrangement read back from the database).
    interval = request.interval if isinstance(request.interval, str) and request.interval in set(Interval) else None
    frequency = FREQUENCY.get(Interval(interval)) if interval else None
    if frequency is None:
        errors["interval"] = MSG_FREQUENCY

    apr = request.annual_finance_charge_pct
    if not apr.is_finite() or apr < 0 or apr > MAX_APR:
        errors["annual_finance_charge_pct"] = MSG_APR
    down, payment = request.down_payment, request.payment_amount
    if down < 0:
        errors["down_payment"] = "Down payment cannot be negative."
    elif down > request.total_agreed_amount:
        errors["down_payment"] = MSG_DOWN_PAYMENT
    if payment <= 0:
        errors["payment_amount"] = MSG_PAYMENT_ZERO
    if request.number_of_payments < 1:
        errors["number_of_payments"] = MSG_TERM
    for name in ("total_agreed_amount", "down_payment", "payment_amount"):
        amount = getattr(request, name)
        if name not in errors and amount != amount.quantize(schedule.CENT):
            errors[name] = "Amounts can have at most 2 decimal places."
    if errors:
        return errors

    # The plan as Open Dental will charge it.
    financed = request.total_agreed_amount - down
    if financed == 0:
        return errors
    try:
        charges = schedule.charges(financed, apr, payment, frequency, request.first_payment_due)
    except schedule.NeverPaidOff:
        return {"payment_amount": MSG_NEVER_PAID_OFF}
    if len(charges) != request.number_of_payments:
        last = charges[-1].amount
        errors["number_of_payments"] = (
            f"Open Dental would schedule {len(charges)} payments, not {request.number_of_payments}: "
            f"{money(payment)} each and a last one of {money(last)} (it never charges more than the payment "
            f"amount, and this plan's last payment is larger than the others). Over "
            f"{request.number_of_payments} payments Open Dental's payment is "
            f"{money(schedule.payment_for(financed, apr, request.number_of_payments, frequency))}: "
            f"enter the plan in Open Dental by hand if the patient agrees."
        )
    return errors


def validate_ledger_note(type: str | LedgerNoteType | None, text: str | None) -> dict[str, str]:
    """A commlog note: non-empty, within the column. Both note types become a commlog (Open
    Dental prints no statement note from the API), so Dentrix's 82-character statement
    limit does not apply."""
    if type not in {t.value for t in LedgerNoteType}:
        return {"type": "Note type must be account or billing_statement."}
    if not isinstance(text, str) or not text.strip():
        return {"text": MSG_NOTE_EMPTY}
    if len(text.encode("utf-8")) > MAX_COMMLOG_BYTES:
        return {"text": MSG_NOTE_LONG}
    return {}


def stored_differences(request: AgreementRequest, stored) -> list[tuple[str, str, str]]:
    """What the read-back compares beyond the terms every product stores: the plan is the
    case's patient's (PatNum), on the account it was sent for."""
    differences = []
    if tuple(stored.patient_ids) != (request.patient_id,):
        differences.append(("Patient (PatNum)", request.patient_id, ", ".join(stored.patient_ids) or "none"))
    return differences
