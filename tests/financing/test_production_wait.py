"""The wait for posted production, against the connector sandbox over HTTP (Dentrix Ascend
and Eaglesoft): a case approved
before the treatment, at a PMS that writes a plan only over posted procedures, waits in
awaiting_production (nothing written), beat checks the PMS, and the arrangement is written as
soon as the procedures are posted. A PMS outage keeps it waiting; a plan rejected meanwhile
needs a person."""

from datetime import timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
import requests
import time_machine
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from financing import reasons, services
from financing.models import CaseState, FinancedCase, PaymentArrangement
from tests.console.console_factories import billing_user, console_client
# The connector sandbox of a product that needs posted production (Dentrix Ascend, Eaglesoft;
# each test runs once per product), and a location on it.
from tests.financing.posted_production import (  # noqa: F401
    agreement_posts, location, needs_posted_production, post_production, product_sandbox, sandboxes,
)

pytestmark = pytest.mark.django_db(transaction=True)


def approve(sandboxes, location, coordinator, tasks, last_name="Thompson", fees=("1250.00", "1250.00")):
    patient = sandboxes.new_patient(last_name, fees=fees)
    case = services.capture_case(
        location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"],
        promotion="deferred_12", actor=coordinator,
    )
    tasks.drain()
    assert services.refresh_decision(case.pk) == "approved"
    return FinancedCase.objects.get(pk=case.pk), patient


def test_approved_before_treatment_waits_writes_nothing_and_writes_once_posted(
    sandboxes, needs_posted_production, coordinator, tasks, settings
):
    location = needs_posted_production
    case, patient = approve(sandboxes, location, coordinator, tasks)
    assert [result for _, result in tasks.drain()] == ["awaiting_production"]
    case.refresh_from_db()
    assert case.state == CaseState.AWAITING_PRODUCTION
    assert case.state_reason == reasons.waiting_for_production(location.pms_name)
    awaited = case.production_awaited_at
    assert awaited is not None and case.production_posted_at is None
    # Nothing written, nothing computed to be written, no alert: a wait is nobody's work.
    assert agreement_posts(sandboxes) == []
    assert not PaymentArrangement.objects.filter(case=case).exists()
    assert mail.outbox == []
    # Nobody's work today, and the sweeper leaves it alone however long it waits.
    assert services.stuck_cases(now=timezone.now() + timedelta(days=3)) == []

    # Beat: just checked by the step, so not due until an interval has passed.
    assert services.cases_awaiting_production() == []
    later = timezone.now() + timedelta(seconds=settings.PRODUCTION_CHECK_SECONDS)
    assert services.cases_awaiting_production(now=later) == [case.pk]
    with time_machine.travel(later):
        assert services.check_posted_production(case.pk) == "waiting"
    case.refresh_from_db()
    assert (case.state, case.step_attempts, case.lease_token) == (CaseState.AWAITING_PRODUCTION, 0, "")
    assert agreement_posts(sandboxes) == [] and tasks.queue == []

    # Three days and four hours later the treatment is done and posted.
    posted_at = awaited + timedelta(days=3, hours=4)
    with time_machine.travel(posted_at, tick=False):
        post_production(sandboxes, patient["patient_id"])
        assert services.check_posted_production(case.pk) == "posted"
        assert tasks.names() == ["financing.write_arrangement"]
        assert [result for _, result in tasks.drain()] == ["written", "completed", "sent", "sent"]
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    assert case.production_posted_at == posted_at
    [stored] = sandboxes.agreements(case.guarantor_id)
    assert len(agreement_posts(sandboxes)) == 1
    a = case.arrangement
    assert stored["agreement_id"] == a.pms_arrangement_id
    assert (a.recurring_amount, a.number_of_payments, a.final_payment) == (D("208.34"), 12, D("208.26"))
    # The schedule starts from the posting, not from the decision three days earlier.
    posted_day = timezone.localdate(posted_at, ZoneInfo(location.timezone))
    assert a.first_payment_date == posted_day + timedelta(days=30)
    assert stored["first_payment_due"] == a.first_payment_date.isoformat()

    # The case page says how long it waited; the API shows both moments.
    page = console_client(billing_user("ann", location)).get(f"/admin/financing/financedcase/{case.pk}/change/")
    assert f"Waited 3 days 4 hours for the treatment to be posted in {location.pms_name}" in page.text
    api = APIClient()
    api.force_authenticate(coordinator)
    body = api.get(f"/api/v1/cases/{case.pk}/").json()
    assert body["production_awaited_at"] and body["production_posted_at"]
    states = [row.state for row in case.history.order_by("history_date", "history_id")]
    collapsed = [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]
    assert collapsed == ["captured", "application_sent", "approved", "awaiting_production", "approved", "arrangement_written", "completed"]


def test_treatment_posted_before_the_approval_is_written_at_once(sandboxes, needs_posted_production, coordinator, tasks):
    case, patient = approve(sandboxes, needs_posted_production, coordinator, tasks)
    post_production(sandboxes, patient["patient_id"])
    assert [result for _, result in tasks.drain()] == ["written", "completed", "sent", "sent"]
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED and case.production_awaited_at is None
    assert len(agreement_posts(sandboxes)) == 1


def test_a_pms_outage_while_waiting_keeps_the_case_waiting(sandboxes, needs_posted_production, coordinator, tasks, settings):
    case, patient = approve(sandboxes, needs_posted_production, coordinator, tasks)
    tasks.drain()
    sandboxes.dentrix_fault(method="GET", path_prefix="/v1/patients", mode="error", status=503, count=None)
    for _ in range(settings.STEP_MAX_ATTEMPTS + 3):  # far more checks than a step's attempts
        assert services.check_posted_production(case.pk) == "lookup_failed"
    case.refresh_from_db()
    assert case.state == CaseState.AWAITING_PRODUCTION and case.step_attempts == 0
    pms = needs_posted_production.pms_name
    assert case.last_error.startswith(f"Checking {pms} for the posted treatment failed: ")
    assert agreement_posts(sandboxes) == [] and mail.outbox == []
    # The page says why the last check failed.
    page = console_client(billing_user("ann", needs_posted_production)).get(f"/admin/financing/financedcase/{case.pk}/change/")
    assert f"Last error: Checking {pms} for the posted treatment failed" in page.text
    assert "Waiting since " in page.text

    sandboxes.clear_faults()
    post_production(sandboxes, patient["patient_id"])
    assert services.check_posted_production(case.pk) == "posted"
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED and case.last_error == ""
    assert len(agreement_posts(sandboxes)) == 1


def test_a_plan_rejected_while_waiting_needs_a_person_and_writes_nothing(sandboxes, needs_posted_production, coordinator, billing, tasks):
    case, patient = approve(sandboxes, needs_posted_production, coordinator, tasks)
    tasks.drain()
    requests.put(
        f"{sandboxes.dentrix_url}/_sandbox/treatment-plans/{patient['treatment_plan_id']}", json={"status": "rejected"}, timeout=5
    ).raise_for_status()
    assert services.check_posted_production(case.pk) == "needs_attention"
    case.refresh_from_db()
    assert case.state == CaseState.NEEDS_ATTENTION and case.resume_state == CaseState.AWAITING_PRODUCTION
    assert case.state_reason == reasons.plan_changed_before_posting(case.treatment_plan_id, needs_posted_production.pms_name, "it is rejected")
    assert reasons.kind_of(case.state_reason) == "production_plan_changed"
    assert agreement_posts(sandboxes) == []
    tasks.drain()  # billing is alerted, once
    assert [m.to for m in mail.outbox] == [["biller@example.com"]]

    # The patient goes ahead after all: the plan is accepted again, billing resumes, and
    # the case waits again until the treatment is posted.
    requests.put(
        f"{sandboxes.dentrix_url}/_sandbox/treatment-plans/{patient['treatment_plan_id']}", json={"status": "accepted"}, timeout=5
    ).raise_for_status()
    services.resume_case(case.pk, actor=billing)
    case.refresh_from_db()
    assert case.state == CaseState.AWAITING_PRODUCTION and tasks.queue == []
    post_production(sandboxes, patient["patient_id"])
    assert services.check_posted_production(case.pk) == "posted"
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED and len(agreement_posts(sandboxes)) == 1


def test_a_check_of_a_case_that_moved_on_or_is_held_does_nothing(sandboxes, needs_posted_production, coordinator, tasks, settings):
    case, patient = approve(sandboxes, needs_posted_production, coordinator, tasks)
    tasks.drain()
    due = timezone.now() + timedelta(seconds=settings.PRODUCTION_CHECK_SECONDS)
    assert services.cases_awaiting_production(now=due) == [case.pk]
    # Another worker's check holds it (its heartbeat renews the lease).
    FinancedCase.objects.filter(pk=case.pk).update(lease_token="someone-else", lease_until=due + timedelta(seconds=20))
    before = len(sandboxes.dentrix_requests("GET"))
    assert services.check_posted_production(case.pk) == "skipped"
    assert services.cases_awaiting_production(now=due) == []
    assert len(sandboxes.dentrix_requests("GET")) == before  # not even a read
    FinancedCase.objects.filter(pk=case.pk).update(lease_token="", lease_until=None)
    services.cancel_case(case.pk, reason="Patient moved away")
    assert services.check_posted_production(case.pk) == "skipped"
    assert services.cases_awaiting_production(now=timezone.now() + timedelta(days=1)) == []


def test_our_own_rate_limit_only_puts_the_check_off(sandboxes, needs_posted_production, coordinator, tasks, monkeypatch):
    """A busy connection (Chairside's own limiter held the read back) is no failure: nothing
    shows as an error, no attempt is spent, the next beat asks again."""
    from financing import partners
    from financing.ports import RateLimited

    case, patient = approve(sandboxes, needs_posted_production, coordinator, tasks)
    tasks.drain()

    class Busy:
        def get_treatment_plans(self, patient_id):
            raise RateLimited("the connection is busy", retry_after=1.0)

    monkeypatch.setattr(partners, "pms_for", lambda location: Busy())
    assert services.check_posted_production(case.pk) == "rate_limited"
    case.refresh_from_db()
    assert (case.state, case.step_attempts, case.last_error, case.lease_token) == (CaseState.AWAITING_PRODUCTION, 0, "", "")
