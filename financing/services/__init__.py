"""Every state change of a financed case happens in this package, and only here.

Split along the case's life:

- `states`: the allowed transitions, the step for each state, what follows a transition;
- `leases`: how a step claims a case, finishes it, hands it to a human or retries it later;
- one module per step: `capture`, `application`, `decision`, `arrangement` (with shadow
  mode's comparison), `ledger_note`; `production`: the wait for posted treatment before the
  arrangement, at a PMS that writes a plan only over posted production;
- `staff`: what billing staff do from the console (`corrections`: recording a fix made
  in the PMS; `audit`: the one helper that credits each action to its person);
  `casework`: how they share out the work (assignment, internal notes, shadow reviews);
  `sweeps`: what beat does.

The names below are the public surface (`financing.services.capture_case`); the modules'
own helpers are imported from the module.
"""

from ..scoping import cases_for, locations_for
from .application import send_application
from .arrangement import compare_with_hand_entered, write_arrangement
from .capture import IntakeError, capture_case
from .casework import CaseworkError, add_note, assign_case, mark_shadow_reviewed, unassign_case
from .decision import accept_lender_event, apply_decision, case_for_application, refresh_decision
from .leases import CASE_RELATED, LeaseLost, claim, locked, retry_later
from .ledger_note import post_ledger_note
from .posting import post_payment
from .purchase import charge_now, charge_purchase, expire_unused_approvals
from .production import cases_awaiting_production, check_posted_production
from .audit import case_content_type
from .corrections import CorrectionError, describe_correction, record_correction
from .refunds import RefundError, request_refund
from .staff import cancel_case, refund_rest_and_cancel, compare_shadow, resend_confirmation, resume_case, retry_step
from .states import ALLOWED_TRANSITIONS, STEP_FOR_STATE, InvalidTransition, enqueue_step, step_for, transition
from .sweeps import cases_to_poll, expire_stale, locations_to_poll, poll_lender_decisions, redrive, stuck_cases

__all__ = [
    "ALLOWED_TRANSITIONS", "CASE_RELATED", "STEP_FOR_STATE", "CaseworkError", "CorrectionError", "IntakeError",
    "InvalidTransition", "LeaseLost", "RefundError", "refund_rest_and_cancel", "request_refund", "accept_lender_event", "add_note", "apply_decision", "assign_case", "cancel_case",
    "capture_case", "charge_now", "charge_purchase", "expire_unused_approvals", "post_payment", "case_for_application", "case_content_type", "cases_awaiting_production", "cases_for", "cases_to_poll",
    "check_posted_production", "claim", "compare_shadow",
    "compare_with_hand_entered", "describe_correction", "enqueue_step", "expire_stale", "locations_for", "locations_to_poll",
    "locked", "mark_shadow_reviewed", "poll_lender_decisions", "post_ledger_note", "record_correction",
    "redrive", "refresh_decision", "resend_confirmation", "resume_case", "retry_later", "retry_step", "send_application",
    "step_for", "stuck_cases", "transition", "unassign_case", "write_arrangement",
]
