"""Test connection and the product check on save against the real connector sandboxes over
HTTP (`GET /v1/connector`, through the Dentrix client's describe()): one sandbox per product."""

import pytest
import requests

from financing.models import Location
from sandboxes.dentrix import serve_in_thread
from tests.conftest import make_user
from tests.console.console_factories import console_client, plain_location
from tests.console.test_console_connection import post, result

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def enterprise_sandbox():
    running = serve_in_thread(port=0, product="dentrix_enterprise")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def ascend_sandbox():
    running = serve_in_thread(port=0, product="dentrix_ascend")
    yield running
    running.stop()


@pytest.fixture
def root():
    return console_client(make_user("root", is_staff=True, is_superuser=True, phone=""))


def host(sandbox):
    return sandbox.base_url.removeprefix("http://")


@pytest.fixture
def enterprise(template, enterprise_sandbox):
    return plain_location(template, "ent", pms_kind="dentrix_enterprise", pms_base_url=enterprise_sandbox.base_url)


def test_an_enterprise_connector_says_what_it_is(root, enterprise):
    assert result(post(root, enterprise)) == (
        "Found Dentrix Enterprise 11.0.2 Update 4, practice database sandbox-dentrix_enterprise; can: several plans per "
        "account, plan versions, plan names, payment agreements, ledger notes. ✓ This is the location's PMS product."
    )


def test_a_g_series_connector_says_what_it_is(root, template, dentrix_sandbox):
    main = plain_location(template, "main", pms_base_url=dentrix_sandbox.base_url)
    assert result(post(root, main)) == (
        "Found Dentrix G7.5, practice database sandbox-dentrix_g; can: payment agreements, ledger notes. "
        "✓ This is the location's PMS product."
    )


def test_a_wrong_key_and_an_unreachable_address_are_said_in_words(root, enterprise, enterprise_sandbox):
    wrong_key = post(root, enterprise, {"pms_api_key": "not-the-key"})
    assert result(wrong_key) == f"The connection at {host(enterprise_sandbox)} refused the API key (HTTP 401): check the key."
    assert "not-the-key" not in result(wrong_key)

    nobody = post(root, enterprise, {"pms_base_url": "http://127.0.0.1:9"})  # the discard port: refused
    assert result(nobody) == (
        "Checking the connection at 127.0.0.1:9 failed: Dentrix Enterprise could not be reached (connection refused or unknown host)."
    )


def test_a_connector_that_does_not_say_what_it_is(root, enterprise, enterprise_sandbox):
    # A contract v1 connector has no GET /v1/connector.
    fault = {"method": "GET", "path_prefix": "/v1/connector", "mode": "error", "status": 404, "count": 1}
    requests.post(f"{enterprise_sandbox.base_url}/_sandbox/faults", json=fault, timeout=5).raise_for_status()
    try:
        words = result(post(root, enterprise))
    finally:
        requests.delete(f"{enterprise_sandbox.base_url}/_sandbox/faults", timeout=5).raise_for_status()
    assert words.startswith(f"Checking the connection at {host(enterprise_sandbox)} failed: ")
    assert "does not say what it is (contract v1)" in words


def test_saving_an_ascend_connection_as_enterprise_is_refused(root, enterprise, ascend_sandbox):
    page = post(root, enterprise, {"pms_base_url": ascend_sandbox.base_url}, button="_save")
    assert page.status_code == 200
    assert page.context["adminform"].form.errors["pms_kind"] == [
        "This connection is Dentrix Ascend, not Dentrix Enterprise. Choose the PMS product the connection serves, "
        "or the connection of a Dentrix Enterprise database."
    ]
    assert Location.objects.get(pk=enterprise.pk).pms_base_url == enterprise.pms_base_url  # nothing saved

    # Saying it is Ascend saves, and says what was found.
    saved = post(root, enterprise, {"pms_base_url": ascend_sandbox.base_url, "pms_kind": "dentrix_ascend"}, button="_save")
    assert saved.status_code == 302
    moved = Location.objects.get(pk=enterprise.pk)
    assert (moved.pms_kind, moved.pms_base_url) == ("dentrix_ascend", ascend_sandbox.base_url)
    messages = [m.message for m in root.get(saved.url).context["messages"]]
    assert messages[0].startswith("The PMS connection checked out: Dentrix Ascend cloud, practice database sandbox-dentrix_ascend;")


def test_saving_an_unreachable_connection_warns_and_saves(root, enterprise):
    saved = post(root, enterprise, {"pms_base_url": "http://127.0.0.1:9"}, button="_save")
    assert saved.status_code == 302
    assert Location.objects.get(pk=enterprise.pk).pms_base_url == "http://127.0.0.1:9"
    shown = [(m.level_tag, m.message) for m in root.get(saved.url).context["messages"]]
    assert shown[0] == (
        "warning",
        "Saved, but the PMS product could not be checked. Checking the connection at 127.0.0.1:9 failed: Dentrix Enterprise could not "
        "be reached (connection refused or unknown host). Test the connection once it answers.",
    )
