"""What beat does for cases: expire the ones the lender never decided, poll the lender for
waiting ones, and re-drive working ones whose message was lost."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Min, Q
from django.utils import timezone

from config.broker import sweep_cutoffs
from core import leases, sweeps
from core.queueing import enqueue_on_commit

from .. import partners, reasons
from ..models import WAITING_FOR_LENDER, CaseState, FinancedCase, Location, Recording
from ..ports import PartnerError, PermanentPartnerError
from .decision import apply_decision
from .leases import locked
from .states import PURCHASE_STEP, STEP_FOR_STATE, enqueue_step, step_for, transition

log = logging.getLogger(__name__)


def expire_stale(now=None) -> int:
    """Cases with no decision CASE_EXPIRY_DAYS after the application went out expire."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.CASE_EXPIRY_DAYS)
    expired = 0
    stale = FinancedCase.objects.filter(state__in=WAITING_FOR_LENDER, application_sent_at__lt=cutoff).values_list("pk", flat=True)
    for case_id in list(stale[:1000]):
        with transaction.atomic():
            case = locked(case_id)
            if case.state in WAITING_FOR_LENDER:
                transition(case, CaseState.EXPIRED, reason=reasons.no_decision(partners.lender_name(case.location), settings.CASE_EXPIRY_DAYS))
                expired += 1
    return expired


# --- beat --------------------------------------------------------------------------------------


def cases_to_poll(now=None, limit: int = 1000, location_ids=None) -> list[int]:
    """Waiting cases due for a lookup of their own (lenders that cannot list changes)."""
    now = now or timezone.now()
    due = now - timedelta(seconds=settings.DECISION_POLL_SECONDS * 0.8)
    cases = FinancedCase.objects.filter(state__in=WAITING_FOR_LENDER)
    if location_ids is not None:
        cases = cases.filter(location_id__in=location_ids)
    return list(
        cases.filter(Q(last_polled_at__isnull=True) | Q(last_polled_at__lt=due))
        .exclude(location__mode=Location.Mode.PAUSED)
        .order_by("last_polled_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )


def locations_to_poll() -> tuple[list[int], list[int]]:
    """Locations with cases waiting on the lender: (listed per merchant, polled per case)."""
    waiting = FinancedCase.objects.filter(state__in=WAITING_FOR_LENDER).values("location_id")
    listed, per_case = [], []
    for location in (
        Location.objects.filter(pk__in=waiting).exclude(mode=Location.Mode.PAUSED).only("pk", "lender_kind").order_by("pk")
    ):
        (listed if partners.lender_lists_changes(location) else per_case).append(location.pk)
    return listed, per_case


def poll_lender_decisions(location_id: int) -> str:
    """Beat, one merchant: apply every decision that changed since the last listing.

    One paged request per merchant and interval instead of one per waiting case, so 10,000
    waiting cases cost a handful of requests. A lease keeps two polls of one merchant from
    overlapping; the watermark moves only after a complete listing, and each listing
    re-reads DECISION_POLL_OVERLAP_SECONDS before it (applying a decision twice is a no-op).
    """
    now = timezone.now()
    claimed = (
        Location.objects.filter(pk=location_id)
        .exclude(mode=Location.Mode.PAUSED)
        .filter(leases.free("lender_poll_lease_until", now))
        .update(lender_poll_lease_until=leases.until(settings.CELERY_TASK_TIME_LIMIT + 30, now))
    )
    if not claimed:
        return "skipped"
    try:
        return _poll_lender(Location.objects.get(pk=location_id))
    finally:
        Location.objects.filter(pk=location_id).update(lender_poll_lease_until=None)


def _poll_lender(location: Location) -> str:
    waiting = FinancedCase.objects.filter(location=location, state__in=WAITING_FOR_LENDER).aggregate(
        count=Count("pk"), oldest=Min("application_sent_at")
    )
    if not waiting["count"]:
        return "nothing_waiting"
    # Nothing before the oldest waiting application matters, nor what an earlier complete
    # listing already showed.
    since = waiting["oldest"] or timezone.now() - timedelta(days=settings.CASE_EXPIRY_DAYS)
    if location.lender_polled_until and location.lender_polled_until > since:
        since = location.lender_polled_until
    since -= timedelta(seconds=settings.DECISION_POLL_OVERLAP_SECONDS)
    lender = partners.lender_for(location)
    cursor, as_of, moved = None, None, 0
    while True:
        try:
            page = lender.list_changed_decisions(location.merchant_number, since, cursor)
        except PermanentPartnerError as exc:
            # The lender will not list (an old API version, a permission): ask case by case.
            log.warning("location %s: the lender refused the decision listing (%s); polling case by case", location.code, exc)
            for case_id in cases_to_poll(location_ids=[location.pk]):
                enqueue_on_commit(STEP_FOR_STATE[CaseState.AWAITING_DECISION], case_id)
            return "listing_refused"
        except PartnerError as exc:  # transient, or our own limiter: the next poll asks again
            log.warning("location %s: decision listing failed (%s); the next poll asks again", location.code, exc)
            return "lookup_failed"
        as_of = as_of or page.as_of
        ids = [decision.application_id for decision in page.decisions]
        waiting = dict(
            FinancedCase.objects.filter(location=location, state__in=WAITING_FOR_LENDER, application_id__in=ids)
            .values_list("application_id", "pk")
        )
        for decision in page.decisions:
            case_id = waiting.get(decision.application_id)
            if case_id is not None and apply_decision(case_id, decision) not in ("ignored", "waiting"):
                moved += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    Location.objects.filter(pk=location.pk).update(lender_polled_until=as_of)
    log.info("location %s: decision listing applied, %s case(s) moved", location.code, moved)
    return f"moved {moved}"


def redrive(case_id: int):
    """Queue the step of a case again (the beat sweeper, the lease heartbeat).

    A case not due yet (backing off, or settling a write whose worker died) is queued for
    when it is due: a message before then would find it not due and do nothing.
    """
    case = FinancedCase.objects.filter(pk=case_id).first()
    if case is not None and step_for(case):
        wait = (case.next_attempt_at - timezone.now()).total_seconds() if case.next_attempt_at else 0
        with transaction.atomic():
            enqueue_step(case, countdown=wait if wait > 0 else None)


def message_grace_seconds() -> int:
    """How long a case that just entered a working state is left to its own message before
    the sweeper counts that message lost: half a sweep interval (30 s by default)."""
    return max(5, settings.SWEEP_SECONDS // 2)


def stuck_cases(now=None, limit: int = 500) -> list[int]:
    """Cases in a working state that nobody is working on: their message was lost.

    Not while their step's queue still holds messages (their message is most likely
    waiting there), unless they are older than SWEEP_BUSY_QUEUE_SECONDS: see
    `config.broker.sweep_cutoffs`.
    """
    now = now or timezone.now()
    working = [CaseState.CAPTURED, CaseState.APPROVED, CaseState.ARRANGEMENT_WRITTEN, CaseState.PURCHASED, CaseState.POSTED]
    task_for = {state: STEP_FOR_STATE[state] for state in working}
    cutoffs = sweep_cutoffs([*task_for.values(), PURCHASE_STEP], now=now, grace_seconds=message_grace_seconds())
    overdue = Q()
    for state, task_name in task_for.items():
        which = Q(state=state)
        if state == CaseState.APPROVED:
            # An approved case's step depends on how it records CareCredit (states.step_for).
            overdue |= which & Q(recording=Recording.PAYMENT) & sweeps.overdue(cutoffs[PURCHASE_STEP], waiting_since="state_changed_at")
            which &= ~Q(recording=Recording.PAYMENT)
        overdue |= which & sweeps.overdue(cutoffs[task_name], waiting_since="state_changed_at")
    unattended = FinancedCase.objects.filter(overdue).filter(leases.free("lease_until", now))
    return sweeps.oldest_ids(unattended.exclude(location__mode=Location.Mode.PAUSED), limit)
