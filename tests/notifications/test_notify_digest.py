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
        "http://127.0.0.1:9/admin/financing/financedcase/"
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
