"""What the Open Dental sandbox holds: one office's tables, behind one lock.

Records are dicts with Open Dental's column names (PascalCase), in JSON-native types
(amounts as "81.48" strings; `wire` turns them into JSON numbers on the way out), so the
journal, the answers and the tests see the same thing. Every check-then-write (e.g. "this
procedure is on no plan yet", then link it) runs under the one lock. With a state file
every write goes to the journal (one {"table", "record"} a line) before memory, and the
journal is replayed over the demo data on start; reset truncates it.
"""

from __future__ import annotations

import threading
from decimal import Decimal

from ..kit.journal import Journal
from . import demo_data
from .wire import amount

# Primary keys and where each table's new numbers start (the demo data sits below).
KEYS = {
    "patients": "PatNum",
    "procedures": "ProcNum",
    "treatplans": "TreatPlanNum",
    "attaches": "TreatPlanAttachNum",
    "payplans": "PayPlanNum",
    "links": "PayPlanLinkNum",
    "charges": "PayPlanChargeNum",
    "commlogs": "CommlogNum",
    "appointments": "AptNum",
    "definitions": "DefNum",
    "payments": "PayNum",
    "adjustments": "AdjNum",
}
FIRST_NEW = {
    "patients": 1001, "procedures": 9001, "treatplans": 5001, "attaches": 3001,
    "payplans": 7001, "links": 4001, "charges": 6001, "commlogs": 8001, "appointments": 2001,
    "definitions": 501, "payments": 11001, "adjustments": 12001,
}
# Tables listed per owner, by the owner's column: a list costs what it returns.
OWNERS = {"procedures": "PatNum", "treatplans": "PatNum", "attaches": "TreatPlanNum", "links": "PayPlanNum",
          "charges": "PayPlanNum", "commlogs": "PatNum", "payments": "PatNum", "adjustments": "PatNum"}
MAIN_CLINIC = 1

# A few procedure codes' descriptions (procedurelog.descript); others read "".
DESCRIPTIONS = {
    "D0220": "Intraoral - periapical first film", "D0330": "Panoramic film", "D1110": "Prophylaxis - adult",
    "D1120": "Prophylaxis - child", "D1351": "Sealant - per tooth", "D2391": "Resin-based composite - one surface, posterior",
    "D2392": "Resin-based composite - two surfaces, posterior", "D2740": "Crown - porcelain/ceramic substrate",
    "D2750": "Crown - porcelain fused to high noble metal", "D2930": "Prefabricated stainless steel crown - primary tooth",
    "D2950": "Core buildup, including any pins", "D3310": "Endodontic therapy, anterior tooth",
    "D3330": "Endodontic therapy, molar", "D4341": "Periodontal scaling and root planing - four or more teeth per quadrant",
    "D6010": "Surgical placement of implant body", "D6057": "Custom fabricated abutment", "D6065": "Implant supported porcelain/ceramic crown",
    "D7240": "Removal of impacted tooth - completely bony", "D9239": "Intravenous moderate sedation - first 15 minutes",
}


def patient_record(pat_num: int, fields: dict, guarantor: int, clinic: int, entered: str) -> dict:
    return {
        "PatNum": pat_num, "LName": fields["LName"], "FName": fields["FName"], "MiddleI": "", "Preferred": "",
        "PatStatus": "Patient", "Gender": fields.get("Gender", "Unknown"), "Position": fields.get("Position", "Single"),
        "Birthdate": fields["Birthdate"], "SSN": "", "Address": fields["Address"], "Address2": "",
        "City": fields["City"], "State": fields["State"], "Zip": fields["Zip"], "HmPhone": "", "WkPhone": "",
        "WirelessPhone": fields["WirelessPhone"], "Guarantor": guarantor, "Email": fields["Email"],
        "EstBalance": "0.00", "BalTotal": "0.00", "PriProv": 1, "priProvAbbr": "DOC1", "SecProv": 0, "FeeSched": 0,
        "BillingType": 0, "ChartNumber": "", "ClinicNum": clinic, "clinicAbbr": {1: "Main", 2: "North"}.get(clinic, ""),
        "DateTStamp": entered, "SecDateEntry": entered[:10],
    }


def procedure_record(proc_num: int, pat_num: int, code: str, tooth: str, surface: str, fee: str, status: str,
                     clinic: int, day: str, entered: str) -> dict:
    return {
        "ProcNum": proc_num, "PatNum": pat_num, "AptNum": 0, "ProcDate": day, "ProcFee": amount(fee),
        "Surf": surface, "ToothNum": tooth, "ToothRange": "", "Priority": 0, "priority": "", "ProcStatus": status,
        "ProvNum": 1, "Dx": 0, "dxName": "", "PlannedAptNum": 0, "ClinicNum": clinic, "CodeNum": 0,
        "procCode": code, "descript": DESCRIPTIONS.get(code, ""), "UnitQty": 1, "DateTP": day,
        "DateTStamp": entered, "Discount": 0.0,
    }


def treatplan_record(plan_num: int, pat_num: int, day: str, entered: str, status: str = "Active") -> dict:
    return {
        "TreatPlanNum": plan_num, "PatNum": pat_num, "DateTP": day, "Heading": "Active Treatment Plan", "Note": "",
        "SigIsTopaz": "false", "ResponsParty": 0, "DocNum": 0, "TPStatus": status, "SecUserNumEntry": 0,
        "SecDateEntry": day, "SecDateTEdit": entered, "UserNumPresenter": 0, "TPType": "Insurance",
        "DateTSigned": "0001-01-01 00:00:00", "DateTPracticeSigned": "0001-01-01 00:00:00", "SignatureText": "",
        "SignaturePracticeText": "", "isSigned": "false", "isSignedPractice": "false",
    }


def _journal_entry(entry: dict) -> tuple[str, dict]:
    if entry["table"] not in KEYS:
        raise ValueError(f"unknown table {entry['table']!r}")
    return entry["table"], entry["record"]


class OfficeStore:
    def __init__(self, journal_path: str | None = None):
        self.lock = threading.RLock()
        self.journal = Journal(journal_path, "Open Dental sandbox") if journal_path else None
        with self.lock:
            self._clear()
            if self.journal:
                for table, record in self.journal.replay(_journal_entry):
                    self._apply(table, record)

    # -- reading (callers hold the lock)

    def get(self, table: str, key: int) -> dict | None:
        return self.tables[table].get(key)

    def owned(self, table: str, owner: int) -> list[dict]:
        return [self.tables[table][k] for k in self.by_owner[table].get(owner, ())]

    def all(self, table: str) -> list[dict]:
        return list(self.tables[table].values())

    # -- writing

    def put(self, table: str, record: dict) -> dict:
        with self.lock:
            if self.journal:
                self.journal.append({"table": table, "record": record})
            self._apply(table, record)
            return record

    def new_key(self, table: str) -> int:
        with self.lock:
            key = self.next_key[table]
            self.next_key[table] = key + 1
            return key

    def reset(self) -> None:
        with self.lock:
            if self.journal:
                self.journal.truncate()
            self._clear()

    # -- internals

    def _clear(self) -> None:
        self.tables: dict[str, dict[int, dict]] = {t: {} for t in KEYS}
        self.by_owner: dict[str, dict[int, dict[int, None]]] = {t: {} for t in OWNERS}
        entered = "2025-01-06 09:00:00"
        day = entered[:10]
        for pat_num, first, last, birth, phone, email, guarantor, clinic, gender, position in demo_data.PEOPLE:
            line1, zip_code = demo_data.address(pat_num)
            fields = {"FName": first, "LName": last, "Birthdate": birth, "WirelessPhone": phone, "Email": email,
                      "Address": line1, "City": "Springfield", "State": "IL", "Zip": zip_code, "Gender": gender,
                      "Position": position}
            self._apply("patients", patient_record(pat_num, fields, guarantor, clinic, entered))
        proc_num, attach_num = 901, 301
        for plan_num, pat_num, procedures in demo_data.PLANS:
            clinic = self.tables["patients"][pat_num]["ClinicNum"]
            self._apply("treatplans", treatplan_record(plan_num, pat_num, day, entered))
            for code, tooth, surface, fee in procedures:
                self._apply("procedures", procedure_record(proc_num, pat_num, code, tooth, surface, fee, "TP", clinic, day, entered))
                self._apply("attaches", {"TreatPlanAttachNum": attach_num, "TreatPlanNum": plan_num, "ProcNum": proc_num,
                                         "Priority": 0, "priority": ""})
                proc_num += 1
                attach_num += 1
        # The demo day's procedures are on its appointments (which `schedule` puts on the
        # office's next business day, whatever the clock says: they are not stored).
        for apt_num, _, _, proc_nums in demo_data.DEMO_DAY:
            for proc in proc_nums:
                self.tables["procedures"][proc]["AptNum"] = apt_num
        # The office's definitions (payment and adjustment types among them).
        for definition in demo_data.definition_records():
            self._apply("definitions", definition)
        # The demo's numbers must not move the counters for new records.
        self.next_key = dict(FIRST_NEW)

    def _apply(self, table: str, record: dict) -> None:
        key = int(record[KEYS[table]])
        previous = self.tables[table].get(key)
        self.tables[table][key] = record
        if table in OWNERS:
            column = OWNERS[table]
            if previous is not None and previous[column] != record[column]:
                self.by_owner[table].get(previous[column], {}).pop(key, None)
            self.by_owner[table].setdefault(int(record[column]), {})[key] = None
        if hasattr(self, "next_key"):
            self.next_key[table] = max(self.next_key[table], key + 1)


def total(values) -> Decimal:
    return sum((Decimal(v) for v in values), Decimal("0.00"))
