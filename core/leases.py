"""The lease: a record a worker is working on carries a `…_until` time; past it, the
worker is presumed dead and another may take the record over.

Both the case steps (financing) and the deliveries (notifications) claim a record with a
lease, and the beat sweepers look for records whose lease ran out.
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


def task_lease_seconds() -> int:
    """A lease that outlives any one task: longer than the hard time limit, so a live
    worker always finishes (or is killed) before its record can be taken over."""
    return settings.CELERY_TASK_TIME_LIMIT + 10
