"""The lease: a record a worker is working on carries a `…_until` time and its holder (a
process: core.holders); past that time, or once the holder is certainly gone, another
worker may take the record over.

Both the case steps (financing) and the deliveries (notifications) claim a record with a
lease. The lease is short (CASE_LEASE_SECONDS) because its holder renews it every
LEASE_HEARTBEAT_SECONDS while it works (core.heartbeat): a live step keeps its record
however long it takes (until the task's hard time limit ends it), a dead one lets go of
it within seconds.
"""

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone


def free(field: str, now=None) -> Q:
    """Rows whose lease `field` is not held: never taken, or run out."""
    now = now or timezone.now()
    return Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__lt": now})


def until(seconds: float, now=None):
    return (now or timezone.now()) + timedelta(seconds=seconds)


def lease_seconds() -> int:
    """How long a claim lasts unless its holder renews it: long enough to survive two
    missed heartbeats (settings refuse less than three), short enough that a dead holder's
    record is free again soon."""
    return settings.CASE_LEASE_SECONDS
