"""The stuck-record sweep: records in a working status that nobody is working on (their
message was lost, or their worker died) are found by beat and queued again.

Each record type says which of its rows count as waiting; the shared part is what "waited
too long" means and which rows a sweep may take.
"""

from django.db.models import Q


def overdue(cutoff, *, waiting_since: str) -> Q:
    """Rows due before `cutoff`: waiting since before it with no backoff scheduled, or
    whose backoff ended before it."""
    return Q(next_attempt_at__isnull=True, **{f"{waiting_since}__lt": cutoff}) | Q(next_attempt_at__lt=cutoff)


def oldest_ids(queryset, limit: int) -> list[int]:
    """At most `limit` ids, oldest first: a sweep takes a bounded bite per beat tick."""
    return list(queryset.order_by("pk").values_list("pk", flat=True)[:limit])
