"""The connector products' shared rules for payment agreements, ledger notes and
procedures: the Dentrix G-series rules of contract v1, which every product keeps.

Chairside calls these before it writes, so a bad arrangement becomes a precise
`needs_attention` reason instead of a rejected write. Each product's own rules live in
`dentrix_bridge/products/` and call `validate_agreement` here with what differs (its
intervals, how it treats a payment that does not fit). The sandbox codes the same rules
again, on its own, from CONTRACT.md (`sandboxes/dentrix/`): a sandbox that judged writes
with this code could never catch a wrong rule.

Every function returns ``{field: message}``; an empty dict means "valid". Messages are
written for a billing clerk, reuse Dentrix's / Open Dental's own wording where it is
known (see shared/reference/pms.md §1.3 and §3.4), and never contain patient data.

Money is `Decimal` throughout; a float never touches an amount.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, localcontext
from typing import Callable

from financing.ports import AgreementRequest, Interval, LedgerNoteType, Procedure

CENT = Decimal("0.01")

# How many payments a year each Dentrix interval makes; the periodic rate of an annual
# finance charge is pct / 100 / periods. For monthly this is the familiar pct / 1200.
PERIODS_PER_YEAR: dict[Interval, int] = {
    Interval.WEEKLY: 52,
    Interval.BIWEEKLY: 26,
    Interval.SEMIMONTHLY: 24,
    Interval.MONTHLY: 12,
    Interval.QUARTERLY: 4,  # Dentrix Ascend
}

# The intervals of a Dentrix G-series payment agreement (and of Dentrix Enterprise's plans).
G_INTERVALS = (Interval.WEEKLY, Interval.BIWEEKLY, Interval.SEMIMONTHLY, Interval.MONTHLY)

MAX_FINANCE_CHARGE_PCT = Decimal("99.99")
MAX_AGREEMENT_NOTE_LENGTH = 255
MAX_BILLING_STATEMENT_NOTE_LENGTH = 82  # Dentrix prints these on the statement
MAX_ACCOUNT_NOTE_LENGTH = 2000

# An agreement dated "tomorrow" is allowed: the practice's local date can be a day
# ahead of the server's (a practice in Guam, a server in UTC-8). Anything later is a
# typo or a post-dated plan, which Dentrix refuses.
AGREEMENT_DATE_GRACE = timedelta(days=1)

REQUIRED = "This field is required."

MSG_INTERVAL = "Interval must be one of weekly, biweekly, semimonthly, monthly."
MSG_DOWN_PAYMENT_TOO_BIG = "Down payment must be less than or equal to total amount."
MSG_TERM_TOO_SHORT = "Term cannot be less than 1."
MSG_PAYMENT_ZERO = "Payment cannot be 0."
MSG_FIRST_DUE_BEFORE_AGREEMENT = "First payment due date cannot be before the agreement date."
MSG_FUTURE_AGREEMENT = "Payment agreement date cannot be set for the future."
MSG_FINANCE_CHARGE_RANGE = "Annual finance charge % must be between 0 and 99.99."
MSG_NOTE_TOO_LONG = f"Payment agreement notes are limited to {MAX_AGREEMENT_NOTE_LENGTH} characters."
MSG_NOTHING_FINANCED = "Nothing is left to finance: the down payment covers the total amount."
MSG_DOES_NOT_ADD_UP = "Payment amount × number of payments does not add up to the amount financed."
MSG_NEVER_PAID_OFF = (
    "This payment plan will never be paid off. "
    "The interest being charged on each payment is greater than the payment amount."
)
MSG_BILLING_NOTE_TOO_LONG = (
    f"Billing statement notes are limited to {MAX_BILLING_STATEMENT_NOTE_LENGTH} characters."
)
MSG_ACCOUNT_NOTE_TOO_LONG = f"Account notes are limited to {MAX_ACCOUNT_NOTE_LENGTH} characters."
MSG_NOTE_EMPTY = "Note text cannot be empty."
MSG_NOTE_TYPE = "Note type must be account or billing_statement."


def dollars(amount: Decimal) -> str:
    """Money as a clerk reads it in a message: $1,250.00."""
    return f"${amount:,.2f}"


def day(value: date) -> str:
    """A date as a clerk reads it in a message: Mar 31, 2027."""
    return f"{value:%b} {value.day}, {value.year}"


def msg_payment_mismatch(expected: Decimal) -> str:
    return (
        "Payment amount does not match the finance charge and number of payments "
        f"(expected {expected})."
    )


# --- money helpers -------------------------------------------------------------------------


def round_cents(amount: Decimal) -> Decimal:
    """Round to the cent, half up: the rounding Dentrix and the lenders print."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def periodic_rate(annual_pct: Decimal, interval: Interval) -> Decimal:
    """The finance charge applied each period, as a fraction (17.90 % monthly → 0.0149166…)."""
    return annual_pct / Decimal(100) / Decimal(PERIODS_PER_YEAR[interval])


def amortised_payment(
    financed: Decimal, annual_pct: Decimal, number_of_payments: int, interval: Interval
) -> Decimal:
    """The standard level payment P·r / (1 − (1 + r)^−n), rounded half up to the cent.

    At 0 % there is no interest and the payment is simply P / n rounded up to the cent,
    so that n payments always cover P.
    Check values (17.90 %, monthly): 1000.00 over 24 → 49.88; 5000.00 over 60 → 126.70.
    """
    if number_of_payments < 1:
        raise ValueError("number_of_payments must be at least 1")
    if annual_pct == 0:
        return (financed / number_of_payments).quantize(CENT, rounding=ROUND_CEILING)
    # Extra precision so (1 + r)^-n over hundreds of weekly payments stays exact to the
    # cent; the result is rounded once, at the end.
    with localcontext() as ctx:
        ctx.prec = 40
        rate = periodic_rate(annual_pct, interval)
        payment = financed * rate / (1 - (1 + rate) ** -number_of_payments)
    return round_cents(payment)


def _has_at_most_two_decimals(amount: Decimal) -> bool:
    return amount == amount.quantize(CENT)


def _money_problem(amount: Decimal, *, allow_zero: bool) -> str | None:
    """The one message for a money field that is not a usable amount, or None."""
    if not amount.is_finite():
        return "Enter an amount such as 1250.00."
    if not _has_at_most_two_decimals(amount):
        return "Amounts can have at most 2 decimal places."
    if amount < 0:
        return "Amount cannot be negative."
    if amount == 0 and not allow_zero:
        return "Amount must be greater than 0."
    return None


def _interval_or_none(value: object, intervals=tuple(Interval)) -> Interval | None:
    # Accept the enum or its plain string value; anything else is not an interval.
    # (Membership tests on StrEnum with a foreign value raise on Python 3.11.)
    if isinstance(value, str) and value in {i.value for i in intervals}:
        return Interval(value)
    return None


def add_months(day: date, months: int) -> date:
    """The same day `months` later (or earlier), clamped to the last day of a shorter month:
    31 Jan + 1 month = 28 Feb. How Dentrix steps a monthly schedule."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def add_intervals(day: date, interval: Interval, count: int = 1) -> date:
    """`count` payment intervals after `day` (before it when negative). Semimonthly has no
    single step (the 1st and the 15th): no product that needs this stepping offers it."""
    if interval == Interval.WEEKLY:
        return day + timedelta(weeks=count)
    if interval == Interval.BIWEEKLY:
        return day + timedelta(weeks=2 * count)
    if interval == Interval.MONTHLY:
        return add_months(day, count)
    if interval == Interval.QUARTERLY:
        return add_months(day, 3 * count)
    raise ValueError(f"no single step for the {interval} interval")


# --- payment agreements ---------------------------------------------------------------------


# A product's check of the payment against the amount financed: (request, financed,
# interval) -> a message, or None when the payment is one the product stores as sent.
PaymentRule = Callable[[AgreementRequest, Decimal, Interval], str | None]


def validate_agreement(
    request: AgreementRequest,
    *,
    today: date | None = None,
    intervals: tuple[Interval, ...] = G_INTERVALS,
    interval_message: str = MSG_INTERVAL,
    payment_rule: PaymentRule | None = None,
) -> dict[str, str]:
    """Check a payment agreement against the Dentrix G-series rules; return {field: message}.

    Fields may be None (a field left out), which reports "This field is required." The
    combined checks (down payment vs total, the payments adding up, the finance charge) run
    only when every field they need is itself valid, so each problem is reported once, on
    the field to fix.

    The other products call this with what they do differently: their `intervals` (and
    the message naming them), and `payment_rule`, how they treat a payment that does not
    fit (default `payment_adds_up`: the G-series refuses it). `today` is the server's date;
    it exists so tests can pin the clock.
    """
    today = today or date.today()
    errors: dict[str, str] = {}

    if not request.guarantor_id:
        errors["guarantor_id"] = REQUIRED

    # -- dates
    if request.agreement_date is None:
        errors["agreement_date"] = REQUIRED
    elif request.agreement_date > today + AGREEMENT_DATE_GRACE:
        errors["agreement_date"] = MSG_FUTURE_AGREEMENT
    if request.first_payment_due is None:
        errors["first_payment_due"] = REQUIRED
    elif request.agreement_date is not None and request.first_payment_due < request.agreement_date:
        errors["first_payment_due"] = MSG_FIRST_DUE_BEFORE_AGREEMENT

    # -- interval
    interval = _interval_or_none(request.interval, intervals)
    if request.interval is None:
        errors["interval"] = REQUIRED
    elif interval is None:
        errors["interval"] = interval_message

    # -- amounts, each on its own
    if request.total_agreed_amount is None:
        errors["total_agreed_amount"] = REQUIRED
    elif problem := _money_problem(request.total_agreed_amount, allow_zero=False):
        errors["total_agreed_amount"] = problem

    if request.down_payment is None:
        errors["down_payment"] = REQUIRED
    elif request.down_payment < 0:
        errors["down_payment"] = "Down payment cannot be negative."
    elif problem := _money_problem(request.down_payment, allow_zero=True):
        errors["down_payment"] = problem

    if request.payment_amount is None:
        errors["payment_amount"] = REQUIRED
    elif request.payment_amount == 0:
        errors["payment_amount"] = MSG_PAYMENT_ZERO
    elif problem := _money_problem(request.payment_amount, allow_zero=False):
        errors["payment_amount"] = problem

    n = request.number_of_payments
    if n is None:
        errors["number_of_payments"] = REQUIRED
    elif isinstance(n, bool) or not isinstance(n, int):
        errors["number_of_payments"] = "Enter a whole number of payments."
    elif n < 1:
        errors["number_of_payments"] = MSG_TERM_TOO_SHORT

    pct = request.annual_finance_charge_pct
    if pct is None:
        errors["annual_finance_charge_pct"] = REQUIRED
    elif not pct.is_finite() or pct < 0 or pct > MAX_FINANCE_CHARGE_PCT:
        errors["annual_finance_charge_pct"] = MSG_FINANCE_CHARGE_RANGE
    elif not _has_at_most_two_decimals(pct):
        errors["annual_finance_charge_pct"] = "Annual finance charge % can have at most 2 decimal places."

    if request.note is None:
        errors["note"] = REQUIRED
    elif len(request.note) > MAX_AGREEMENT_NOTE_LENGTH:
        errors["note"] = MSG_NOTE_TOO_LONG

    # -- combined checks
    total, down = request.total_agreed_amount, request.down_payment
    if "total_agreed_amount" in errors or "down_payment" in errors:
        return errors
    if down > total:
        errors["down_payment"] = MSG_DOWN_PAYMENT_TOO_BIG
        return errors
    financed = total - down
    if financed == 0:
        errors["total_agreed_amount"] = MSG_NOTHING_FINANCED
        return errors

    needed = ("payment_amount", "number_of_payments", "annual_finance_charge_pct", "interval")
    if any(name in errors for name in needed):
        return errors
    if problem := (payment_rule or payment_adds_up)(request, financed, interval):
        errors["payment_amount"] = problem
    return errors


def payment_adds_up(request: AgreementRequest, financed: Decimal, interval: Interval) -> str | None:
    """The G-series payment rule: at 0 % the payments cover the amount financed exactly
    once; above it the payment is the amortised one (within a cent) and pays more than a
    period's interest. A message when not, else None."""
    payment, n, pct = request.payment_amount, request.number_of_payments, request.annual_finance_charge_pct
    if pct == 0:
        # Each payment is level except the last, which is the remainder: so n − 1 full
        # payments must fall short of the financed amount and n must cover it.
        if not (payment * (n - 1) < financed <= payment * n):
            return MSG_DOES_NOT_ADD_UP
        return None
    first_period_interest = round_cents(financed * periodic_rate(pct, interval))
    if payment <= first_period_interest:
        # Checked before the amortisation match because it says what is actually wrong.
        return MSG_NEVER_PAID_OFF
    expected = amortised_payment(financed, pct, n, interval)
    if abs(payment - expected) > CENT:
        return msg_payment_mismatch(expected)
    return None


def payment_fits(request: AgreementRequest, financed: Decimal, interval: Interval) -> bool:
    """Whether the payment passes the G-series payment rule."""
    return payment_adds_up(request, financed, interval) is None


# --- ledger notes ----------------------------------------------------------------------------


def validate_ledger_note(type: str | LedgerNoteType | None, text: str | None) -> dict[str, str]:
    """Check a ledger note: a known type, non-empty text, and Dentrix's length limits."""
    errors: dict[str, str] = {}
    note_type = type if isinstance(type, str) and type in {t.value for t in LedgerNoteType} else None
    if type is None or type == "":
        errors["type"] = REQUIRED
    elif note_type is None:
        errors["type"] = MSG_NOTE_TYPE

    if text is None or not isinstance(text, str) or not text.strip():
        errors["text"] = MSG_NOTE_EMPTY
    elif note_type == LedgerNoteType.BILLING_STATEMENT and len(text) > MAX_BILLING_STATEMENT_NOTE_LENGTH:
        errors["text"] = MSG_BILLING_NOTE_TOO_LONG
    elif note_type == LedgerNoteType.ACCOUNT and len(text) > MAX_ACCOUNT_NOTE_LENGTH:
        errors["text"] = MSG_ACCOUNT_NOTE_TOO_LONG
    return errors


# --- procedures ------------------------------------------------------------------------------

# Shape only: whether a code exists in this year's CDT needs the licensed table.
CDT_CODE = re.compile(r"^D\d{4}$")
# Universal numbering: permanent 1–32 without a leading zero, primary A–T.
TOOTH = re.compile(r"^([1-9]|[12][0-9]|3[0-2]|[A-T])$")
SURFACE_LETTERS = frozenset("MODBFLI")


def validate_procedure(procedure: Procedure) -> dict[str, str]:
    """Check one treatment-plan procedure: CDT code shape, tooth, surface and fee.

    Keys are the procedure's own field names; callers prefix them with the position
    (the sandbox reports "procedures[2].tooth").
    """
    errors: dict[str, str] = {}
    code = procedure.code
    if not isinstance(code, str) or not CDT_CODE.match(code):
        errors["code"] = "Procedure code must be a CDT code: D followed by 4 digits, e.g. D2740."

    tooth = procedure.tooth
    if not isinstance(tooth, str) or (tooth != "" and not TOOTH.match(tooth)):
        errors["tooth"] = "Tooth must be empty, 1–32 (permanent) or A–T (primary)."
        tooth = None

    surface = procedure.surface
    if not isinstance(surface, str):
        errors["surface"] = "Surface must be text, e.g. MO."
    elif surface:
        if not set(surface) <= SURFACE_LETTERS:
            errors["surface"] = "Surface letters must be from M, O, D, B, F, L, I."
        elif len(set(surface)) != len(surface):
            errors["surface"] = "Surface letters cannot repeat."
        elif tooth == "":
            errors["surface"] = "A surface needs a tooth."

    fee = procedure.fee
    if fee is None:
        errors["fee"] = REQUIRED
    elif problem := _money_problem(fee, allow_zero=False):
        errors["fee"] = problem
    return errors
