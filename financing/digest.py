"""The billing members' daily digest: per location, the cases that need attention and the
cases waiting on CareCredit for more than a day.

Beat calls `queue_daily_digests` once a day; the de-duplication key holds the UTC date, so
a second beat, a redelivered task or a manual rerun the same day sends nothing more. A
member with nothing to act on gets nothing.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from notifications.models import Channel
from notifications.services import Message, queue

from .messages import _channels, case_url
from .models import WAITING_FOR_LENDER, CaseState, FinancedCase, Location, Membership

WAITING_TOO_LONG = timedelta(days=1)


@dataclass
class LocationDigest:
    location: Location
    needs_attention: list  # of (case, its admin URL)
    waiting: list


def digest_for(user, now) -> list[LocationDigest]:
    locations = Location.objects.filter(
        memberships__user=user, memberships__role__in=[Membership.Role.BILLING, Membership.Role.ADMIN]
    ).order_by("name")
    digests = []
    for location in locations:
        cases = FinancedCase.objects.filter(location=location).order_by("state_changed_at", "pk")
        attention = list(cases.filter(state=CaseState.NEEDS_ATTENTION))
        waiting = list(cases.filter(state__in=WAITING_FOR_LENDER, application_sent_at__lt=now - WAITING_TOO_LONG))
        if attention or waiting:
            digests.append(
                LocationDigest(
                    location=location,
                    needs_attention=[(c, case_url(c)) for c in attention],
                    waiting=[(c, case_url(c)) for c in waiting],
                )
            )
    return digests


def queue_daily_digests(now=None) -> int:
    """Queue today's digest for every billing member with something to act on; returns how
    many members were queued for (again on a rerun: the keys keep it to one send)."""
    now = now or timezone.now()
    day = now.date().isoformat()  # UTC: the beat runs on UTC
    users = get_user_model().objects.filter(
        is_active=True, memberships__role__in=[Membership.Role.BILLING, Membership.Role.ADMIN]
    ).distinct().order_by("pk")
    queued = 0
    for user in users:
        digests = digest_for(user, now)
        if not digests:
            continue
        attention = sum(len(d.needs_attention) for d in digests)
        waiting = sum(len(d.waiting) for d in digests)
        context = {
            "digests": digests,
            "attention": attention,
            "waiting": waiting,
            "day": now.date(),
            "console_url": settings.CHAIRSIDE_PUBLIC_URL + reverse("admin:financing_financedcase_changelist"),
        }
        subject = f"Chairside daily: {attention} need attention, {waiting} waiting over a day"
        for channel, recipient in _channels(user):
            kind = "sms" if channel == Channel.SMS else "txt"
            queue(
                Message(
                    dedupe_key=f"digest:{day}:{channel}:{user.pk}",
                    reference=f"digest-{day}",
                    channel=channel,
                    recipient=recipient,
                    template="daily_digest",
                    subject=subject,
                    body=render_to_string(f"notifications/daily_digest.{kind}", context).strip(),
                    html_body=render_to_string("notifications/daily_digest.html", context) if channel == Channel.EMAIL else "",
                    # The digest is itself for the billing team: nobody else to tell.
                    escalate=False,
                )
            )
        queued += 1
    return queued
