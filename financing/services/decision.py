"""Step 3, the decision: from a verified webhook or the poller, applied once, whatever
the order and number of times it arrives."""

import logging
from dataclasses import asdict
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import partners, reasons
from ..models import WAITING_FOR_LENDER, CaseState, Decision, FinancedCase, InboundEvent, related_or_none
from ..ports import DecisionStatus, LenderDecision, Offer, PartnerError, PromotionKind
from .leases import locked
from .states import transition

log = logging.getLogger(__name__)


def refresh_decision(case_id: int) -> str:
    """Ask the lender for the decision (beat poll, webhook fallback). Read-only at the lender."""
    case = FinancedCase.objects.select_related("location").filter(pk=case_id).first()
    if case is None or case.state not in WAITING_FOR_LENDER:
        return "skipped"
    FinancedCase.objects.filter(pk=case_id).update(last_polled_at=timezone.now())
    try:
        decision = partners.lender_for(case.location).get_decision(case.application_id)
    except PartnerError as exc:
        # The next poll asks again; expiry bounds how long a case can wait.
        FinancedCase.objects.filter(pk=case_id).update(last_error=f"Decision lookup failed: {exc}")
        log.warning("case %s: decision lookup failed: %s", case.reference, exc)
        return "lookup_failed"
    return apply_decision(case_id, decision)


def apply_decision(case_id: int, decision: LenderDecision) -> str:
    """Record what the lender decided and move the case on. Safe to call any number of times."""
    with transaction.atomic(savepoint=False):
        case = locked(case_id)
        if case.state not in WAITING_FOR_LENDER:
            return "ignored"
        lender = partners.lender_name(case.location)
        problem = _unstorable_amounts(decision)
        if problem:
            # A lender bug, not a decision: stopping here keeps it out of the ledger (and a
            # value the column cannot hold would fail the write, again at every poll).
            transition(case, CaseState.NEEDS_ATTENTION, reason=reasons.unrecordable_decision(lender, problem))
            return "needs_attention"
        _store_decision(case, decision)
        status = decision.status
        if status == DecisionStatus.APPROVED:
            case.decided_at = decision.decided_at or timezone.now()
            transition(case, CaseState.APPROVED, update_fields=["decided_at"])
            return "approved"
        if status == DecisionStatus.DECLINED:
            case.decided_at = decision.decided_at or timezone.now()
            transition(case, CaseState.DECLINED, reason=reasons.declined(lender), update_fields=["decided_at"])
            return "declined"
        if status == DecisionStatus.EXPIRED:
            transition(case, CaseState.EXPIRED, reason=reasons.lender_expired(lender))
            return "expired"
        if status in (DecisionStatus.PENDING, DecisionStatus.REFERRED):
            if case.state != CaseState.AWAITING_DECISION:
                reason = reasons.referred(lender) if status == DecisionStatus.REFERRED else ""
                transition(case, CaseState.AWAITING_DECISION, reason=reason)
            return status.value
        if status == DecisionStatus.UNKNOWN:
            # An unknown raw status never moves a case; it is kept for the billing team.
            log.warning("case %s: unrecognised lender status kept, case not moved", case.reference)
        return "waiting"


def _unstorable_amounts(decision: LenderDecision) -> str:
    """What in the decision's amounts does not fit Decision's columns (whole cents, 10 digits)."""
    problems = []
    for name in ("requested_amount", "approved_amount", "credit_limit"):
        value = getattr(decision, name)
        if value is None:
            continue
        if not value.is_finite() or value != value.quantize(Decimal("0.01")) or abs(value) >= Decimal("100000000"):
            problems.append(f"{name.replace('_', ' ')} {value}")
    return "; ".join(problems)


def _store_decision(case: FinancedCase, decision: LenderDecision):
    values = {
        "status": decision.status.value,
        "raw_status": decision.raw_status[:64],
        "requested_amount": decision.requested_amount,
        "approved_amount": decision.approved_amount,
        "credit_limit": decision.credit_limit,
        "offers": [offer_json(o) for o in decision.offers],
        "decided_at": decision.decided_at,
        "expires_on": decision.expires_on,
    }
    existing = related_or_none(case, "decision")
    if existing is None:
        Decision.objects.create(case=case, **values)
    elif any(getattr(existing, k) != v for k, v in values.items()):
        for k, v in values.items():
            setattr(existing, k, v)
        existing.save()


def offer_json(offer: Offer) -> dict:
    data = asdict(offer)
    data["kind"] = offer.kind.value
    data["apr"] = f"{offer.apr:.2f}"
    data["min_amount"] = f"{offer.min_amount:.2f}"
    return data


def offer_from_json(data: dict) -> Offer:
    return Offer(
        code=data["code"],
        kind=PromotionKind(data["kind"]),
        months=int(data["months"]),
        apr=Decimal(data["apr"]),
        min_amount=Decimal(data["min_amount"]),
    )


def case_for_application(application_id: str) -> FinancedCase | None:
    if not application_id:
        return None
    return FinancedCase.objects.select_related("location").filter(application_id=application_id).first()


def accept_lender_event(
    *, provider: str, event_id: str, application_id: str, decision: LenderDecision | None, case: FinancedCase | None = None
) -> str:
    """A verified webhook: record the event id and apply the re-fetched decision, atomically.

    `case` is the one with that application id if the caller has found it already (the
    webhook has, to re-fetch its decision). Returns "duplicate" for an event id already
    acted on, "unknown_application" when no case has that application id (acknowledged,
    nothing changes).
    """
    case = case or case_for_application(application_id)
    try:
        with transaction.atomic():
            InboundEvent.objects.create(
                provider=provider, event_id=event_id, application_id=application_id, case=case
            )
            if case is None:
                return "unknown_application"
            if decision is None:
                return "recorded"
            return apply_decision(case.pk, decision)
    except IntegrityError:
        return "duplicate"
