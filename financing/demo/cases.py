"""One demo case as the flow would have left it: its state changes (`Event`s) and the
records that go with them, built with the flow's own code and not yet written."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_CEILING

from django.conf import settings

from .. import reasons
from ..models import CaseState, Decision, FinancedCase, LedgerNote, Location, PaymentArrangement, ShadowComparison, WriteStatus
from ..services.arrangement import COMPARED_AGREEMENT_FIELDS, agreement_request, prepare_arrangement, shown
from ..services.ledger_note import prepare_note
from . import catalogue
from .plans import Plan, approved_amount, credit_limit, fit_promotion, offers_for

DAY_OPENS, DAY_CLOSES = 8 * 60, 17 * 60 + 30  # local business hours, in minutes


@dataclass
class Event:
    state: str
    at: datetime
    reason: str = ""
    by: object = None  # the user behind the change (None: Chairside)


@dataclass
class Spec:
    """One case, everything drawn before any date is known (so the counts never depend on
    the day the history is written)."""

    location: Location
    flavour: str
    plan: Plan
    week: int = 0  # weeks before this one
    day: int = 0  # 0 = Monday
    minute: int = DAY_OPENS
    days_ago: float | None = None  # open cases: how long ago, instead of week/day
    timing: dict = field(default_factory=dict)  # seconds/hours each step took
    extra: dict = field(default_factory=dict)


@dataclass
class Built:
    """A case and the records it leaves, before they are written."""

    spec: Spec
    case: FinancedCase
    events: list
    decision: Decision | None = None
    decision_history: list = field(default_factory=list)  # (at, status)
    arrangement: PaymentArrangement | None = None
    arrangement_at: datetime | None = None
    note: LedgerNote | None = None
    note_at: datetime | None = None
    shadow: ShadowComparison | None = None
    inbound: list = field(default_factory=list)  # (event id, at)
    notify: list = field(default_factory=list)  # (kind, at)
    # Recorded as a payment (financing.demo.money): the purchase, its refunds, the postings.
    purchase: object = None
    refunds: list = field(default_factory=list)
    postings: list = field(default_factory=list)


def path(spec: Spec, t0: datetime, lender: str, people: dict) -> list[Event]:
    """The state changes of a finished case, from its capture."""
    t = spec.timing
    coordinator = people["coordinator"].get(spec.location.code)
    sent = t0 + timedelta(seconds=t["send"])
    decided = sent + timedelta(seconds=t["decide"])
    events = [Event(CaseState.CAPTURED, t0, by=coordinator), Event(CaseState.APPLICATION_SENT, sent)]
    flavour = spec.flavour
    if flavour in ("approved", "partial", "pending"):
        if flavour == "pending":
            events.append(Event(CaseState.AWAITING_DECISION, decided))
            decided += timedelta(seconds=t["wait"])
        events.append(Event(CaseState.APPROVED, decided))
        written = decided + timedelta(seconds=t["write"])
        if spec.location.mode == Location.Mode.SHADOW:
            events.append(Event(CaseState.COMPLETED, written, reasons.SHADOW_COMPLETED))
        else:
            events.append(Event(CaseState.ARRANGEMENT_WRITTEN, written))
            events.append(Event(CaseState.COMPLETED, written + timedelta(seconds=t["note"])))
    elif flavour == "declined":
        events.append(Event(CaseState.DECLINED, decided, reasons.declined(lender)))
    elif flavour == "referred_declined":
        events.append(Event(CaseState.AWAITING_DECISION, decided, reasons.referred(lender)))
        events.append(Event(CaseState.DECLINED, decided + timedelta(seconds=t["wait"]), reasons.declined(lender)))
    elif flavour == "expired":
        if spec.extra["lender_expired"]:
            events.append(Event(CaseState.AWAITING_DECISION, decided))
            events.append(Event(CaseState.EXPIRED, sent + timedelta(days=t["lender_expiry_days"]), reasons.lender_expired(lender)))
        else:
            beat = timedelta(days=settings.CASE_EXPIRY_DAYS, seconds=30 + t["send"])
            events.append(Event(CaseState.EXPIRED, sent + beat, reasons.no_decision(lender, settings.CASE_EXPIRY_DAYS)))
    elif flavour == "cancelled":
        if t["cancel"] > t["decide"]:
            events.append(Event(CaseState.AWAITING_DECISION, decided))
        by = people["billing"].get(spec.location.code) if spec.extra["cancel_by_billing"] else coordinator
        events.append(Event(CaseState.CANCELLED, sent + timedelta(seconds=t["cancel"]), spec.extra["cancel_reason"], by=by))
    return events


def apply_events(case: FinancedCase, plan: Plan, events: list[Event]):
    """The case's fields as its last state change left them."""
    for previous, event in zip([None, *events], events):
        step(case, plan, previous, event)


def step(case: FinancedCase, plan: Plan, previous: Event | None, event: Event):
    """One state change, as `services.states.transition` makes it."""
    state = event.state
    if state == CaseState.NEEDS_ATTENTION:
        case.resume_state = previous.state
    case.state, case.state_reason, case.state_changed_at = state, event.reason, event.at
    if state == CaseState.CAPTURED:
        case.captured_at = event.at
    elif state == CaseState.APPLICATION_SENT:
        case.application_id = plan.application_id
        case.apply_url = f"{case.location.lender_base_url.rstrip('/')}/apply/{case.application_id}"
        case.application_sent_at = event.at
    elif state == CaseState.AWAITING_PRODUCTION:
        case.production_awaited_at = event.at
    elif state == CaseState.APPROVED and previous.state == CaseState.AWAITING_PRODUCTION:
        case.production_posted_at = event.at  # the treatment posted: the wait is over
    elif state in (CaseState.APPROVED, CaseState.DECLINED) and previous.state != CaseState.NEEDS_ATTENTION:
        case.decided_at = event.at  # the lender's decision (a resume keeps it)
    elif state == CaseState.ARRANGEMENT_WRITTEN:
        case.arrangement_written_at = event.at
    elif state == CaseState.PURCHASED:
        case.purchased_at = event.at
    elif state == CaseState.POSTED:
        case.posted_at = event.at
    elif state == CaseState.COMPLETED:
        case.completed_at = event.at


def number(plan: Plan) -> int:
    """The case's place in the history: the PMS's ids of its records follow from it."""
    return int(plan.patient_id) - catalogue.FIRST_PATIENT_ID


def approved(built: Built, decided_at: datetime, *, partial: bool, pending: bool):
    """A finished approval: decision, arrangement, and (live) the ledger note and confirmation."""
    case, plan = built.case, built.spec.plan
    amount = approved_amount(plan, partial=partial)
    fit_promotion(plan, amount)
    case.promotion = plan.promotion
    earlier = [(e.at, "pending") for e in built.events if e.state == CaseState.AWAITING_DECISION] if pending else []
    record_approval(built, decided_at, amount, offers_for(amount), earlier=earlier)
    written = next(e.at for e in built.events if e.state in (CaseState.ARRANGEMENT_WRITTEN, CaseState.COMPLETED))
    if case.location.mode == Location.Mode.SHADOW:
        record_arrangement(built, written, WriteStatus.SHADOW)
        built.shadow = shadow_comparison(built, written - timedelta(milliseconds=500))
        return
    record_arrangement(built, written, WriteStatus.WRITTEN)
    record_note(built, case.completed_at, WriteStatus.WRITTEN)
    built.notify.append(("approved", case.completed_at))


def record_approval(built: Built, decided_at: datetime, amount, offers, *, earlier=(), limit=None):
    """The lender's approval as the decision step stores it (after any earlier answers)."""
    case, plan = built.case, built.spec.plan
    built.decision = Decision(
        case=case, status="approved", raw_status="APPROVED", requested_amount=plan.requested, approved_amount=amount,
        credit_limit=limit if limit is not None else (credit_limit(amount) if amount else None), offers=offers,
        decided_at=decided_at,
    )
    built.decision_history = [*earlier, (decided_at, "approved")]
    built.inbound = list(built.decision_history)
    case.decision = built.decision


def record_arrangement(built: Built, at: datetime, status: str, *, computed_at: datetime | None = None):
    """The terms as `prepare_arrangement` computes them, and how far their write got."""
    case = built.case
    computed_at = computed_at or at - timedelta(seconds=2)
    arrangement = prepare_arrangement(case, now=computed_at)
    arrangement.case = case
    arrangement.write_status = status
    if status in (WriteStatus.WRITTEN, WriteStatus.UNKNOWN, WriteStatus.FAILED):
        arrangement.write_attempts = 1
    if status == WriteStatus.WRITTEN:
        arrangement.pms_arrangement_id = str(70001 + number(built.spec.plan))
        arrangement.written_at = arrangement.verified_at = at
    built.arrangement, built.arrangement_at = arrangement, computed_at + timedelta(seconds=1)
    case.arrangement = arrangement
    return arrangement


def record_note(built: Built, at: datetime, status: str):
    """The ledger note as `prepare_note` words it, and how far its posting got."""
    note = prepare_note(built.case, now=at - timedelta(seconds=1))
    note.write_status = status
    if status in (WriteStatus.WRITTEN, WriteStatus.UNKNOWN):
        note.write_attempts = 1
    if status == WriteStatus.WRITTEN:
        note.pms_note_id, note.written_at = str(80001 + number(built.spec.plan)), at
    built.note, built.note_at = note, at - timedelta(milliseconds=800)
    return note


def declined(built: Built, decided_at: datetime):
    case = built.case
    built.decision = Decision(
        case=case, status="declined", raw_status="DECLINED", requested_amount=built.spec.plan.requested, decided_at=decided_at,
    )
    referred = next((e.at for e in built.events if e.state == CaseState.AWAITING_DECISION), None)
    built.decision_history = ([(referred, "referred")] if referred else []) + [(decided_at, "declined")]
    built.inbound = list(built.decision_history)
    built.notify.append(("declined", decided_at))


def lender_expired(built: Built):
    case = built.case
    expired = built.events[-1].at
    awaiting = next(e.at for e in built.events if e.state == CaseState.AWAITING_DECISION)
    built.decision = Decision(case=case, status="expired", raw_status="EXPIRED", requested_amount=built.spec.plan.requested)
    built.decision_history = [(awaiting, "pending"), (expired, "expired")]
    built.inbound = list(built.decision_history)


def shadow_comparison(built: Built, at: datetime) -> ShadowComparison:
    """What staff entered by hand, compared field by field with what Chairside computed."""
    case, spec = built.case, built.spec
    request = agreement_request(case, built.arrangement)
    outcome = spec.extra["shadow"]
    values = dict(case=case, location=case.location, compared_at=at, outcome=outcome, discrepancies=[])
    if outcome == ShadowComparison.Outcome.MISSING:
        values["detail"] = f"Guarantor account {case.guarantor_id} has no hand-entered payment agreement yet."
    else:
        values["pms_agreement_id"] = str(60001 + number(spec.plan))
        if outcome == ShadowComparison.Outcome.MISMATCH:
            typed = _hand_entered(request, spec.extra["slips"])
            values["discrepancies"] = [
                {"field": name, "chairside": shown(getattr(request, name)), "dentrix": shown(typed[name])}
                for name in COMPARED_AGREEMENT_FIELDS
                if name in typed
            ]
    values["discrepancy_count"] = len(values["discrepancies"])
    return ShadowComparison(**values)


def _hand_entered(request, slips) -> dict:
    """The fields a person typed differently from the computed agreement."""
    typed = {}
    for slip in slips:
        if slip == "first_payment_due":
            due = request.first_payment_due
            typed[slip] = (due.replace(day=1) + timedelta(days=32)).replace(day=1)  # "the 1st of the month"
        elif slip == "payment_amount":
            typed[slip] = request.payment_amount.to_integral_value(rounding=ROUND_CEILING) + (1 if request.payment_amount % 1 == 0 else 0)
        elif slip == "number_of_payments":
            typed[slip] = request.number_of_payments + 1
        elif slip == "down_payment":
            typed[slip] = request.down_payment + 100
    return typed


