"""`simulate`'s plug-in for the connector sandboxes (sandboxes.dentrix.simulation.Practice),
against each product's sandbox over HTTP: what the front desk does, and `verify` accepting
exactly what Chairside should have written in the product's shape and naming what differs."""

import calendar
from datetime import date, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
import requests

from sandboxes.dentrix import serve_in_thread
from sandboxes.dentrix.simulation import Practice
from tests.sandboxes.connector import call, create, records, today

PRODUCTS = ("dentrix_g", "dentrix_enterprise", "dentrix_ascend", "eaglesoft")
NEW_PATIENT = {
    "first_name": "Cora", "last_name": "Rivera", "birth_date": "1980-02-11", "phone": "+15555551234",
    "email": "patient1234@example.com", "address": {"line1": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701"},
    "procedures": [{"code": "D2740", "tooth": "14", "surface": "", "fee": "1250.00"},
                   {"code": "D2950", "tooth": "14", "surface": "", "fee": "310.00"}],
}


@pytest.fixture(scope="module")
def servers():
    running = {product: serve_in_thread(port=0, product=product) for product in PRODUCTS}
    yield running
    for server in running.values():
        server.stop()


@pytest.fixture(autouse=True)
def clean(servers):
    for server in servers.values():
        requests.post(f"{server.base_url}/_sandbox/reset", timeout=5).raise_for_status()


def practice(server, clinic_ids=("1",)):
    location = SimpleNamespace(pms_base_url=server.base_url, pms_api_key="sandbox", clinic_ids=clinic_ids)
    return Practice(location)


def first_of_next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def month_before(day: date) -> date:
    year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def write_as_chairside(server, product, patient, reference="CS-2025-0001", **changes):
    """What Chairside writes for a case over the patient's plan: 1560.00, 260.00 down,
    1300.00 over 12 at 0 % → 108.34; a record and a ledger note with the marker."""
    marker = f"[chairside:{reference}]"
    first_due = first_of_next_month(today())
    body = {
        "agreement_date": today().isoformat(), "interval": "monthly", "total_agreed_amount": "1560.00",
        "down_payment": "260.00", "payment_amount": "108.34", "number_of_payments": 12,
        "first_payment_due": first_due.isoformat(), "annual_finance_charge_pct": "0.00", "note": f"{marker} CareCredit",
    }
    if product == "dentrix_enterprise":
        body.update(name=f"CareCredit {reference}", patient_ids=[patient["patient_id"]])
    if product == "dentrix_ascend":
        [plan] = call(server, "GET", f"/v1/patients/{patient['patient_id']}/treatment-plans").json()
        body.update(start_date=month_before(first_due).isoformat(), procedures=[
            {"procedure_id": p["procedure_id"], "applied_amount": p["fee"]} for p in plan["procedures"]
        ])
    body.update(changes)
    answer = create(server, patient["guarantor_id"], body)
    assert answer.status_code == 201, answer.text
    note = call(server, "POST", f"/v1/patients/{patient['patient_id']}/ledger-notes", {"type": "account", "text": f"{marker} written"})
    assert note.status_code == 201
    return answer.json()


def case_for(patient, record, reference="CS-2025-0001", **terms):
    return {
        "reference": reference, "patient_id": patient["patient_id"], "guarantor_id": patient["guarantor_id"],
        "treatment_plan_id": patient["treatment_plan_id"], "plan_total": "1560.00",
        "arrangement": {
            "frequency": "monthly", "down_payment": "260.00", "recurring_amount": "108.34", "number_of_payments": 12,
            "first_payment_date": first_of_next_month(today()).isoformat(), "apr": "0.00",
            "pms_arrangement_id": record["agreement_id"], **terms,
        },
    }


@pytest.mark.parametrize("product, name", [
    ("dentrix_g", "the Dentrix sandbox"), ("dentrix_enterprise", "the Dentrix Enterprise sandbox"),
    ("dentrix_ascend", "the Dentrix Ascend sandbox"), ("eaglesoft", "the Eaglesoft sandbox"),
])
def test_the_practice_knows_its_product_from_the_connector(servers, product, name):
    assert practice(servers[product]).name == name


@pytest.mark.parametrize("product", PRODUCTS)
def test_what_chairside_should_write_verifies(servers, product):
    server = servers[product]
    clinic = practice(server)
    patient = clinic.new_patient(NEW_PATIENT)
    clinic.post_production(patient)
    record = write_as_chairside(server, product, patient)
    case = case_for(patient, record)
    assert clinic.verify(case) == ""
    assert clinic.nothing_written(case) == "shadow mode wrote 2 records to " + clinic.name


@pytest.mark.parametrize("product", PRODUCTS)
def test_verify_names_a_term_that_differs(servers, product):
    server = servers[product]
    clinic = practice(server)
    patient = clinic.new_patient(NEW_PATIENT)
    clinic.post_production(patient)
    record = write_as_chairside(server, product, patient)
    problem = clinic.verify(case_for(patient, record, number_of_payments=11))
    assert problem.startswith("number_of_payments: ")
    assert "vs computed 11" in problem


def test_verify_counts_records_and_notes(servers):
    server = servers["dentrix_g"]
    clinic = practice(server)
    patient = clinic.new_patient(NEW_PATIENT)
    case = case_for(patient, {"agreement_id": "7001"})
    assert clinic.verify(case) == "0 records and 0 ledger notes in the Dentrix sandbox carry its marker (expected 1 and 1)"
    assert clinic.nothing_written(case) == ""


def test_enterprise_plan_must_cover_the_cases_patient_and_name_it(servers):
    server = servers["dentrix_enterprise"]
    clinic = practice(server)
    patient = clinic.new_patient(NEW_PATIENT)
    record = write_as_chairside(server, "dentrix_enterprise", patient, name="Front desk")
    assert clinic.verify(case_for(patient, record)) == (
        "name: Dentrix Enterprise 'Front desk' does not name the case"
    )


def test_ascend_plan_must_pay_for_the_plans_procedures_at_their_fees(servers):
    server = servers["dentrix_ascend"]
    clinic = practice(server)
    patient = clinic.new_patient(NEW_PATIENT)
    clinic.post_production(patient)
    record = write_as_chairside(server, "dentrix_ascend", patient, procedures=[
        {"procedure_id": "9101", "applied_amount": "1200.00"}, {"procedure_id": "9102", "applied_amount": "310.00"},
    ], total_agreed_amount="1510.00", down_payment="210.00")
    problem = clinic.verify(case_for(patient, record))
    assert "procedures: Dentrix Ascend [{'procedure_id': '9101', 'applied_amount': '1200.00'}" in problem
    assert "total_agreed_amount: Dentrix Ascend 1510.00 vs computed 1560.00" in problem


def test_eaglesoft_checks_the_contract_amount_and_the_aging(servers):
    server = servers["eaglesoft"]
    clinic = practice(server)
    patient = clinic.new_patient(NEW_PATIENT)
    clinic.post_production(patient)
    record = write_as_chairside(server, "eaglesoft", patient)
    assert record["contract_amount"] == "1300.00"
    # Had Chairside computed another down payment, both the contract and its bucket differ.
    problem = clinic.verify(case_for(patient, record, down_payment="300.00"))
    assert problem == (
        "down_payment: Eaglesoft 260.00 vs computed 300.00; contract_amount: Eaglesoft 1300.00 vs computed 1260.00; "
        "the aging's contract bucket: 1300.00 vs computed 1260.00"
    )


@pytest.mark.parametrize("product", PRODUCTS)
def test_enter_by_hand_leaves_a_record_without_a_marker_on_the_account(servers, product):
    server = servers[product]
    clinic = practice(server)
    patient = clinic.new_patient(NEW_PATIENT)
    clinic.enter_by_hand(patient)
    [by_hand] = records(server, patient["guarantor_id"])
    assert (by_hand["status"], by_hand["note"], by_hand["total_agreed_amount"]) == ("active", "Entered at the front desk", "600.00")
    assert "[chairside:" not in by_hand["note"]
    # The case's own patient is untouched: their treatment is still to be done.
    [plan] = call(server, "GET", f"/v1/patients/{patient['patient_id']}/treatment-plans").json()
    assert {p["posted"] for p in plan["procedures"]} == {False}


@pytest.mark.parametrize("product, status", [
    ("dentrix_g", 409), ("dentrix_enterprise", 201), ("dentrix_ascend", 409), ("eaglesoft", 409),
])
def test_after_a_hand_entered_record_the_product_decides_whether_another_fits(servers, product, status):
    server = servers[product]
    clinic = practice(server)
    patient = clinic.new_patient(NEW_PATIENT)
    clinic.enter_by_hand(patient)
    clinic.post_production(patient)
    marker = "[chairside:CS-2025-0002]"
    first_due = first_of_next_month(today())
    body = {
        "agreement_date": today().isoformat(), "interval": "monthly", "total_agreed_amount": "1560.00",
        "down_payment": "260.00", "payment_amount": "108.34", "number_of_payments": 12,
        "first_payment_due": first_due.isoformat(), "annual_finance_charge_pct": "0.00", "note": marker,
        "name": "CareCredit CS-2025-0002", "patient_ids": [patient["patient_id"]], "start_date": month_before(first_due).isoformat(),
        "procedures": [{"procedure_id": "9101", "applied_amount": "1250.00"}, {"procedure_id": "9102", "applied_amount": "310.00"}],
    }
    assert create(server, patient["guarantor_id"], body).status_code == status


def test_refuse_next_write_refuses_one_write_on_that_account(servers):
    server = servers["eaglesoft"]
    clinic = practice(server)
    patient = clinic.new_patient(NEW_PATIENT)
    clinic.post_production(patient)
    clinic.refuse_next_write(patient)
    body = {
        "agreement_date": today().isoformat(), "interval": "monthly", "total_agreed_amount": "1560.00",
        "down_payment": "260.00", "payment_amount": "108.34", "number_of_payments": 12,
        "first_payment_due": first_of_next_month(today()).isoformat(), "annual_finance_charge_pct": "0.00", "note": "x",
    }
    assert create(server, patient["guarantor_id"], body).status_code == 422
    assert records(server, patient["guarantor_id"]) == []
    assert create(server, patient["guarantor_id"], body).status_code == 201


def test_post_production_posts_the_patients_treatment(servers):
    server = servers["dentrix_ascend"]
    clinic = practice(server)
    patient = clinic.new_patient(NEW_PATIENT)
    clinic.post_production(patient)
    [plan] = call(server, "GET", f"/v1/patients/{patient['patient_id']}/treatment-plans").json()
    assert [(p["posted"], Decimal(p["balance"])) for p in plan["procedures"]] == [
        (True, Decimal("1250.00")), (True, Decimal("310.00")),
    ]


def test_an_unreachable_sandbox_is_a_plain_error():
    location = SimpleNamespace(pms_base_url="http://127.0.0.1:9", pms_api_key="sandbox", clinic_ids=())
    with pytest.raises(RuntimeError, match=r"Cannot reach http://127.0.0.1:9/v1/connector: is `make run` running\?"):
        Practice(location)


def test_a_wrong_key_is_a_plain_error(servers):
    location = SimpleNamespace(pms_base_url=servers["dentrix_g"].base_url, pms_api_key="wrong", clinic_ids=())
    with pytest.raises(RuntimeError, match="answered 401"):
        Practice(location)
