"""The billing members' daily digest: per location, once per member per day."""

import itertools
from datetime import timedelta
from decimal import Decimal as D

import pytest
from celery.schedules import crontab
from django.conf import settings as django_settings
from django.utils import timezone

from financing.digest import queue_daily_digests
from financing.models import CaseState, FinancedCase, Membership
from financing.tasks import daily_digest
from notifications.models import Channel, Notification
from tests.conftest import make_location, make_user

pytestmark = pytest.mark.django_db(transaction=True)
_plans = itertools.count(7000)


def make_case(location, state, **fields):
    return FinancedCase.objects.create(
        location=location,
        patient_id="1001",
        treatment_plan_id=str(next(_plans)),
        patient_short_name="Ava T.",
        plan_total=D("2500.00"),
        promotion="deferred_12",
        state=state,
        **fields,
    )


@pytest.fixture
def cases(location, template, sandboxes):
    now = timezone.now()
    north = make_location(template, sandboxes, code="north")
    south = make_location(template, sandboxes, code="south")
    return {
        "now": now,
        "north": north,
        "south": south,
        "stuck": make_case(location, CaseState.NEEDS_ATTENTION),
        "slow": make_case(location, CaseState.AWAITING_DECISION, application_sent_at=now - timedelta(days=2)),
        "fresh": make_case(location, CaseState.AWAITING_DECISION, application_sent_at=now - timedelta(hours=3)),
        "done": make_case(location, CaseState.COMPLETED),
        "north_stuck": make_case(north, CaseState.NEEDS_ATTENTION),
        "south_slow": make_case(south, CaseState.APPLICATION_SENT, application_sent_at=now - timedelta(days=3)),
    }


def test_each_billing_member_gets_their_locations_digest_once_a_day(location, billing, coordinator, cases, tasks):
    central = make_user("central", location, role=Membership.Role.BILLING)  # email and SMS
    Membership.objects.create(user=central, location=cases["north"], role=Membership.Role.ADMIN)
    now = cases["now"]

    assert queue_daily_digests(now) == 2
    day = now.date().isoformat()
    records = {(n.recipient, n.channel): n for n in Notification.objects.filter(template="daily_digest")}
    assert sorted(records) == [
        ("+15555550100", Channel.SMS),
        ("biller@example.com", Channel.EMAIL),
        ("central@example.com", Channel.EMAIL),
    ]
    biller = records[("biller@example.com", Channel.EMAIL)]
    assert biller.dedupe_key == f"digest:{day}:email:{billing.pk}"
    assert biller.subject == "Chairside daily: 1 need attention, 1 waiting over a day"
    assert biller.escalate is False
    body = biller.body
    assert cases["stuck"].reference in body and cases["slow"].reference in body
    for absent in ("fresh", "done", "north_stuck", "south_slow"):
        assert cases[absent].reference not in body
    assert f"/admin/financing/financedcase/{cases['stuck'].pk}/change/" in body
    assert "Ava" not in body  # a digest needs no patient at all

    central_email = records[("central@example.com", Channel.EMAIL)].body
    assert "Main Dental (main)" in central_email and "North Dental (north)" in central_email
    assert cases["north_stuck"].reference in central_email and cases["south_slow"].reference not in central_email
    assert records[("+15555550100", Channel.SMS)].body == (
        "Chairside daily: 2 need attention, 1 waiting >1 day; main: 1/1; north: 1/0. "
        "http://127.0.0.1:9/admin/"  # "Needs you today"
    )
    assert sorted(tasks.names()) == ["notifications.send"] * 3

    # Beat fires again the same UTC day (a second beat, a redelivered task, a manual rerun),
    # at its first or its last moment, whatever the hour now is: nothing more.
    tasks.queue.clear()
    first_moment = now.replace(hour=0, minute=0, second=0, microsecond=0)
    last_moment = now.replace(hour=23, minute=59, second=59, microsecond=999999)
    for same_day in (first_moment, last_moment):
        queue_daily_digests(same_day)
        assert Notification.objects.filter(template="daily_digest").count() == 3, same_day
        assert tasks.queue == [], same_day

    # The next UTC day, from its first moment on, is a new digest.
    queue_daily_digests(last_moment + timedelta(microseconds=1))
    assert Notification.objects.filter(template="daily_digest").count() == 6
    next_day = (now + timedelta(days=1)).date().isoformat()
    assert set(Notification.objects.filter(dedupe_key__startswith=f"digest:{next_day}:").values_list("recipient", flat=True)) == {
        "+15555550100", "biller@example.com", "central@example.com"
    }


def test_a_member_with_nothing_to_act_on_gets_no_digest(location, billing, tasks):
    make_case(location, CaseState.COMPLETED)
    assert queue_daily_digests() == 0
    assert daily_digest.run() == 0
    assert not Notification.objects.exists()
    assert tasks.queue == []


def test_coordinators_get_no_digest(location, coordinator, tasks):
    make_case(location, CaseState.NEEDS_ATTENTION)
    assert queue_daily_digests() == 0
    assert not Notification.objects.exists()


def test_beat_sends_the_digest_once_a_day_at_the_configured_hour():
    entry = django_settings.CELERY_BEAT_SCHEDULE["daily-digest"]
    assert entry["task"] == "financing.daily_digest"
    assert entry["schedule"] == crontab(hour=7, minute=0)
    assert django_settings.CELERY_BEAT_SCHEDULE["redrive-notifications"]["task"] == "notifications.redrive"


def test_the_digest_counts_every_kind_of_the_days_work_per_location_and_only_the_members(location, billing, template, sandboxes, tasks):
    """The same counts as "Needs you today": retrying steps, undelivered confirmations and
    shadow discrepancies nobody reviewed, beside the listed kinds; another location's never."""
    from financing.models import ShadowComparison

    now = timezone.now()
    north = make_location(template, sandboxes, code="north")
    retrying = make_case(location, CaseState.APPROVED, last_error="Dentrix did not answer in time.", step_attempts=2)
    approved = make_case(location, CaseState.COMPLETED)
    confirmation = Notification.objects.create(
        dedupe_key="k1", reference=approved.reference, channel="sms", recipient="+15555550101", template="case_approved", body="b", status="undelivered",
    )
    shadowed = make_case(location, CaseState.COMPLETED)
    ShadowComparison.objects.create(case=shadowed, location=location, outcome="mismatch", compared_at=now, discrepancy_count=1,
                                    discrepancies=[{"field": "down_payment", "chairside": "0.00", "dentrix": "100.00"}])
    reviewed = make_case(location, CaseState.COMPLETED)
    ShadowComparison.objects.create(case=reviewed, location=location, outcome="mismatch", compared_at=now, discrepancy_count=1,
                                    discrepancies=[], reviewed_at=now)
    # North's work is not the biller's: never counted for them.
    make_case(north, CaseState.NEEDS_ATTENTION)
    make_case(north, CaseState.APPROVED, last_error="x")

    assert queue_daily_digests(now) == 1
    email = Notification.objects.get(template="daily_digest")
    assert email.subject == "Chairside daily: 0 need attention, 0 waiting over a day, 1 retrying, 1 undelivered, 1 shadow to review"
    assert ("Needs attention 0, retrying after errors 1, waiting over a day 0, confirmations not delivered 1, "
            "shadow discrepancies to review 1") in email.body
    assert "North" not in email.body and "north" not in email.body
    for case in (retrying, approved, shadowed):
        assert case.reference not in email.body  # counted, not listed: the console has the detail
    assert email.body.endswith("Needs you today: http://127.0.0.1:9/admin/")

    # Once the confirmation is resent and goes out, it no longer counts (tomorrow's digest).
    Notification.objects.create(dedupe_key="k2", reference=approved.reference, channel="sms", recipient="+15555550101",
                                template="case_approved", body="b", status="sent")
    Notification.objects.filter(pk=confirmation.pk).update(created_at=now - timedelta(minutes=5))
    assert queue_daily_digests(now + timedelta(days=1)) == 1
    tomorrow = Notification.objects.filter(template="daily_digest").order_by("-pk").first()
    assert tomorrow.subject == "Chairside daily: 0 need attention, 0 waiting over a day, 1 retrying, 1 shadow to review"


def test_the_digest_lists_the_oldest_and_says_how_many_more(location, billing, tasks, monkeypatch):
    from financing import worklist

    monkeypatch.setattr(worklist.oldest, "__defaults__", (2,))
    now = timezone.now()
    stuck = [make_case(location, CaseState.NEEDS_ATTENTION) for _ in range(3)]
    for age, case in zip((5, 9, 1), stuck):
        FinancedCase.objects.filter(pk=case.pk).update(state_changed_at=now - timedelta(hours=age))
    queue_daily_digests(now)
    body = Notification.objects.get(template="daily_digest").body
    assert body.index(stuck[1].reference) < body.index(stuck[0].reference)  # the oldest first
    assert stuck[2].reference not in body
    assert "  - and 1 more" in body
