"""Eaglesoft (Patterson): payment plan contracts over the past-service balance.

From pms.md §2: a payment plan is created for a *past service* balance (production
already posted) and moves that amount out of aging into the **Contract** bucket. The
sandbox keeps one active contract per account, monthly payments, and computes the
contract amount itself (total less the down payment; read-only: a client's value is
ignored). The aging: posted balances by how long ago they were posted, the active
contracts' amounts taken out of them (newest first) into `contract`.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from ...kit.http import SandboxError
from ..wire import money
from .base import Product

ZERO = Decimal("0.00")
# bucket → the oldest a posting can be, in days, to fall in it (newest first)
BUCKETS = (("current", 30), ("over_30", 60), ("over_60", 90), ("over_90", None))


def contract_amount(record: dict) -> Decimal:
    return Decimal(record["total_agreed_amount"]) - Decimal(record["down_payment"])


class Eaglesoft(Product):
    key = "eaglesoft"
    name = "Eaglesoft"
    version = "24.00"
    capabilities = ("payment_agreements", "ledger_notes", "needs_posted_production", "contracts")
    record = "payment plan contract"
    intervals = ("monthly",)
    msg_interval = "Eaglesoft payment plans are monthly."
    one_active_rule = "Eaglesoft allows one per account."

    def aging(self, app, guarantor_id: str, *, except_id: str | None = None) -> dict[str, Decimal]:
        """The account's aging on the connector's today; `except_id`'s contract left out."""
        today = app.clock.today()
        buckets = {name: ZERO for name, _ in BUCKETS}
        for _, procedure in app.store.account_procedures(guarantor_id):
            if procedure["posted"]:
                age = (today - date.fromisoformat(procedure["posted_on"])).days
                name = next(name for name, oldest in BUCKETS if oldest is None or age <= oldest)
                buckets[name] += Decimal(procedure["balance"])
        contract = ZERO
        for record in app.store.agreements_for(guarantor_id):
            if record["status"] == "active" and record["agreement_id"] != except_id:
                moving = contract_amount(record)
                contract += moving
                for name, _ in BUCKETS:  # out of the newest balance first
                    taken = min(buckets[name], moving)
                    buckets[name] -= taken
                    moving -= taken
        return {**buckets, "contract": contract}

    def refuse_conflicts(self, app, guarantor_id: str, body: dict, *, except_id: str | None = None) -> None:
        """One active contract per account; and the posted past-service balance not already
        in a contract must cover the new one."""
        super().refuse_conflicts(app, guarantor_id, body, except_id=except_id)
        aging = self.aging(app, guarantor_id, except_id=except_id)
        past_service = sum((aging[name] for name, _ in BUCKETS), ZERO)
        total = Decimal(body["total_agreed_amount"])
        if past_service < total:
            raise SandboxError(
                409,
                f"The account's past-service balance ({money(past_service)}) does not cover the contract "
                f"({money(total)}): post the completed procedures first.",
            )

    def stored_terms(self, app, guarantor_id: str, body: dict) -> dict[str, Any]:
        terms = super().stored_terms(app, guarantor_id, body)
        return {**terms, "contract_amount": money(contract_amount(terms))}
