"""The practice database a location reaches (financing.partners.pms_identity): what "one
open case per plan" is counted over, so locations sharing a database must share it."""

import pytest

from financing import partners
from financing.models import Location


def identity(base_url, api_key="sandbox", kind="dentrix"):
    return partners.pms_identity(Location(code="x", pms_kind=kind, pms_base_url=base_url, pms_api_key=api_key))


def test_every_pms_implementation_names_its_practice_databases():
    for kind, implementation in partners.PMS_IMPLEMENTATIONS.items():
        assert implementation.get("identity"), f"{kind} has no identity hook"


@pytest.mark.parametrize("spelling", [
    "http://connector.example.com:80", "HTTP://Connector.Example.com/", "http://connector.example.com//",
    " http://connector.example.com ", "http://user:secret@connector.example.com",
])
def test_one_connector_written_differently_is_one_database(spelling):
    assert identity(spelling) == identity("http://connector.example.com") == "dentrix:connector.example.com:80"


def test_the_api_key_is_neither_part_of_the_identity_nor_in_it():
    assert identity("http://127.0.0.1:8102", api_key="key-one") == identity("http://127.0.0.1:8102", api_key="key-two")
    assert "key-one" not in identity("http://127.0.0.1:8102", api_key="key-one")
    assert "secret" not in identity("http://user:secret@127.0.0.1:8102")


@pytest.mark.parametrize("other", [
    "http://127.0.0.1:8103", "http://127.0.0.2:8102", "http://127.0.0.1:8102/practice-b", "https://127.0.0.1",
])
def test_different_connectors_are_different_databases(other):
    assert identity(other) != identity("http://127.0.0.1:8102")


def test_an_address_with_no_host_reaches_no_database():
    with pytest.raises(ValueError):
        identity("http://")


@pytest.mark.django_db
def test_intake_at_a_location_whose_address_names_no_database_is_a_400_not_a_500(template, sandboxes):
    from financing.services import IntakeError, capture_case
    from tests.conftest import make_location

    broken = make_location(template, sandboxes, code="broken", pms_base_url="http://")
    with pytest.raises(IntakeError) as refused:
        capture_case(location=broken, patient_id="1001", treatment_plan_id="5001")
    assert refused.value.fields == {"location": "Location broken has no usable Dentrix address: an administrator must fix its connection."}
