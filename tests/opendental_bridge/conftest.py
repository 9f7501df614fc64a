"""The Open Dental sandbox over HTTP, a location wired to it, and a helper to read what
it holds. The session's sandbox is reset before each test, unthrottled (Chairside's own
limiter is off in tests: see tests/conftest.py) unless a test turns the throttle on."""

from dataclasses import dataclass

import pytest
import requests

from tests.conftest import make_location, make_user
from tests.reliability.conftest import celery_processes  # noqa: F401 - the real-worker fixture, for test_od_worker

AUTH = {"Authorization": "ODFHIR sandbox-developer/sandbox-customer"}


@pytest.fixture(scope="session")
def od_sandbox_server():
    from sandboxes.opendental import serve_in_thread

    running = serve_in_thread(port=0, requests_per_second=0)
    yield running
    running.stop()


@dataclass
class ODSandbox:
    running: object

    @property
    def url(self) -> str:
        return self.running.base_url

    @property
    def api(self) -> str:
        return self.running.base_url + "/api/v1"

    @property
    def app(self):
        return self.running.app

    def get(self, path, **params):
        response = requests.get(f"{self.api}{path}", params=params, headers=AUTH, timeout=5)
        response.raise_for_status()
        return response.json()

    def control(self, method, path, body=None):
        response = requests.request(method, f"{self.url}/_sandbox{path}", json=body, timeout=5)
        response.raise_for_status()
        return response.json()

    def new_patient(self, last_name, fees=("1250.00", "1250.00"), first_name="Ava", guarantor_id=None, clinic_id="1"):
        body = {
            "first_name": first_name, "last_name": last_name, "birth_date": "1980-04-12", "phone": "+15555550188",
            "email": "canary.patient@example.com",
            "address": {"line1": "12 Elm St", "city": "Springfield", "state": "IL", "zip": "62701"},
            "procedures": [{"code": "D2740", "tooth": str(3 + i), "surface": "", "fee": fee} for i, fee in enumerate(fees)],
            "clinic_id": clinic_id,
        }
        if guarantor_id:
            body["guarantor_id"] = str(guarantor_id)
        return self.control("POST", "/patients", body)

    def plans(self, guarantor):
        return self.get("/payplans", Guarantor=guarantor)

    def commlogs(self, pat_num):
        return self.get("/commlogs", PatNum=pat_num)

    def charges(self, plan_num):
        return self.get("/payplancharges", PayPlanNum=plan_num)

    def links(self, plan_num):
        return self.get("/payplanlinks", PayPlanNum=plan_num)

    def requests(self, method=None, prefix=""):
        log = requests.get(f"{self.url}/_sandbox/requests", timeout=5).json()
        return [r for r in log if (method is None or r["method"] == method) and r["path"].startswith("/api/v1" + prefix)]

    def fault(self, **fault):
        self.control("POST", "/faults", fault)

    def throttle(self, rate):
        self.control("PUT", "/throttle", {"requests_per_second": rate})

    def permissions(self, *granted):
        self.control("PUT", "/permissions", {"permissions": list(granted)})


@pytest.fixture
def od(od_sandbox_server):
    requests.post(f"{od_sandbox_server.base_url}/_sandbox/reset", timeout=5).raise_for_status()
    return ODSandbox(od_sandbox_server)


@pytest.fixture
def od_location(template, sandboxes, od):
    return make_location(
        template, sandboxes, code="lake", pms_kind="opendental", pms_base_url=od.api,
        pms_api_key="sandbox-customer", pms_clinic_ids="1", pms_requests_per_second=1,
    )


@pytest.fixture
def od_coordinator(od_location):
    return make_user("coord-od", od_location)


@pytest.fixture
def od_billing(od_location):
    from financing.models import Membership

    return make_user("biller-od", od_location, role=Membership.Role.BILLING, phone="")
