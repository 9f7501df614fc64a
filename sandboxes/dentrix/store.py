"""What the Dentrix sandbox knows: patients, plans, agreements, notes, booked
appointments, ledger payments and adjustments and the practice's types for them (contract
v2.2), behind one lock.

Records are plain dicts shaped like the wire JSON, so the journal, the responses and the
tests all see the same thing. Every check-then-write (e.g. "no active agreement yet",
then insert) happens under the one lock, so concurrent requests cannot both pass a
check. With a state file every write goes to the journal (`kit.journal`, one
``{"table", "record"}`` a line, or ``{"table", "deleted": id}`` for a deletion) before
memory, and the journal is replayed over the demo data on start; reset truncates it.
"""

from __future__ import annotations

import json
import threading
from decimal import Decimal

from ..kit.journal import Journal
from .demo_data import DEMO_LEDGER_TYPES, DEMO_PATIENTS, DEMO_PLANS
from .wire import money

# Ids handed out after the demo data; each table has its own range so an id in a log
# line says what it is (2xxx patient, 3xxx appointment, 6xxx plan, 7xxx agreement, 8xxx
# note, 9xxx procedure, 41xxx payment, 51xxx adjustment, 1xx a payment or adjustment type). Procedures live inside their plan; the demo's are 9001–9035, new
# ones 9101 on. The demo schedule's appointments are not stored (`schedule`).
FIRST_NEW_ID = {
    "patients": 2001, "appointments": 3001, "plans": 6001, "agreements": 7001, "notes": 8001, "procedures": 9101,
    "payments": 41001, "adjustments": 51001, "ledger_types": 101,
}
FIRST_DEMO_PROCEDURE_ID = 9001
TABLES = ("patients", "plans", "agreements", "notes", "appointments", "payments", "adjustments", "ledger_types")
ID_FIELDS = {
    "patients": "patient_id", "plans": "treatment_plan_id", "agreements": "agreement_id", "notes": "note_id",
    "appointments": "appointment_id", "payments": "payment_id", "adjustments": "adjustment_id",
    "ledger_types": "type_id",
}
# The tables listed per owner, and the field that names the owner: an index, so a list
# request costs the records it returns, not a scan (benchmarks hold tens of thousands).
# Patients are listed by account: the products that judge an account's plans by its
# patients' procedures (Ascend, Eaglesoft) and Enterprise's patient_ids read it.
# Appointments are listed by their day on the appointment book (the clinic's local date).
OWNER_FIELDS = {
    "patients": "guarantor_id", "plans": "patient_id", "agreements": "guarantor_id", "notes": "patient_id",
    "appointments": "date", "payments": "patient_id", "adjustments": "patient_id",
}
# A procedure's v2 state until it is completed and posted (POST .../post-production).
PROCEDURE_DEFAULTS = {"status": "planned", "posted": False, "balance": "0.00", "posted_on": None}
# The sandbox is one multi-clinic database (Dentrix Enterprise); clinic 1 is the main one.
MAIN_CLINIC = "1"


def make_plan(plan_id: str, patient_id: str, procedures: list[dict], status: str = "accepted") -> dict:
    """A plan record; its procedures get their ids when the store puts it (`put`)."""
    total = sum((Decimal(p["fee"]) for p in procedures), Decimal("0.00"))
    return {
        "treatment_plan_id": plan_id,
        "patient_id": patient_id,
        "name": "Treatment Plan",  # Dentrix's default case name
        "status": status,
        "procedures": procedures,
        "total": money(total),
    }


def _journal_entry(entry: dict) -> tuple[str, dict | None, str | None]:
    """(table, record to put, or None and the id of a record deleted)."""
    table = entry["table"]
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}")
    if "deleted" in entry:
        return table, None, str(entry["deleted"])
    return table, entry["record"], None


class SandboxStore:
    def __init__(self, journal_path: str | None = None):
        self.lock = threading.RLock()
        self.journal = Journal(journal_path, "Dentrix sandbox") if journal_path else None
        with self.lock:
            self._clear()
            if self.journal:
                for table, record, deleted in self.journal.replay(_journal_entry):
                    if record is None:
                        self._forget(table, deleted)
                    else:
                        self._apply(table, record)

    # -- reading (callers hold the lock, or accept a snapshot)

    @property
    def patients(self) -> dict[str, dict]:
        return self.tables["patients"]

    @property
    def plans(self) -> dict[str, dict]:
        return self.tables["plans"]

    @property
    def agreements(self) -> dict[str, dict]:
        return self.tables["agreements"]

    @property
    def notes(self) -> dict[str, dict]:
        return self.tables["notes"]

    @property
    def appointments(self) -> dict[str, dict]:
        return self.tables["appointments"]

    @property
    def ledger_types(self) -> dict[str, dict]:
        return self.tables["ledger_types"]

    def entries_for(self, table: str, patient_id: str) -> list[dict]:
        """A patient's payments or adjustments ("payments" | "adjustments"), oldest first."""
        return self._owned_by(table, patient_id)

    def plans_for(self, patient_id: str) -> list[dict]:
        return self._owned_by("plans", patient_id)

    def agreements_for(self, guarantor_id: str) -> list[dict]:
        return self._owned_by("agreements", guarantor_id)

    def notes_for(self, patient_id: str) -> list[dict]:
        return self._owned_by("notes", patient_id)

    def appointments_on(self, day: str) -> list[dict]:
        """The booked appointments on a day of the appointment book ("YYYY-MM-DD")."""
        return self._owned_by("appointments", day)

    def patients_on(self, guarantor_id: str) -> list[dict]:
        """The patients on an account (the guarantor first: they were created first)."""
        return self._owned_by("patients", guarantor_id)

    def account_procedures(self, guarantor_id: str) -> list[tuple[dict, dict]]:
        """(plan, procedure) for every procedure of every patient on the account."""
        with self.lock:
            return [
                (plan, procedure)
                for patient in self.patients_on(guarantor_id)
                for plan in self.plans_for(patient["patient_id"])
                for procedure in plan["procedures"]
            ]

    def _owned_by(self, table: str, owner_id: str) -> list[dict]:
        with self.lock:
            return [self.tables[table][i] for i in self.owned[table].get(owner_id, ())]

    # -- writing

    def put(self, table: str, record: dict) -> dict:
        """Insert or replace one record: journal first, then memory (a failed journal
        write fails the request and leaves memory unchanged)."""
        with self.lock:
            if table == "plans":
                record = self._with_procedure_ids(record)
            if self.journal:
                self.journal.append({"table": table, "record": record})
            self._apply(table, record)
            return record

    def delete(self, table: str, record_id: str) -> None:
        """Remove one record (Dentrix Ascend deletes payment plans): journal, then memory."""
        with self.lock:
            if self.journal:
                self.journal.append({"table": table, "deleted": record_id})
            self._forget(table, record_id)

    def new_id(self, table: str) -> str:
        with self.lock:
            value = self.next_id[table]
            self.next_id[table] = value + 1
            return str(value)

    def reset(self) -> None:
        """Back to the demo data, journal included."""
        with self.lock:
            if self.journal:
                self.journal.truncate()
            self._clear()

    # -- internals

    def _clear(self) -> None:
        self.tables: dict[str, dict[str, dict]] = {name: {} for name in TABLES}
        # table -> owner id -> record ids in insertion order (a dict used as an ordered set)
        self.owned: dict[str, dict[str, dict[str, None]]] = {name: {} for name in OWNER_FIELDS}
        self.next_id: dict[str, int] = dict(FIRST_NEW_ID)
        # Demo data is not journaled: it is re-created on every start anyway.
        for patient in DEMO_PATIENTS:
            self._apply("patients", json.loads(json.dumps(patient)))
        self.next_id["procedures"] = FIRST_DEMO_PROCEDURE_ID
        for plan_id, patient_id, procedures in DEMO_PLANS:
            self._apply("plans", make_plan(plan_id, patient_id, [dict(p) for p in procedures]))
        for ledger_type in DEMO_LEDGER_TYPES:
            self._apply("ledger_types", dict(ledger_type))
        # The demo ids must not move the counters for new records.
        self.next_id = dict(FIRST_NEW_ID)

    def _with_procedure_ids(self, plan: dict) -> dict:
        """The plan with every procedure in the contract's v2 shape: an id from the counter
        where it has none (a new plan, a journal from before v2), planned and not posted
        unless it says otherwise. Deterministic, so a replay hands out the same ids."""
        procedures = []
        for procedure in plan["procedures"]:
            procedure_id = procedure.get("procedure_id")
            if not procedure_id:
                procedure_id = str(self.next_id["procedures"])
                self.next_id["procedures"] += 1
            # The id first (it names the procedure), v1's fields, then v2's state.
            procedures.append({
                "procedure_id": procedure_id,
                **{name: value for name, value in procedure.items() if name != "procedure_id"},
                **{name: procedure.get(name, default) for name, default in PROCEDURE_DEFAULTS.items()},
            })
        return {**plan, "procedures": procedures}

    def _forget(self, table: str, record_id: str) -> None:
        record = self.tables[table].pop(record_id, None)
        if record is not None and table in OWNER_FIELDS:
            self.owned[table].get(record[OWNER_FIELDS[table]], {}).pop(record_id, None)

    def _apply(self, table: str, record: dict) -> None:
        if table == "patients":
            # A patient recorded without a clinic (a journal from before patients had clinics,
            # the benchmark's bulk loader) is the main clinic's.
            record.setdefault("clinic_id", MAIN_CLINIC)
        if table == "plans":
            record = self._with_procedure_ids(record)
            for procedure in record["procedures"]:
                if procedure["procedure_id"].isdigit():
                    self.next_id["procedures"] = max(self.next_id["procedures"], int(procedure["procedure_id"]) + 1)
        record_id = record[ID_FIELDS[table]]
        previous = self.tables[table].get(record_id)
        self.tables[table][record_id] = record
        if table in OWNER_FIELDS:
            owner_field = OWNER_FIELDS[table]
            if previous is not None and previous[owner_field] != record[owner_field]:
                self.owned[table].get(previous[owner_field], {}).pop(record_id, None)
            self.owned[table].setdefault(record[owner_field], {})[record_id] = None
        # Keep handing out fresh ids after a replay.
        if record_id.isdigit():
            self.next_id[table] = max(self.next_id[table], int(record_id) + 1)
