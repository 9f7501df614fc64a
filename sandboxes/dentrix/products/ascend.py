"""Dentrix Ascend (cloud): payment plans built over posted procedures.

Ascend's plan starts on a date and its first payment falls one interval later; it pays
for procedures already completed and posted to the ledger (each applied up to what is
still owed on it); a guarantor has one payment plan, whatever its status; a saved plan
cannot be edited (a clerk deletes it and creates it again). When the payment sent does
not fit the term, Ascend does not refuse: it stores the payment that fits, so a client
must read back what was stored and compare.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from ...kit.http import SandboxError
from .. import rules
from ..wire import MSG_BAD_DATE, MSG_BAD_MONEY, REQUIRED, money, read_date, read_money
from .base import Product

CANNOT_EDIT = "Payment plans cannot be edited once saved. Delete the plan and create it again."
MSG_PROCEDURES = "List the posted procedures the payment plan pays for, as [{procedure_id, applied_amount}]."


def one_interval_after(start: date, interval: str) -> date:
    """Biweekly: 14 days; monthly and quarterly: 1 and 3 calendar months, on the same day
    of the month or the month's last day when it is shorter (Jan 31 → Feb 28)."""
    if interval == "biweekly":
        return start + timedelta(days=14)
    months = {"monthly": 1, "quarterly": 3}[interval]
    year, month = divmod(start.month - 1 + months, 12)
    year, month = start.year + year, month + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


class DentrixAscend(Product):
    key = "dentrix_ascend"
    name = "Dentrix Ascend"
    version = "cloud"
    capabilities = ("payment_agreements", "ledger_notes", "procedure_plans", "needs_posted_production")
    record = "payment plan"
    intervals = ("monthly", "biweekly", "quarterly")
    msg_interval = rules.interval_message(intervals)

    def check(self, app, guarantor_id: str, body: dict, *, except_id: str | None = None) -> dict[str, str]:
        errors = rules.check_agreement(
            body, app.clock.today(), record=self.record, intervals=self.intervals, msg_interval=self.msg_interval,
            payment_must_fit=False,
        )
        start = read_date(body.get("start_date"))
        if start is None:
            errors["start_date"] = REQUIRED if body.get("start_date") is None else MSG_BAD_DATE
        elif "interval" not in errors and "first_payment_due" not in errors:
            expected = one_interval_after(start, body["interval"])
            if read_date(body["first_payment_due"]) != expected:
                errors["first_payment_due"] = (
                    f"The first payment is due one interval after the plan's start date (expected {expected.isoformat()})."
                )
        applied = self._check_procedures(app, guarantor_id, body.get("procedures"), errors)
        total = read_money(body.get("total_agreed_amount"))
        if applied is not None and "total_agreed_amount" not in errors and total is not None and applied != total:
            errors["procedures"] = "The applied amounts must add up to the total amount."
        return errors

    @staticmethod
    def _check_procedures(app, guarantor_id: str, items: Any, errors: dict[str, str]) -> Decimal | None:
        """Each applied procedure's problems into `errors`; the applied sum when all are valid."""
        if items is None:
            errors["procedures"] = REQUIRED
            return None
        if not isinstance(items, list) or not items:
            errors["procedures"] = MSG_PROCEDURES
            return None
        on_account = {procedure["procedure_id"]: procedure for _, procedure in app.store.account_procedures(guarantor_id)}
        total, seen, valid = Decimal("0.00"), set(), True
        for index, item in enumerate(items):
            where = f"procedures[{index}]"
            if not isinstance(item, dict):
                errors[where] = "Each procedure must be an object with procedure_id and applied_amount."
                valid = False
                continue
            procedure_id, amount = item.get("procedure_id"), item.get("applied_amount")
            procedure = on_account.get(procedure_id) if isinstance(procedure_id, str) else None
            if procedure_id is None:
                errors[f"{where}.procedure_id"] = REQUIRED
            elif not isinstance(procedure_id, str):
                errors[f"{where}.procedure_id"] = 'Send the procedure id as text, e.g. "9001".'
            elif procedure is None:
                errors[f"{where}.procedure_id"] = f"Procedure {procedure_id} is not on account {guarantor_id}."
            elif procedure_id in seen:
                errors[f"{where}.procedure_id"] = f"Procedure {procedure_id} is listed twice."
            elif not procedure["posted"] or Decimal(procedure["balance"]) <= 0:
                errors[f"{where}.procedure_id"] = (
                    f"Procedure {procedure_id} has no balance on the ledger: post the completed procedure first."
                )
            seen.add(procedure_id)
            value = read_money(amount)
            if amount is None:
                errors[f"{where}.applied_amount"] = REQUIRED
            elif value is None:
                errors[f"{where}.applied_amount"] = MSG_BAD_MONEY
            elif value != value.quantize(rules.CENT):
                errors[f"{where}.applied_amount"] = "Amounts can have at most 2 decimal places."
            elif value <= 0:
                errors[f"{where}.applied_amount"] = "Applied amount must be greater than 0."
            elif f"{where}.procedure_id" not in errors and value > Decimal(procedure["balance"]):
                errors[f"{where}.applied_amount"] = (
                    f"Applied amount for procedure {procedure_id} cannot be more than its balance ({procedure['balance']})."
                )
            if f"{where}.procedure_id" in errors or f"{where}.applied_amount" in errors:
                valid = False
            else:
                total += value
        return total if valid else None

    def refuse_conflicts(self, app, guarantor_id: str, body: dict, *, except_id: str | None = None) -> None:
        """One payment plan per guarantor, active or not: another must be deleted first."""
        for other in app.store.agreements_for(guarantor_id):
            if other["agreement_id"] != except_id:
                raise SandboxError(
                    409,
                    f"Guarantor {guarantor_id} already has a payment plan (plan {other['agreement_id']}). "
                    "Dentrix Ascend allows one payment plan per guarantor.",
                )

    def stored_terms(self, app, guarantor_id: str, body: dict) -> dict[str, Any]:
        terms = super().stored_terms(app, guarantor_id, body)
        financed = Decimal(body["total_agreed_amount"]) - Decimal(body["down_payment"])
        pct, n, interval = Decimal(body["annual_finance_charge_pct"]), body["number_of_payments"], body["interval"]
        if not rules.payment_fits(Decimal(body["payment_amount"]), financed, pct, n, interval):
            # Rounding to fit: Ascend keeps the term and stores the payment that fits it.
            terms["payment_amount"] = money(rules.fitted_payment(financed, pct, n, interval))
        return {
            **terms,
            "start_date": body["start_date"],
            "procedures": [
                {"procedure_id": item["procedure_id"], "applied_amount": money(item["applied_amount"])}
                for item in body["procedures"]
            ],
        }

    def edit(self, app, agreement: dict, changes: dict) -> tuple[dict, int]:
        raise SandboxError(409, CANNOT_EDIT)

    def replace(self, app, agreement: dict, body: dict) -> dict:
        raise SandboxError(409, CANNOT_EDIT)

    def delete(self, app, agreement: dict) -> None:
        app.store.delete("agreements", agreement["agreement_id"])
