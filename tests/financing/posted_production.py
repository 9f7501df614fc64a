"""Fixtures for the tests of the wait for posted production: the connector sandbox of a
product that writes a plan only over posted procedures (Dentrix Ascend, Eaglesoft; each test
runs once per product), the CareCredit sandbox, and a location on that product. A module
imports them by name to use them."""

import pytest
import requests

from carecredit_bridge.client import clear_token_cache
from financing import partners
from tests.conftest import Sandboxes, make_location

AGREEMENT_POSTS = "/v1/accounts"


@pytest.fixture(scope="module", params=["dentrix_ascend", "eaglesoft"])
def product_sandbox(request):
    """A connector sandbox of a product that writes a plan only over posted procedures."""
    from sandboxes.dentrix import serve_in_thread

    running = serve_in_thread(port=0, product=request.param)
    running.product = request.param
    yield running
    running.stop()


@pytest.fixture
def sandboxes(product_sandbox, carecredit_sandbox):
    for running in (product_sandbox, carecredit_sandbox):
        requests.post(f"{running.base_url}/_sandbox/reset", timeout=5).raise_for_status()
    requests.put(
        f"{carecredit_sandbox.base_url}/_sandbox/config",
        json={"decision_delay": 0.0, "pending_delay": 0.5, "webhook_duplicates": 0, "webhook_reorder": False}, timeout=5,
    ).raise_for_status()
    clear_token_cache()
    return Sandboxes(product_sandbox, carecredit_sandbox)


@pytest.fixture
def needs_posted_production(sandboxes, template):
    """A location on that product: its registry entry says it needs posted production."""
    location = make_location(template, sandboxes, pms_kind=sandboxes.dentrix.product)
    assert partners.pms_needs_posted_production(location)
    return location


@pytest.fixture
def location(needs_posted_production):
    return needs_posted_production


def post_production(sandboxes, patient_id):
    """The front desk completes and posts the patient's planned procedures."""
    answer = requests.post(f"{sandboxes.dentrix_url}/_sandbox/patients/{patient_id}/post-production", json={}, timeout=5)
    answer.raise_for_status()


def agreement_posts(sandboxes) -> list:
    """Every write to the accounts' payment agreements the sandbox received."""
    return sandboxes.dentrix_requests("POST", AGREEMENT_POSTS)
