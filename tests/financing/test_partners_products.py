"""The registry's connector products (financing.partners): each kind's entry as the spec
says, the client it builds, and what counts against "one per account"."""

from datetime import date
from decimal import Decimal as D
from types import SimpleNamespace

import pytest

from dentrix_bridge.rules import add_months
from financing import partners
from financing.models import Location
from financing.ports import AgreementRequest, AppliedProcedure, Interval, Procedure


def location(kind, base_url="http://connector.test:8105", **extra):
    return Location(code=f"x-{kind}", pms_kind=kind, pms_base_url=base_url, pms_api_key="sandbox", **extra)


CONNECTOR_KINDS = {
    # kind: (name, product, record, several plans, posted production, arrangement id label)
    "dentrix": ("Dentrix", "dentrix_g", "payment agreement", False, False, "Payment agreement ID"),
    "dentrix_enterprise": ("Dentrix Enterprise", "dentrix_enterprise", "payment plan", True, False, "Payment plan ID"),
    "dentrix_ascend": ("Dentrix Ascend", "dentrix_ascend", "payment plan", False, True, "Payment plan ID"),
    "eaglesoft": ("Eaglesoft", "eaglesoft", "payment plan contract", False, True, "Contract ID"),
}


@pytest.mark.parametrize("kind", CONNECTOR_KINDS)
def test_each_connector_product_is_registered_as_the_spec_says(kind):
    name, product, record, several, posted, arrangement_label = CONNECTOR_KINDS[kind]
    where = location(kind)
    assert (partners.pms_name(where), partners.pms_product(where), partners.pms_record_name(where)) == (name, product, record)
    assert partners.pms_allows_several_plans(where) is several
    assert partners.pms_needs_posted_production(where) is posted
    assert partners.pms_id_labels(where)["arrangement"] == arrangement_label
    assert partners.PMS_IMPLEMENTATIONS[kind]["plans_per_account"] == (None if several else 1)


@pytest.mark.parametrize("kind", CONNECTOR_KINDS)
def test_the_registry_builds_one_connector_client_that_writes_for_the_kinds_product(kind, settings):
    settings.PARTNER_RATE_LIMITS = False
    client = partners.pms_for(location(kind))
    assert type(client).__name__ == "DentrixConnectorClient"
    assert client.product.KEY == CONNECTOR_KINDS[kind][1]
    assert client.product.NAME == CONNECTOR_KINDS[kind][0]


def test_two_kinds_at_one_address_get_two_clients(settings):
    settings.PARTNER_RATE_LIMITS = False
    g, ascend = partners.pms_for(location("dentrix")), partners.pms_for(location("dentrix_ascend"))
    assert g is not ascend
    assert partners.pms_for(location("dentrix_ascend")) is ascend  # kept for reuse, per kind


def record(agreement_id, status):
    return SimpleNamespace(agreement_id=agreement_id, status=status)


ON_ACCOUNT = [record("7001", "inactive"), record("7002", "active")]


@pytest.mark.parametrize("kind, in_the_way", [
    ("dentrix", ["7002"]),  # one active agreement per account: a closed one is history
    ("eaglesoft", ["7002"]),
    ("dentrix_ascend", ["7001", "7002"]),  # one plan per guarantor, whatever its status
    ("dentrix_enterprise", []),  # several plans per account: Chairside writes beside them
])
def test_what_counts_against_one_record_per_account_is_the_products_rule(kind, in_the_way):
    where = location(kind)
    assert [r.agreement_id for r in partners.pms_records_in_the_way(where, ON_ACCOUNT)] == in_the_way
    assert partners.pms_counts_any_status(where) is (kind == "dentrix_ascend")


def test_ascend_counts_a_closed_plan_alone():
    assert [r.agreement_id for r in partners.pms_records_in_the_way(location("dentrix_ascend"), [record("7001", "inactive")])] == ["7001"]
    assert partners.pms_records_in_the_way(location("dentrix"), [record("7001", "inactive")]) == []


def request():
    """Dated today (the rules refuse a future agreement date), first payment on a 15th."""
    today = date.today()
    return AgreementRequest(
        guarantor_id="1001", agreement_date=today, interval=Interval.MONTHLY,
        total_agreed_amount=D("1250.00"), down_payment=D("0.00"), payment_amount=D("104.17"), number_of_payments=12,
        first_payment_due=add_months(today.replace(day=15), 1), annual_finance_charge_pct=D("0.00"),
        note="[chairside:CS-1]", patient_id="1001", treatment_plan_id="5001",
        procedures=(AppliedProcedure("9001", D("1250.00")),), name="CareCredit CS-1",
    )

UNPOSTED = (Procedure(code="D2740", tooth="3", surface="", fee=D("1250.00"), procedure_id="9001"),)


@pytest.mark.parametrize("kind", ["dentrix_ascend", "eaglesoft"])
def test_the_rules_of_a_product_that_needs_posted_production_check_the_procedures_when_given(kind):
    where = location(kind)
    assert partners.agreement_problems(where, request()) == {}
    assert set(partners.agreement_problems(where, request(), procedures=UNPOSTED)) == {"procedures"}


def test_the_read_back_asks_the_product_for_its_own_fields():
    stored = SimpleNamespace(name="Another name", patient_ids=("1001",))
    assert partners.stored_differences(location("dentrix_enterprise"), request(), stored) == [
        ("Plan name", "CareCredit CS-1", "Another name")
    ]
    assert partners.stored_differences(location("dentrix"), request(), stored) == []
