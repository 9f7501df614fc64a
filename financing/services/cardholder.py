"""What a case takes from the patient's pre-screen, and the existing cardholder's shortcut.

At capture the case remembers the patient's latest pre-screen at the location
(`remember_prescreen`), if it still counts: screened within PRESCREEN_RESULT_DAYS, and a
pre-qualification not past its own expiry. The case page shows it, and the dashboard
compares the acceptance of pre-qualified patients with the rest's.

The shortcut: a patient the pre-screen found to be an existing cardholder, whose available
credit covers the amount to finance (the plan total less the down payment), needs no
application. The application step asks the lender to confirm the card takes the amount
(`confirm_cardholder`, a write kept once per case reference: a lost answer is sent again with
the same reference and returns the first confirmation) and, approved, the case goes straight
to APPROVED with the lender's decision: the arrangement follows as for any approval. The
card not taking the amount (insufficient credit), or no account found for the patient, sends
the case down the normal application path in the same step: the patient is not declined.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .. import display, partners, reasons
from ..models import SCREENED_RESULTS, CaseState, FinancedCase, Prescreen, PrescreenResult
from ..ports import CardholderRequest, DecisionStatus, NotFoundError, PermanentPartnerError
from .decision import _store_decision, _unstorable_amounts
from .leases import finish, needs_attention

log = logging.getLogger(__name__)


def remember_prescreen(case: FinancedCase, now=None):
    """Copy the patient's pre-screen onto the case being captured, if one still counts."""
    now = now or timezone.now()
    row = (
        Prescreen.objects.filter(
            location=case.location,
            patient_id=case.patient_id,
            result__in=SCREENED_RESULTS,
            screened_at__gte=now - timedelta(days=settings.PRESCREEN_RESULT_DAYS),
        )
        .order_by("-screened_at", "-pk")
        .first()
    )
    today = now.astimezone(display.zone_of(case.location)).date()
    if row is None or (row.result == PrescreenResult.PREQUALIFIED and row.expires_on and row.expires_on < today):
        return
    case.prescreen_outcome = row.result
    case.prescreen_amount = row.amount
    case.prescreen_expires_on = row.expires_on
    case.prescreened_at = row.screened_at


def covers(case: FinancedCase, amount) -> bool:
    """Whether the case's pre-screen found a cardholder whose available credit covers `amount`."""
    return (
        case.prescreen_outcome == PrescreenResult.EXISTING_CARDHOLDER
        and case.prescreen_amount is not None
        and case.prescreen_amount >= amount
    )


def approve_on_card(case: FinancedCase, token: str, patient, amount) -> str | None:
    """The application step's shortcut for an existing cardholder (`covers` said so).

    Returns "approved" (the case moved on), "needs_attention", or None: no shortcut, go on
    with the application. A transient error (and an ambiguous write) is raised for the step
    to retry: the same reference finds the same confirmation.
    """
    location = case.location
    lender_name = partners.lender_name(location)
    try:
        confirmation = partners.lender_for(location).confirm_cardholder(
            CardholderRequest(
                merchant_number=location.merchant_number,
                reference=case.reference,
                requested_amount=amount,
                first_name=patient.first_name,
                last_name=patient.last_name,
                birth_date=patient.birth_date,
                address=patient.address,
            )
        )
    except NotImplementedError:
        return None
    except NotFoundError:
        log.info("case %s: %s found no cardholder account; sending the application", case.reference, lender_name)
        return None
    except PermanentPartnerError as exc:
        # Asking for credit on the patient's behalf was refused, as an application can be.
        needs_attention(case.pk, token, reasons.application_refused(f"{lender_name} refused the cardholder confirmation: {exc}"))
        return "needs_attention"
    decision = confirmation.decision
    if decision.status == DecisionStatus.DECLINED:
        log.info("case %s: the card cannot take the amount (%s); sending the application", case.reference, decision.raw_status[:64])
        return None
    # An answer that is not a clear approval, or one whose amounts cannot be kept, is a
    # decision Chairside cannot record: never guessed into an approval.
    problem = _unstorable_amounts(decision)
    if decision.status != DecisionStatus.APPROVED:
        problem = f"cardholder confirmation status {decision.raw_status[:64]!r}"
    elif problem or decision.approved_amount is None:
        problem = f"cardholder confirmation {problem or 'without an approved amount'}"
    if problem:
        needs_attention(case.pk, token, reasons.unrecordable_decision(lender_name, problem))
        return "needs_attention"
    last4 = confirmation.account_last4 if confirmation.account_last4.isdigit() else ""
    with transaction.atomic():
        # The decision and the transition commit together; the transition queues the
        # arrangement step after the commit.
        approved = finish(
            case.pk,
            token,
            CaseState.CAPTURED,
            CaseState.APPROVED,
            reason=reasons.approved_on_card(lender_name, last4[-4:], decision.approved_amount),
            application_id=decision.application_id[:64],
            decided_at=decision.decided_at or timezone.now(),
            cardholder_account_last4=last4[-4:],
            guarantor_id=case.guarantor_id,
            patient_short_name=case.patient_short_name,
            guarantor_short_name=case.guarantor_short_name,
            surname_token=case.surname_token,
            procedures=case.procedures,
            plan_total=case.plan_total,
        )
        _store_decision(approved, decision)
    log.info("case %s: approved on an existing cardholder's card (confirmation %s)", case.reference, decision.application_id)
    return "approved"
