"""Helpers for the connector-product tests: what the front desk does in the product's sandbox,
and what each product must hold for a case (its record in the product's shape)."""

from datetime import date
from types import SimpleNamespace

import requests

from financing.models import CaseState, WriteStatus

# The connector product (as GET /v1/connector says) → the location's PMS kind.
KINDS = {"dentrix_g": "dentrix", "dentrix_enterprise": "dentrix_enterprise", "dentrix_ascend": "dentrix_ascend", "eaglesoft": "eaglesoft"}
NEEDS_POSTED_PRODUCTION = {"dentrix_ascend", "eaglesoft"}


def post_production(sandboxes, patient_id):
    """The front desk completes the treatment and posts it to the ledger."""
    requests.post(f"{sandboxes.dentrix_url}/_sandbox/patients/{patient_id}/post-production", json={}, timeout=5).raise_for_status()


def practice(sandboxes):
    """The sandbox's own view of the practice (what the front desk does, by hand)."""
    from sandboxes.dentrix.simulation import Practice

    return Practice(SimpleNamespace(pms_base_url=sandboxes.dentrix_url, pms_api_key="sandbox", clinic_ids=()))


def a_month_before(day: date) -> date:
    """For a first payment on the 15th (the template's), the month before, on the 15th."""
    return date(day.year - (day.month == 1), 12 if day.month == 1 else day.month - 1, day.day)


NAMES = {"dentrix_g": "Dentrix", "dentrix_enterprise": "Dentrix Enterprise", "dentrix_ascend": "Dentrix Ascend", "eaglesoft": "Eaglesoft"}
RECORD_WRITES = "/v1/accounts"


def treated_patient(sandboxes, product, last_name="Thompson", fees=("1250.00", "1250.00"), **extra):
    """A patient with an accepted plan whose treatment is done: posted to the ledger where the
    product writes a plan only over posted production."""
    patient = sandboxes.new_patient(last_name, fees=fees, **extra)
    if product in NEEDS_POSTED_PRODUCTION:
        post_production(sandboxes, patient["patient_id"])
    return patient


def expected_record(product, case) -> dict:
    """The record the product must hold for the case: the computed terms, in its shape."""
    a = case.arrangement
    record = {
        "agreement_id": a.pms_arrangement_id,
        "guarantor_id": case.guarantor_id,
        "product": product,
        "status": "active",
        "agreement_date": a.agreement_date.isoformat(),
        "interval": "monthly",
        "total_agreed_amount": f"{case.plan_total:.2f}",
        "down_payment": f"{a.down_payment:.2f}",
        "payment_amount": f"{a.recurring_amount:.2f}",
        "number_of_payments": a.number_of_payments,
        "first_payment_due": a.first_payment_date.isoformat(),
        "annual_finance_charge_pct": f"{a.apr:.2f}",
        "note": a.note,
    }
    if product == "dentrix_enterprise":
        record.update(name=f"CareCredit {case.reference}", patient_ids=[case.patient_id], supersedes=None, superseded_by=None)
    elif product == "dentrix_ascend":
        record.update(
            start_date=a_month_before(a.first_payment_date).isoformat(),
            procedures=[{"procedure_id": p["procedure_id"], "applied_amount": p["fee"]} for p in case.procedures],
        )
    elif product == "eaglesoft":
        record.update(contract_amount=f"{case.plan_total - a.down_payment:.2f}")
    return record


def ours(sandboxes, case) -> list[dict]:
    return [r for r in sandboxes.agreements(case.guarantor_id) if case.marker in r["note"]]


def assert_written_once(sandboxes, product, case):
    """Exactly one record carries the case's marker, in the product's shape with the exact
    terms, read back and verified; exactly one ledger note."""
    assert case.state == CaseState.COMPLETED, case.state_reason
    [stored] = ours(sandboxes, case)
    created_at = stored.pop("created_at")
    assert created_at.endswith("Z")
    assert stored == expected_record(product, case)
    a = case.arrangement
    assert a.write_status == WriteStatus.WRITTEN and a.verified_at is not None and a.write_attempts == 1
    notes = sandboxes.ledger_notes(case.patient_id)
    assert [n["note_id"] for n in notes if case.marker in n["text"]] == [case.ledger_note.pms_note_id]
    assert len(notes) == 1
