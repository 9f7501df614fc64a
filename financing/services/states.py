"""The case's state machine: which transitions are allowed, which step moves a case on
from each state, and what follows a transition (the next step queued, or a message)."""

import logging

from django.utils import timezone

from core.queueing import enqueue_on_commit

from .. import messages, partners
from ..models import WAITING_FOR_LENDER, CaseState, FinancedCase, Recording, WriteStatus, related_or_none

log = logging.getLogger(__name__)

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    # Straight to APPROVED: an existing cardholder approved on their card, no application
    # (services/cardholder.py).
    CaseState.CAPTURED: frozenset(
        {CaseState.APPLICATION_SENT, CaseState.APPROVED, CaseState.NEEDS_ATTENTION, CaseState.CANCELLED}
    ),
    CaseState.APPLICATION_SENT: frozenset(
        {
            CaseState.AWAITING_DECISION,
            CaseState.APPROVED,
            CaseState.DECLINED,
            CaseState.EXPIRED,
            CaseState.NEEDS_ATTENTION,
            CaseState.CANCELLED,
        }
    ),
    CaseState.AWAITING_DECISION: frozenset(
        {CaseState.APPROVED, CaseState.DECLINED, CaseState.EXPIRED, CaseState.NEEDS_ATTENTION, CaseState.CANCELLED}
    ),
    # To PURCHASED where the case records CareCredit as a payment; to EXPIRED when the
    # approval lapses unused before the purchase.
    CaseState.APPROVED: frozenset(
        {
            CaseState.ARRANGEMENT_WRITTEN,
            CaseState.AWAITING_PRODUCTION,
            CaseState.PURCHASED,
            CaseState.COMPLETED,
            CaseState.EXPIRED,
            CaseState.NEEDS_ATTENTION,
            CaseState.CANCELLED,
        }
    ),
    # Back to APPROVED (and its step) once the PMS shows the procedures posted.
    CaseState.AWAITING_PRODUCTION: frozenset(
        {CaseState.APPROVED, CaseState.EXPIRED, CaseState.NEEDS_ATTENTION, CaseState.CANCELLED}
    ),
    CaseState.ARRANGEMENT_WRITTEN: frozenset({CaseState.COMPLETED, CaseState.NEEDS_ATTENTION}),
    # Charged: cancelled only once the purchase is voided or refunded (services check it).
    CaseState.PURCHASED: frozenset({CaseState.POSTED, CaseState.NEEDS_ATTENTION, CaseState.CANCELLED}),
    CaseState.POSTED: frozenset({CaseState.COMPLETED, CaseState.NEEDS_ATTENTION}),
    CaseState.NEEDS_ATTENTION: frozenset(
        {
            CaseState.CAPTURED,
            CaseState.APPLICATION_SENT,
            CaseState.AWAITING_DECISION,
            CaseState.APPROVED,
            CaseState.AWAITING_PRODUCTION,
            CaseState.ARRANGEMENT_WRITTEN,
            CaseState.PURCHASED,
            CaseState.POSTED,
            CaseState.CANCELLED,
        }
    ),
    CaseState.COMPLETED: frozenset(),
    CaseState.DECLINED: frozenset(),
    CaseState.EXPIRED: frozenset(),
    CaseState.CANCELLED: frozenset(),
}

# The task (by its Celery name) that moves a case on from each working state. APPROVED's
# depends on how the case records CareCredit: `step_for` is the one to ask about a case.
STEP_FOR_STATE = {
    CaseState.CAPTURED: "financing.send_application",
    CaseState.APPLICATION_SENT: "financing.refresh_decision",
    CaseState.AWAITING_DECISION: "financing.refresh_decision",
    CaseState.APPROVED: "financing.write_arrangement",
    CaseState.ARRANGEMENT_WRITTEN: "financing.post_ledger_note",
    CaseState.PURCHASED: "financing.post_payment",
    CaseState.POSTED: "financing.post_ledger_note",
}
# Recording.PAYMENT: an approved case is charged (the purchase) instead of written.
PURCHASE_STEP = "financing.charge_purchase"
STEP_TASKS = frozenset(STEP_FOR_STATE.values()) | {PURCHASE_STEP}


def step_for(case: FinancedCase) -> str | None:
    """The task that moves this case on from its state (None: no step, e.g. a wait)."""
    if case.state == CaseState.APPROVED and case.recording == Recording.PAYMENT:
        return PURCHASE_STEP
    return STEP_FOR_STATE.get(case.state)


def step_description(case: FinancedCase) -> str:
    """What the step of the case's state does, in the words of the location's partners."""
    lender, pms = partners.lender_name(case.location), partners.pms_name(case.location)
    if case.state == CaseState.APPROVED and case.recording == Recording.PAYMENT:
        return f"Charging the purchase to the patient's {lender} account"
    return {
        CaseState.CAPTURED: f"Sending the {lender} application",
        CaseState.APPROVED: f"Writing the payment agreement to {pms}",
        CaseState.AWAITING_PRODUCTION: f"Checking {pms} for the posted treatment",
        CaseState.ARRANGEMENT_WRITTEN: f"Posting the ledger note to {pms}",
        CaseState.PURCHASED: f"Posting the {lender} payment and merchant fee to {pms}",
        CaseState.POSTED: f"Posting the ledger note to {pms}",
    }[case.state]


class InvalidTransition(Exception):
    pass


def transition(case: FinancedCase, new_state: str, *, reason: str = "", update_fields: list[str] | None = None):
    """Change the state of a row the caller has locked, and save it (one history row)."""
    if new_state not in ALLOWED_TRANSITIONS[case.state]:
        raise InvalidTransition(f"{case.reference}: {case.state} → {new_state} is not allowed")
    if new_state == CaseState.NEEDS_ATTENTION:
        case.resume_state = case.state
    case.state = new_state
    case.state_reason = reason
    case.state_changed_at = timezone.now()
    case.step_attempts = 0
    case.lease_token = ""
    case.lease_until = None
    case.next_attempt_at = None
    if new_state != CaseState.NEEDS_ATTENTION:
        case.last_error = ""
    fields = {"state", "state_reason", "resume_state", "state_changed_at", "step_attempts", "lease_token"}
    fields |= {"lease_until", "next_attempt_at", "last_error"} | set(update_fields or [])
    case.save(update_fields=sorted(fields))
    log.info("case %s → %s", case.reference, new_state)
    if step_for(case) and new_state not in WAITING_FOR_LENDER:
        enqueue_step(case)  # waiting states are moved on by webhooks and the beat poller
    elif new_state == CaseState.NEEDS_ATTENTION:
        messages.queue_needs_attention(case)
    elif new_state == CaseState.DECLINED:
        messages.queue_declined(case)
    elif new_state == CaseState.COMPLETED and written(case):
        messages.queue_approved(case)


def written(case: FinancedCase) -> bool:
    """Whether the case put its record in the PMS: the arrangement, or (Recording.PAYMENT) the
    payment and merchant fee (case.posted_at is set with them)."""
    if case.recording == Recording.PAYMENT:
        return case.posted_at is not None
    arrangement = related_or_none(case, "arrangement")
    return arrangement is not None and arrangement.write_status == WriteStatus.WRITTEN


def enqueue_step(case: FinancedCase, *, countdown: float | None = None):
    """Queue the step of the case's state once the caller's transaction commits (if the
    broker is down, the beat sweeper re-drives the case: see sweeps.stuck_cases)."""
    enqueue_on_commit(step_for(case), case.pk, countdown=countdown)
