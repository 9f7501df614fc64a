"""Leases on a case: how a step claims it, finishes it, hands it to a human, or puts it
back to be retried later.

The shape of a step (send the application, write the arrangement, post the note):

1. `claim` takes a lease on the case with one compare-and-set UPDATE, only if the case is
   still in the state the step expects and nobody else holds a live lease. A redelivered
   or duplicate task finds the case moved on or leased and does nothing. The claim also
   counts the attempt *before* any side effect, so a step that kills its worker every time
   still ends (in needs_attention) instead of looping. It records this process as the
   holder; the process's heartbeat renews the lease while the step runs, and hands the
   case back at once if this process dies (core.heartbeat).
2. The partner calls happen outside any database transaction (SQLite serialises writers,
   and no row lock should wait on a network).
3. Right before a partner write, `before_write` proves the lease is still ours.
4. `finish` re-locks the row, checks the lease is still ours, transitions, saves with
   `update_fields` (which writes the history row) and enqueues the next step on commit.

Partner writes are made exactly once by lookup-before-write on the case's marker: an
ambiguous outcome (timeout, dropped connection, a worker that died mid-write) is recorded
as `unknown` and settled by a later attempt's lookup, never by a blind retry, and never
before the partner had AMBIGUOUS_WRITE_SETTLE_SECONDS to commit what it was sent.
"""

import logging
import random
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core import heartbeat, holders, leases
from core.backoff import backoff_seconds

from .. import reasons
from ..models import TERMINAL_STATES, CaseState, FinancedCase, Location
from ..ports import AmbiguousWriteError, RateLimited, TransientPartnerError
from .states import enqueue_step, step_description, transition

log = logging.getLogger(__name__)

CASE_LEASE = "case"  # the heartbeat's name for a case's lease (financing.apps)

# What the steps read besides the case row, joined into the one query that fetches it
# (instead of a query per relation, per step).
CASE_RELATED = (
    "location",
    "location__template",
    "location__template_override",
    "coordinator",
    "decision",
    "arrangement",
    "ledger_note",
)


def locked(case_id: int) -> FinancedCase:
    # of=self: lock the case row only. The joined location and template rows are shared by
    # every case of a location and must not serialise them (nor can a FOR UPDATE lock the
    # nullable side of the outer joins).
    return FinancedCase.objects.select_for_update(of=("self",)).select_related(*CASE_RELATED).get(pk=case_id)


def claim(case_id: int, expected_state: str | tuple[str, ...]) -> tuple[FinancedCase, str] | None:
    """Lease the case for its step if it is in `expected_state` (or one of them), free, due
    and at a location not paused; None otherwise (a duplicate message, another worker)."""
    now = timezone.now()
    token = uuid.uuid4().hex
    states = (expected_state,) if isinstance(expected_state, str) else tuple(expected_state)
    claimed = (
        FinancedCase.objects.filter(pk=case_id, state__in=states)
        .filter(leases.free("lease_until", now))
        # A duplicate or redelivered message must not cut a backoff short; the message that
        # was scheduled for it (or the sweeper) comes back. A second of slack for timers.
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + timedelta(seconds=1)))
        .exclude(location__mode=Location.Mode.PAUSED)
        .update(
            lease_token=token,
            lease_holder=holders.me(),
            lease_until=leases.until(leases.lease_seconds(), now),
            step_attempts=F("step_attempts") + 1,
            next_attempt_at=None,
        )
    )
    if claimed != 1:
        return None
    heartbeat.hold(CASE_LEASE, case_id)
    case = FinancedCase.objects.select_related(*CASE_RELATED).get(pk=case_id)
    if case.step_attempts > settings.STEP_MAX_ATTEMPTS:
        # Each earlier claim died without finishing (worker killed, hard time limit):
        # retrying the same poison forever helps nobody.
        needs_attention(case.pk, token, reasons.step_interrupted(step_description(case), case.step_attempts - 1))
        return None
    return case, token


class LeaseLost(Exception):
    """Another worker took the case over (our lease expired): abandon quietly."""


def before_write(case: FinancedCase, token: str):
    """Right before a partner write that only a lookup can settle: prove the case is still
    ours (else LeaseLost: nothing is sent), renew the lease, and make the case not due for
    AMBIGUOUS_WRITE_SETTLE_SECONDS.

    Call it in the transaction that marks the write `unknown`. Should this process die
    during the write, whoever takes the case over claims it only once the partner had the
    settle time to commit what it was sent (the claim waits for next_attempt_at), so its
    lookup finds that write instead of making a second one. Every normal outcome of the
    step (its transition, retry_later, wait_for_slot) sets next_attempt_at again.
    """
    now = timezone.now()
    ours = FinancedCase.objects.filter(pk=case.pk, lease_token=token).update(
        lease_holder=holders.me(),
        lease_until=leases.until(leases.lease_seconds(), now),
        next_attempt_at=now + timedelta(seconds=settings.AMBIGUOUS_WRITE_SETTLE_SECONDS),
    )
    if not ours:
        raise LeaseLost(case.reference)


def finish(case_id: int, token: str, expected_state: str, new_state: str, *, reason: str = "", **fields):
    # savepoint=False: inside a caller's block (the step's outcome and its transition commit
    # together) a failure here must undo both, so a savepoint would only cost two statements.
    with transaction.atomic(savepoint=False):
        case = locked(case_id)
        if case.lease_token != token or case.state != expected_state:
            raise LeaseLost(case.reference)
        for name, value in fields.items():
            setattr(case, name, value)
        transition(case, new_state, reason=reason, update_fields=list(fields))
    return case


def needs_attention(case_id: int, token: str | None, reason: str):
    with transaction.atomic(savepoint=False):
        case = locked(case_id)
        if token is not None and case.lease_token != token:
            return
        if case.state in TERMINAL_STATES or case.state == CaseState.NEEDS_ATTENTION:
            return
        transition(case, CaseState.NEEDS_ATTENTION, reason=reason)


def retry_later(case: FinancedCase, token: str, error: TransientPartnerError) -> str:
    """Back off exponentially with jitter; past the attempt cap, hand the case to a human."""
    if isinstance(error, RateLimited):
        return wait_for_slot(case, token, error)
    step = step_description(case)
    if case.step_attempts >= settings.STEP_MAX_ATTEMPTS:
        needs_attention(case.pk, token, reasons.step_failing(step, case.step_attempts, error))
        return "needs_attention"
    delay = backoff_seconds(case.step_attempts)
    if error.retry_after:
        delay = max(delay, min(error.retry_after, settings.RETRY_MAX_SECONDS))
    if isinstance(error, AmbiguousWriteError):
        # The partner may still commit the request we gave up on: look only once it had time.
        delay = max(delay, min(settings.AMBIGUOUS_WRITE_SETTLE_SECONDS, settings.RETRY_MAX_SECONDS))
    with transaction.atomic():
        current = locked(case.pk)
        if current.lease_token != token:
            return "lease_lost"
        current.next_attempt_at = timezone.now() + timedelta(seconds=delay)
        current.last_error = str(error)
        current.lease_token = ""
        current.lease_until = None
        # update() on purpose: a retry is bookkeeping, not an audited change of the case.
        FinancedCase.objects.filter(pk=current.pk).update(
            next_attempt_at=current.next_attempt_at, last_error=current.last_error, lease_token="", lease_until=None
        )
        enqueue_step(current, countdown=delay)
    log.warning("case %s: %s failed (attempt %s), retrying in %.1fs", case.reference, step, case.step_attempts, delay)
    return "retry"


def wait_for_slot(case: FinancedCase, token: str, error: RateLimited) -> str:
    """Our own rate limiter held a call back: come back when the connection has room.

    Nothing reached the partner and nothing failed, so the attempt the claim counted is
    given back: a busy connection delays a case, it never pushes it towards needs_attention.
    (The poison guard in `claim` is unaffected: it is about claims that never got this far.)
    The return is spread over a little more than the wait, so a backlog does not come back
    as one wave.
    """
    wait = error.retry_after or 1.0
    delay = min(settings.RETRY_MAX_SECONDS, wait * random.uniform(1.0, 1.5) + random.uniform(0.0, 1.0))
    with transaction.atomic():
        released = FinancedCase.objects.filter(pk=case.pk, lease_token=token).update(
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            lease_token="",
            lease_until=None,
            step_attempts=F("step_attempts") - 1,
        )
        if not released:
            return "lease_lost"
        enqueue_step(case, countdown=delay)
    log.info("case %s: waiting %.1fs for a free slot on the partner connection", case.reference, delay)
    return "rate_limited"
