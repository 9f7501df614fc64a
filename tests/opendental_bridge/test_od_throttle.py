"""Open Dental allows one request per second per customer key. Chairside's shared limiter
paces every request to the key, whichever location (clinic) makes it, so the sandbox,
which refuses the excess (429), never has to: asserted from the sandbox's request log,
stamped by its clock. No test sleeps: the limiter's clock is a stand-in whose sleep
moves both it and the sandbox's clock forward."""

import time as real_time
from decimal import Decimal as D

import pytest

from financing import ratelimit, services
from financing.models import CaseState, FinancedCase
from tests.conftest import make_location, make_user

pytestmark = pytest.mark.django_db(transaction=True)


class LimiterClock:
    """What financing.ratelimit reads as `time`: real time plus whatever it has slept."""

    def __init__(self, sandbox_clock):
        self.slept = 0.0
        self.sandbox_clock = sandbox_clock

    def monotonic(self):
        return real_time.monotonic() + self.slept

    def sleep(self, seconds):
        self.slept += seconds
        self.sandbox_clock.advance(seconds)


@pytest.fixture
def paced(settings, monkeypatch, od):
    settings.PARTNER_RATE_LIMITS = True
    settings.PARTNER_RATE_LIMIT_URL = ""  # the in-process limiter
    ratelimit.reset_local_state()
    clock = LimiterClock(od.app.clock)
    monkeypatch.setattr(ratelimit, "time", clock)
    od.throttle(1)
    yield clock
    ratelimit.reset_local_state()


def test_two_clinics_on_one_customer_key_share_its_one_request_a_second(paced, sandboxes, od, od_location, tasks, template):
    north = make_location(template, sandboxes, code="lake-north", pms_kind="opendental", pms_base_url=od.api,
                          pms_api_key="sandbox-customer", pms_clinic_ids="2", pms_requests_per_second=1)
    cases = []
    for location, clinic in ((od_location, "1"), (north, "2")):
        coordinator = make_user(f"coord-{location.code}", location)
        patient = od.new_patient("Thompson", fees=("900.00",), clinic_id=clinic)
        cases.append(services.capture_case(location=location, patient_id=str(patient["PatNum"]),
                                           treatment_plan_id=str(patient["TreatPlanNum"]), actor=coordinator))
    started = real_time.monotonic()
    tasks.drain()
    for case in cases:
        services.refresh_decision(case.pk)
    tasks.drain()
    for case in cases:
        case.refresh_from_db()
        assert case.state == CaseState.COMPLETED, case.state_reason
        assert case.arrangement.recurring_amount == D("75.00")

    log = od.requests()
    assert {r["status"] for r in log} <= {200, 201}  # never refused: never over the limit
    assert len({r["key"] for r in log}) == 1 and len(log) >= 20
    gaps = [b["at"] - a["at"] for a, b in zip(log, log[1:])]
    assert min(gaps) >= 1.0, gaps
    # The limiter, not the test, did the waiting (by its stand-in clock, not for real).
    assert paced.slept > 0.8 * (len(log) - 1)
    assert real_time.monotonic() - started < paced.slept / 2


def test_without_pacing_the_sandbox_refuses_the_excess_and_chairside_waits_as_told(settings, sandboxes, od, od_location, od_coordinator, tasks):
    """Chairside's limiter off: Open Dental's throttle answers 429 with Retry-After; the
    step comes back after it without spending an attempt (nothing was done), nothing is
    written twice, and the case completes."""
    od.throttle(1)
    patient = od.new_patient("Thompson", fees=("900.00",))
    case = services.capture_case(location=od_location, patient_id=str(patient["PatNum"]),
                                 treatment_plan_id=str(patient["TreatPlanNum"]), actor=od_coordinator)
    assert [r["status"] for r in od.requests()][:2] == [200, 429]  # intake: the plan lookup was refused
    od.throttle(0)
    tasks.drain()
    services.refresh_decision(case.pk)
    od.throttle(1)
    attempts = FinancedCase.objects.get(pk=case.pk).step_attempts
    assert tasks.run_next() == "rate_limited"
    # The lookup before writing went through; the write right after it was refused, unmade.
    assert [(r["method"], r["status"]) for r in od.requests()[-2:]] == [("GET", 200), ("POST", 429)]
    case.refresh_from_db()
    assert case.step_attempts == attempts  # the attempt was given back
    assert tasks.queue[0].countdown >= 1  # Retry-After: 1
    od.throttle(0)
    assert od.plans(patient["Guarantor"]) == []
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    assert [r["status"] for r in od.requests("POST", "/payplans")] == [429, 201]
    assert len(od.plans(patient["Guarantor"])) == 1
