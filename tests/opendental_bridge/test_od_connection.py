"""The location page's Test connection (financing.pms_connection) on an Open Dental
location, over HTTP: Open Dental's version, the database named by the customer key's id
(never the key), and a wrong key refused."""

import pytest

from financing import pms_connection
from opendental_bridge.identity import key_id

pytestmark = pytest.mark.django_db


def test_an_open_dental_location_finds_its_office(od, od_location):
    report = pms_connection.check(od_location)
    assert report.matches
    assert report.found == (
        f"Open Dental 25.3.31.0, practice database {key_id('sandbox-customer')}; "
        "can: several plans per account, plans over procedures, payment agreements, ledger notes."
    )
    assert "sandbox-customer" not in report.found
    assert [(r["method"], r["path"]) for r in od.requests()] == [("GET", "/api/v1/preferences")]


def test_a_wrong_customer_key_is_refused(od, od_location):
    od_location.pms_api_key = "someone-else"
    report = pms_connection.check(od_location)
    assert not report.matches
    assert report.problem == f"The connection at 127.0.0.1:{od.running.server.server_port} refused the API key (HTTP 401): check the key."


def test_the_registry_builds_the_open_dental_client_in_the_locations_time_zone(od_location):
    """Open Dental's appointment times carry no zone: the client reads them in the office's."""
    from financing import partners

    od_location.timezone = "America/Boise"
    client = partners.pms_for(od_location)
    assert str(client.time_zone) == "America/Boise"
    od_location.timezone = "America/Chicago"
    assert str(partners.pms_for(od_location).time_zone) == "America/Chicago"  # a new client for a new zone
