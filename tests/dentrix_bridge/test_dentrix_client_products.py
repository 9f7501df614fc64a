"""DentrixConnectorClient for each connector product (contract v2), with a stub session:
what it sends for each product, what it reads (v2's fields, and v1 answers without them),
and describe()."""

import json
from datetime import date
from decimal import Decimal as D

import pytest

from dentrix_bridge.client import DentrixConnectorClient
from financing.ports import (
    AppliedProcedure,
    ConnectorInfo,
    Interval,
    PermanentPartnerError,
    TransientPartnerError,
)
from tests.dentrix_bridge.test_dentrix_client import REQUEST, StubSession, response

V1_BODY = {
    "agreement_date": "2025-03-01", "interval": "monthly", "total_agreed_amount": "3000.00",
    "down_payment": "500.00", "payment_amount": "208.34", "number_of_payments": 12,
    "first_payment_due": "2025-04-01", "annual_finance_charge_pct": "0.00", "note": "[chairside:CS-1]",
}
FULL_REQUEST = REQUEST.__class__(**{
    **REQUEST.__dict__, "patient_id": "1007", "treatment_plan_id": "5007", "name": "CareCredit CS-1",
    "total_agreed_amount": D("3000.00"),
    "procedures": (AppliedProcedure("9001", D("1250.00")), AppliedProcedure("9002", D("1750.00"))),
})
STORED_V1 = {
    "agreement_id": "7001", "guarantor_id": "1001", "status": "active", **V1_BODY, "created_at": "2025-03-01T14:05:09Z",
}


def client_for(outcome, product=None):
    session = StubSession(outcome)
    extra = {"product": product} if product else {}
    return DentrixConnectorClient("http://connector.test/", "secret-key", session=session, **extra), session


def sent_body(product):
    client, session = client_for(response(201, json.dumps(STORED_V1).encode()), product)
    client.create_payment_agreement(FULL_REQUEST)
    method, url, kwargs = session.calls[0]
    assert (method, url) == ("POST", "http://connector.test/v1/accounts/1001/payment-agreements")
    return kwargs["json"]


def test_the_g_series_and_eaglesoft_are_sent_the_v1_body():
    assert sent_body(None) == V1_BODY  # the default product is the G-series
    assert sent_body("dentrix_g") == V1_BODY
    assert sent_body("eaglesoft") == V1_BODY  # the contract amount is Eaglesoft's to compute


def test_enterprise_is_sent_the_plans_name_and_its_patient():
    assert sent_body("dentrix_enterprise") == {**V1_BODY, "name": "CareCredit CS-1", "patient_ids": ["1007"]}


def test_ascend_is_sent_the_start_one_interval_before_the_first_payment_and_the_applied_procedures():
    assert sent_body("dentrix_ascend") == {
        **V1_BODY,
        "start_date": "2025-03-01",
        "procedures": [{"procedure_id": "9001", "applied_amount": "1250.00"}, {"procedure_id": "9002", "applied_amount": "1750.00"}],
    }


def test_an_unknown_product_is_refused_when_the_client_is_built():
    with pytest.raises(ValueError, match="unknown connector product 'opendental'"):
        DentrixConnectorClient("http://connector.test/", "k", product="opendental")


@pytest.mark.parametrize("product, message", [
    ("dentrix_g", "Dentrix rejected the payment agreement: Term cannot be less than 1."),
    ("dentrix_ascend", "Dentrix Ascend rejected the payment plan: Term cannot be less than 1."),
    ("eaglesoft", "Eaglesoft rejected the payment plan contract: Term cannot be less than 1."),
])
def test_messages_name_the_product_and_its_record(product, message):
    client, _ = client_for(response(400, b'{"error": "Term cannot be less than 1."}'), product)
    with pytest.raises(PermanentPartnerError) as caught:
        client.create_payment_agreement(REQUEST)
    assert str(caught.value) == message
    assert repr(client) == f"DentrixConnectorClient('http://connector.test', product={product!r})"


def test_a_v1_agreement_reads_with_the_v2_fields_empty():
    client, _ = client_for(response(200, json.dumps([STORED_V1]).encode()))
    [agreement] = client.list_payment_agreements("1001")
    assert (agreement.product, agreement.name, agreement.patient_ids, agreement.procedures) == ("", "", (), ())
    assert (agreement.supersedes, agreement.superseded_by, agreement.start_date, agreement.contract_amount) == ("", "", None, None)


def test_each_products_own_fields_are_read():
    enterprise = {**STORED_V1, "product": "dentrix_enterprise", "name": "Ortho", "patient_ids": ["1001", "1007"],
                  "supersedes": "7000", "superseded_by": None}
    ascend = {**STORED_V1, "product": "dentrix_ascend", "start_date": "2025-03-01",
              "procedures": [{"procedure_id": "9001", "applied_amount": "3000.00"}]}
    eaglesoft = {**STORED_V1, "product": "eaglesoft", "contract_amount": "2500.00"}
    client, _ = client_for(response(200, json.dumps([enterprise, ascend, eaglesoft]).encode()))
    e, a, s = client.list_payment_agreements("1001")
    assert (e.product, e.name, e.patient_ids, e.supersedes, e.superseded_by) == ("dentrix_enterprise", "Ortho", ("1001", "1007"), "7000", "")
    assert (a.start_date, a.procedures) == (date(2025, 3, 1), (AppliedProcedure("9001", D("3000.00")),))
    assert s.contract_amount == D("2500.00")


@pytest.mark.parametrize("field, value", [
    ("patient_ids", "1007"), ("patient_ids", [1007]), ("procedures", [{"procedure_id": 9001, "applied_amount": "1.00"}]),
    ("procedures", [{"procedure_id": "9001", "applied_amount": 1.0}]), ("start_date", "2025/03/01"),
    ("contract_amount", 2500), ("supersedes", 7000), ("name", ["x"]),
])
def test_a_v2_field_of_the_wrong_type_is_a_contract_mismatch(field, value):
    client, _ = client_for(response(200, json.dumps([{**STORED_V1, field: value}]).encode()), "dentrix_ascend")
    with pytest.raises(TransientPartnerError) as caught:
        client.list_payment_agreements("1001")
    assert str(caught.value) == "Dentrix Ascend's answer for the payment plans could not be read (contract mismatch)"


PLAN = {"treatment_plan_id": "5001", "patient_id": "1001", "name": "Treatment Plan", "status": "accepted", "total": "1250.00"}
V1_PROCEDURE = {"code": "D2740", "tooth": "14", "surface": "", "fee": "1250.00"}


def test_procedures_read_their_id_posting_and_balance_and_a_v1_one_is_unposted_with_nothing_owed():
    v2 = {**V1_PROCEDURE, "procedure_id": "9001", "status": "completed", "posted": True, "balance": "1250.00"}
    client, _ = client_for(response(200, json.dumps([{**PLAN, "procedures": [v2, V1_PROCEDURE]}]).encode()))
    [plan] = client.get_treatment_plans("1001")
    posted, old = plan.procedures
    assert (posted.procedure_id, posted.posted, posted.balance) == ("9001", True, D("1250.00"))
    assert (old.procedure_id, old.posted, old.balance) == ("", False, D("0.00"))


@pytest.mark.parametrize("field, value", [("posted", "true"), ("posted", 1), ("balance", 12.5), ("procedure_id", 9001)])
def test_a_procedure_field_of_the_wrong_type_is_a_contract_mismatch(field, value):
    body = [{**PLAN, "procedures": [{**V1_PROCEDURE, field: value}]}]
    client, _ = client_for(response(200, json.dumps(body).encode()))
    with pytest.raises(TransientPartnerError, match="contract mismatch"):
        client.get_treatment_plans("1001")


CONNECTOR = {
    "product": "dentrix_enterprise", "product_name": "Dentrix Enterprise", "version": "11.0.2 Update 4",
    "contract_version": "2", "database_id": "sandbox-dentrix_enterprise",
    "capabilities": ["payment_agreements", "ledger_notes", "several_plans_per_account", "plan_versions", "plan_names"],
}


def test_describe_reads_what_the_connector_says_it_is():
    client, session = client_for(response(200, json.dumps(CONNECTOR).encode()), "dentrix_enterprise")
    assert client.describe() == ConnectorInfo(
        product="dentrix_enterprise", version="11.0.2 Update 4", database_id="sandbox-dentrix_enterprise",
        capabilities=("payment_agreements", "ledger_notes", "several_plans_per_account", "plan_versions", "plan_names"),
    )
    method, url, kwargs = session.calls[0]
    assert (method, url, kwargs["headers"]["X-API-Key"]) == ("GET", "http://connector.test/v1/connector", "secret-key")


def test_describe_reports_what_it_reads_even_when_it_is_another_product():
    # Comparing with the location's product is the caller's (the console's Test connection).
    client, _ = client_for(response(200, json.dumps({**CONNECTOR, "product": "eaglesoft"}).encode()), "dentrix_ascend")
    assert client.describe().product == "eaglesoft"


def test_a_v1_connector_cannot_say_what_it_is_and_must_be_upgraded():
    client, _ = client_for(response(404, b'{"error": "Not found."}'), "dentrix_ascend")
    with pytest.raises(PermanentPartnerError) as caught:
        client.describe()
    assert type(caught.value) is PermanentPartnerError
    assert str(caught.value) == "The Dentrix Ascend connector does not say what it is (contract v1): upgrade it to contract v2."


@pytest.mark.parametrize("change", [
    {"product": ""}, {"product": 7}, {"version": None}, {"capabilities": "payment_agreements"},
    {"capabilities": [1]}, {"database_id": 42},
])
def test_describe_parses_strictly(change):
    client, _ = client_for(response(200, json.dumps({**CONNECTOR, **change}).encode()))
    with pytest.raises(TransientPartnerError, match="contract mismatch"):
        client.describe()


def test_describe_takes_a_connector_that_names_no_database():
    body = {key: value for key, value in CONNECTOR.items() if key != "database_id"}
    client, _ = client_for(response(200, json.dumps(body).encode()))
    assert client.describe().database_id == ""


def test_an_ascend_client_writes_an_interval_it_does_not_offer_without_a_start():
    client, session = client_for(response(400, b'{"error": "Interval must be one of monthly, biweekly, quarterly."}'), "dentrix_ascend")
    semimonthly = FULL_REQUEST.__class__(**{**FULL_REQUEST.__dict__, "interval": Interval.SEMIMONTHLY})
    with pytest.raises(PermanentPartnerError):
        client.create_payment_agreement(semimonthly)
    assert "start_date" not in session.calls[0][2]["json"]
