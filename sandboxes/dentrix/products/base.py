"""What every connector product shares, written as the G-series does it.

A product subclass changes what its product does differently: its word for the record,
its intervals, the fields it adds, the rules about the account's other records (409s),
and how a clerk changes a saved record. The routes (`api`, `control`) hold the store's
lock around every call here, so a check and the write after it cannot interleave.
"""

from __future__ import annotations

from typing import Any

from ...kit.http import SandboxError, field_errors
from .. import rules
from ..wire import money, timestamp

# The v1 fields a clerk can change on a saved record (the note keeps the marker: it stays).
TERMS = (
    "agreement_date", "interval", "total_agreed_amount", "down_payment", "payment_amount",
    "number_of_payments", "first_payment_due", "annual_finance_charge_pct",
)
MONEY_TERMS = ("total_agreed_amount", "down_payment", "payment_amount", "annual_finance_charge_pct")
CAN_NOT_EDIT = "This field cannot be changed on a saved record."


class Product:
    key = "dentrix_g"
    name = "Dentrix"  # as staff call it, and as messages name it ("was not found in Dentrix")
    version = "G7.5"
    capabilities: tuple[str, ...] = ("payment_agreements", "ledger_notes")
    record = "payment agreement"  # what the product calls the arrangement it keeps
    intervals: tuple[str, ...] = tuple(rules.PERIODS)
    msg_interval = rules.MSG_INTERVAL
    extra_terms: tuple[str, ...] = ()  # the product's own fields a clerk may edit

    @property
    def Record(self) -> str:
        return self.record[:1].upper() + self.record[1:]

    def describe(self) -> dict[str, Any]:
        """GET /v1/connector."""
        return {
            "product": self.key,
            "product_name": self.name,
            "version": self.version,
            "contract_version": "2.2",
            "database_id": f"sandbox-{self.key}",
            "capabilities": list(self.capabilities),
        }

    # --- writing a record (POST /v1/accounts/<g>/payment-agreements) ----------------------

    def check(self, app, guarantor_id: str, body: dict, *, except_id: str | None = None) -> dict[str, str]:
        """Every field problem (400); `except_id` is the record being edited, if any."""
        return rules.check_agreement(
            body, app.clock.today(), record=self.record, intervals=self.intervals, msg_interval=self.msg_interval,
        )

    def refuse_conflicts(self, app, guarantor_id: str, body: dict, *, except_id: str | None = None) -> None:
        """409 when the account's other records forbid this one (G: one active per account)."""
        for other in app.store.agreements_for(guarantor_id):
            if other["status"] == "active" and other["agreement_id"] != except_id:
                raise SandboxError(
                    409,
                    f"Account {guarantor_id} already has an active {self.record} "
                    f"({self.record.split()[-1]} {other['agreement_id']}). {self.one_active_rule}",
                )

    one_active_rule = "Dentrix allows one active agreement per account."

    def stored_terms(self, app, guarantor_id: str, body: dict) -> dict[str, Any]:
        """The terms as the product stores them from a valid body (v1's, then its own)."""
        return {
            "agreement_date": body["agreement_date"],
            "interval": body["interval"],
            **{name: money(body[name]) for name in ("total_agreed_amount", "down_payment", "payment_amount")},
            "number_of_payments": body["number_of_payments"],
            "first_payment_due": body["first_payment_due"],
            "annual_finance_charge_pct": money(body["annual_finance_charge_pct"]),
        }

    def create(self, app, guarantor_id: str, body: dict) -> dict:
        """Judge and store a new record (the account exists): 400, 409 or the record."""
        errors = self.check(app, guarantor_id, body)
        if errors:
            raise field_errors(errors, self.record)
        self.refuse_conflicts(app, guarantor_id, body)
        record = {
            "agreement_id": app.store.new_id("agreements"),
            "guarantor_id": guarantor_id,
            "product": self.key,
            "status": "active",
            **self.stored_terms(app, guarantor_id, body),
            "note": body["note"],
            "created_at": timestamp(app.clock.now()),
            **self.first_version,
        }
        return app.store.put("agreements", record)

    # What a product that versions its records stores on a new one (Enterprise).
    first_version: dict[str, Any] = {}

    # --- changing a saved record, as a clerk does in the product ---------------------------

    def set_status(self, app, agreement: dict, status: str) -> dict:
        """PUT /_sandbox/payment-agreements/<id> {"status"}: inactivate or reactivate."""
        if status == "active" and agreement["status"] != "active":
            self.refuse_conflicts(app, agreement["guarantor_id"], agreement, except_id=agreement["agreement_id"])
        return app.store.put("agreements", {**agreement, "status": status})

    def edited_body(self, agreement: dict, changes: dict) -> dict:
        """The record's fields with the clerk's changes; 400 for a field that cannot change."""
        editable = TERMS + self.extra_terms
        wrong = {name: CAN_NOT_EDIT for name in changes if name not in editable}
        if wrong:
            raise field_errors(wrong, self.record)
        if not changes:
            raise SandboxError(400, f"Send the terms to change: any of {', '.join(editable)}.")
        return {**agreement, **changes}

    def edit(self, app, agreement: dict, changes: dict) -> tuple[dict, int]:
        """POST /_sandbox/payment-agreements/<id>/edit: G and Eaglesoft change the record in
        place (same id, same note). Answers (the record in force, status)."""
        body = self.edited_body(agreement, changes)
        guarantor_id = agreement["guarantor_id"]
        errors = self.check(app, guarantor_id, body, except_id=agreement["agreement_id"])
        if errors:
            raise field_errors(errors, self.record)
        if agreement["status"] == "active":
            self.refuse_conflicts(app, guarantor_id, body, except_id=agreement["agreement_id"])
        record = {**agreement, **self.stored_terms(app, guarantor_id, body)}
        return app.store.put("agreements", record), 200

    def delete(self, app, agreement: dict) -> None:
        """DELETE /v1/.../payment-agreements/<id>: only Ascend lets a record be deleted."""
        raise SandboxError(
            405, f"DELETE is not allowed on {self.name} {self.record}s: inactivate it instead.",
            headers={"Allow": "GET"},
        )

    def replace(self, app, agreement: dict, body: dict) -> dict:
        """PUT /v1/.../payment-agreements/<id>: not part of the contract for most products."""
        raise SandboxError(
            405, f"PUT is not allowed on {self.name} {self.record}s.", headers={"Allow": "GET"},
        )
