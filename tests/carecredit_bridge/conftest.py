"""Fixtures for the CareCredit bridge: its sandbox over real HTTP, the real client, and a
tiny webhook receiver. No database: nothing here is marked django_db."""

from __future__ import annotations

import threading
import time
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from carecredit_bridge.client import CareCreditClient, clear_token_cache
from financing.ports import Address, Applicant, ApplicationRequest

# Canary demographics: tests assert that none of these strings leaks into errors or logs.
CANARY = {
    "first_name": "Zelda",
    "birth_date": "1971-03-09",
    "phone": "555-867-5309",
    "email": "zelda.canary@example.com",
    "line1": "742 Evergreen Terrace",
    "city": "Shelbyville",
}


@pytest.fixture
def canary():
    """The canary demographics used by new_application_request, to assert they never leak."""
    return dict(CANARY)


@pytest.fixture
def cc_sandbox(cc_sandbox_server):
    """The session's sandbox, reset over HTTP, with an empty process-wide token cache."""
    requests.post(f"{cc_sandbox_server.base_url}/_sandbox/reset", timeout=5).raise_for_status()
    clear_token_cache()
    yield cc_sandbox_server
    clear_token_cache()


@pytest.fixture
def cc_client(cc_sandbox):
    config = cc_sandbox.app.config
    return CareCreditClient(cc_sandbox.base_url, config.client_id, config.client_secret, read_timeout=2.0)


@pytest.fixture
def new_application_request():
    """Factory for an ApplicationRequest; the surname picks the sandbox persona."""
    counter = iter(range(1, 1_000_000))

    def make(last_name="Smith", amount="1234.56", *, reference=None, callback_url="", **applicant_changes):
        values = {
            "first_name": CANARY["first_name"],
            "last_name": last_name,
            "birth_date": date.fromisoformat(CANARY["birth_date"]),
            "phone": CANARY["phone"],
            "email": CANARY["email"],
            "address": Address(line1=CANARY["line1"], city=CANARY["city"], state="IL", zip="62565"),
        }
        values.update(applicant_changes)
        return ApplicationRequest(
            merchant_number="5348120000000001",
            reference=reference or f"case-{next(counter)}-{time.monotonic_ns()}",
            requested_amount=Decimal(amount),
            applicant=Applicant(**values),
            callback_url=callback_url,
        )

    return make


def _wait_until(predicate, timeout=3.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@pytest.fixture
def wait_until():
    """wait_until(predicate, timeout=3.0) -> the predicate's first truthy value."""
    return _wait_until


class WebhookReceiver:
    """A local HTTP endpoint that records every POST; can answer 500 to the first N."""

    def __init__(self):
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.fail_next = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver._record(dict(self.headers), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/hooks/carecredit"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    def _record(self, headers, body):
        with self._lock:
            self.calls.append((headers, body))
            if self.fail_next > 0:
                self.fail_next -= 1
                return 500
            return 200

    def wait_for(self, count, timeout=5.0):
        def enough():
            with self._lock:
                return list(self.calls) if len(self.calls) >= count else None

        return _wait_until(enough, timeout=timeout)

    def stop(self):
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def webhook_receiver():
    receiver = WebhookReceiver()
    yield receiver
    receiver.stop()
