"""Dentrix Ascend (cloud): payment plans built over posted procedures, one per guarantor.

What differs from the G-series:

- intervals monthly, biweekly or quarterly (Chairside's terms are monthly);
- a start date, exactly one interval before the first payment: Chairside sends the first
  payment's date less one interval. A monthly first payment on the 29th to the 31st may have
  no such start (31 Mar less a month is 28 Feb, and 28 Feb plus a month is 28 Mar), so that
  is flagged before writing;
- the procedures the plan is built over, each with the amount applied to it: each must be
  completed and posted with a balance at least its amount, and the amounts add up to the
  total. Chairside applies each procedure's fee; when it has read the plan's procedures as
  Ascend holds them now, it checks they are posted with the balance;
- a payment that does not fit the number of payments is not refused: Ascend stores the one
  that fits instead (at 0 %: the amount financed over the payments, rounded up to the cent;
  above 0 %: the amortised payment). Chairside flags it before writing (so the clerk chooses,
  not Ascend), and the read-back would catch it anyway;
- one plan per guarantor, whatever its status (the registry says so: `plans_counted: any`),
  and a plan cannot be edited, only deleted and created again.
"""

from datetime import date
from decimal import Decimal
from typing import Sequence

from financing.ports import Agreement, AgreementRequest, Interval, Procedure

from .. import rules, wire

KEY = "dentrix_ascend"
NAME = "Dentrix Ascend"
RECORD = "payment plan"

INTERVALS = (Interval.MONTHLY, Interval.BIWEEKLY, Interval.QUARTERLY)
MSG_INTERVAL = "Dentrix Ascend payment plans are paid monthly, biweekly or quarterly."
MSG_NO_PROCEDURES = (
    "Dentrix Ascend builds a payment plan over the treatment's procedures, and this case lists none "
    "with its Dentrix Ascend id: start a new case from the treatment plan."
)
_UNIT = {Interval.MONTHLY: "month", Interval.BIWEEKLY: "two weeks", Interval.QUARTERLY: "quarter"}


def start_date(first_payment_due: date, interval: Interval) -> date:
    """The plan's start: one interval before its first payment."""
    return rules.add_intervals(first_payment_due, Interval(interval), -1)


def validate_agreement(
    request: AgreementRequest, *, today: date | None = None, procedures: Sequence[Procedure] | None = None
) -> dict[str, str]:
    errors = rules.validate_agreement(
        request, today=today, intervals=INTERVALS, interval_message=MSG_INTERVAL, payment_rule=_payment_stored_as_sent,
    )
    if "first_payment_due" not in errors and "interval" not in errors:
        first = request.first_payment_due
        interval = Interval(request.interval)
        if rules.add_intervals(start_date(first, interval), interval) != first:
            errors["first_payment_due"] = (
                f"Dentrix Ascend starts a plan one {_UNIT[interval]} before its first payment, and no start date "
                f"puts a first payment on {rules.day(first)}: set the location's first payment day of the month "
                "to 28 or earlier."
            )
    if problem := _procedures_problem(request, procedures):
        errors["procedures"] = problem
    return errors


def _payment_stored_as_sent(request: AgreementRequest, financed: Decimal, interval: Interval) -> str | None:
    if rules.payment_fits(request, financed, interval):
        return None
    n = request.number_of_payments
    stored = rules.amortised_payment(financed, request.annual_finance_charge_pct, n, interval)
    return (
        f"Dentrix Ascend would store a payment of {rules.dollars(stored)}, not {rules.dollars(request.payment_amount)}: "
        f"it replaces a payment that does not fit {n} payments of the {rules.dollars(financed)} financed. "
        "Choose another promotion on the case, then resume it."
    )


def _procedures_problem(request: AgreementRequest, procedures: Sequence[Procedure] | None) -> str:
    applied = request.procedures
    if not applied:
        return MSG_NO_PROCEDURES
    problems = [
        f"Applied amount for procedure {a.procedure_id} must be more than $0.00." for a in applied if a.amount <= 0
    ]
    total = request.total_agreed_amount
    applied_sum = sum((a.amount for a in applied), Decimal("0.00"))
    if total is not None and applied_sum != total:
        problems.append(
            f"The applied amounts ({rules.dollars(applied_sum)}) must add up to the total amount ({rules.dollars(total)})."
        )
    if procedures is not None:
        on_ledger = {p.procedure_id: p for p in procedures}
        for a in applied:
            held = on_ledger.get(a.procedure_id)
            if held is None:
                problems.append(f"Procedure {a.procedure_id} is not on the patient's treatment plan in Dentrix Ascend.")
            elif not held.posted or held.balance <= 0:
                problems.append(
                    f"Procedure {a.procedure_id} has no balance on the ledger: post the completed procedure "
                    "in Dentrix Ascend first."
                )
            elif a.amount > held.balance:
                problems.append(
                    f"Applied amount for procedure {a.procedure_id} ({rules.dollars(a.amount)}) cannot be more "
                    f"than its balance ({rules.dollars(held.balance)})."
                )
    return " ".join(problems)


def request_fields(request: AgreementRequest) -> dict:
    fields = {
        "procedures": [
            {"procedure_id": a.procedure_id, "applied_amount": wire.format_money(a.amount)} for a in request.procedures
        ],
    }
    try:
        fields["start_date"] = wire.format_date(start_date(request.first_payment_due, request.interval))
    except ValueError:
        pass  # an interval Ascend does not offer: the connector says so (the rules said it first)
    return fields


def stored_differences(request: AgreementRequest, stored: Agreement) -> list[tuple[str, str, str]]:
    differences = []
    expected_start = start_date(request.first_payment_due, request.interval)
    if stored.start_date != expected_start:
        shown = rules.day(stored.start_date) if stored.start_date else "none"
        differences.append(("Start date", rules.day(expected_start), shown))
    sent = {a.procedure_id: a.amount for a in request.procedures}
    held = {a.procedure_id: a.amount for a in stored.procedures}
    if held != sent:
        differences.append(("Procedures applied", _applied(sent), _applied(held) or "none"))
    return differences


def _applied(amounts: dict[str, Decimal]) -> str:
    return ", ".join(f"{pid} {rules.dollars(amount)}" for pid, amount in sorted(amounts.items()))
