"""The sandboxes over real HTTP, without Chairside's clients: a session-wide CareCredit
sandbox reset before each test (the Dentrix tests start their own, per module)."""

import pytest
import requests


@pytest.fixture
def cc_sandbox(cc_sandbox_server):
    """The session's CareCredit sandbox, reset over HTTP (its clock too)."""
    requests.post(f"{cc_sandbox_server.base_url}/_sandbox/reset", timeout=5).raise_for_status()
    yield cc_sandbox_server

# The connector tests' helpers assert too: show their diffs like a test's.
pytest.register_assert_rewrite("tests.sandboxes.connector")
