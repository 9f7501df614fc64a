"""Once, and never silently lost: redelivered tasks, a crash between the provider accepting
a message and its record, lost tasks.

The accepted window: a crash after the provider accepted a message and before `sent` is
recorded makes the next delivery send it once more (it cannot know). That is the one
duplicate; a second unanswered hand-off is never followed by a third.
"""

import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from notifications import services
from notifications.models import Channel, Notification
from core import heartbeat, leases
from core.faults import InjectedFault
from notifications.services import Message, queue
from notifications.sms import LocmemBackend

pytestmark = pytest.mark.django_db(transaction=True)


def message(channel, key="case:7:case_approved"):
    return Message(
        dedupe_key=f"{key}:{channel}:1",
        reference="CS-TEST0007",
        channel=channel,
        recipient="coord@example.com" if channel == Channel.EMAIL else "+15555550100",
        template="case_approved",
        subject="Approved: CS-TEST0007",
        body="CS-TEST0007: Ava T. is approved by CareCredit. Book the treatment now.",
    )


@pytest.fixture(params=[Channel.EMAIL, Channel.SMS])
def provider(request):
    """The channel under test, with its real provider on loopback; `count()` is how many
    messages that provider has accepted."""
    if request.param == Channel.EMAIL:
        smtp = request.getfixturevalue("smtp")
        return request.param, lambda: len(smtp.messages)
    twilio = request.getfixturevalue("twilio")
    return request.param, lambda: len(twilio.messages)


def lease_runs_out(notification):
    Notification.objects.filter(pk=notification.pk).update(sending_until=timezone.now() - timedelta(seconds=1))


def test_a_crash_after_the_provider_accepted_costs_exactly_one_duplicate(provider, settings, tasks, failures):
    channel, accepted = provider
    notification = queue(message(channel))
    tasks.queue.clear()  # we play the broker by hand below

    settings.CHAIRSIDE_FAULT_POINTS = ["after_provider_accepted"]
    with pytest.raises(InjectedFault):
        services.deliver(notification.pk)  # the worker dies here: accepted, not recorded
    notification.refresh_from_db()
    assert notification.status == Notification.Status.SENDING and notification.sent_at is None
    assert accepted() == 1

    # The broker redelivers at once: the lease is still live, so nothing is sent; a check
    # is scheduled for when it runs out.
    settings.CHAIRSIDE_FAULT_POINTS = []
    assert services.deliver(notification.pk) == "busy"
    [check] = tasks.queue
    assert check.name == "notifications.send" and check.args == [notification.pk]
    assert leases.lease_seconds() - 5 < check.countdown <= leases.lease_seconds() + 1
    assert accepted() == 1

    lease_runs_out(notification)
    assert services.deliver(notification.pk) == "sent"
    notification.refresh_from_db()
    assert notification.status == Notification.Status.SENT
    assert (notification.attempts, notification.unknown_outcomes) == (2, 1)
    assert accepted() == 2  # the one duplicate

    # Any further redelivery, or the sweeper, sends nothing.
    assert services.deliver(notification.pk) == "skipped"
    assert services.stuck() == []
    assert accepted() == 2
    assert failures == []


def a_dead_holder(settings) -> str:
    """A process of this host that has ended, as a lease holder."""
    ran = subprocess.run(
        [sys.executable, "-c", "from core import holders; print(holders.me())"],
        cwd=settings.BASE_DIR, capture_output=True, text=True, check=True, timeout=30,
    )
    return ran.stdout.strip()


def test_a_hand_off_whose_worker_died_is_handed_back_at_once_and_sent_once_more(provider, settings, tasks, failures):
    channel, accepted = provider
    notification = queue(message(channel))
    tasks.queue.clear()
    settings.CHAIRSIDE_FAULT_POINTS = ["after_provider_accepted"]
    with pytest.raises(InjectedFault):
        services.deliver(notification.pk)  # accepted, not recorded: then its process died
    settings.CHAIRSIDE_FAULT_POINTS = []
    heartbeat.release_thread()
    Notification.objects.filter(pk=notification.pk).update(sending_holder=a_dead_holder(settings))

    # The next heartbeat of any worker on this host hands it back, long before the lease
    # would have run out.
    assert heartbeat.beat() == (0, 1)
    assert [(t.name, t.args, t.countdown) for t in tasks.queue] == [("notifications.send", [notification.pk], None)]
    tasks.drain()
    notification.refresh_from_db()
    assert notification.status == Notification.Status.SENT
    assert (notification.attempts, notification.unknown_outcomes) == (2, 1)
    assert accepted() == 2  # the one duplicate, as after any crash in that window
    assert heartbeat.beat() == (0, 0) and failures == []


def test_a_second_crash_is_not_followed_by_a_third_send(provider, settings, tasks, failures):
    channel, accepted = provider
    notification = queue(message(channel))
    tasks.queue.clear()
    settings.CHAIRSIDE_FAULT_POINTS = ["after_provider_accepted"]
    with pytest.raises(InjectedFault):
        services.deliver(notification.pk)
    lease_runs_out(notification)
    with pytest.raises(InjectedFault):
        services.deliver(notification.pk)
    assert accepted() == 2
    lease_runs_out(notification)

    assert services.deliver(notification.pk) == "failed"
    notification.refresh_from_db()
    assert notification.status == Notification.Status.FAILED
    assert notification.unknown_outcomes == 2 and notification.attempts == 2
    assert notification.error.startswith("Not sent again: two hand-offs to the provider ended without an answer")
    assert accepted() == 2
    assert failures == [notification.pk]  # recorded and announced, not silently dropped


def test_a_redelivered_or_duplicated_task_sends_once(tasks):
    notification = queue(message(Channel.SMS))
    assert services.deliver(notification.pk) == "sent"
    assert services.deliver(notification.pk) == "skipped"
    tasks.drain()  # the original task, delivered after the duplicate
    assert len(LocmemBackend.outbox) == 1


def test_a_resumed_case_queuing_the_same_key_sends_nothing_more(tasks):
    first = queue(message(Channel.SMS))
    tasks.drain()
    again = queue(message(Channel.SMS))
    assert again.pk == first.pk and tasks.queue == []
    assert len(LocmemBackend.outbox) == 1


def test_the_sweeper_finds_lost_and_abandoned_deliveries_only(tasks, empty_queues):
    now = timezone.now()
    lost = queue(message(Channel.SMS, key="lost"))
    abandoned = queue(message(Channel.SMS, key="abandoned"))
    backing_off = queue(message(Channel.SMS, key="backing-off"))
    overdue = queue(message(Channel.SMS, key="overdue"))
    in_flight = queue(message(Channel.SMS, key="in-flight"))
    fresh = queue(message(Channel.SMS, key="fresh"))
    done = queue(message(Channel.SMS, key="done"))
    tasks.queue.clear()  # every one of these tasks was lost
    minute_ago = now - timedelta(minutes=1)
    Notification.objects.exclude(pk=fresh.pk).update(created_at=minute_ago)
    Notification.objects.filter(pk=abandoned.pk).update(status="sending", sending_until=now - timedelta(seconds=1))
    Notification.objects.filter(pk=in_flight.pk).update(status="sending", sending_until=now + timedelta(seconds=60))
    Notification.objects.filter(pk=backing_off.pk).update(next_attempt_at=now + timedelta(seconds=60))
    Notification.objects.filter(pk=overdue.pk).update(next_attempt_at=now - timedelta(minutes=1))
    Notification.objects.filter(pk=done.pk).update(status="sent")

    assert services.stuck(now) == [lost.pk, abandoned.pk, overdue.pk]

    from notifications.tasks import redrive_notifications

    assert redrive_notifications.run() == 3
    assert [(t.name, t.args) for t in tasks.queue] == [("notifications.send", [n.pk]) for n in (lost, abandoned, overdue)]


def test_resend_makes_a_fresh_copy_only_once_the_original_is_done(tasks):
    original = queue(message(Channel.SMS))
    assert services.resend(original.pk) is None  # still on its way
    tasks.drain()
    copy = services.resend(original.pk)
    again = services.resend(original.pk)
    assert copy.dedupe_key == original.dedupe_key + ":resend:1"
    assert again.dedupe_key == original.dedupe_key + ":resend:2"
    assert (copy.recipient, copy.body, copy.reference) == (original.recipient, original.body, original.reference)
    tasks.drain()
    assert len(LocmemBackend.outbox) == 3


def test_recipients_are_encrypted_at_rest(tasks):
    from django.db import connection

    notification = queue(message(Channel.SMS))
    with connection.cursor() as cursor:
        cursor.execute("SELECT recipient FROM notifications_notification WHERE id = %s", [notification.pk])
        [(stored,)] = cursor.fetchall()
    assert "+15555550100" not in stored and stored.startswith("gAAAA")
    assert Notification.objects.get(pk=notification.pk).recipient == "+15555550100"
