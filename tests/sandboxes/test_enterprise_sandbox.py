"""The Dentrix Enterprise connector sandbox, over HTTP: named payment plans for chosen
patients of the account, several per account, and edits that make a new version."""

from datetime import timedelta

import pytest

from sandboxes.dentrix import serve_in_thread
from tests.sandboxes.connector import call, create, edit, records, refused, set_status, terms, today


@pytest.fixture(scope="module")
def server():
    running = serve_in_thread(port=0, product="dentrix_enterprise")
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def clean(server):
    call(server, "POST", "/_sandbox/reset", key=False).raise_for_status()


def plan(**changes):
    return terms(**{"name": "CareCredit CS-0001", "patient_ids": ["1001"], **changes})


def test_a_plan_is_stored_with_its_name_patients_and_no_versions_yet(server):
    answer = create(server, "1001", plan(patient_ids=["1001", "1007"]))
    assert answer.status_code == 201
    stored = answer.json()
    assert stored == {
        "agreement_id": "7001", "guarantor_id": "1001", "product": "dentrix_enterprise", "status": "active",
        "agreement_date": today().isoformat(), "interval": "monthly", "total_agreed_amount": "1680.00",
        "down_payment": "180.00", "payment_amount": "125.00", "number_of_payments": 12,
        "first_payment_due": terms()["first_payment_due"], "annual_finance_charge_pct": "0.00",
        "name": "CareCredit CS-0001", "patient_ids": ["1001", "1007"],
        "note": "[chairside:CS-0001] CareCredit deferred 12", "created_at": stored["created_at"],
        "supersedes": None, "superseded_by": None,
    }
    assert records(server, "1001") == [stored]
    assert call(server, "GET", "/v1/accounts/1001/payment-agreements/7001").json() == stored


def test_several_active_plans_on_one_account(server):
    first = create(server, "1001", plan(name="Crown"))
    second = create(server, "1001", plan(name="Sealants", patient_ids=["1007"]))
    assert (first.status_code, second.status_code) == (201, 201)
    assert [(r["agreement_id"], r["name"], r["status"]) for r in records(server, "1001")] == [
        ("7001", "Crown", "active"), ("7002", "Sealants", "active"),
    ]


@pytest.mark.parametrize("name", [None, "", "   "])
def test_a_plan_needs_a_name(server, name):
    body = plan()
    body["name"] = name
    if name is None:
        del body["name"]
    refused(create(server, "1001", body), 400, "Payment plan name is required.",
            {"name": "Payment plan name is required."})
    assert records(server, "1001") == []


def test_plan_names_are_limited_to_30_characters(server):
    refused(create(server, "1001", plan(name="x" * 31)), 400, "Payment plan names are limited to 30 characters.",
            {"name": "Payment plan names are limited to 30 characters."})
    assert create(server, "1001", plan(name="x" * 30)).status_code == 201


@pytest.mark.parametrize(
    "patient_ids, message",
    [
        (["1002"], "Patient 1002 is not on account 1001."),
        (["1001", "9999"], "Patient 9999 is not on account 1001."),
        (["1001", "1001"], "Patient 1001 is listed twice."),
        ([], "A payment plan covers at least one patient of the account."),
        ("1001", 'Send the patients as a list of patient ids, e.g. ["1001"].'),
        ([1001], 'Send the patients as a list of patient ids, e.g. ["1001"].'),
    ],
)
def test_a_plan_covers_patients_of_its_account(server, patient_ids, message):
    refused(create(server, "1001", plan(patient_ids=patient_ids)), 400, message, {"patient_ids": message})
    assert records(server, "1001") == []


def test_patient_ids_are_required(server):
    body = plan()
    del body["patient_ids"]
    refused(create(server, "1001", body), 400, "This field is required.",
            {"patient_ids": "This field is required."})


def test_the_products_wording_for_the_record(server):
    future = today() + timedelta(days=40)
    answer = create(server, "1001", plan(
        agreement_date=future.isoformat(), first_payment_due=(future + timedelta(days=30)).isoformat(), note="n" * 256,
    ))
    refused(
        answer, 400, "Payment plan date cannot be set for the future. (and 1 more problem(s) with the payment plan)",
        {"agreement_date": "Payment plan date cannot be set for the future.",
         "note": "Payment plan notes are limited to 255 characters."},
    )


def test_the_g_series_rules_still_hold(server):
    answer = create(server, "1001", plan(payment_amount="100.00"))
    refused(answer, 400, "Payment amount × number of payments does not add up to the amount financed.",
            {"payment_amount": "Payment amount × number of payments does not add up to the amount financed."})


def test_editing_a_plan_makes_a_new_version_and_inactivates_the_first(server):
    create(server, "1001", plan())
    answer = edit(server, "7001", {"payment_amount": "150.00", "number_of_payments": 10, "name": "Crown, corrected"})
    assert answer.status_code == 201
    version = answer.json()
    assert (version["agreement_id"], version["status"], version["supersedes"], version["superseded_by"]) == (
        "7002", "active", "7001", None,
    )
    assert (version["payment_amount"], version["number_of_payments"], version["name"]) == ("150.00", 10, "Crown, corrected")
    assert version["note"] == "[chairside:CS-0001] CareCredit deferred 12"  # the marker stays with the plan
    first, second = records(server, "1001")
    assert (first["agreement_id"], first["status"], first["superseded_by"], first["payment_amount"]) == (
        "7001", "inactive", "7002", "125.00",
    )
    assert second == version


def test_a_replaced_version_cannot_be_edited_or_reactivated(server):
    create(server, "1001", plan())
    edit(server, "7001", {"payment_amount": "150.00", "number_of_payments": 10})
    message = ("Payment plan 7001 was replaced by payment plan 7002 when its terms were edited: "
               "change the plan in force.")
    refused(edit(server, "7001", {"number_of_payments": 12}), 409, message)
    refused(set_status(server, "7001", "active"), 409, message)
    assert [r["status"] for r in records(server, "1001")] == ["inactive", "active"]


def test_an_inactive_plan_cannot_be_edited(server):
    create(server, "1001", plan())
    set_status(server, "7001", "inactive")
    refused(edit(server, "7001", {"number_of_payments": 12}), 409,
            "Payment plan 7001 is inactive: only an active payment plan can be edited.")
    assert len(records(server, "1001")) == 1


def test_an_edit_that_breaks_a_rule_changes_nothing(server):
    create(server, "1001", plan())
    refused(edit(server, "7001", {"payment_amount": "100.00"}), 400,
            "Payment amount × number of payments does not add up to the amount financed.",
            {"payment_amount": "Payment amount × number of payments does not add up to the amount financed."})
    refused(edit(server, "7001", {"note": "other"}), 400, "This field cannot be changed on a saved record.",
            {"note": "This field cannot be changed on a saved record."})
    [only] = records(server, "1001")
    assert (only["status"], only["payment_amount"], only["superseded_by"]) == ("active", "125.00", None)


def test_plans_cannot_be_deleted_or_replaced_over_the_contract(server):
    create(server, "1001", plan())
    refused(call(server, "DELETE", "/v1/accounts/1001/payment-agreements/7001"), 405,
            "DELETE is not allowed on Dentrix Enterprise payment plans: inactivate it instead.")
    refused(call(server, "PUT", "/v1/accounts/1001/payment-agreements/7001", plan()), 405,
            "PUT is not allowed on Dentrix Enterprise payment plans.")
    assert len(records(server, "1001")) == 1
