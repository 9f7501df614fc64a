"""What billing staff do to a case from the console: resume, retry, cancel, resend a
confirmation, compare a shadow case again (recording a correction is `corrections`).

Each goes through `audit.begin(actor)`: the admin's log gets one entry against the case,
and every history row the action writes is credited to the person, at the action's moment.
"""

import logging

from django.db import transaction
from django.utils import timezone

from .. import display, messages
from ..models import WAITING_FOR_LENDER, CaseState, FinancedCase, Location, PaymentArrangement, Refund, ShadowComparison, WriteStatus
from .arrangement import agreement_request, compare_with_hand_entered
from . import refunds, states
from .audit import begin
from .leases import locked
from .states import InvalidTransition, enqueue_step, step_description, step_for, transition, written

log = logging.getLogger(__name__)


def resume_case(case_id: int, *, actor=None) -> FinancedCase:
    """Send a needs_attention case back to the step it stopped at (after its cause is fixed)."""
    action = begin(actor)
    with transaction.atomic():
        case = locked(case_id)
        if case.state != CaseState.NEEDS_ATTENTION:
            raise InvalidTransition(f"{case.reference} is {case.get_state_display().lower()}, not waiting for attention.")
        target = case.resume_state or CaseState.CAPTURED
        action.attribute(case)
        if target in (CaseState.APPROVED, CaseState.PURCHASED):
            # A fixed promotion or template must be recomputed unless something was written
            # (the CareCredit schedule; the in-house remainder, in the posting step).
            for stale in PaymentArrangement.objects.filter(case=case, write_status__in=[WriteStatus.PENDING, WriteStatus.FAILED]):
                action.attribute(stale, "Computed again when the case resumes")
                stale.delete()
        transition(case, target, reason=f"Resumed by {actor}" if actor else "Resumed")
        if target in WAITING_FOR_LENDER:
            enqueue_step(case)  # ask the lender now rather than at the next poll
        action.log(case, f"Resumed the case: back to {case.get_state_display().lower()}")
    return case


def cancel_case(case_id: int, *, reason: str, actor=None) -> FinancedCase:
    """Stop a case for good, and tell its coordinator what was (or was not) written to the PMS.

    Refused while a worker is on the case's step: a write under way could land after the
    cancellation, and the coordinator would be told something untrue.
    """
    # A purchase charged today and not posted yet is voided first (a partner call, outside
    # the row lock; the case is leased meanwhile); any other charged purchase must be
    # refunded in full before the case can be cancelled (services/refunds.py).
    voided = refunds.void_before_cancel(case_id)
    action = begin(actor)
    with transaction.atomic():
        case = locked(case_id)
        if case.lease_until and case.lease_until > timezone.now():
            raise InvalidTransition(f"{case.reference}: a worker is on this step right now; look again in a minute.")
        if blocker := refunds.cancel_blocker(case):
            raise InvalidTransition(blocker)
        action.attribute(case)
        transition(case, CaseState.CANCELLED, reason=reason or "Cancelled")
        messages.queue_cancelled(case, by=action.person)
        voided_text = f" (the {case.location.lender_name} purchase was voided)" if voided else ""
        action.log(case, f"Cancelled the case{voided_text}: {reason or 'no reason given'}")
    return case


def refund_rest_and_cancel(case_id: int, *, why: str, actor=None) -> FinancedCase:
    """The one click: refund what is left of the purchase (at once, not queued), then cancel.
    RefundError when the refund is not through yet (it carries on by itself; cancel then)."""
    case = FinancedCase.objects.select_related("location").get(pk=case_id)
    if CaseState.CANCELLED not in states.ALLOWED_TRANSITIONS[case.state]:
        raise refunds.RefundError(f"{case.reference} is {case.get_state_display().lower()}: it cannot be cancelled. Refund it instead.")
    purchase = refunds.charged_purchase(case)
    if purchase is not None and refunds.left_to_refund(purchase) > 0:
        refund = refunds.request_refund(case_id, amount=refunds.left_to_refund(purchase), why=why, actor=actor, run_now=True)
        if refund.status != Refund.Status.REFUNDED:
            raise refunds.RefundError(
                f"The refund of {display.money(refund.amount)} is not through yet ({refund.get_status_display().lower()}"
                f"{': ' + refund.failure if refund.failure else ''}). Cancel once it shows refunded."
            )
    return cancel_case(case_id, reason=why, actor=actor)


def retry_step(case_id: int, *, actor=None) -> FinancedCase:
    """Run the current step of a working-state case now instead of at its next backoff.

    The step's own claim still guards it (a live lease, the attempt cap), so a retry can
    never run a step twice at once.
    """
    action = begin(actor)
    with transaction.atomic():
        case = locked(case_id)
        if case.state == CaseState.NEEDS_ATTENTION:
            raise InvalidTransition(f"{case.reference} needs attention: fix its cause, then resume it.")
        if not step_for(case):
            raise InvalidTransition(f"{case.reference} is {case.get_state_display().lower()}: there is no step to retry.")
        if case.location.mode == Location.Mode.PAUSED:
            raise InvalidTransition(f"{case.reference}: location {case.location.code} is paused.")
        if case.lease_until and case.lease_until > timezone.now():
            raise InvalidTransition(f"{case.reference}: a worker is on this step right now; look again in a minute.")
        case.next_attempt_at = None
        action.attribute(case, "Step retried from the billing console")
        case.save(update_fields=["next_attempt_at"])  # a history row: who asked, and when
        enqueue_step(case)
        action.log(case, f"Retried the current step now: {_step(case)}")
    log.info("case %s: step retried by user %s", case.reference, getattr(actor, "pk", None))
    return case


def _step(case: FinancedCase) -> str:
    if case.state in WAITING_FOR_LENDER:
        return f"asking {case.location.lender_name} for the decision"
    description = step_description(case)
    return description[0].lower() + description[1:]


def resend_confirmation(case_id: int, *, actor=None) -> str:
    """Tell the coordinator the outcome again (approved or declined), through notifications."""
    action = begin(actor)
    with transaction.atomic():
        case = FinancedCase.objects.select_related("location", "location__template", "coordinator").get(pk=case_id)
        if case.coordinator is None:
            raise InvalidTransition(f"{case.reference} has no coordinator to tell.")
        # A new key per resend: the notification records de-duplicate on it, and a resend is
        # a deliberate second message, not a redelivery. The action's stamp in it lets the
        # timeline credit these messages to the person who asked for them.
        suffix = f":resend:{action.stamp}"
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
        what = messages.TEMPLATE_LABELS[f"case_{sent}"]
        action.log(case, f"Resent the {what} to the coordinator, {case.coordinator.get_username()}")
    log.info("case %s: %s confirmation resent by user %s", case.reference, sent, getattr(actor, "pk", None))
    return sent


def compare_shadow(case_id: int, *, actor=None) -> ShadowComparison:
    """Compare a shadow case's computed arrangement with the guarantor's agreement in the PMS
    again (staff often enter theirs after Chairside has computed)."""
    action = begin(actor)
    case = FinancedCase.objects.select_related("location").get(pk=case_id)
    arrangement = PaymentArrangement.objects.filter(case=case, write_status=WriteStatus.SHADOW).first()
    if arrangement is None:
        raise InvalidTransition(f"{case.reference} was not computed in shadow mode: there is nothing to compare.")
    with transaction.atomic():
        comparison = compare_with_hand_entered(case, agreement_request(case, arrangement), attribute=action.attribute)
        action.log(case, f"Compared again with {case.location.pms_name}: {comparison.get_outcome_display()}")
    return comparison
