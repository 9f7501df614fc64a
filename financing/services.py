"""Every state change of a financed case happens here, and only here.

The shape of a step (send the application, write the arrangement, post the note):

1. `_claim` takes a lease on the case with one compare-and-set UPDATE, only if the case is
   still in the state the step expects and nobody else holds a live lease. A redelivered
   or duplicate task finds the case moved on or leased and does nothing. The claim also
   counts the attempt *before* any side effect, so a step that kills its worker every time
   still ends (in needs_attention) instead of looping.
2. The partner calls happen outside any database transaction (SQLite serialises writers,
   and no row lock should wait on a network).
3. `_finish` re-locks the row, checks the lease is still ours, transitions, saves with
   `update_fields` (which writes the history row) and enqueues the next step on commit.

Partner writes are made exactly once by lookup-before-write on the case's reference marker:
an ambiguous outcome (timeout, dropped connection) is recorded as `unknown` and settled by
the next attempt's lookup, never by a blind retry.
"""

from __future__ import annotations

import logging
import os
import random
import uuid
from dataclasses import asdict
from datetime import date, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Min, Q
from django.utils import timezone

from config.broker import sweep_cutoffs

from . import messages, partners
from .models import (
    TERMINAL_STATES,
    ArrangementTemplate,
    WAITING_FOR_LENDER,
    CaseState,
    Correction,
    Decision,
    FinancedCase,
    InboundEvent,
    LedgerNote,
    Location,
    PaymentArrangement,
    ShadowComparison,
    WriteStatus,
    effective_template,
    related_or_none,
)
from .ports import (
    AgreementRequest,
    AmbiguousWriteError,
    Applicant,
    ApplicationRequest,
    DecisionStatus,
    LedgerNoteType,
    LenderDecision,
    NotFoundError,
    Offer,
    PartnerError,
    PermanentPartnerError,
    PromotionKind,
    RateLimited,
    TransientPartnerError,
)
from .terms import TermsError, compute_terms

log = logging.getLogger(__name__)

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    CaseState.CAPTURED: frozenset({CaseState.APPLICATION_SENT, CaseState.NEEDS_ATTENTION, CaseState.CANCELLED}),
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
    CaseState.APPROVED: frozenset(
        {CaseState.ARRANGEMENT_WRITTEN, CaseState.COMPLETED, CaseState.NEEDS_ATTENTION, CaseState.CANCELLED}
    ),
    CaseState.ARRANGEMENT_WRITTEN: frozenset({CaseState.COMPLETED, CaseState.NEEDS_ATTENTION}),
    CaseState.NEEDS_ATTENTION: frozenset(
        {
            CaseState.CAPTURED,
            CaseState.APPLICATION_SENT,
            CaseState.AWAITING_DECISION,
            CaseState.APPROVED,
            CaseState.ARRANGEMENT_WRITTEN,
            CaseState.CANCELLED,
        }
    ),
    CaseState.COMPLETED: frozenset(),
    CaseState.DECLINED: frozenset(),
    CaseState.EXPIRED: frozenset(),
    CaseState.CANCELLED: frozenset(),
}

# The task that moves a case on from each working state.
STEP_FOR_STATE = {
    CaseState.CAPTURED: "send_application",
    CaseState.APPLICATION_SENT: "refresh_decision",
    CaseState.AWAITING_DECISION: "refresh_decision",
    CaseState.APPROVED: "write_arrangement",
    CaseState.ARRANGEMENT_WRITTEN: "post_ledger_note",
}
STEP_DESCRIPTIONS = {
    CaseState.CAPTURED: "Sending the CareCredit application",
    CaseState.APPROVED: "Writing the payment agreement to Dentrix",
    CaseState.ARRANGEMENT_WRITTEN: "Posting the ledger note to Dentrix",
}


class InvalidTransition(Exception):
    pass


class IntakeError(Exception):
    """Bad input at intake: field → message, shown to the caller as a 400."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


def money(value: Decimal | None) -> str:
    return "" if value is None else f"${value:,.2f}"


# --- scoping --------------------------------------------------------------------------------


def locations_for(user):
    if user.is_superuser:
        return Location.objects.all()
    return Location.objects.filter(memberships__user=user)


def cases_for(user):
    if user.is_superuser:
        return FinancedCase.objects.all()
    return FinancedCase.objects.filter(location__memberships__user=user)


# --- transitions ------------------------------------------------------------------------------


def _transition(case: FinancedCase, new_state: str, *, reason: str = "", update_fields: list[str] | None = None):
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
    if new_state in STEP_FOR_STATE and new_state not in WAITING_FOR_LENDER:
        enqueue_step(case)  # waiting states are moved on by webhooks and the beat poller
    elif new_state == CaseState.NEEDS_ATTENTION:
        messages.queue_needs_attention(case)
    elif new_state == CaseState.DECLINED:
        messages.queue_declined(case)
    elif new_state == CaseState.COMPLETED and _written(case):
        messages.queue_approved(case)


def _written(case: FinancedCase) -> bool:
    arrangement = related_or_none(case, "arrangement")
    return arrangement is not None and arrangement.write_status == WriteStatus.WRITTEN


def enqueue_step(case: FinancedCase, *, countdown: float | None = None):
    from . import tasks

    task = getattr(tasks, STEP_FOR_STATE[case.state])
    case_id = case.pk
    # robust: the state change is committed whatever the broker says; if it is down, the
    # message is lost and the beat sweeper re-drives the case (stuck_cases), so the caller
    # (an API request, a webhook) must not fail for it.
    transaction.on_commit(lambda: task.apply_async((case_id,), countdown=countdown), robust=True)


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


def _locked(case_id: int) -> FinancedCase:
    # of=self: lock the case row only. The joined location and template rows are shared by
    # every case of a location and must not serialise them (nor can a FOR UPDATE lock the
    # nullable side of the outer joins).
    return FinancedCase.objects.select_for_update(of=("self",)).select_related(*CASE_RELATED).get(pk=case_id)


def _claim(case_id: int, expected_state: str) -> tuple[FinancedCase, str] | None:
    now = timezone.now()
    token = uuid.uuid4().hex
    claimed = (
        FinancedCase.objects.filter(pk=case_id, state=expected_state)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        # A duplicate or redelivered message must not cut a backoff short; the message that
        # was scheduled for it (or the sweeper) comes back. A second of slack for timers.
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + timedelta(seconds=1)))
        .exclude(location__mode=Location.Mode.PAUSED)
        .update(
            lease_token=token,
            lease_until=now + timedelta(seconds=settings.CASE_LEASE_SECONDS),
            step_attempts=F("step_attempts") + 1,
            next_attempt_at=None,
        )
    )
    if claimed != 1:
        return None
    case = FinancedCase.objects.select_related(*CASE_RELATED).get(pk=case_id)
    if case.step_attempts > settings.STEP_MAX_ATTEMPTS:
        # Each earlier claim died without finishing (worker killed, hard time limit):
        # retrying the same poison forever helps nobody.
        _needs_attention(
            case.pk,
            token,
            f"{STEP_DESCRIPTIONS[expected_state]} was interrupted {case.step_attempts - 1} times "
            f"without finishing. Chairside stopped retrying.",
        )
        return None
    return case, token


class LeaseLost(Exception):
    """Another worker took the case over (our lease expired): abandon quietly."""


def _finish(case_id: int, token: str, expected_state: str, new_state: str, *, reason: str = "", **fields):
    # savepoint=False: inside a caller's block (the step's outcome and its transition commit
    # together) a failure here must undo both, so a savepoint would only cost two statements.
    with transaction.atomic(savepoint=False):
        case = _locked(case_id)
        if case.lease_token != token or case.state != expected_state:
            raise LeaseLost(case.reference)
        for name, value in fields.items():
            setattr(case, name, value)
        _transition(case, new_state, reason=reason, update_fields=list(fields))
    return case


def _needs_attention(case_id: int, token: str | None, reason: str):
    with transaction.atomic(savepoint=False):
        case = _locked(case_id)
        if token is not None and case.lease_token != token:
            return
        if case.state in TERMINAL_STATES or case.state == CaseState.NEEDS_ATTENTION:
            return
        _transition(case, CaseState.NEEDS_ATTENTION, reason=reason)


def _retry_later(case: FinancedCase, token: str, error: TransientPartnerError) -> str:
    """Back off exponentially with jitter; past the attempt cap, hand the case to a human."""
    if isinstance(error, RateLimited):
        return _wait_for_slot(case, token, error)
    step = STEP_DESCRIPTIONS[case.state]
    if case.step_attempts >= settings.STEP_MAX_ATTEMPTS:
        _needs_attention(
            case.pk, token, f"{step} failed {case.step_attempts} times; the last error was: {str(error).rstrip('.')}. "
            "Chairside stopped retrying: check the partner, then resume the case."
        )
        return "needs_attention"
    ceiling = min(settings.RETRY_MAX_SECONDS, settings.RETRY_BASE_SECONDS * 2 ** (case.step_attempts - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    if error.retry_after:
        delay = max(delay, min(error.retry_after, settings.RETRY_MAX_SECONDS))
    if isinstance(error, AmbiguousWriteError):
        # The partner may still commit the request we gave up on: look only once it had time.
        delay = max(delay, min(settings.AMBIGUOUS_WRITE_SETTLE_SECONDS, settings.RETRY_MAX_SECONDS))
    with transaction.atomic():
        locked = _locked(case.pk)
        if locked.lease_token != token:
            return "lease_lost"
        locked.next_attempt_at = timezone.now() + timedelta(seconds=delay)
        locked.last_error = str(error)
        locked.lease_token = ""
        locked.lease_until = None
        # update() on purpose: a retry is bookkeeping, not an audited change of the case.
        FinancedCase.objects.filter(pk=locked.pk).update(
            next_attempt_at=locked.next_attempt_at, last_error=locked.last_error, lease_token="", lease_until=None
        )
        enqueue_step(locked, countdown=delay)
    log.warning("case %s: %s failed (attempt %s), retrying in %.1fs", case.reference, step, case.step_attempts, delay)
    return "retry"


def _wait_for_slot(case: FinancedCase, token: str, error: RateLimited) -> str:
    """Our own rate limiter held a call back: come back when the connection has room.

    Nothing reached the partner and nothing failed, so the attempt the claim counted is
    given back: a busy connection delays a case, it never pushes it towards needs_attention.
    (The poison guard in _claim is unaffected: it is about claims that never got this far.)
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


# --- 1. capture -------------------------------------------------------------------------------


def capture_case(
    *,
    location: Location,
    patient_id: str,
    treatment_plan_id: str,
    down_payment: Decimal = Decimal("0.00"),
    promotion: str | None = None,
    actor=None,
    patient_consents_to_messages: bool = False,
) -> FinancedCase:
    """Start a financed case for an accepted treatment plan (the patient's "yes").

    The plan is checked against the PMS now, so a typo is a 400 at the chair, not a
    needs_attention case later. If the PMS cannot be reached, the case is accepted anyway
    and the first step checks the plan.
    """
    if location.mode == Location.Mode.PAUSED:
        raise IntakeError({"location": f"Location {location.code} is paused: Chairside is not taking new cases there."})
    case = FinancedCase(
        location=location,
        coordinator=actor if getattr(actor, "pk", None) else None,
        patient_id=patient_id,
        treatment_plan_id=treatment_plan_id,
        requested_down_payment=down_payment,
        promotion=promotion or effective_template(location).default_promotion,
        patient_consents_to_messages=patient_consents_to_messages,
    )
    try:
        pms = partners.pms_for(location)
        patient = pms.get_patient(patient_id)
        plans = pms.get_treatment_plans(patient_id)
    except NotFoundError:
        raise IntakeError({"patient_id": f"Patient {patient_id} was not found in the practice management system."})
    except TransientPartnerError as exc:
        log.warning("intake for %s: PMS unreachable (%s); the capture step will check the plan", location.code, exc)
    except PermanentPartnerError as exc:
        raise IntakeError({"patient_id": f"The practice management system refused the lookup: {exc}"})
    else:
        problem = _plan_problem(case, plans)
        if problem:
            raise IntakeError({"treatment_plan_id": problem})
        _snapshot(case, patient, _find_plan(plans, treatment_plan_id))
        if case.requested_down_payment >= case.plan_total:
            raise IntakeError(
                {"down_payment": f"The down payment ({money(down_payment)}) covers the whole plan ({money(case.plan_total)}): there is nothing to finance."}
            )
    open_case = (
        FinancedCase.objects.filter(location=location, treatment_plan_id=treatment_plan_id)
        .exclude(state__in=[CaseState.DECLINED, CaseState.EXPIRED, CaseState.CANCELLED])
        .first()
    )
    if open_case:
        raise IntakeError({"treatment_plan_id": f"Treatment plan {treatment_plan_id} already has a financing case ({open_case.reference}, {open_case.get_state_display().lower()})."})
    try:
        with transaction.atomic():
            case.save()
            enqueue_step(case)
    except IntegrityError:
        raise IntakeError({"treatment_plan_id": f"Treatment plan {treatment_plan_id} already has a financing case."})
    log.info("case %s captured at %s", case.reference, location.code)
    return case


def _find_plan(plans, plan_id):
    return next((p for p in plans if p.plan_id == plan_id), None)


def _plan_problem(case: FinancedCase, plans) -> str:
    plan = _find_plan(plans, case.treatment_plan_id)
    if plan is None:
        return f"Treatment plan {case.treatment_plan_id} does not belong to patient {case.patient_id}."
    if plan.status != "accepted":
        return f"Treatment plan {case.treatment_plan_id} is {plan.status}, not accepted: the patient must accept it in Dentrix first."
    if plan.total <= 0:
        return f"Treatment plan {case.treatment_plan_id} has no fees to finance."
    return ""


def _snapshot(case: FinancedCase, patient, plan):
    case.guarantor_id = patient.guarantor_id
    case.patient_short_name = f"{patient.first_name} {patient.last_name[:1]}.".strip()
    case.procedures = [
        {"code": p.code, "tooth": p.tooth, "surface": p.surface, "fee": f"{p.fee:.2f}"} for p in plan.procedures
    ]
    case.plan_total = plan.total


# --- 2. application hand-off ------------------------------------------------------------------


def send_application(case_id: int) -> str:
    claimed = _claim(case_id, CaseState.CAPTURED)
    if claimed is None:
        return "skipped"
    case, token = claimed
    try:
        pms = partners.pms_for(case.location)
        patient = pms.get_patient(case.patient_id)
        plans = pms.get_treatment_plans(case.patient_id)
        problem = _plan_problem(case, plans)
        if problem:
            _needs_attention(case.pk, token, problem)
            return "needs_attention"
        _snapshot(case, patient, _find_plan(plans, case.treatment_plan_id))
        requested = case.plan_total - case.requested_down_payment
        if requested <= 0:
            _needs_attention(case.pk, token, f"The down payment ({money(case.requested_down_payment)}) covers the whole plan ({money(case.plan_total)}): there is nothing to finance.")
            return "needs_attention"
        application = partners.lender_for(case.location).create_application(
            ApplicationRequest(
                merchant_number=case.location.merchant_number,
                reference=case.reference,
                requested_amount=requested,
                applicant=Applicant(
                    first_name=patient.first_name,
                    last_name=patient.last_name,
                    birth_date=patient.birth_date,
                    phone=patient.phone,
                    email=patient.email,
                    address=patient.address,
                ),
                callback_url=partners.lender_callback_url(case.location),
            )
        )
    except TransientPartnerError as exc:
        return _retry_later(case, token, exc)
    except PermanentPartnerError as exc:
        _needs_attention(case.pk, token, f"The application could not be sent: {exc}")
        return "needs_attention"
    with transaction.atomic():  # the apply link is queued with the hand-off, or not at all
        case = _finish(
            case.pk,
            token,
            CaseState.CAPTURED,
            CaseState.APPLICATION_SENT,
            application_id=application.application_id,
            apply_url=application.apply_url,
            application_sent_at=timezone.now(),
            guarantor_id=case.guarantor_id,
            patient_short_name=case.patient_short_name,
            procedures=case.procedures,
            plan_total=case.plan_total,
        )
        messages.queue_patient_apply_link(case, phone=patient.phone, email=patient.email)
    return "sent"


# --- 3. decision ------------------------------------------------------------------------------


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
        case = _locked(case_id)
        if case.state not in WAITING_FOR_LENDER:
            return "ignored"
        problem = _unstorable_amounts(decision)
        if problem:
            # A lender bug, not a decision: stopping here keeps it out of the ledger (and a
            # value the column cannot hold would fail the write, again at every poll).
            _transition(case, CaseState.NEEDS_ATTENTION, reason=f"CareCredit sent a decision Chairside cannot record ({problem}). Check the application with CareCredit, then resume the case.")
            return "needs_attention"
        _store_decision(case, decision)
        status = decision.status
        if status == DecisionStatus.APPROVED:
            case.decided_at = decision.decided_at or timezone.now()
            _transition(case, CaseState.APPROVED, update_fields=["decided_at"])
            return "approved"
        if status == DecisionStatus.DECLINED:
            case.decided_at = decision.decided_at or timezone.now()
            _transition(case, CaseState.DECLINED, reason="CareCredit declined the application.", update_fields=["decided_at"])
            return "declined"
        if status == DecisionStatus.EXPIRED:
            _transition(case, CaseState.EXPIRED, reason="CareCredit reports the application expired.")
            return "expired"
        if status in (DecisionStatus.PENDING, DecisionStatus.REFERRED):
            if case.state != CaseState.AWAITING_DECISION:
                reason = "CareCredit referred the application: the practice may call CareCredit." if status == DecisionStatus.REFERRED else ""
                _transition(case, CaseState.AWAITING_DECISION, reason=reason)
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
        "offers": [_offer_json(o) for o in decision.offers],
        "decided_at": decision.decided_at,
    }
    existing = related_or_none(case, "decision")
    if existing is None:
        Decision.objects.create(case=case, **values)
    elif any(getattr(existing, k) != v for k, v in values.items()):
        for k, v in values.items():
            setattr(existing, k, v)
        existing.save()


def _offer_json(offer: Offer) -> dict:
    data = asdict(offer)
    data["kind"] = offer.kind.value
    data["apr"] = f"{offer.apr:.2f}"
    data["min_amount"] = f"{offer.min_amount:.2f}"
    return data


def _offer_from_json(data: dict) -> Offer:
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


def expire_stale(now=None) -> int:
    """Cases with no decision CASE_EXPIRY_DAYS after the application went out expire."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.CASE_EXPIRY_DAYS)
    expired = 0
    stale = FinancedCase.objects.filter(state__in=WAITING_FOR_LENDER, application_sent_at__lt=cutoff).values_list("pk", flat=True)
    for case_id in list(stale[:1000]):
        with transaction.atomic():
            case = _locked(case_id)
            if case.state in WAITING_FOR_LENDER:
                _transition(case, CaseState.EXPIRED, reason=f"No decision from CareCredit within {settings.CASE_EXPIRY_DAYS} days.")
                expired += 1
    return expired


# --- 4. arrangement ---------------------------------------------------------------------------


def write_arrangement(case_id: int) -> str:
    claimed = _claim(case_id, CaseState.APPROVED)
    if claimed is None:
        return "skipped"
    case, token = claimed
    try:
        arrangement = _prepare_arrangement(case)
    except TermsError as exc:
        _needs_attention(case.pk, token, exc.reason)
        return "needs_attention"
    request = _agreement_request(case, arrangement)
    problems = partners.agreement_problems(case.location, request)
    if problems:
        _save_arrangement(arrangement)  # the billing team sees what Chairside computed
        detail = "; ".join(f"{field}: {message}" for field, message in problems.items())
        _needs_attention(case.pk, token, f"Dentrix would reject this payment agreement ({detail}).")
        return "needs_attention"
    if case.location.mode == Location.Mode.SHADOW:
        arrangement.write_status = WriteStatus.SHADOW
        _save_arrangement(arrangement)
        _compare_with_hand_entered(case, request)
        _finish(case.pk, token, CaseState.APPROVED, CaseState.COMPLETED, reason="Shadow mode: the arrangement was computed, not written.", completed_at=timezone.now())
        return "shadow"
    pms = partners.pms_for(case.location)
    try:
        existing = pms.list_payment_agreements(case.guarantor_id)
        agreement = _find_by_marker(existing, case.marker)
        if agreement is None:
            blocking = [a for a in existing if a.status == "active"]
            if blocking:
                _save_arrangement(arrangement)
                _needs_attention(
                    case.pk, token,
                    f"Guarantor account {case.guarantor_id} already has an active payment agreement "
                    f"(Dentrix id {blocking[0].agreement_id}); Dentrix allows one per account. Close or "
                    "adjust it in Dentrix, then resume this case.",
                )
                return "needs_attention"
            # Recorded (committed) before the POST: if we die mid-request, the next attempt
            # knows the outcome is unknown and must look up (it always does, but the record
            # says why). One commit stores the computed terms and this mark together.
            arrangement.write_status = WriteStatus.UNKNOWN
            arrangement.write_attempts += 1
            _save_arrangement(arrangement)
            fault_point("before_pms_agreement_write")
            agreement = pms.create_payment_agreement(request)
            fault_point("after_pms_agreement_write")
        mismatch = _read_back(pms.list_payment_agreements(case.guarantor_id), agreement.agreement_id, request)
    except TransientPartnerError as exc:
        if arrangement.pk is None:
            _save_arrangement(arrangement)  # the terms stay visible while the case waits
        return _retry_later(case, token, exc)
    except PermanentPartnerError as exc:
        PaymentArrangement.objects.filter(pk=arrangement.pk, write_status=WriteStatus.UNKNOWN).update(write_status=WriteStatus.FAILED)
        _needs_attention(case.pk, token, f"Dentrix refused the payment agreement: {exc}")
        return "needs_attention"
    # The outcome and the case's next state commit together. Should this commit be lost,
    # the arrangement is still UNKNOWN and the next attempt adopts it by its marker.
    now = timezone.now()
    with transaction.atomic():
        if arrangement.pk is None:  # adopted from Dentrix before this database knew of it
            _save_arrangement(arrangement)
        PaymentArrangement.objects.filter(pk=arrangement.pk).update(
            pms_arrangement_id=agreement.agreement_id,
            write_status=WriteStatus.WRITTEN,
            written_at=now,
            verified_at=None if mismatch else now,
        )
        if mismatch:
            _needs_attention(case.pk, token, f"Dentrix stored agreement {agreement.agreement_id} with different terms than Chairside sent ({mismatch}). Check it in Dentrix before resuming.")
            return "needs_attention"
        _finish(case.pk, token, CaseState.APPROVED, CaseState.ARRANGEMENT_WRITTEN, arrangement_written_at=now)
    return "written"


def _prepare_arrangement(case: FinancedCase) -> PaymentArrangement:
    """Compute the terms, unless an earlier attempt may already have written them.

    Returns the stored arrangement, or one with fresh terms that is not saved yet: the
    caller saves it together with its next write status (one commit instead of two).
    """
    existing = related_or_none(case, "arrangement")
    if existing and existing.write_status != WriteStatus.PENDING:
        return existing
    decision = case.decision
    if decision.approved_amount is None:
        raise TermsError("CareCredit approved the application without an approved amount. Check the approval with CareCredit, then resume the case.")
    offers = {o["code"]: o for o in decision.offers}
    if case.promotion not in offers:
        offered = ", ".join(sorted(offers)) or "none"
        raise TermsError(
            f"CareCredit did not offer {case.get_promotion_display()} for this approval (offered: {offered}). "
            "Choose an offered promotion on the case, then resume it."
        )
    template = effective_template(case.location)
    decision_day = timezone.localdate(decision.decided_at or timezone.now(), ZoneInfo(case.location.timezone))
    terms = compute_terms(
        plan_total=case.plan_total,
        requested_down_payment=case.requested_down_payment,
        approved_amount=decision.approved_amount,
        offer=_offer_from_json(offers[case.promotion]),
        decision_date=decision_day,
        first_payment_offset_days=template.first_payment_offset_days,
        first_payment_day_of_month=template.first_payment_day_of_month,
    )
    values = dict(
        marker=case.marker,
        promotion=case.promotion,
        agreement_date=timezone.localdate(timezone.now(), ZoneInfo(case.location.timezone)),
        plan_total=case.plan_total,
        down_payment=terms.down_payment,
        financed_amount=terms.financed_amount,
        recurring_amount=terms.recurring_amount,
        number_of_payments=terms.number_of_payments,
        final_payment=terms.final_payment,
        frequency=terms.frequency,
        first_payment_date=terms.first_payment_date,
        apr=terms.apr,
        total_of_payments=terms.total_of_payments,
        finance_charge=terms.finance_charge,
        schedule=[
            {
                "number": i.number,
                "due_date": i.due_date.isoformat(),
                "amount": f"{i.amount:.2f}",
                "principal": f"{i.principal:.2f}",
                "interest": f"{i.interest:.2f}",
                "balance_after": f"{i.balance_after:.2f}",
            }
            for i in terms.schedule
        ],
        note=f"{case.marker} CareCredit {case.promotion} app {case.application_id}"[:255],
        template_snapshot=template.snapshot(),
    )
    arrangement = existing or PaymentArrangement(case=case)
    for name, value in values.items():
        setattr(arrangement, name, value)
    return arrangement


def _save_arrangement(arrangement: PaymentArrangement):
    # Atomic, so the row and its history row are one commit, not two.
    with transaction.atomic():
        arrangement.save()


def _agreement_request(case: FinancedCase, arrangement: PaymentArrangement) -> AgreementRequest:
    return AgreementRequest(
        guarantor_id=case.guarantor_id,
        agreement_date=arrangement.agreement_date,
        interval=arrangement.frequency,
        total_agreed_amount=arrangement.plan_total,
        down_payment=arrangement.down_payment,
        payment_amount=arrangement.recurring_amount,
        number_of_payments=arrangement.number_of_payments,
        first_payment_due=arrangement.first_payment_date,
        annual_finance_charge_pct=arrangement.apr,
        note=arrangement.note,
    )


def _find_by_marker(records, marker: str):
    ours = [r for r in records if marker in (getattr(r, "note", None) or getattr(r, "text", ""))]
    return ours[0] if ours else None


COMPARED_AGREEMENT_FIELDS = (
    "interval",
    "total_agreed_amount",
    "down_payment",
    "payment_amount",
    "number_of_payments",
    "first_payment_due",
    "annual_finance_charge_pct",
)


def _read_back(agreements, agreement_id: str, request: AgreementRequest) -> str:
    stored = next((a for a in agreements if a.agreement_id == agreement_id), None)
    if stored is None:
        return f"agreement {agreement_id} is missing on read-back"
    diffs = [
        f"{name}: sent {getattr(request, name)}, stored {getattr(stored, name)}"
        for name in COMPARED_AGREEMENT_FIELDS
        if getattr(stored, name) != getattr(request, name)
    ]
    return "; ".join(diffs)


# --- 5. ledger note and confirmation -----------------------------------------------------------


def post_ledger_note(case_id: int) -> str:
    claimed = _claim(case_id, CaseState.ARRANGEMENT_WRITTEN)
    if claimed is None:
        return "skipped"
    case, token = claimed
    note = _prepare_note(case)
    problems = partners.note_problems(case.location, LedgerNoteType(note.note_type), note.text)
    if problems:
        if note.pk is None:
            _save_note(note)  # the billing team sees what Chairside would have posted
        _needs_attention(case.pk, token, "Dentrix would reject the ledger note: " + "; ".join(problems.values()))
        return "needs_attention"
    pms = partners.pms_for(case.location)
    try:
        record = None
        if note.pk is not None and note.write_status != WriteStatus.PENDING:
            # An earlier attempt sent it, or may have: look before writing again. A note
            # that is new or still PENDING was never sent (UNKNOWN is committed before
            # every POST), so it needs no lookup: one partner call saved per case.
            record = _find_by_marker(pms.list_ledger_notes(case.patient_id), case.marker)
        if record is None:
            if note.pk is None:
                note.write_status, note.write_attempts = WriteStatus.UNKNOWN, 1
                _save_note(note)
            else:
                LedgerNote.objects.filter(pk=note.pk).update(write_status=WriteStatus.UNKNOWN, write_attempts=note.write_attempts + 1)
            try:
                record = pms.create_ledger_note(case.patient_id, LedgerNoteType(note.note_type), note.text)
            except RateLimited:
                # Held back by our own limiter: nothing was sent, so the note is still unsent
                # and its next attempt needs no lookup either.
                LedgerNote.objects.filter(pk=note.pk).update(write_status=WriteStatus.PENDING, write_attempts=F("write_attempts") - 1)
                raise
            fault_point("after_pms_note_write")
    except TransientPartnerError as exc:
        return _retry_later(case, token, exc)
    except PermanentPartnerError as exc:
        _needs_attention(case.pk, token, f"Dentrix refused the ledger note: {exc}")
        return "needs_attention"
    # The note's outcome and the case's completion commit together; should this commit be
    # lost, the note is still UNKNOWN and the next attempt finds it by its marker.
    with transaction.atomic():
        LedgerNote.objects.filter(pk=note.pk).update(pms_note_id=record.note_id, write_status=WriteStatus.WRITTEN, written_at=timezone.now())
        _finish(case.pk, token, CaseState.ARRANGEMENT_WRITTEN, CaseState.COMPLETED, completed_at=timezone.now())
    return "completed"


def _save_note(note: LedgerNote):
    try:
        with transaction.atomic():  # the row and its history row: one commit
            note.save()
    except IntegrityError:
        # Another worker made this case's note meanwhile: it holds the case now, not us.
        raise LeaseLost(note.case.reference) from None


def _prepare_note(case: FinancedCase) -> LedgerNote:
    existing = related_or_none(case, "ledger_note")
    if existing:
        return existing
    arrangement = case.arrangement
    template = effective_template(case.location)
    values = {
        "promotion": case.get_promotion_display(),
        "approved_amount": money(case.decision.approved_amount),
        "financed_amount": money(arrangement.financed_amount),
        "number_of_payments": arrangement.number_of_payments,
        "recurring_amount": money(arrangement.recurring_amount),
        "final_payment": money(arrangement.final_payment),
        "first_payment_date": arrangement.first_payment_date.isoformat(),
        "down_payment": money(arrangement.down_payment),
        "apr": f"{arrangement.apr:.2f}%",
        "application_id": case.application_id,
        "reference": case.reference,
        "marker": case.marker,
    }
    try:
        text = template.note_template.format(**values)
    except (KeyError, IndexError, ValueError):
        # A broken template must not block the ledger: fall back to the standard wording.
        text = ArrangementTemplate._meta.get_field("note_template").default.format(**values)
    if case.marker not in text:
        text = f"{text} {case.marker}"
    stamp = timezone.localtime(timezone.now(), ZoneInfo(case.location.timezone)).strftime("%Y-%m-%d %H:%M %Z")
    if template.note_type == LedgerNoteType.BILLING_STATEMENT:
        text = f"CareCredit {arrangement.number_of_payments}x{money(arrangement.recurring_amount)} {case.marker}"
    else:
        text = f"{stamp} {text}"
    # Not saved yet: post_ledger_note saves it with its write status, in one commit.
    return LedgerNote(case=case, note_type=template.note_type, text=text)


# --- people: resume, retry, cancel -----------------------------------------------------------


def resume_case(case_id: int, *, actor=None) -> FinancedCase:
    """Send a needs_attention case back to the step it stopped at (after its cause is fixed)."""
    with transaction.atomic():
        case = _locked(case_id)
        if case.state != CaseState.NEEDS_ATTENTION:
            raise InvalidTransition(f"{case.reference} is {case.get_state_display().lower()}, not waiting for attention.")
        target = case.resume_state or CaseState.CAPTURED
        _attribute(case, actor)
        if target == CaseState.APPROVED:
            # A fixed promotion or template must be recomputed unless something was written.
            PaymentArrangement.objects.filter(case=case, write_status__in=[WriteStatus.PENDING, WriteStatus.FAILED]).delete()
        _transition(case, target, reason=f"Resumed by {actor}" if actor else "Resumed")
        if target in WAITING_FOR_LENDER:
            enqueue_step(case)  # ask the lender now rather than at the next poll
    return case


def cancel_case(case_id: int, *, reason: str, actor=None) -> FinancedCase:
    with transaction.atomic():
        case = _locked(case_id)
        _attribute(case, actor)
        _transition(case, CaseState.CANCELLED, reason=reason or "Cancelled")
    return case


def _attribute(instance, actor, why: str = ""):
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
        case = _locked(case_id)
        if case.state == CaseState.NEEDS_ATTENTION:
            raise InvalidTransition(f"{case.reference} needs attention: fix its cause, then resume it.")
        if case.state not in STEP_FOR_STATE:
            raise InvalidTransition(f"{case.reference} is {case.get_state_display().lower()}: there is no step to retry.")
        if case.location.mode == Location.Mode.PAUSED:
            raise InvalidTransition(f"{case.reference}: location {case.location.code} is paused.")
        if case.lease_until and case.lease_until > timezone.now():
            raise InvalidTransition(f"{case.reference}: a worker is on this step right now; look again in a minute.")
        case.next_attempt_at = None
        _attribute(case, actor, "Step retried from the billing console")
        case.save(update_fields=["next_attempt_at"])  # a history row: who asked, and when
        enqueue_step(case)
    log.info("case %s: step retried by user %s", case.reference, getattr(actor, "pk", None))
    return case


class CorrectionError(IntakeError):
    """A correction that cannot be recorded: field → message."""


def record_correction(case_id: int, *, field: str, after: str, why: str, actor=None) -> Correction:
    """Record a billing-team fix of a written arrangement, and make Chairside's copy match.

    The person has already changed the agreement in Dentrix; this keeps the before, the
    after and the why, audited and counted, so the ledger can be trusted without a spot check.
    """
    why = (why or "").strip()
    if field not in Correction.FIELDS:
        raise CorrectionError({"field": "Choose one of the arrangement's terms to correct."})
    if not why:
        raise CorrectionError({"why": "Say why the arrangement was corrected."})
    new_value = _parse_correction(field, (after or "").strip())
    with transaction.atomic():
        case = _locked(case_id)
        arrangement = PaymentArrangement.objects.select_for_update().filter(case=case).first()
        if arrangement is None or arrangement.write_status != WriteStatus.WRITTEN:
            raise CorrectionError({"field": f"{case.reference} has no payment agreement written to Dentrix to correct."})
        old_value = getattr(arrangement, field)
        if new_value == old_value:
            raise CorrectionError({"after": f"The arrangement already has {field.replace('_', ' ')} {_shown(old_value)}."})
        setattr(arrangement, field, new_value)
        _attribute(arrangement, actor, f"Correction: {why}")
        arrangement.save(update_fields=[field])
        correction = Correction(
            arrangement=arrangement,
            case=case,
            field=field,
            before=_shown(old_value),
            after=_shown(new_value),
            why=why,
            actor=actor if getattr(actor, "pk", None) else None,
        )
        _attribute(correction, actor)
        correction.save()
    log.info("case %s: correction of %s recorded by user %s", case.reference, field, getattr(actor, "pk", None))
    return correction


def _parse_correction(field: str, text: str):
    kind = Correction.FIELDS[field]
    if not text:
        raise CorrectionError({"after": "Enter the value Dentrix now holds."})
    try:
        if kind == "money":
            value = Decimal(text.replace("$", "").replace(",", ""))
            if value < 0 or value != value.quantize(Decimal("0.01")):
                raise ValueError
            return value.quantize(Decimal("0.01"))
        if kind == "percent":
            value = Decimal(text.rstrip("%"))
            if not Decimal("0") <= value <= Decimal("99.99") or value != value.quantize(Decimal("0.01")):
                raise ValueError
            return value.quantize(Decimal("0.01"))
        if kind == "count":
            value = int(text)
            if not 1 <= value <= 120:
                raise ValueError
            return value
        if kind == "date":
            return date.fromisoformat(text)
    except (ArithmeticError, ValueError):
        examples = {"money": "1234.56", "percent": "17.90", "count": "a whole number of payments, 1–120", "date": "YYYY-MM-DD"}
        raise CorrectionError({"after": f"Enter {field.replace('_', ' ')} as {examples[kind]}."})
    if len(text) > 40:
        raise CorrectionError({"after": "At most 40 characters."})
    return text


def _shown(value) -> str:
    if isinstance(value, date):
        return value.isoformat()
    return "" if value is None else str(value)


def resend_confirmation(case_id: int, *, actor=None) -> str:
    """Tell the coordinator the outcome again (approved or declined), through notifications."""
    case = FinancedCase.objects.select_related("location", "location__template", "coordinator").get(pk=case_id)
    if case.coordinator is None:
        raise InvalidTransition(f"{case.reference} has no coordinator to tell.")
    # A new key per resend: the notification records de-duplicate on it, and a resend is a
    # deliberate second message, not a redelivery.
    suffix = f":resend:{timezone.now().strftime('%Y%m%d%H%M%S%f')}"
    if case.state == CaseState.COMPLETED and _written(case):
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


# --- shadow mode: compare with what staff entered by hand ------------------------------------


def compare_shadow(case_id: int, *, actor=None) -> ShadowComparison:
    """Compare a shadow case's computed arrangement with the guarantor's agreement in Dentrix
    again (staff often enter theirs after Chairside has computed)."""
    case = FinancedCase.objects.select_related("location").get(pk=case_id)
    arrangement = PaymentArrangement.objects.filter(case=case, write_status=WriteStatus.SHADOW).first()
    if arrangement is None:
        raise InvalidTransition(f"{case.reference} was not computed in shadow mode: there is nothing to compare.")
    return _compare_with_hand_entered(case, _agreement_request(case, arrangement))


def _compare_with_hand_entered(case: FinancedCase, request: AgreementRequest) -> ShadowComparison:
    """Read-only at Dentrix: a lookup failure is recorded, never a reason to stop the case."""
    values = {"location": case.location, "compared_at": timezone.now(), "pms_agreement_id": "", "discrepancies": [], "detail": ""}
    try:
        agreements = partners.pms_for(case.location).list_payment_agreements(case.guarantor_id)
    except PartnerError as exc:
        values.update(outcome=ShadowComparison.Outcome.ERROR, detail=str(exc))
    else:
        # A person's agreement carries no Chairside marker; the active one is the one in force.
        by_hand = [a for a in agreements if "[chairside:" not in (a.note or "")]
        by_hand.sort(key=lambda a: (a.status == "active", a.agreement_date, a.agreement_id))
        if not by_hand:
            values.update(outcome=ShadowComparison.Outcome.MISSING, detail=f"Guarantor account {case.guarantor_id} has no hand-entered payment agreement yet.")
        else:
            stored = by_hand[-1]
            diffs = [
                {"field": name, "chairside": _shown(getattr(request, name)), "dentrix": _shown(getattr(stored, name))}
                for name in COMPARED_AGREEMENT_FIELDS
                if getattr(stored, name) != getattr(request, name)
            ]
            values.update(
                outcome=ShadowComparison.Outcome.MISMATCH if diffs else ShadowComparison.Outcome.MATCH,
                pms_agreement_id=stored.agreement_id,
                discrepancies=diffs,
            )
    values["discrepancy_count"] = len(values["discrepancies"])
    comparison, _ = ShadowComparison.objects.update_or_create(case=case, defaults=values)
    log.info("case %s: shadow comparison %s (%s fields differ)", case.reference, comparison.outcome, comparison.discrepancy_count)
    return comparison


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
        .filter(Q(lender_poll_lease_until__isnull=True) | Q(lender_poll_lease_until__lt=now))
        .update(lender_poll_lease_until=now + timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 30))
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
            from . import tasks

            for case_id in cases_to_poll(location_ids=[location.pk]):
                tasks.refresh_decision.delay(case_id)
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
    case = FinancedCase.objects.filter(pk=case_id).first()
    if case is not None and case.state in STEP_FOR_STATE:
        with transaction.atomic():
            enqueue_step(case)


def stuck_cases(now=None, limit: int = 500) -> list[int]:
    """Cases in a working state that nobody is working on: their message was lost.

    Not while their step's queue still holds messages (their message is most likely
    waiting there), unless they are older than SWEEP_BUSY_QUEUE_SECONDS: see
    `config.broker.sweep_cutoffs`.
    """
    from . import tasks

    now = now or timezone.now()
    working = [CaseState.CAPTURED, CaseState.APPROVED, CaseState.ARRANGEMENT_WRITTEN]
    task_for = {state: getattr(tasks, STEP_FOR_STATE[state]).name for state in working}
    cutoffs = sweep_cutoffs(task_for.values(), now=now, grace_seconds=max(5, settings.CASE_LEASE_SECONDS // 4))
    overdue = Q()
    for state, task_name in task_for.items():
        cutoff = cutoffs[task_name]
        overdue |= Q(state=state) & (Q(next_attempt_at__isnull=True, state_changed_at__lt=cutoff) | Q(next_attempt_at__lt=cutoff))
    return list(
        FinancedCase.objects.filter(overdue)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .exclude(location__mode=Location.Mode.PAUSED)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


# --- fault injection for the reliability tests --------------------------------------------------


class InjectedFault(Exception):
    pass


def fault_point(name: str):
    """Crash here when a test arms this point (settings.CHAIRSIDE_FAULT_POINTS); a no-op otherwise.

    "name" raises InjectedFault (the step fails like any bug would); "name:exit" ends the
    process at once, like kill -9 or the OOM killer, with no cleanup and no except clause.
    """
    armed = getattr(settings, "CHAIRSIDE_FAULT_POINTS", ())
    if f"{name}:exit" in armed:
        log.warning("fault point %s: exiting the process", name)
        os._exit(137)
    if name in armed:
        raise InjectedFault(name)
