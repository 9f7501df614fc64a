"""The Eaglesoft connector sandbox, over HTTP: monthly payment plan contracts that the
posted past-service balance must cover, one active per account, and the account's aging
with the contract bucket."""

import pytest

from sandboxes.dentrix import serve_in_thread
from tests.sandboxes.connector import advance, call, create, edit, post_production, records, refused, set_status, terms, today

ZERO_AGING = {"current": "0.00", "over_30": "0.00", "over_60": "0.00", "over_90": "0.00", "contract": "0.00"}


@pytest.fixture(scope="module")
def server():
    running = serve_in_thread(port=0, product="eaglesoft")
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def clean(server):
    call(server, "POST", "/_sandbox/reset", key=False).raise_for_status()


def aging(server, guarantor_id="1001"):
    answer = call(server, "GET", f"/v1/accounts/{guarantor_id}/aging")
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_contract_is_stored_with_the_amount_eaglesoft_computes(server):
    post_production(server, "1001")  # 1680.00 posted
    answer = create(server, "1001", terms(contract_amount="1.00"))  # read-only: what is sent is ignored
    assert answer.status_code == 201, answer.text
    stored = answer.json()
    assert stored == {
        "agreement_id": "7001", "guarantor_id": "1001", "product": "eaglesoft", "status": "active",
        "agreement_date": today().isoformat(), "interval": "monthly", "total_agreed_amount": "1680.00",
        "down_payment": "180.00", "payment_amount": "125.00", "number_of_payments": 12,
        "first_payment_due": terms()["first_payment_due"], "annual_finance_charge_pct": "0.00",
        "contract_amount": "1500.00",
        "note": "[chairside:CS-0001] CareCredit deferred 12", "created_at": stored["created_at"],
    }
    assert records(server, "1001") == [stored]


def test_nothing_posted_covers_no_contract(server):
    refused(create(server, "1001", terms()), 409,
            "The account's past-service balance (0.00) does not cover the contract (1680.00): "
            "post the completed procedures first.")
    assert records(server, "1001") == []


def test_the_posted_balance_must_cover_the_whole_contract(server):
    post_production(server, "1001")
    refused(create(server, "1001", terms(total_agreed_amount="2000.00", down_payment="500.00")), 409,
            "The account's past-service balance (1680.00) does not cover the contract (2000.00): "
            "post the completed procedures first.")
    assert records(server, "1001") == []


def test_every_patient_on_the_account_adds_to_its_past_service_balance(server):
    post_production(server, "1001")
    post_production(server, "1007")  # Gus, on his mother's account: 705.00
    answer = create(server, "1001", terms(total_agreed_amount="2385.00", down_payment="0.00", payment_amount="198.75"))
    assert answer.status_code == 201, answer.text
    assert answer.json()["contract_amount"] == "2385.00"


def test_eaglesoft_payment_plans_are_monthly(server):
    post_production(server, "1001")
    message = "Eaglesoft payment plans are monthly."
    refused(create(server, "1001", terms(interval="biweekly")), 400, message, {"interval": message})


def test_one_active_contract_per_account(server):
    post_production(server, "1001")
    create(server, "1001", terms(total_agreed_amount="1000.00", down_payment="100.00", payment_amount="75.00"))
    refused(create(server, "1001", terms(total_agreed_amount="600.00", down_payment="0.00", payment_amount="50.00")), 409,
            "Account 1001 already has an active payment plan contract (contract 7001). Eaglesoft allows one per account.")
    # Once the clerk inactivates it, its amount is back in the past-service balance.
    set_status(server, "7001", "inactive")
    assert create(server, "1001", terms()).status_code == 201


def test_reactivating_a_contract_needs_its_balance_free(server):
    post_production(server, "1001")
    create(server, "1001", terms())
    set_status(server, "7001", "inactive")
    create(server, "1001", terms(note="[chairside:CS-0002]"))
    set_status(server, "7002", "inactive")
    assert set_status(server, "7001", "active").status_code == 200
    refused(set_status(server, "7002", "active"), 409,
            "Account 1001 already has an active payment plan contract (contract 7001). Eaglesoft allows one per account.")


def test_aging_moves_the_contract_out_of_current(server):
    assert aging(server) == ZERO_AGING
    post_production(server, "1001")
    assert aging(server) == {**ZERO_AGING, "current": "1680.00"}
    create(server, "1001", terms())
    # The contract (1680.00 less 180.00 down) leaves current; the down payment stays due.
    assert aging(server) == {**ZERO_AGING, "current": "180.00", "contract": "1500.00"}
    set_status(server, "7001", "inactive")
    assert aging(server) == {**ZERO_AGING, "current": "1680.00"}


def test_aging_by_when_production_was_posted(server):
    post_production(server, "1007")  # 705.00
    advance(server, 45)
    post_production(server, "1001")  # 1680.00
    assert aging(server) == {**ZERO_AGING, "current": "1680.00", "over_30": "705.00"}
    advance(server, 46)  # 46 and 91 days: over 30, over 90
    assert aging(server) == {**ZERO_AGING, "over_30": "1680.00", "over_90": "705.00"}
    create(server, "1001", terms(total_agreed_amount="2385.00", down_payment="85.00", payment_amount="191.67"))
    # 2300.00 into the contract, out of the newest balance first.
    assert aging(server) == {**ZERO_AGING, "over_90": "85.00", "contract": "2300.00"}


def test_aging_of_an_unknown_account(server):
    refused(call(server, "GET", "/v1/accounts/999/aging"), 404, "Account 999 was not found in Eaglesoft.")


def test_aging_is_eaglesofts_only():
    with serve_in_thread(port=0, product="dentrix_g") as g:
        refused(call(g, "GET", "/v1/accounts/1001/aging"), 404,
                "No such endpoint: GET /v1/accounts/1001/aging (Dentrix keeps no aging here).")


def test_a_clerks_edit_changes_the_contract_in_place(server):
    post_production(server, "1001")
    create(server, "1001", terms())
    answer = edit(server, "7001", {"down_payment": "480.00", "payment_amount": "100.00"})
    assert answer.status_code == 200, answer.text
    edited = answer.json()
    assert (edited["agreement_id"], edited["status"], edited["contract_amount"], edited["payment_amount"]) == (
        "7001", "active", "1200.00", "100.00",
    )
    assert edited["note"] == "[chairside:CS-0001] CareCredit deferred 12"
    assert records(server, "1001") == [edited]
    assert aging(server) == {**ZERO_AGING, "current": "480.00", "contract": "1200.00"}


def test_an_edit_past_the_balance_changes_nothing(server):
    post_production(server, "1001")
    create(server, "1001", terms())
    refused(edit(server, "7001", {"total_agreed_amount": "1800.00", "down_payment": "300.00"}), 409,
            "The account's past-service balance (1680.00) does not cover the contract (1800.00): "
            "post the completed procedures first.")
    assert records(server, "1001")[0]["total_agreed_amount"] == "1680.00"


def test_contracts_cannot_be_deleted(server):
    post_production(server, "1001")
    create(server, "1001", terms())
    refused(call(server, "DELETE", "/v1/accounts/1001/payment-agreements/7001"), 405,
            "DELETE is not allowed on Eaglesoft payment plan contracts: inactivate it instead.")
    assert len(records(server, "1001")) == 1


def test_the_products_wording_for_the_record(server):
    answer = create(server, "1001", terms(note="n" * 256, interval="weekly"))
    refused(answer, 400, "Eaglesoft payment plans are monthly. (and 1 more problem(s) with the payment plan contract)",
            {"interval": "Eaglesoft payment plans are monthly.",
             "note": "Payment plan contract notes are limited to 255 characters."})
    refused(call(server, "GET", "/v1/patients/999"), 404, "Patient 999 was not found in Eaglesoft.")
