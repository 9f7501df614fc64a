"""A billing-team correction of a written arrangement: the clerk fixed the payment agreement
in the PMS and records here what it now holds. Chairside keeps the before, the after and
the why, and works the rest of its copy out again with the terms code that computed it
(`terms.reschedule`), so the schedule, totals and finance charge match the PMS again.

What follows from each corrected term mirrors a PMS's agreement screen (enter the payment
and the number of payments follows, or the other way round):

| corrected | what is worked out again |
|---|---|
| recurring amount (the payment) | the number of payments (as many as pay the amount off) |
| financed amount, down payment (each sets the other against the plan total), APR | the recurring amount, over the same number of payments |
| number of payments | nothing but the last payment: the count must fit the payment |
| first payment date | the due dates |

and always the final payment, the schedule, the total of payments and the finance charge.
The final payment follows from the others, so it is not corrected by itself. Terms that no
longer work out, or that the PMS's own rules refuse, are a form error and nothing is recorded.
"""

import logging
from datetime import date
from decimal import Decimal

from django.db import transaction

from .. import display, partners
from ..models import Correction, PaymentArrangement, WriteStatus
from ..terms import TermsError, money, reschedule
from .arrangement import agreement_request, shown, terms_fields
from .audit import begin
from .capture import IntakeError
from .leases import locked

log = logging.getLogger(__name__)

# The terms a clerk may correct: the last payment follows from the others.
CORRECTABLE = tuple(name for name in Correction.FIELDS if name != "final_payment")
# What is worked out again when a term changes: the payment or the number of payments
# (see the table above); None: both stay.
FOLLOWS = {
    "recurring_amount": "number_of_payments",
    "number_of_payments": None,
    "first_payment_date": None,
    "apr": "recurring_amount",
    "down_payment": "recurring_amount",
    "financed_amount": "recurring_amount",
}
# The schedule is shown on its own; these are the terms a correction reports as changed.
REPORTED = ("down_payment", "financed_amount", "recurring_amount", "number_of_payments", "final_payment",
            "first_payment_date", "apr", "total_of_payments", "finance_charge")


class CorrectionError(IntakeError):
    """A correction that cannot be recorded: field → message."""


def record_correction(case_id: int, *, field: str, after: str, why: str, actor=None) -> Correction:
    """Record a billing-team fix of a written arrangement, and make Chairside's copy match.

    The person has already changed the agreement in the PMS; this keeps the before, the
    after and the why, audited and counted, so the ledger can be trusted without a spot
    check. The correction's `consequences` (not stored) lists what else was worked out again.
    """
    why = (why or "").strip()
    if field == "final_payment":
        raise CorrectionError({"field": "The final payment follows from the other terms: correct the recurring amount, "
                                        "the number of payments or the financed amount instead."})
    if field not in CORRECTABLE:
        raise CorrectionError({"field": "Choose one of the arrangement's terms to correct."})
    if not why:
        raise CorrectionError({"why": "Say why the arrangement was corrected."})
    action = begin(actor)
    with transaction.atomic():
        case = locked(case_id)
        pms_name = partners.pms_name(case.location)
        new_value = _parse(field, (after or "").strip(), pms_name)
        arrangement = PaymentArrangement.objects.select_for_update().filter(case=case).first()
        if arrangement is None or arrangement.write_status != WriteStatus.WRITTEN:
            raise CorrectionError({"field": f"{case.reference} has no payment agreement written to {pms_name} to correct."})
        old_value = getattr(arrangement, field)
        if new_value == old_value:
            raise CorrectionError({"after": f"The arrangement already has {label(field)} {display.of_kind(Correction.FIELDS[field], old_value)}."})
        before = {name: getattr(arrangement, name) for name in REPORTED}
        setattr(arrangement, field, new_value)
        if field in FOLLOWS:
            _work_out_again(case, arrangement, field, pms_name)
        action.attribute(arrangement, f"Correction: {why}")
        arrangement.save()
        correction = Correction(
            arrangement=arrangement,
            case=case,
            field=field,
            before=shown(old_value),
            after=shown(new_value),
            why=why,
            actor=action.person,
        )
        action.attribute(correction)
        correction.save()
        correction.consequences = [
            (label(name), before[name], getattr(arrangement, name))
            for name in REPORTED
            if name != field and before[name] != getattr(arrangement, name)
        ]
        kind = Correction.FIELDS[field]
        action.log(case, f"Recorded a correction: {label(field)} {display.of_kind(kind, old_value)} → {display.of_kind(kind, new_value)}. {why}")
    log.info("case %s: correction of %s recorded by user %s", case.reference, field, getattr(actor, "pk", None))
    return correction


def _work_out_again(case, arrangement: PaymentArrangement, field: str, pms_name: str):
    """Recompute the arrangement from its terms as the PMS now holds them (one of them just
    corrected), and check them against the PMS's own rules; a CorrectionError otherwise."""
    follows = FOLLOWS[field]
    if field == "financed_amount":
        if arrangement.financed_amount > arrangement.plan_total:
            raise CorrectionError({"after": f"The financed amount cannot be more than the plan total ({money(arrangement.plan_total)})."})
        arrangement.down_payment = arrangement.plan_total - arrangement.financed_amount
    try:
        terms = reschedule(
            plan_total=arrangement.plan_total,
            down_payment=arrangement.down_payment,
            apr=arrangement.apr,
            first_payment_date=arrangement.first_payment_date,
            promotion=arrangement.promotion,
            payment=None if follows == "recurring_amount" else arrangement.recurring_amount,
            number_of_payments=None if follows == "number_of_payments" else arrangement.number_of_payments,
        )
    except TermsError as exc:
        hint = ""
        if field == "number_of_payments":
            hint = (f" If {pms_name} changed the recurring amount too, record the recurring amount instead: "
                    "the number of payments follows from it.")
        raise CorrectionError({"after": f"{exc.reason}{hint}"}) from None
    for name, value in terms_fields(terms).items():
        setattr(arrangement, name, value)
    problems = partners.agreement_problems(case.location, agreement_request(case, arrangement))
    if problems:
        detail = " ".join(problems.values())
        raise CorrectionError({"after": f"{pms_name} would not hold these terms: {detail}"})


def describe_correction(correction: Correction) -> str:
    """The correction and what followed from it, in one sentence for the clerk who made it."""
    kind = Correction.FIELDS[correction.field]
    text = f"Correction recorded: {label(correction.field)} {display.of_kind(kind, correction.before)} → {display.of_kind(kind, correction.after)}."
    consequences = getattr(correction, "consequences", [])
    if consequences:
        worked_out = "; ".join(f"{label} {_plain(old)} → {_plain(new)}" for label, old, new in consequences)
        text += f" Worked out again: {worked_out}."
    return text


def label(name: str) -> str:
    """An arrangement term as the console names it."""
    return name.replace("_", " ")


def _plain(value) -> str:
    if isinstance(value, Decimal):
        return display.money(value)  # the APR is not among what a correction reworks
    if isinstance(value, date):
        return display.day(value)
    return shown(value)


def _parse(field: str, text: str, pms_name: str):
    kind = Correction.FIELDS[field]
    if not text:
        raise CorrectionError({"after": f"Enter the value {pms_name} now holds."})
    try:
        if kind == "money":
            value = Decimal(text.replace("$", "").replace(",", ""))
            if value < 0 or value != value.quantize(Decimal("0.01")):
                raise ValueError
            return value.quantize(Decimal("0.01"))
        if kind == "percent":
            value = Decimal(text.rstrip("%"))
            if not Decimal("0") <= value <= Decimal("99.99") or value != value.quantize(Decimal("0.01")):
                raise ValueError
            return value.quantize(Decimal("0.01"))
        if kind == "count":
            value = int(text)
            if not 1 <= value <= 120:
                raise ValueError
            return value
        if kind == "date":
            # As the console shows dates (Jan 15, 2027), or ISO (2027-01-15).
            return display.parse_day(text)
    except (ArithmeticError, ValueError):
        examples = {"money": "$1,234.56", "percent": "17.90", "count": "a whole number of payments, 1–120", "date": "Jan 15, 2027"}
        raise CorrectionError({"after": f"Enter {field.replace('_', ' ')} as {examples[kind]}."})
    if len(text) > 40:
        raise CorrectionError({"after": "At most 40 characters."})
    return text
