"""The Dentrix connector's rules, as the sandbox reads them in CONTRACT.md.

Written from the contract (dentrix_bridge/CONTRACT.md, "POST .../payment-agreements",
"POST .../ledger-notes", the treatment-plan field rules) and shared/reference/pms.md §1,
never from Chairside's own `dentrix_bridge.rules`: a sandbox that judged writes with the
code under test could never catch a wrong rule. Each function reads the raw JSON body
and returns ``{field: message}`` (empty = valid): shape problems ("send money as
text") and rule problems alike, every problem at once, each on the field to fix.
Messages are Dentrix's wording where the contract gives it, and never echo a value.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, ROUND_UP, Decimal, localcontext
from typing import Any

from .wire import CENT, MSG_BAD_DATE, MSG_BAD_MONEY, MSG_BAD_TEXT, REQUIRED, read_date, read_money

# The G-series' intervals, in the order its messages list them, and periods a year of
# every interval any product offers (Dentrix Ascend adds quarterly).
PERIODS = {"weekly": 52, "biweekly": 26, "semimonthly": 24, "monthly": 12}
PERIODS_A_YEAR = {**PERIODS, "quarterly": 4}
MAX_PCT = Decimal("99.99")
NOTE_LIMITS = {"billing_statement": 82, "account": 2000}
CDT_CODE = re.compile(r"^D\d{4}$")
TOOTH = re.compile(r"^([1-9]|[12][0-9]|3[0-2]|[A-T])$")
SURFACES = set("MODBFLI")



def interval_message(intervals) -> str:
    return "Interval must be one of " + ", ".join(intervals) + "."


MSG_INTERVAL = interval_message(PERIODS)
MSG_NEVER_PAID_OFF = (
    "This payment plan will never be paid off. "
    "The interest being charged on each payment is greater than the payment amount."
)


def _amount_problem(amount: Decimal, *, zero: str | None) -> str | None:
    """Money: at most 2 decimals, not negative, and (unless `zero` is None) not 0."""
    if amount != amount.quantize(CENT):
        return "Amounts can have at most 2 decimal places."
    if amount < 0:
        return "Amount cannot be negative."
    if amount == 0 and zero is not None:
        return zero
    return None


def _money_field(body: dict, name: str, errors: dict[str, str], *, zero: str | None) -> Decimal | None:
    if body.get(name) is None:
        errors[name] = REQUIRED
        return None
    amount = read_money(body[name])
    problem = MSG_BAD_MONEY if amount is None else _amount_problem(amount, zero=zero)
    if problem:
        errors[name] = problem
        return None
    return amount


def _date_field(body: dict, name: str, errors: dict[str, str]) -> date | None:
    if body.get(name) is None:
        errors[name] = REQUIRED
        return None
    value = read_date(body[name])
    if value is None:
        errors[name] = MSG_BAD_DATE
    return value


def amortised_payment(financed: Decimal, pct: Decimal, n: int, interval: str) -> Decimal:
    """P·r / (1 − (1 + r)^−n), r = pct / 100 / periods a year, rounded half up to the cent."""
    with localcontext() as ctx:
        ctx.prec = 40
        rate = pct / 100 / PERIODS_A_YEAR[interval]
        payment = financed * rate / (1 - (1 + rate) ** -n)
    return payment.quantize(CENT, rounding=ROUND_HALF_UP)


def fitted_payment(financed: Decimal, pct: Decimal, n: int, interval: str) -> Decimal:
    """The payment that fits n payments: at 0 % the financed amount / n rounded up to the
    cent (what Dentrix Ascend stores when the sent payment does not fit), else amortised."""
    if pct == 0:
        return (financed / n).quantize(CENT, rounding=ROUND_UP)
    return amortised_payment(financed, pct, n, interval)


def payment_fits(payment: Decimal, financed: Decimal, pct: Decimal, n: int, interval: str) -> bool:
    """The v1 add-up rule: at 0 % the payments cover the financed amount exactly once (the
    last is the remainder), above 0 % the amortised payment within a cent."""
    if pct == 0:
        return payment * (n - 1) < financed <= payment * n
    return abs(payment - amortised_payment(financed, pct, n, interval)) <= CENT


def check_agreement(
    body: dict[str, Any],
    today: date,
    *,
    record: str = "payment agreement",
    intervals: tuple[str, ...] = tuple(PERIODS),
    msg_interval: str = MSG_INTERVAL,
    payment_must_fit: bool = True,
) -> dict[str, str]:
    """Every problem of an agreement body; `today` is the connector's date.

    The G-series' rules, which every product keeps; a product passes its own word for
    the record ("payment plan"), its intervals, and whether a payment that does not fit
    the term is refused (Ascend stores the payment that fits instead).
    """
    errors: dict[str, str] = {}
    Record = record[:1].upper() + record[1:]
    agreed_on = _date_field(body, "agreement_date", errors)
    if agreed_on is not None and agreed_on > today + timedelta(days=1):  # a day of grace for time zones
        errors["agreement_date"] = f"{Record} date cannot be set for the future."
    first_due = _date_field(body, "first_payment_due", errors)
    if first_due is not None and agreed_on is not None and first_due < agreed_on:
        errors["first_payment_due"] = "First payment due date cannot be before the agreement date."
    interval = body.get("interval")
    if interval is None:
        errors["interval"] = REQUIRED
    elif not isinstance(interval, str) or interval not in intervals:
        errors["interval"] = msg_interval
    total = _money_field(body, "total_agreed_amount", errors, zero="Amount must be greater than 0.")
    down = _money_field(body, "down_payment", errors, zero=None)
    if errors.get("down_payment") == "Amount cannot be negative.":
        errors["down_payment"] = "Down payment cannot be negative."
    payment = _money_field(body, "payment_amount", errors, zero="Payment cannot be 0.")
    n = body.get("number_of_payments")
    if n is None:
        errors["number_of_payments"] = REQUIRED
    elif isinstance(n, bool) or not isinstance(n, int):
        errors["number_of_payments"] = "Enter a whole number of payments."
    elif n < 1:
        errors["number_of_payments"] = "Term cannot be less than 1."
    pct = None
    if body.get("annual_finance_charge_pct") is None:
        errors["annual_finance_charge_pct"] = REQUIRED
    elif (pct := read_money(body["annual_finance_charge_pct"])) is None:
        errors["annual_finance_charge_pct"] = MSG_BAD_MONEY
    elif not 0 <= pct <= MAX_PCT:
        errors["annual_finance_charge_pct"] = "Annual finance charge % must be between 0 and 99.99."
    elif pct != pct.quantize(CENT):
        errors["annual_finance_charge_pct"] = "Annual finance charge % can have at most 2 decimal places."
    note = body.get("note")
    if note is None:
        errors["note"] = REQUIRED
    elif not isinstance(note, str):
        errors["note"] = MSG_BAD_TEXT
    elif len(note) > 255:
        errors["note"] = f"{Record} notes are limited to 255 characters."

    # The amounts must add up; judged only from fields that are themselves valid.
    if total is None or down is None:
        return errors
    if down > total:
        errors["down_payment"] = "Down payment must be less than or equal to total amount."
        return errors
    financed = total - down
    if financed == 0:
        errors["total_agreed_amount"] = "Nothing is left to finance: the down payment covers the total amount."
        return errors
    if any(name in errors for name in ("payment_amount", "number_of_payments", "annual_finance_charge_pct", "interval")):
        return errors
    if not payment_must_fit:
        return errors
    if pct == 0:
        # The last payment is the remainder: n − 1 payments fall short, n cover it.
        if not payment * (n - 1) < financed <= payment * n:
            errors["payment_amount"] = "Payment amount × number of payments does not add up to the amount financed."
        return errors
    one_period = (financed * pct / 100 / PERIODS_A_YEAR[interval]).quantize(CENT, rounding=ROUND_HALF_UP)
    if payment <= one_period:
        errors["payment_amount"] = MSG_NEVER_PAID_OFF
        return errors
    expected = amortised_payment(financed, pct, n, interval)
    if abs(payment - expected) > CENT:
        errors["payment_amount"] = (
            f"Payment amount does not match the finance charge and number of payments (expected {expected})."
        )
    return errors


def check_ledger_note(body: dict[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    note_type, text = body.get("type"), body.get("text")
    if note_type in (None, ""):
        errors["type"] = REQUIRED
    elif not isinstance(note_type, str) or note_type not in NOTE_LIMITS:
        errors["type"] = "Note type must be account or billing_statement."
    if not isinstance(text, str) or not text.strip():
        errors["text"] = "Note text cannot be empty."
    elif note_type == "billing_statement" and len(text) > NOTE_LIMITS[note_type]:
        errors["text"] = "Billing statement notes are limited to 82 characters."
    elif note_type == "account" and len(text) > NOTE_LIMITS[note_type]:
        errors["text"] = "Account notes are limited to 2000 characters."
    return errors


def check_procedure(item: Any) -> dict[str, str]:
    """One ``{code, tooth, surface, fee}`` of a treatment plan; keys are its field names."""
    if not isinstance(item, dict):
        return {"": "Each procedure must be an object with code, tooth, surface and fee."}
    errors: dict[str, str] = {}
    code = item.get("code")
    if code is None:
        errors["code"] = REQUIRED
    elif not isinstance(code, str):
        errors["code"] = MSG_BAD_TEXT
    elif not CDT_CODE.match(code):
        errors["code"] = "Procedure code must be a CDT code: D followed by 4 digits, e.g. D2740."
    tooth, surface = item.get("tooth", ""), item.get("surface", "")
    for name, value in (("tooth", tooth), ("surface", surface)):
        if value is None:
            errors[name] = REQUIRED
        elif not isinstance(value, str):
            errors[name] = MSG_BAD_TEXT
    if "tooth" not in errors and tooth and not TOOTH.match(tooth):
        errors["tooth"] = "Tooth must be empty, 1–32 (permanent) or A–T (primary)."
    if "surface" not in errors and surface:
        if not set(surface) <= SURFACES:
            errors["surface"] = "Surface letters must be from M, O, D, B, F, L, I."
        elif len(set(surface)) != len(surface):
            errors["surface"] = "Surface letters cannot repeat."
        elif tooth == "":
            errors["surface"] = "A surface needs a tooth."
    _money_field(item, "fee", errors, zero="Amount must be greater than 0.")
    return errors
