"""`manage.py simulate`'s plug-in for the connector sandboxes: one practice's PMS, over HTTP.

`simulate` (sandboxes/management/commands/simulate.py) drives cases through the running
system; what a practice does in its PMS, and whether what landed there is right, is this
class's, for all four connector products (Dentrix G, Enterprise, Ascend, Eaglesoft). It
learns which product the location's connector serves from ``GET /v1/connector`` and
checks each record in that product's shape. It talks to the sandbox with `requests` only:
never through Chairside's bridges, whose mistakes it is here to catch.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import requests

from .products.ascend import one_interval_after

TIMEOUT = 10
# The reference marker Chairside writes into every record (CONTRACT.md, "the reference
# marker"): stated again here, since the sandbox side never imports Chairside's code.
MARKER = "[chairside:{reference}]"
# A case's ledger postings carry `[chairside:<reference>/payment]`, `…/merchant_fee]`, `…/refund-1]`.
POSTING_MARKER = "[chairside:{reference}/"
# What the front desk typed by hand for the "agreement_on_file" persona: a family member's
# earlier treatment on the same account, on a plan of its own.
BY_HAND_FEE = "600.00"
BY_HAND_NOTE = "Entered at the front desk"


class Practice:
    """The practice behind one location's connector (its `pms_base_url`, `pms_api_key`)."""

    def __init__(self, location):
        self.base = location.pms_base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["X-API-Key"] = location.pms_api_key
        self.clinic_ids = tuple(location.clinic_ids)
        connector = self._call("GET", "/v1/connector")
        self.product: str = connector["product"]
        self.product_name: str = connector["product_name"]
        self.name = f"the {self.product_name} sandbox"

    # --- what the practice does --------------------------------------------------------------

    def new_patient(self, body: dict) -> dict:
        """A patient with an accepted plan: {patient_id, guarantor_id, treatment_plan_id}."""
        return self._call("POST", "/_sandbox/patients", body)

    def enter_by_hand(self, patient: dict) -> None:
        """The front desk typed a record on the account before the case (no marker): for a
        family member's earlier treatment, already posted where the product needs that."""
        account = patient["guarantor_id"]
        relative = self.new_patient({
            "first_name": "Kit", "last_name": "Family", "birth_date": "2012-05-04", "phone": "312-555-0199",
            "email": "family@example.com",
            "address": {"line1": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701"},
            "guarantor_id": account,
            "procedures": [{"code": "D2740", "tooth": "3", "surface": "", "fee": BY_HAND_FEE}],
            **({"clinic_id": self.clinic_ids[0]} if self.clinic_ids else {}),
        })
        self.post_production(relative)
        agreed = self._today() - timedelta(days=1)  # typed yesterday
        first_due = one_interval_after(agreed, "monthly")
        body: dict[str, Any] = {
            "agreement_date": agreed.isoformat(), "interval": "monthly", "total_agreed_amount": BY_HAND_FEE,
            "down_payment": "0.00", "payment_amount": "50.00", "number_of_payments": 12,
            "first_payment_due": first_due.isoformat(), "annual_finance_charge_pct": "0.00", "note": BY_HAND_NOTE,
        }
        if self.product == "dentrix_enterprise":
            body.update(name="Front desk plan", patient_ids=[relative["patient_id"]])
        elif self.product == "dentrix_ascend":
            [plan] = self._call("GET", f"/v1/patients/{relative['patient_id']}/treatment-plans")
            body.update(start_date=agreed.isoformat(), procedures=[
                {"procedure_id": p["procedure_id"], "applied_amount": p["balance"]} for p in plan["procedures"]
            ])
        self._call("POST", f"/v1/accounts/{account}/payment-agreements", body)

    def refuse_next_write(self, patient: dict) -> None:
        """The PMS refuses the next record written on the account (a one-shot 422)."""
        self._call("POST", "/_sandbox/faults", {
            "method": "POST", "path_prefix": f"/v1/accounts/{patient['guarantor_id']}/payment-agreements",
            "mode": "error", "status": 422, "count": 1,
        })

    def post_production(self, patient: dict) -> None:
        """The treatment is done: the patient's procedures completed and posted."""
        self._call("POST", f"/_sandbox/patients/{patient['patient_id']}/post-production")

    # --- what landed ---------------------------------------------------------------------------

    def verify(self, case: dict) -> str:
        """"" when exactly one record and one ledger note carry the case's marker, with the
        case's terms in the product's shape; else what differs."""
        ours, notes = self._ours(case)
        if len(ours) != 1 or len(notes) != 1:
            return (f"{len(ours)} records and {len(notes)} ledger notes in {self.name} carry its marker "
                    "(expected 1 and 1)")
        record, terms = ours[0], case["arrangement"]
        expected: dict[str, Any] = {
            "product": self.product,
            "status": "active",
            "interval": terms["frequency"],
            "total_agreed_amount": Decimal(case["plan_total"]),
            "down_payment": Decimal(terms["down_payment"]),
            "payment_amount": Decimal(terms["recurring_amount"]),
            "number_of_payments": terms["number_of_payments"],
            "first_payment_due": terms["first_payment_date"],
            "annual_finance_charge_pct": Decimal(terms["apr"]),
        }
        if terms.get("pms_arrangement_id"):
            expected["agreement_id"] = terms["pms_arrangement_id"]
        diffs = [
            f"{name}: {self.product_name} {record.get(name)} vs computed {value}"
            for name, value in expected.items() if _read(record.get(name), value) != value
        ]
        return "; ".join(diffs + self._product_differences(case, record))

    def nothing_written(self, case: dict) -> str:
        """Shadow mode: "" when nothing carries the case's marker."""
        ours, notes = self._ours(case)
        written = len(ours) + len(notes)
        return f"shadow mode wrote {written} records to {self.name}" if written else ""

    def _product_differences(self, case: dict, record: dict) -> list[str]:
        """The product's own fields: Enterprise's name and patients, Ascend's procedures and
        start, Eaglesoft's contract amount and its aging bucket."""
        diffs = []
        if self.product == "dentrix_enterprise":
            if case["reference"] not in (record.get("name") or "") or len(record.get("name") or "") > 30:
                diffs.append(f"name: {self.product_name} {record.get('name')!r} does not name the case")
            if record.get("patient_ids") != [case["patient_id"]]:
                diffs.append(f"patient_ids: {self.product_name} {record.get('patient_ids')} vs the case's patient")
            if record.get("supersedes") is not None:
                diffs.append("a new plan of Chairside's supersedes another")
        elif self.product == "dentrix_ascend":
            plans = self._call("GET", f"/v1/patients/{case['patient_id']}/treatment-plans")
            plan = next((p for p in plans if p["treatment_plan_id"] == case["treatment_plan_id"]), None)
            applied = [] if plan is None else [
                {"procedure_id": p["procedure_id"], "applied_amount": p["fee"]} for p in plan["procedures"]
            ]
            if record.get("procedures") != applied:
                diffs.append(f"procedures: {self.product_name} {record.get('procedures')} vs the plan's at their fees {applied}")
            start = record.get("start_date")
            if not start or one_interval_after(date.fromisoformat(start), record["interval"]).isoformat() != record["first_payment_due"]:
                diffs.append(f"start_date: {start} is not one interval before the first payment")
        elif self.product == "eaglesoft":
            amount = Decimal(case["plan_total"]) - Decimal(case["arrangement"]["down_payment"])
            if _read(record.get("contract_amount"), amount) != amount:
                diffs.append(f"contract_amount: {self.product_name} {record.get('contract_amount')} vs computed {amount}")
            aging = self._call("GET", f"/v1/accounts/{case['guarantor_id']}/aging")
            if Decimal(aging["contract"]) != amount:
                diffs.append(f"the aging's contract bucket: {aging['contract']} vs computed {amount}")
        return diffs

    # --- plumbing ------------------------------------------------------------------------------

    def ledger_postings(self, case: dict) -> list[dict]:
        """The payments and adjustments (contract v2.2) carrying one of the case's posting
        markers, as {kind, amount (Decimal, signed as the ledger shows it), type, note}."""
        marker = POSTING_MARKER.format(reference=case["reference"])
        return [
            {"kind": kind, "amount": Decimal(entry["amount"]), "type": entry[f"{kind}_type"], "note": entry["note"]}
            for kind in ("payment", "adjustment")
            for entry in self._call("GET", f"/v1/patients/{case['patient_id']}/{kind}s")
            if marker in entry["note"]
        ]

    def marked(self, case: dict) -> tuple[list[dict], list[dict]]:
        """The records (plans, agreements) and the ledger notes carrying the case's marker."""
        return self._ours(case)

    def _ours(self, case: dict) -> tuple[list[dict], list[dict]]:
        marker = MARKER.format(reference=case["reference"])
        records = self._call("GET", f"/v1/accounts/{case['guarantor_id']}/payment-agreements")
        notes = self._call("GET", f"/v1/patients/{case['patient_id']}/ledger-notes")
        return [r for r in records if marker in r["note"]], [n for n in notes if marker in n["text"]]

    def _today(self) -> date:
        """The connector's today in UTC (its clock may have been moved)."""
        return date.fromisoformat(self._call("GET", "/_sandbox/clock")["now"][:10])

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        url = f"{self.base}{path}"
        try:
            answer = self.session.request(method, url, json=body, timeout=TIMEOUT)
        except requests.ConnectionError:
            raise RuntimeError(f"Cannot reach {url}: is `make run` running?") from None
        if answer.status_code not in (200, 201):
            raise RuntimeError(f"{method} {url} answered {answer.status_code}: {answer.text[:500]}")
        return answer.json()


def _read(value: Any, like: Any) -> Any:
    """A record's value in the type of the expected one (money strings as Decimal)."""
    if isinstance(like, Decimal):
        try:
            return Decimal(str(value))
        except ArithmeticError:
            return value
    return value
