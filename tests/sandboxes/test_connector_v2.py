"""Contract v2 on every connector product, over HTTP: what the connector says it is,
procedures with their ids and ledger state, posting production, the product on records.

One sandbox per product per module; each test starts from POST /_sandbox/reset.
"""

import os
import signal
import subprocess
import sys
from datetime import date, timedelta

import pytest
import requests

from sandboxes.dentrix import serve_in_thread
from tests.sandboxes.connector import call, create, edit, records, refused, terms

KEY = {"X-API-Key": "sandbox"}
PRODUCTS = ("dentrix_g", "dentrix_enterprise", "dentrix_ascend", "eaglesoft")


def today() -> date:
    return date.today()  # at each call: a run may cross midnight


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


def get(server, path):
    return requests.get(f"{server.base_url}{path}", headers=KEY, timeout=5)


@pytest.mark.parametrize(
    "product, name, version, capabilities",
    [
        ("dentrix_g", "Dentrix", "G7.5", ["payment_agreements", "ledger_notes"]),
        ("dentrix_enterprise", "Dentrix Enterprise", "11.0.2 Update 4",
         ["payment_agreements", "ledger_notes", "several_plans_per_account", "plan_versions", "plan_names"]),
        ("dentrix_ascend", "Dentrix Ascend", "cloud",
         ["payment_agreements", "ledger_notes", "procedure_plans", "needs_posted_production"]),
        ("eaglesoft", "Eaglesoft", "24.00", ["payment_agreements", "ledger_notes", "needs_posted_production", "contracts"]),
    ],
)
def test_the_connector_says_what_it_is(servers, product, name, version, capabilities):
    answer = get(servers[product], "/v1/connector")
    assert answer.status_code == 200
    assert answer.json() == {
        "product": product, "product_name": name, "version": version, "contract_version": "2.2",
        "database_id": f"sandbox-{product}", "capabilities": capabilities,
    }


def test_the_connector_endpoint_needs_the_key(servers):
    answer = requests.get(f"{servers['eaglesoft'].base_url}/v1/connector", timeout=5)
    assert answer.status_code == 401


def test_the_default_product_is_the_g_series():
    with serve_in_thread(port=0) as running:
        assert get(running, "/v1/connector").json()["product"] == "dentrix_g"


def test_an_unknown_product_is_refused():
    with pytest.raises(ValueError, match="unknown product 'dentrix_x'"):
        serve_in_thread(port=0, product="dentrix_x")


@pytest.mark.parametrize("product", PRODUCTS)
def test_demo_procedures_carry_ids_and_start_planned_not_posted(servers, product):
    plans = get(servers[product], "/v1/patients/1001/treatment-plans").json()
    assert plans[0]["procedures"] == [
        {"procedure_id": "9001", "code": "D2740", "tooth": "14", "surface": "", "fee": "1250.00",
         "status": "planned", "posted": False, "balance": "0.00", "posted_on": None},
        {"procedure_id": "9002", "code": "D2950", "tooth": "14", "surface": "", "fee": "310.00",
         "status": "planned", "posted": False, "balance": "0.00", "posted_on": None},
        {"procedure_id": "9003", "code": "D1110", "tooth": "", "surface": "", "fee": "120.00",
         "status": "planned", "posted": False, "balance": "0.00", "posted_on": None},
    ]
    # The same demo ids in every product, the last demo procedure is 9031 (patient 1009's crown).
    last = get(servers[product], "/v1/patients/1009/treatment-plans").json()[0]["procedures"][-1]
    assert (last["procedure_id"], last["code"]) == ("9031", "D2740")


def new_patient(server, fees=("1250.00", "310.00"), **extra):
    body = {
        "first_name": "Hana", "last_name": "Okafor", "birth_date": "1990-02-11", "phone": "312-555-0142",
        "email": "hana.okafor@example.com",
        "address": {"line1": "42 Lake Shore Drive", "city": "Springfield", "state": "IL", "zip": "62708"},
        "procedures": [{"code": "D2740", "tooth": "3", "surface": "", "fee": fee} for fee in fees],
        **extra,
    }
    answer = requests.post(f"{server.base_url}/_sandbox/patients", json=body, timeout=5)
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_new_procedures_get_ids_from_9101(servers):
    server = servers["dentrix_ascend"]
    first, second = new_patient(server), new_patient(server, fees=("99.00",))
    ids = [
        [p["procedure_id"] for p in get(server, f"/v1/patients/{patient['patient_id']}/treatment-plans").json()[0]["procedures"]]
        for patient in (first, second)
    ]
    assert ids == [["9101", "9102"], ["9103"]]


def post_production(server, patient_id):
    return requests.post(f"{server.base_url}/_sandbox/patients/{patient_id}/post-production", timeout=5)


@pytest.mark.parametrize("product", PRODUCTS)
def test_posting_production_completes_and_posts_the_patients_procedures(servers, product):
    server = servers[product]
    answer = post_production(server, "1001")
    assert answer.status_code == 200
    posted = answer.json()
    assert [(p["procedure_id"], p["status"], p["posted"], p["balance"], p["posted_on"]) for p in posted[0]["procedures"]] == [
        ("9001", "completed", True, "1250.00", today().isoformat()),
        ("9002", "completed", True, "310.00", today().isoformat()),
        ("9003", "completed", True, "120.00", today().isoformat()),
    ]
    # What the read shows, and only this patient's procedures moved.
    assert get(server, "/v1/patients/1001/treatment-plans").json() == posted
    assert posted[0]["status"] == "accepted"  # the case's status is the clinic's to change
    others = get(server, "/v1/patients/1007/treatment-plans").json()[0]["procedures"]
    assert {(p["posted"], p["balance"]) for p in others} == {(False, "0.00")}


def test_posting_again_keeps_the_first_posting_date(servers):
    server = servers["eaglesoft"]
    post_production(server, "1002")
    requests.post(f"{server.base_url}/_sandbox/clock", json={"advance_seconds": 3 * 86400}, timeout=5).raise_for_status()
    again = post_production(server, "1002").json()
    assert {p["posted_on"] for p in again[0]["procedures"]} == {today().isoformat()}


def test_posting_production_for_an_unknown_patient_is_404(servers):
    answer = post_production(servers["dentrix_ascend"], "999")
    assert answer.status_code == 404
    assert answer.json() == {"error": "Patient 999 was not found in Dentrix Ascend."}


def test_a_posted_plan_survives_a_restart(tmp_path):
    journal = str(tmp_path / "ascend.jsonl")
    with serve_in_thread(port=0, state_file=journal, product="dentrix_ascend") as first:
        patient = new_patient(first)
        post_production(first, patient["patient_id"])
    with serve_in_thread(port=0, state_file=journal, product="dentrix_ascend") as second:
        procedures = get(second, f"/v1/patients/{patient['patient_id']}/treatment-plans").json()[0]["procedures"]
        assert [(p["procedure_id"], p["posted"], p["balance"]) for p in procedures] == [
            ("9101", True, "1250.00"), ("9102", True, "310.00"),
        ]
        # and the next new procedure does not reuse an id
        later = new_patient(second, fees=("50.00",))
        assert get(second, f"/v1/patients/{later['patient_id']}/treatment-plans").json()[0]["procedures"][0]["procedure_id"] == "9103"


def test_the_g_series_agreement_names_its_product(servers):
    agreed = today()
    body = {
        "agreement_date": agreed.isoformat(), "interval": "monthly", "total_agreed_amount": "3000.00",
        "down_payment": "500.00", "payment_amount": "208.34", "number_of_payments": 12,
        "first_payment_due": (agreed + timedelta(days=30)).isoformat(), "annual_finance_charge_pct": "0.00",
        "note": "[chairside:CS-0001]",
    }
    answer = requests.post(f"{servers['dentrix_g'].base_url}/v1/accounts/1001/payment-agreements", json=body, headers=KEY, timeout=5)
    assert answer.status_code == 201
    assert answer.json()["product"] == "dentrix_g"
    assert get(servers["dentrix_g"], "/v1/accounts/1001/payment-agreements").json()[0]["product"] == "dentrix_g"


# --- the G-series under v2's control calls -------------------------------------------------


def test_a_g_series_edit_changes_the_agreement_in_place(servers):
    server = servers["dentrix_g"]
    create(server, "1001", terms())
    answer = edit(server, "7001", {"payment_amount": "150.00", "number_of_payments": 10})
    assert answer.status_code == 200, answer.text
    edited = answer.json()
    assert (edited["agreement_id"], edited["status"], edited["payment_amount"], edited["number_of_payments"]) == (
        "7001", "active", "150.00", 10,
    )
    assert edited["note"] == terms()["note"]
    assert records(server, "1001") == [edited]
    assert call(server, "GET", "/v1/accounts/1001/payment-agreements/7001").json() == edited


def test_a_g_series_edit_is_judged_by_the_same_rules(servers):
    server = servers["dentrix_g"]
    create(server, "1001", terms())
    refused(edit(server, "7001", {"interval": "quarterly"}), 400,
            "Interval must be one of weekly, biweekly, semimonthly, monthly.",
            {"interval": "Interval must be one of weekly, biweekly, semimonthly, monthly."})
    refused(edit(server, "7001", {"agreement_id": "7002"}), 400, "This field cannot be changed on a saved record.",
            {"agreement_id": "This field cannot be changed on a saved record."})
    refused(edit(server, "7001", {}), 400,
            "Send the terms to change: any of agreement_date, interval, total_agreed_amount, down_payment, "
            "payment_amount, number_of_payments, first_payment_due, annual_finance_charge_pct.")
    refused(edit(server, "7999", {"number_of_payments": 12}), 404, "Payment agreement 7999 was not found in Dentrix.")
    assert records(server, "1001")[0]["payment_amount"] == "125.00"


def test_g_series_agreements_cannot_be_deleted_or_replaced(servers):
    server = servers["dentrix_g"]
    create(server, "1001", terms())
    refused(call(server, "DELETE", "/v1/accounts/1001/payment-agreements/7001"), 405,
            "DELETE is not allowed on Dentrix payment agreements: inactivate it instead.")
    refused(call(server, "PUT", "/v1/accounts/1001/payment-agreements/7001", terms()), 405,
            "PUT is not allowed on Dentrix payment agreements.")
    assert len(records(server, "1001")) == 1


def test_the_command_line_takes_the_product_from_the_environment():
    env = {**os.environ, "DENTRIX_SANDBOX_PRODUCT": "eaglesoft"}
    process = subprocess.Popen(
        [sys.executable, "-m", "sandboxes.dentrix", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("Eaglesoft sandbox listening on http://127.0.0.1:"), line
        url = line.split()[-1]
        assert requests.get(f"{url}/v1/connector", headers=KEY, timeout=5).json()["product"] == "eaglesoft"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_the_command_line_refuses_an_unknown_product():
    done = subprocess.run(
        [sys.executable, "-m", "sandboxes.dentrix", "--port", "0", "--product", "dentrix_x"],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 2
    assert "invalid choice: 'dentrix_x'" in done.stderr
