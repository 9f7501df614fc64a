"""The connector products over HTTP: each test of this folder runs once per product (Dentrix
G-series, Dentrix Enterprise, Dentrix Ascend, Eaglesoft), against that product's sandbox and
a location set to it. The CareCredit sandbox, staff and the task recorder are the suite's."""

import pytest

# The helpers assert too: show their diffs like a test's (before they are imported).
pytest.register_assert_rewrite("tests.products.connector_products")

import requests  # noqa: E402

from carecredit_bridge.client import clear_token_cache  # noqa: E402
from financing.models import ArrangementTemplate  # noqa: E402
from tests.conftest import Sandboxes, make_location  # noqa: E402
from tests.products.connector_products import KINDS  # noqa: E402


@pytest.fixture(scope="module", params=list(KINDS))
def connector_sandbox(request):
    from sandboxes.dentrix import serve_in_thread

    running = serve_in_thread(port=0, product=request.param)
    running.product = request.param
    yield running
    running.stop()


@pytest.fixture
def sandboxes(connector_sandbox, carecredit_sandbox):
    for running in (connector_sandbox, carecredit_sandbox):
        requests.post(f"{running.base_url}/_sandbox/reset", timeout=5).raise_for_status()
    requests.put(
        f"{carecredit_sandbox.base_url}/_sandbox/config",
        json={"decision_delay": 0.0, "pending_delay": 0.5, "webhook_duplicates": 0, "webhook_reorder": False}, timeout=5,
    ).raise_for_status()
    clear_token_cache()
    return Sandboxes(connector_sandbox, carecredit_sandbox)


@pytest.fixture
def product(connector_sandbox) -> str:
    return connector_sandbox.product


@pytest.fixture
def template(db):
    # First payments on the 15th: every product can start a plan one month before it (Dentrix
    # Ascend has no start date for a first monthly payment on the 29th to the 31st).
    return ArrangementTemplate.objects.create(name="Group standard", first_payment_day_of_month=15)


@pytest.fixture
def location(template, sandboxes, product):
    return make_location(template, sandboxes, pms_kind=KINDS[product])
