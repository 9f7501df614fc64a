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

The record in force. Chairside never edits a written record, but a clerk's edit may leave the
arrangement under another id: Dentrix Enterprise keeps a new version of a plan whose terms
change (the old one inactive, `superseded_by` the new), Dentrix Ascend cannot edit a plan so
the clerk deletes it and creates it again, a clerk may inactivate an agreement and type a new
one. So recording a correction reads the guarantor's records back (`list_payment_agreements`)
and adopts the record now in force (`in_force`): the end of the version chain from the
arrangement's id, or, when that id is gone, the one record carrying the case's marker or the
guarantor's one plan. The correction keeps the ids before and after (`pms_record_before`,
`pms_record_after`) and the arrangement takes the new id; the case page shows the chain
(`record_chain`). A read that fails, or records that name no single successor, never lose the
correction: it is recorded with the id it was made against and no id after, which the page
reads as "could not be confirmed".
"""

import logging
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db import transaction

from .. import display, partners
from ..models import Correction, FinancedCase, PaymentArrangement, WriteStatus
from ..ports import Agreement, PartnerError
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


def record_correction(case_id: int, *, field: str, after: str, why: str, actor=None, read_back: bool = True) -> Correction:
    """Record a billing-team fix of a written arrangement, and make Chairside's copy match.

    The person has already changed the agreement in the PMS; this keeps the before, the
    after and the why, audited and counted, so the ledger can be trusted without a spot
    check, and adopts the record the PMS now holds in force (see the module's docstring;
    `read_back=False`, for the demo history, trusts the recorded id and reads nothing). The
    correction's `consequences` (not stored) lists what else was worked out again.
    """
    why = (why or "").strip()
    if field == "final_payment":
        raise CorrectionError({"field": "The final payment follows from the other terms: correct the recurring amount, "
                                        "the number of payments or the financed amount instead."})
    if field not in CORRECTABLE:
        raise CorrectionError({"field": "Choose one of the arrangement's terms to correct."})
    if not why:
        raise CorrectionError({"why": "Say why the arrangement was corrected."})
    # What the PMS holds now, read before the row lock below (no lock waits on a network),
    # once the form is known to be sound: a typo costs no partner call.
    case = FinancedCase.objects.select_related("location").get(pk=case_id)
    new_value = _parse(field, (after or "").strip(), partners.pms_name(case.location))
    found = PaymentArrangement.objects.filter(case=case, write_status=WriteStatus.WRITTEN).first()
    chain = None
    if found is not None and found.pms_arrangement_id and getattr(found, field) != new_value:
        start = new_value if field == "pms_arrangement_id" else found.pms_arrangement_id
        chain = read_in_force(case, start) if read_back else InForce(start, start)
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
        recorded_against = arrangement.pms_arrangement_id
        setattr(arrangement, field, new_value)
        if field in FOLLOWS:
            _work_out_again(case, arrangement, field, pms_name)
        record_before = record_after = ""
        if chain is not None and (chain.after != recorded_against or not chain.confirmed):
            record_before, record_after = recorded_against, chain.after
            if chain.confirmed:
                arrangement.pms_arrangement_id = chain.after
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
            pms_record_before=record_before,
            pms_record_after=record_after,
        )
        action.attribute(correction)
        correction.save()
        correction.consequences = [
            (label(name), before[name], getattr(arrangement, name))
            for name in REPORTED
            if name != field and before[name] != getattr(arrangement, name)
        ]
        kind = Correction.FIELDS[field]
        text = f"Recorded a correction: {label(field)} {display.of_kind(kind, old_value)} → {display.of_kind(kind, new_value)}. {why}"
        held = in_force_sentence(correction, case)
        action.log(case, f"{text.rstrip('.')}. {held}" if held else text)
    log.info("case %s: correction of %s recorded by user %s (record %s → %s)", case.reference, field,
             getattr(actor, "pk", None), correction.pms_record_before or "same", correction.pms_record_after or "unconfirmed")
    return correction


# --- the record in force after a clerk's edit -------------------------------------------------


@dataclass(frozen=True)
class InForce:
    """The record the correction was made against (`start`) and the one in force now ("" when
    it could not be confirmed)."""

    start: str
    after: str

    @property
    def confirmed(self) -> bool:
        return bool(self.after)


def read_in_force(case: FinancedCase, start: str) -> InForce:
    """Read the guarantor's records back and find the one in force; a failed read is no reason
    to lose the correction (it is recorded unconfirmed)."""
    try:
        records = partners.pms_for(case.location).list_payment_agreements(case.guarantor_id)
    except PartnerError as exc:
        log.warning("case %s: the records could not be read back after a correction (%s)", case.reference, exc)
        return InForce(start, "")
    found = in_force(
        records, start, marker=case.marker, procedure_ids={p["procedure_id"] for p in case.procedures if p.get("procedure_id")},
        one_per_account=not partners.pms_allows_several_plans(case.location),
    )
    if found is None:
        log.warning("case %s: no single record in force after a correction (started from %s)", case.reference, start)
    return InForce(start, found or "")


def in_force(records: list[Agreement], start: str, *, marker: str, procedure_ids: set, one_per_account: bool) -> str | None:
    """The id of the record in force, from the id the arrangement had; None when the records
    name no single one."""
    by_id = {r.agreement_id: r for r in records}
    current = by_id.get(start)
    if current is not None:
        seen = {current.agreement_id}
        while current.superseded_by and current.superseded_by in by_id and current.superseded_by not in seen:
            current = by_id[current.superseded_by]  # Enterprise: the clerk's edit made a new version
            seen.add(current.agreement_id)
        if current.status == "active":
            return current.agreement_id  # the same id (edited in place), or the last version
        if one_per_account:
            # Inactivated and typed again: the account's one active record.
            active = [r for r in records if r.status == "active"]
            return active[0].agreement_id if len(active) == 1 else None
        return None  # inactive, nothing after it: the clerk closed it
    # Gone (Ascend: deleted, then created again). The clerk's new record rarely carries our
    # marker; the guarantor's one plan, or the one over the case's procedures, is it.
    for candidates in (
        [r for r in records if marker and marker in r.note],
        records if one_per_account else [],
        [r for r in records if procedure_ids and {p.procedure_id for p in r.procedures} == procedure_ids],
    ):
        if len(candidates) == 1:
            return candidates[0].agreement_id
    return None


def _how(correction: Correction, location) -> str:
    """How the record came to have a new id, in a few words."""
    if correction.field == "pms_arrangement_id":
        return "entered again"
    return "new version" if partners.pms_allows_several_plans(location) else "created again"


def in_force_sentence(correction: Correction, case: FinancedCase) -> str:
    """What the PMS holds after the correction, in one sentence ("" when the id did not change)."""
    if not correction.pms_record_before:
        return ""
    pms, record = partners.pms_name(case.location), partners.pms_record_name(case.location)
    if not correction.pms_record_after:
        return (f"Chairside could not confirm which {record} {pms} holds now for guarantor account {case.guarantor_id} "
                f"(the correction was made to {record} {correction.pms_record_before}): check the account in {pms}, "
                f"and record the id it shows as a correction if it changed.")
    return f"{pms} now holds {record} {correction.pms_record_after} ({_how(correction, case.location)} of {correction.pms_record_before})."


@dataclass(frozen=True)
class Chain:
    text: str  # "Payment plan 7003 → 7009 (new version, Dec 6, 2026) → 7012 (created again, Dec 9, 2026)"
    unconfirmed: str  # the last correction's "could not confirm" sentence, if it could not


def record_chain(case: FinancedCase, corrections: list[Correction]) -> Chain | None:
    """The arrangement's record through its corrections, oldest first; None when no
    correction changed (or failed to confirm) the record."""
    changed = [c for c in corrections if c.pms_record_before]
    if not changed:
        return None
    record = partners.pms_record_name(case.location)
    text = f"{record[:1].upper()}{record[1:]} {changed[0].pms_record_before}"
    last = changed[0].pms_record_before
    for c in changed:
        if c.pms_record_before != last:
            text += f" … {c.pms_record_before}"
        when = display.day(c.created_at, case.location)
        if c.pms_record_after:
            text += f" → {c.pms_record_after} ({_how(c, case.location)}, {when})"
            last = c.pms_record_after
        else:
            text += f" → ? (not confirmed, {when})"
            last = ""
    unconfirmed = in_force_sentence(changed[-1], case) if not changed[-1].pms_record_after else ""
    return Chain(text, unconfirmed)


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
    held = in_force_sentence(correction, correction.case)
    return f"{text} {held}" if held else text


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
