"""The batch decision poller: one listing per merchant and interval instead of one lookup per
waiting case, a task per merchant, a lease per merchant, a watermark with an overlap."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

import carecredit_bridge.client
from financing import services, tasks as financing_tasks
from financing.models import CaseState, FinancedCase, Location
from tests.conftest import make_location

pytestmark = pytest.mark.django_db
# Where a test needs the steps a decision enqueues, its transaction must really commit.
committing = pytest.mark.django_db(transaction=True)


def waiting_case(location, coordinator, application_id, *, state=CaseState.APPLICATION_SENT, sent_ago=600, n=0):
    return FinancedCase.objects.create(
        location=location, coordinator=coordinator, patient_id="1001", guarantor_id="1001",
        treatment_plan_id=f"plan-{application_id or n}", plan_total=Decimal("2500.00"), promotion="deferred_12",
        state=state, application_id=application_id, application_sent_at=timezone.now() - timedelta(seconds=sent_ago),
    )


def lender_application(sandboxes, location, last_name, *, ago=600, n=0):
    """An application the patient finished `ago` seconds ago (decided then, unless EXPIRE…)."""
    return sandboxes.carecredit.app.seed_application(
        merchant_number=location.merchant_number, reference=f"ref-{n}-{last_name}", requested_amount=Decimal("2500.00"),
        last_name=last_name, created_at=timezone.now().timestamp() - ago, decision_delay=0,
    )["application_id"]


def lender_requests(sandboxes):
    return [(r["method"], r["path"]) for r in sandboxes.carecredit.app.request_log() if r["path"] != "/v1/oauth2/token"]


@committing
def test_one_listing_per_merchant_moves_every_decided_case(sandboxes, location, coordinator, tasks):
    cases = {}
    for n, surname in enumerate(["Thompson"] * 4 + ["Decline-Parker"] * 4 + ["Expire-Brown"] * 4):
        app_id = lender_application(sandboxes, location, surname, n=n)
        cases[waiting_case(location, coordinator, app_id, n=n).pk] = surname

    assert services.poll_lender_decisions(location.pk) == "moved 8"

    states = dict(FinancedCase.objects.values_list("pk", "state"))
    expected = {"Thompson": CaseState.APPROVED, "Decline-Parker": CaseState.DECLINED, "Expire-Brown": CaseState.APPLICATION_SENT}
    assert {pk: states[pk] for pk in cases} == {pk: expected[surname] for pk, surname in cases.items()}
    assert lender_requests(sandboxes) == [("GET", "/v1/applications")]  # 12 cases, one request
    assert tasks.names().count("financing.write_arrangement") == 4
    location.refresh_from_db()
    assert location.lender_polled_until is not None and location.lender_poll_lease_until is None

    # The next interval: nothing changed since the watermark (bar the overlap), nothing moves.
    assert services.poll_lender_decisions(location.pk) == "moved 0"
    assert lender_requests(sandboxes) == [("GET", "/v1/applications")] * 2


def test_pages_are_followed_to_the_end(sandboxes, location, coordinator, tasks, monkeypatch):
    monkeypatch.setattr(carecredit_bridge.client, "DECISION_PAGE_SIZE", 5)
    for n in range(12):
        waiting_case(location, coordinator, lender_application(sandboxes, location, "Decline-Parker", n=n), n=n)

    assert services.poll_lender_decisions(location.pk) == "moved 12"
    assert FinancedCase.objects.filter(state=CaseState.DECLINED).count() == 12
    assert lender_requests(sandboxes) == [("GET", "/v1/applications")] * 3


def test_a_decision_that_beat_its_case_to_the_database_is_caught_by_the_overlap(sandboxes, location, coordinator, tasks):
    # Another case keeps the merchant on the poll list.
    waiting_case(location, coordinator, lender_application(sandboxes, location, "Expire-Brown", n=1), n=1)
    # Approved at the lender a moment ago, while its case was still recording the id.
    racing_app = lender_application(sandboxes, location, "Thompson", ago=5, n=2)
    racing = waiting_case(location, coordinator, "", state=CaseState.CAPTURED, n=2)
    assert services.poll_lender_decisions(location.pk) == "moved 0"  # the listing showed it; no case knew it

    FinancedCase.objects.filter(pk=racing.pk).update(
        state=CaseState.APPLICATION_SENT, application_id=racing_app, application_sent_at=timezone.now()
    )
    # The watermark is past the approval now, but each listing re-reads the overlap.
    assert services.poll_lender_decisions(location.pk) == "moved 1"
    assert FinancedCase.objects.get(pk=racing.pk).state == CaseState.APPROVED


def test_beat_fans_out_one_task_per_merchant_and_no_lookup_per_case(sandboxes, template, location, coordinator, tasks):
    other = make_location(template, sandboxes, code="north", merchant_number="5348120000000002")
    idle = make_location(template, sandboxes, code="south", merchant_number="5348120000000003")
    for n, site in enumerate([location, location, other]):
        waiting_case(site, coordinator, lender_application(sandboxes, site, "Expire-Brown", n=n), n=n)

    assert financing_tasks.poll_decisions.run() == 2
    assert sorted((t.name, t.args[0]) for t in tasks.queue) == sorted(
        [("financing.poll_lender_decisions", location.pk), ("financing.poll_lender_decisions", other.pk)]
    )
    assert idle.pk not in [t.args[0] for t in tasks.queue]  # nothing waits there: not asked


def test_a_merchant_already_being_polled_is_not_polled_twice(sandboxes, location, coordinator, tasks):
    waiting_case(location, coordinator, lender_application(sandboxes, location, "Thompson"))
    Location.objects.filter(pk=location.pk).update(lender_poll_lease_until=timezone.now() + timedelta(seconds=60))

    assert services.poll_lender_decisions(location.pk) == "skipped"
    assert lender_requests(sandboxes) == []


@committing
def test_a_lender_that_will_not_list_is_asked_case_by_case(sandboxes, location, coordinator, tasks):
    cases = [waiting_case(location, coordinator, lender_application(sandboxes, location, "Thompson", n=n), n=n) for n in range(3)]
    sandboxes.carecredit_fault(method="GET", path_prefix="/v1/applications", mode="error", status=403, count=1)

    assert services.poll_lender_decisions(location.pk) == "listing_refused"
    assert sorted((t.name, t.args[0]) for t in tasks.queue) == sorted(("financing.refresh_decision", c.pk) for c in cases)
    ran = tasks.drain()
    assert [result for name, result in ran if name == "financing.refresh_decision"] == ["approved"] * 3


def test_a_failed_listing_keeps_the_watermark_for_the_next_poll(sandboxes, location, coordinator, tasks):
    waiting_case(location, coordinator, lender_application(sandboxes, location, "Thompson"))
    sandboxes.carecredit_fault(method="GET", path_prefix="/v1/applications", mode="error", status=503, count=1)

    assert services.poll_lender_decisions(location.pk) == "lookup_failed"
    location.refresh_from_db()
    assert location.lender_polled_until is None and location.lender_poll_lease_until is None
    assert services.poll_lender_decisions(location.pk) == "moved 1"
