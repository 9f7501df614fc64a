"""Eaglesoft: payment plan contracts, monthly, one active per account, over the account's
past-service balance.

Eaglesoft writes a contract only over production already posted: the account's posted
balance not yet in a contract must cover the total. The connector checks that (it sees the
whole account); Chairside checks what it can see, that the case's own procedures are posted,
since a contract written before the treatment is on the ledger would finance the account's
other balance instead. The contract amount (total less down payment) is Eaglesoft's, read
back and compared.
"""

from datetime import date
from typing import Sequence

from financing.ports import Agreement, AgreementRequest, Interval, Procedure

from .. import rules

KEY = "eaglesoft"
NAME = "Eaglesoft"
RECORD = "payment plan contract"

INTERVALS = (Interval.MONTHLY,)
MSG_INTERVAL = "Eaglesoft payment plan contracts are monthly."


def validate_agreement(
    request: AgreementRequest, *, today: date | None = None, procedures: Sequence[Procedure] | None = None
) -> dict[str, str]:
    errors = rules.validate_agreement(request, today=today, intervals=INTERVALS, interval_message=MSG_INTERVAL)
    if procedures is not None and (problem := _unposted(request, procedures)):
        errors["procedures"] = problem
    return errors


def _unposted(request: AgreementRequest, procedures: Sequence[Procedure]) -> str:
    posted = {p.procedure_id for p in procedures if p.posted}
    waiting = [a.procedure_id for a in request.procedures if a.procedure_id not in posted]
    if not waiting:
        return ""
    which = f"Procedure {waiting[0]} is" if len(waiting) == 1 else f"Procedures {', '.join(waiting)} are"
    return (
        f"{which} not posted to the Eaglesoft ledger yet: Eaglesoft writes a payment plan contract only "
        "over the past-service balance, so post the completed procedures first."
    )


def request_fields(request: AgreementRequest) -> dict:
    return {}  # contract_amount is Eaglesoft's to compute: it is read, never sent


def stored_differences(request: AgreementRequest, stored: Agreement) -> list[tuple[str, str, str]]:
    expected = request.total_agreed_amount - request.down_payment
    if stored.contract_amount != expected:
        shown = rules.dollars(stored.contract_amount) if stored.contract_amount is not None else "none"
        return [("Contract amount", rules.dollars(expected), shown)]
    return []
