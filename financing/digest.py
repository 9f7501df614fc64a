"""The billing members' daily digest: per location, the work of the day as "Needs you today"
counts it (financing.worklist): every kind counted, and the cases that need attention and
those waiting on the lender for more than a day listed (the oldest `worklist.LIST_LIMIT` of
each, then how many more).

Beat calls `queue_daily_digests` once a day; the de-duplication key holds the UTC date, so
a second beat, a redelivered task or a manual rerun the same day sends nothing more. A
member with nothing to act on gets nothing.
"""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from notifications.models import Channel
from notifications.services import Message, queue

from . import worklist
from .messages import _channels, case_url
from .models import Location, Membership


@dataclass
class LocationDigest:
    location: Location
    counts: dict  # kind key → count
    needs_attention: list  # of (case, its admin URL), the oldest first
    waiting: list

    @property
    def more_attention(self) -> int:
        return self.counts["needs_attention"] - len(self.needs_attention)

    @property
    def more_waiting(self) -> int:
        return self.counts["waiting"] - len(self.waiting)


def digest_for(user, now) -> list[LocationDigest]:
    locations = list(
        Location.objects.filter(
            memberships__user=user, memberships__role__in=[Membership.Role.BILLING, Membership.Role.ADMIN]
        ).order_by("name")
    )
    counts = worklist.counts([location.pk for location in locations], now)
    digests = []
    for location in locations:
        if not counts.location_total(location.pk):
            continue
        listed = {
            key: [(item.case, case_url(item.case)) for item in worklist.oldest(key, [location.pk], now)] if counts.of(location.pk, key) else []
            for key in ("needs_attention", "waiting")
        }
        digests.append(
            LocationDigest(
                location=location,
                counts={kind.key: counts.of(location.pk, kind.key) for kind in worklist.KINDS},
                needs_attention=listed["needs_attention"],
                waiting=listed["waiting"],
            )
        )
    return digests


# The kinds the digest counts without listing, as its subject line names them.
COUNTED = (
    ("retrying", "retrying"), ("production_overdue", "treatment long unposted"), ("undelivered", "undelivered"),
    ("shadow", "shadow to review"),
)


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
        totals = {kind.key: sum(d.counts[kind.key] for d in digests) for kind in worklist.KINDS}
        attention, waiting = totals["needs_attention"], totals["waiting"]
        # The other kinds are named only when there is something of them, to keep it short.
        others = [f"{totals[key]} {words}" for key, words in COUNTED if totals[key]]
        context = {
            "digests": digests,
            "attention": attention,
            "waiting": waiting,
            "totals": totals,
            "others": others,
            "day": now.date(),
            "console_url": settings.CHAIRSIDE_PUBLIC_URL + reverse("admin:index"),
        }
        subject = ", ".join([f"Chairside daily: {attention} need attention", f"{waiting} waiting over a day", *others])
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
