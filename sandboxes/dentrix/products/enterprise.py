"""Dentrix Enterprise (11.0.2 Update 4 and later): payment plans.

From pms.md §1.2 and Enterprise's help: "Payment Plans", several per account, each for a
patient or several family members; a plan has a name (the template name's 30-character
limit); editing a plan's terms inactivates the original and creates a new active plan.
The sandbox records that link both ways (`supersedes` / `superseded_by`).
"""

from __future__ import annotations

from typing import Any

from ...kit.http import SandboxError, field_errors
from ..wire import REQUIRED, timestamp
from .base import Product

NAME_LIMIT = 30


class DentrixEnterprise(Product):
    key = "dentrix_enterprise"
    name = "Dentrix Enterprise"
    version = "11.0.2 Update 4"
    capabilities = ("payment_agreements", "ledger_notes", "several_plans_per_account", "plan_versions", "plan_names")
    record = "payment plan"
    extra_terms = ("name", "patient_ids")

    def check(self, app, guarantor_id: str, body: dict, *, except_id: str | None = None) -> dict[str, str]:
        errors = super().check(app, guarantor_id, body, except_id=except_id)
        name = body.get("name")
        if name is None or (isinstance(name, str) and not name.strip()):
            errors["name"] = "Payment plan name is required."
        elif not isinstance(name, str):
            errors["name"] = "This field must be text."
        elif len(name) > NAME_LIMIT:
            errors["name"] = f"Payment plan names are limited to {NAME_LIMIT} characters."
        problem = self._patients_problem(app, guarantor_id, body.get("patient_ids"))
        if problem:
            errors["patient_ids"] = problem
        return errors

    @staticmethod
    def _patients_problem(app, guarantor_id: str, patient_ids: Any) -> str:
        if patient_ids is None:
            return REQUIRED
        if not isinstance(patient_ids, list) or not all(isinstance(i, str) for i in patient_ids):
            return 'Send the patients as a list of patient ids, e.g. ["1001"].'
        if not patient_ids:
            return "A payment plan covers at least one patient of the account."
        seen: set[str] = set()
        for patient_id in patient_ids:
            patient = app.store.patients.get(patient_id)
            if patient is None or patient["guarantor_id"] != guarantor_id:
                return f"Patient {patient_id} is not on account {guarantor_id}."
            if patient_id in seen:
                return f"Patient {patient_id} is listed twice."
            seen.add(patient_id)
        return ""

    def refuse_conflicts(self, app, guarantor_id: str, body: dict, *, except_id: str | None = None) -> None:
        """Several active plans per account: no rule about the others."""

    def stored_terms(self, app, guarantor_id: str, body: dict) -> dict[str, Any]:
        return {
            **super().stored_terms(app, guarantor_id, body),
            "name": body["name"],
            "patient_ids": list(body["patient_ids"]),
        }

    first_version = {"supersedes": None, "superseded_by": None}

    def set_status(self, app, agreement: dict, status: str) -> dict:
        if status == "active" and agreement.get("superseded_by"):
            raise self._replaced(agreement)
        return super().set_status(app, agreement, status)

    def edit(self, app, agreement: dict, changes: dict) -> tuple[dict, int]:
        """Editing a plan's terms inactivates it and creates a new active plan (same note)."""
        if agreement.get("superseded_by"):
            raise self._replaced(agreement)
        if agreement["status"] != "active":
            raise SandboxError(
                409, f"Payment plan {agreement['agreement_id']} is inactive: only an active payment plan can be edited.",
            )
        body = self.edited_body(agreement, changes)
        guarantor_id = agreement["guarantor_id"]
        errors = self.check(app, guarantor_id, body, except_id=agreement["agreement_id"])
        if errors:
            raise field_errors(errors, self.record)
        version = {
            "agreement_id": app.store.new_id("agreements"),
            "guarantor_id": guarantor_id,
            "product": self.key,
            "status": "active",
            **self.stored_terms(app, guarantor_id, body),
            "note": agreement["note"],
            "created_at": timestamp(app.clock.now()),
            "supersedes": agreement["agreement_id"],
            "superseded_by": None,
        }
        app.store.put("agreements", {**agreement, "status": "inactive", "superseded_by": version["agreement_id"]})
        return app.store.put("agreements", version), 201

    @staticmethod
    def _replaced(agreement: dict) -> SandboxError:
        return SandboxError(
            409,
            f"Payment plan {agreement['agreement_id']} was replaced by payment plan {agreement['superseded_by']} "
            "when its terms were edited: change the plan in force.",
        )
