"""The sandboxes over real HTTP, without Chairside's clients: a session-wide CareCredit
sandbox reset before each test (the Dentrix tests start their own, per module)."""

import pytest
import requests

from sandboxes.carecredit import serve_in_thread


@pytest.fixture(scope="session")
def cc_sandbox_server():
    running = serve_in_thread(port=0, decision_delay=0.2, pending_delay=0.4)
    yield running
    running.stop()


@pytest.fixture
def cc_sandbox(cc_sandbox_server):
    """The session's CareCredit sandbox, reset over HTTP (its clock too)."""
    requests.post(f"{cc_sandbox_server.base_url}/_sandbox/reset", timeout=5).raise_for_status()
    yield cc_sandbox_server
