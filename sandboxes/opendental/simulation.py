"""`manage.py simulate`'s plug-in for the Open Dental sandbox: one practice's Open Dental, over HTTP.

`simulate` drives cases through the running system; what the front desk does in Open
Dental, and whether what landed there is right, is this class's. It talks to the sandbox
with `requests` only, never through Chairside's `opendental_bridge`, whose mistakes it is
here to catch, and checks each plan with the sandbox's own copy of Open Dental's arithmetic.

Its API calls share the location's customer key with Chairside, and Open Dental allows
one request a second per key: it paces itself, and waits as told when refused (429).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import date
from decimal import Decimal
from typing import Any

import requests
from django.conf import settings

from . import arithmetic

TIMEOUT = 10
API = "/api/v1"
# The reference marker Chairside writes into every record, stated again here: the sandbox
# side never imports Chairside's code.
MARKER = "[chairside:{reference}]"
# A case's ledger postings carry `[chairside:<reference>/payment]`, `…/merchant_fee]`, `…/refund-1]`.
POSTING_MARKER = "[chairside:{reference}/"
BY_HAND_NOTE = "Entered at the front desk"
FREQUENCIES = {"weekly": "Weekly", "biweekly": "EveryOtherWeek", "monthly": "Monthly", "quarterly": "Quarterly"}
SPACING = 1.1  # seconds between this plug-in's API requests (Open Dental: 1 a second per key)


class Practice:
    """The office behind one location's Open Dental connection (`pms_base_url`, `pms_api_key`)."""

    name = "the Open Dental sandbox"

    def __init__(self, location):
        base = location.pms_base_url.rstrip("/")
        self.root = base[: -len(API)] if base.endswith(API) else base
        self.session = requests.Session()
        developer = getattr(settings, "OPENDENTAL_DEVELOPER_KEY", "sandbox-developer")
        self.session.headers["Authorization"] = f"ODFHIR {developer}/{location.pms_api_key}"
        self._lock = threading.Lock()
        self._last = 0.0
        self._control("GET", "/health")

    # --- what the practice does ----------------------------------------------------------------

    def new_patient(self, body: dict) -> dict:
        """A patient with an Active treatment plan: {patient_id, guarantor_id, treatment_plan_id}."""
        made = self._control("POST", "/patients", body)
        return {"patient_id": str(made["PatNum"]), "guarantor_id": str(made["Guarantor"]),
                "treatment_plan_id": str(made["TreatPlanNum"]), "proc_nums": made["ProcNums"]}

    def enter_by_hand(self, patient: dict) -> None:
        """The front desk put the patient's earlier, completed work on a plan of its own (no
        marker). Open Dental keeps several plans: the case's plan goes beside it."""
        done = self._control("POST", f"/patients/{patient['patient_id']}/procedures",
                             {"code": "D1110", "tooth": "", "surface": "", "fee": "600.00", "ProcStatus": "C"})
        self._api("POST", "/payplans/Dynamic", {
            "PatNum": int(patient["patient_id"]), "Guarantor": int(patient["guarantor_id"]), "PayAmt": 50,
            "procNums": [done["ProcNum"]], "Note": BY_HAND_NOTE, "IsLocked": "false",
        })

    def refuse_next_write(self, patient: dict) -> None:
        """Open Dental refuses the patient's next plan (a one-shot 400)."""
        self._control("POST", f"/patients/{patient['patient_id']}/refuse-next-plan", {})

    def post_production(self, patient: dict) -> None:
        self._control("POST", f"/patients/{patient['patient_id']}/post-production")

    # --- what landed ---------------------------------------------------------------------------

    def verify(self, case: dict) -> str:
        """"" when exactly one payment plan and one commlog carry the case's marker, the plan
        a Dynamic plan over the treatment plan's procedures whose charges are the case's
        schedule to the cent; else what differs."""
        plans, commlogs = self._ours(case)
        if len(plans) != 1 or len(commlogs) != 1:
            return f"{len(plans)} payment plans and {len(commlogs)} commlogs in {self.name} carry its marker (expected 1 and 1)"
        plan, terms = plans[0], case["arrangement"]
        apr = Decimal(terms["apr"])
        expected: dict[str, Any] = {
            "PayPlanNum": int(terms["pms_arrangement_id"] or 0),
            "PatNum": int(case["patient_id"]),
            "Guarantor": int(case["guarantor_id"]),
            "IsDynamic": "true",
            "IsClosed": "false",
            "ChargeFrequency": FREQUENCIES.get(terms["frequency"], terms["frequency"]),
            "principalAmount": Decimal(case["plan_total"]),
            "DownPayment": Decimal(terms["down_payment"]),
            "PayAmt": Decimal(terms["recurring_amount"]),
            "APR": apr,
            "IsLocked": "true" if apr > 0 else "false",
            "DatePayPlanStart": terms["first_payment_date"],
            "NumberOfPayments": 0,
        }
        diffs = [f"{name}: Open Dental {plan.get(name)} vs computed {value}"
                 for name, value in expected.items() if _read(plan.get(name), value) != value]
        attached = self._api("GET", "/treatplanattaches", params={"TreatPlanNum": case["treatment_plan_id"]})
        links = self._api("GET", "/payplanlinks", params={"PayPlanNum": plan["PayPlanNum"]})
        if sorted(link["FKey"] for link in links) != sorted(a["ProcNum"] for a in attached):
            diffs.append("the plan does not link exactly the treatment plan's procedures")
        diffs += self._schedule_differences(plan, terms)
        down = [c for c in self._api("GET", "/payplancharges", params={"PayPlanNum": plan["PayPlanNum"]})
                if c["Note"] == "Down Payment"]
        if sum((Decimal(str(c["Principal"])) for c in down), Decimal("0.00")) != Decimal(terms["down_payment"]):
            diffs.append(f"down payment charges {[c['Principal'] for c in down]} vs computed {terms['down_payment']}")
        return "; ".join(diffs)

    def nothing_written(self, case: dict) -> str:
        plans, commlogs = self._ours(case)
        written = len(plans) + len(commlogs)
        return f"shadow mode wrote {written} records to {self.name}" if written else ""

    def _schedule_differences(self, plan: dict, terms: dict) -> list[str]:
        """Open Dental's charges for the plan's terms (its arithmetic, the sandbox's copy)
        against the case's schedule: count, dates and amounts, to the cent."""
        financed = Decimal(str(plan["principalAmount"])) - Decimal(str(plan["DownPayment"]))
        start = None if plan["DateInterestStart"] == "0001-01-01" else date.fromisoformat(plan["DateInterestStart"])
        try:
            charges = arithmetic.schedule(financed, Decimal(str(plan["APR"])), Decimal(str(plan["PayAmt"])),
                                          plan["ChargeFrequency"], date.fromisoformat(plan["DatePayPlanStart"]), start)
        except arithmetic.NeverPaidOff:
            return ["Open Dental's terms never pay the plan off"]
        theirs = [(c["date"].isoformat(), c["principal"] + c["interest"]) for c in charges]
        ours = [(i["due_date"], Decimal(i["amount"])) for i in terms["schedule"]]
        if theirs == ours:
            return []
        if len(theirs) != len(ours):
            return [f"Open Dental charges {len(theirs)} payments (the last {theirs[-1][1]}), computed {len(ours)}"]
        first = next(n for n, (a, b) in enumerate(zip(theirs, ours)) if a != b)
        return [f"payment {first + 1}: Open Dental {theirs[first]} vs computed {ours[first]}"]

    # --- plumbing ------------------------------------------------------------------------------

    def ledger_postings(self, case: dict) -> list[dict]:
        """The payments and adjustments carrying one of the case's posting markers (in PayNote /
        AdjNote), as {kind, amount (Decimal, signed as the ledger shows it), type, note}."""
        marker = POSTING_MARKER.format(reference=case["reference"])
        found = []
        for kind, fields in (("payment", ("PayAmt", "payType", "PayNote")), ("adjustment", ("AdjAmt", "adjType", "AdjNote"))):
            for row in self._pages(f"/{kind}s", {"PatNum": case["patient_id"]}):
                amount, type_name, note = (row[f] for f in fields)
                if marker in note:
                    found.append({"kind": kind, "amount": Decimal(str(amount)).quantize(Decimal("0.01")),
                                  "type": type_name, "note": note})
        return found

    def marked(self, case: dict) -> tuple[list[dict], list[dict]]:
        """The records (plans, agreements) and the ledger notes carrying the case's marker."""
        return self._ours(case)

    def _ours(self, case: dict) -> tuple[list[dict], list[dict]]:
        marker = MARKER.format(reference=case["reference"])
        plans = self._api("GET", "/payplans", params={"Guarantor": case["guarantor_id"]})
        commlogs = self._pages("/commlogs", {"PatNum": case["patient_id"]})
        return [p for p in plans if marker in p["Note"]], [c for c in commlogs if marker in c["Note"]]

    def _pages(self, path: str, params: dict) -> list[dict]:
        items: list[dict] = []
        while True:
            page = self._api("GET", path, params={**params, "Offset": len(items)})
            items += page
            if len(page) < 100:
                return items

    def _control(self, method: str, path: str, body: dict | None = None) -> Any:
        return self._send(method, f"{self.root}/_sandbox{path}", body=body)

    def _api(self, method: str, path: str, body: dict | None = None, params: dict | None = None) -> Any:
        """An API call on the shared customer key: paced, and retried when Open Dental says wait."""
        for _ in range(30):
            with self._lock:
                pause = self._last + SPACING - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                self._last = time.monotonic()
            answer = self._send(method, f"{self.root}{API}{path}", body=body, params=params, refused_ok=True)
            if isinstance(answer, requests.Response):  # 429: Chairside's worker took the slot
                time.sleep(float(answer.headers.get("Retry-After") or 1))
                continue
            return answer
        raise RuntimeError(f"{self.name} kept refusing {method} {path} (429)")

    def _send(self, method, url, *, body=None, params=None, refused_ok=False) -> Any:
        try:
            answer = self.session.request(method, url, json=body, params=params, timeout=TIMEOUT)
        except requests.ConnectionError:
            raise RuntimeError(f"Cannot reach {url}: is `make run` running?") from None
        if refused_ok and answer.status_code == 429:
            return answer
        if answer.status_code not in (200, 201):
            raise RuntimeError(f"{method} {url} answered {answer.status_code}: {answer.text[:500]}")
        return json.loads(answer.content, parse_float=Decimal)  # amounts exactly, never as floats


def _read(value: Any, like: Any) -> Any:
    """A plan's value in the type of the expected one (JSON numbers as Decimal, exactly)."""
    if isinstance(like, Decimal):
        try:
            return Decimal(str(value))
        except ArithmeticError:
            return value
    return value
