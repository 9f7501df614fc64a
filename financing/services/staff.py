"""What billing staff do to a case from the console: resume, retry, cancel, resend a
confirmation, compare a shadow case again (recording a correction is `corrections`). Each
is audited with the person who did it."""

import logging

from django.db import transaction
from django.utils import timezone

from .. import messages
from ..models import WAITING_FOR_LENDER, CaseState, FinancedCase, Location, PaymentArrangement, ShadowComparison, WriteStatus
from .arrangement import agreement_request, compare_with_hand_entered
from .leases import locked
from .states import STEP_FOR_STATE, InvalidTransition, enqueue_step, transition, written

log = logging.getLogger(__name__)


def resume_case(case_id: int, *, actor=None) -> FinancedCase:
    """Send a needs_attention case back to the step it stopped at (after its cause is fixed)."""
    with transaction.atomic():
        case = locked(case_id)
        if case.state != CaseState.NEEDS_ATTENTION:
            raise InvalidTransition(f"{case.reference} is {case.get_state_display().lower()}, not waiting for attention.")
        target = case.resume_state or CaseState.CAPTURED
        attribute(case, actor)
        if target == CaseState.APPROVED:
            # A fixed promotion or template must be recomputed unless something was written.
            PaymentArrangement.objects.filter(case=case, write_status__in=[WriteStatus.PENDING, WriteStatus.FAILED]).delete()
        transition(case, target, reason=f"Resumed by {actor}" if actor else "Resumed")
        if target in WAITING_FOR_LENDER:
            enqueue_step(case)  # ask the lender now rather than at the next poll
    return case


def cancel_case(case_id: int, *, reason: str, actor=None) -> FinancedCase:
    with transaction.atomic():
        case = locked(case_id)
        attribute(case, actor)
        transition(case, CaseState.CANCELLED, reason=reason or "Cancelled")
    return case


def attribute(instance, actor, why: str = ""):
    """Name the person behind the next history row (outside a request the middleware can't)."""
    if getattr(actor, "pk", None):
        instance._history_user = actor
    if why:
        instance._change_reason = why[:100]  # simple-history's column width


def retry_step(case_id: int, *, actor=None) -> FinancedCase:
    """Run the current step of a working-state case now instead of at its next backoff.

    The step's own claim still guards it (a live lease, the attempt cap), so a retry can
    never run a step twice at once.
    """
    with transaction.atomic():
        case = locked(case_id)
        if case.state == CaseState.NEEDS_ATTENTION:
            raise InvalidTransition(f"{case.reference} needs attention: fix its cause, then resume it.")
        if case.state not in STEP_FOR_STATE:
            raise InvalidTransition(f"{case.reference} is {case.get_state_display().lower()}: there is no step to retry.")
        if case.location.mode == Location.Mode.PAUSED:
            raise InvalidTransition(f"{case.reference}: location {case.location.code} is paused.")
        if case.lease_until and case.lease_until > timezone.now():
            raise InvalidTransition(f"{case.reference}: a worker is on this step right now; look again in a minute.")
        case.next_attempt_at = None
        attribute(case, actor, "Step retried from the billing console")
        case.save(update_fields=["next_attempt_at"])  # a history row: who asked, and when
        enqueue_step(case)
    log.info("case %s: step retried by user %s", case.reference, getattr(actor, "pk", None))
    return case


def resend_confirmation(case_id: int, *, actor=None) -> str:
    """Tell the coordinator the outcome again (approved or declined), through notifications."""
    case = FinancedCase.objects.select_related("location", "location__template", "coordinator").get(pk=case_id)
    if case.coordinator is None:
        raise InvalidTransition(f"{case.reference} has no coordinator to tell.")
    # A new key per resend: the notification records de-duplicate on it, and a resend is a
    # deliberate second message, not a redelivery.
    suffix = f":resend:{timezone.now().strftime('%Y%m%d%H%M%S%f')}"
    if case.state == CaseState.COMPLETED and written(case):
        messages.queue_approved(case, key_suffix=suffix)
        sent = "approved"
    elif case.state == CaseState.DECLINED:
        messages.queue_declined(case, key_suffix=suffix)
        sent = "declined"
    else:
        raise InvalidTransition(
            f"{case.reference} is {case.get_state_display().lower()}: only a written or declined case has a confirmation."
        )
    log.info("case %s: %s confirmation resent by user %s", case.reference, sent, getattr(actor, "pk", None))
    return sent


def compare_shadow(case_id: int, *, actor=None) -> ShadowComparison:
    """Compare a shadow case's computed arrangement with the guarantor's agreement in the PMS
    again (staff often enter theirs after Chairside has computed)."""
    case = FinancedCase.objects.select_related("location").get(pk=case_id)
    arrangement = PaymentArrangement.objects.filter(case=case, write_status=WriteStatus.SHADOW).first()
    if arrangement is None:
        raise InvalidTransition(f"{case.reference} was not computed in shadow mode: there is nothing to compare.")
    return compare_with_hand_entered(case, agreement_request(case, arrangement))
