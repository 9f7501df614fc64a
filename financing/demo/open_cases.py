"""The open work in the demo history: a case needing attention for every kind of reason
Chairside gives (`financing.reasons.KINDS`), cases retrying after an error, one stalled,
some waiting on the lender.

Each stops where the flow would stop it, with the records the flow would have kept by then,
and its reason is made by the code that makes it in the flow: `financing.reasons`, the
terms code (`prepare_arrangement` raising TermsError), the PMS's own rules
(`partners.agreement_problems`, `partners.note_problems`).

Open cases are live: `make run`'s worker retries the retrying and stalled ones within
minutes, against sandboxes that do not know these patients, so they end needing attention
too (as a patient missing from the PMS would).
"""

from datetime import datetime, timedelta
from types import SimpleNamespace

from django.conf import settings

from .. import partners, reasons
from ..display import money
from ..models import CaseState, Decision, FinancedCase, WriteStatus
from ..ports import LedgerNoteType
from ..services.arrangement import agreement_request
from ..services.capture import clinic_problem
from ..services.states import step_description
from ..terms import TermsError
from .cases import DAY_CLOSES, DAY_OPENS, Built, Event, Spec, number, record_approval, record_arrangement, record_note
from .plans import D, credit_limit, draw_plan, offers_for

# (location, reason kind, captured how many days ago): one case per kind.
NEEDS_ATTENTION = [
    ("demo-main", "patient_other_clinic", 3),
    ("demo-main", "plan_not_accepted", 1),
    ("demo-main", "application_refused", 4),
    ("demo-main", "promotion_not_offered", 2),
    ("demo-main", "agreement_exists", 0),
    ("demo-main", "agreement_differs", 6),
    ("demo-main", "note_refused", 3),
    ("demo-main", "step_failing", 1),
    ("demo-north", "plan_not_patients", 2),
    ("demo-north", "nothing_to_finance", 5),
    ("demo-north", "approved_without_amount", 1),
    ("demo-north", "agreement_rules", 0),
    ("demo-north", "agreement_refused", 8),
    ("demo-north", "note_rules", 0),
    ("demo-north", "step_interrupted", 9),
    ("demo-south", "patient_without_clinic", 5),
    ("demo-south", "plan_without_fees", 1),
    ("demo-south", "unrecordable_decision", 4),
    ("demo-south", "terms", 2),
]
# Where each kind stops the case.
STOPS_AT = {
    "patient_other_clinic": CaseState.CAPTURED, "patient_without_clinic": CaseState.CAPTURED,
    "plan_not_patients": CaseState.CAPTURED, "plan_not_accepted": CaseState.CAPTURED, "plan_without_fees": CaseState.CAPTURED,
    "nothing_to_finance": CaseState.CAPTURED, "application_refused": CaseState.CAPTURED, "step_failing": CaseState.CAPTURED,
    "unrecordable_decision": CaseState.APPLICATION_SENT,
    "note_rules": CaseState.ARRANGEMENT_WRITTEN, "note_refused": CaseState.ARRANGEMENT_WRITTEN,
}  # every other kind: APPROVED
# Kinds the intake check would have caught: the PMS was down at capture, so nothing was
# read from it (no snapshot) and the first step found the problem.
UNCHECKED_AT_INTAKE = {"patient_other_clinic", "patient_without_clinic", "plan_not_patients", "plan_not_accepted", "plan_without_fees", "nothing_to_finance"}
# (location, state it waits in, minutes since capture or None, days ago, how): the rest.
OTHER_OPEN = [
    ("demo-main", "retrying", CaseState.CAPTURED, 3, None),
    ("demo-main", "retrying", CaseState.APPROVED, 25, None),
    ("demo-north", "retrying", CaseState.ARRANGEMENT_WRITTEN, 40, None),
    ("demo-north", "stalled", CaseState.CAPTURED, 30 * 60, None),
    ("demo-main", "waiting", CaseState.APPLICATION_SENT, None, 3),
    ("demo-main", "waiting_referred", CaseState.AWAITING_DECISION, None, 2),
    ("demo-north", "waiting", CaseState.APPLICATION_SENT, 5 * 60, None),
    ("demo-south", "waiting_pending", CaseState.AWAITING_DECISION, 26 * 60, None),
]
# The error a retrying case last met at each step, in partner_http's words.
RETRY_ERRORS = {
    CaseState.CAPTURED: ("CareCredit could not be reached within 5 s (connect timeout)", 1, 60),
    CaseState.APPROVED: ("Dentrix did not answer within 10 s (read timeout)", 2, 180),
    CaseState.ARRANGEMENT_WRITTEN: ("Dentrix is unavailable (HTTP 503)", 3, 240),
}
DECIDE_MINUTES = 9  # the patient's minutes on CareCredit's application, at the chair
RESUMED_AFTER_DAYS = 40  # the agreement_rules story: stopped, fixed in Dentrix weeks later, resumed


def draw(rng, locations: dict, *, first_number: int) -> list[Spec]:
    specs, n = [], first_number
    for code, kind, days_ago in NEEDS_ATTENTION:
        plan = draw_plan(rng, n, minor_share=0)
        while kind in ("promotion_not_offered", "terms") and plan.requested < D("1500.00"):
            n += 1
            plan = draw_plan(rng, n, minor_share=0)
        if kind == "nothing_to_finance":
            plan.down_payment = plan.total
        if kind == "promotion_not_offered":
            plan.promotion = "reduced_apr_60"
        if kind == "terms":
            plan.promotion = "reduced_apr_36"
        spec = Spec(locations[code], "open:needs_attention", plan, days_ago=days_ago, minute=rng.randint(DAY_OPENS, DAY_CLOSES))
        spec.extra["kind"] = kind
        specs.append(spec)
        n += 1
    for code, what, state, minutes_ago, days_ago in OTHER_OPEN:
        spec = Spec(locations[code], f"open:{what}", draw_plan(rng, n, minor_share=0), days_ago=days_ago,
                    minute=rng.randint(DAY_OPENS, DAY_CLOSES))
        spec.extra["state"] = state
        if minutes_ago is not None:
            spec.extra["minutes_ago"] = minutes_ago
        specs.append(spec)
        n += 1
    return specs


def path(spec: Spec, t0: datetime, lender: str, people: dict) -> list[Event]:
    coordinator = people["coordinator"].get(spec.location.code)
    sent = t0 + timedelta(seconds=spec.timing["send"])
    decided = sent + timedelta(minutes=DECIDE_MINUTES)
    step = timedelta(seconds=spec.timing["write"])
    captured = [Event(CaseState.CAPTURED, t0, by=coordinator)]
    to_decision = [*captured, Event(CaseState.APPLICATION_SENT, sent)]
    approved = [*to_decision, Event(CaseState.APPROVED, decided)]
    if spec.flavour == "open:needs_attention":
        kind = spec.extra["kind"]
        stop = STOPS_AT.get(kind, CaseState.APPROVED)
        if kind == "step_failing":  # twelve tries with backoff: about an hour
            return [*captured, Event(CaseState.NEEDS_ATTENTION, t0 + timedelta(minutes=58))]
        if stop == CaseState.CAPTURED:
            return [*captured, Event(CaseState.NEEDS_ATTENTION, sent)]
        if stop == CaseState.APPLICATION_SENT:
            return [*to_decision, Event(CaseState.NEEDS_ATTENTION, decided)]
        if stop == CaseState.ARRANGEMENT_WRITTEN:
            return [*approved, Event(CaseState.ARRANGEMENT_WRITTEN, decided + step), Event(CaseState.NEEDS_ATTENTION, decided + 2 * step)]
        if kind == "agreement_rules":
            billing = people["billing"].get(spec.location.code)
            resumed = decided + timedelta(days=RESUMED_AFTER_DAYS)
            return [
                *approved,
                Event(CaseState.NEEDS_ATTENTION, decided + step),
                Event(CaseState.APPROVED, resumed, f"Resumed by {billing}" if billing else "Resumed", by=billing),
                Event(CaseState.NEEDS_ATTENTION, resumed + step),
            ]
        if kind == "step_interrupted":
            return [*approved, Event(CaseState.NEEDS_ATTENTION, decided + timedelta(minutes=25))]
        return [*approved, Event(CaseState.NEEDS_ATTENTION, decided + step)]
    state = spec.extra["state"]
    if state == CaseState.CAPTURED:
        return captured
    if state == CaseState.APPLICATION_SENT:
        return to_decision
    if state == CaseState.AWAITING_DECISION:
        referred = spec.flavour == "open:waiting_referred"
        return [*to_decision, Event(CaseState.AWAITING_DECISION, decided, reasons.referred(lender) if referred else "")]
    if state == CaseState.APPROVED:
        return approved
    return [*approved, Event(CaseState.ARRANGEMENT_WRITTEN, decided + step)]


def finish(built: Built, now: datetime):
    """The records the flow kept by the time the case stopped, and its reason."""
    spec, case = built.spec, built.case
    if spec.flavour == "open:needs_attention":
        reason = _stop(built, spec.extra["kind"])
        built.events[-1].reason = reason
        case.state_reason = reason
        built.notify.append(("needs_attention", built.events[-1].at))
        return
    state = spec.extra["state"]
    decided = next((e.at for e in built.events if e.state == CaseState.APPROVED), None)
    if decided is not None:
        record_approval(built, decided, spec.plan.requested, offers_for(spec.plan.requested))
    if spec.flavour == "open:retrying":
        error, attempts, wait = RETRY_ERRORS[state]
        case.last_error, case.step_attempts, case.next_attempt_at = error, attempts, now + timedelta(seconds=wait)
        if state == CaseState.APPROVED:  # the terms stay visible while the case waits
            record_arrangement(built, decided + timedelta(seconds=spec.timing["write"]), WriteStatus.PENDING)
        elif state == CaseState.ARRANGEMENT_WRITTEN:
            record_arrangement(built, case.arrangement_written_at, WriteStatus.WRITTEN)
            record_note(built, now - timedelta(minutes=4), WriteStatus.UNKNOWN)
    elif spec.flavour in ("open:waiting_referred", "open:waiting_pending"):
        awaiting = built.events[-1].at
        status = "referred" if spec.flavour == "open:waiting_referred" else "pending"
        built.decision = Decision(case=case, status=status, raw_status=status.upper(), requested_amount=spec.plan.requested)
        built.decision_history = [(awaiting, status)]
        built.inbound = [(awaiting, status)]


def _stop(built: Built, kind: str) -> str:
    spec, case, plan = built.spec, built.case, built.spec.plan
    location = case.location
    pms, lender = partners.pms_name(location), partners.lender_name(location)
    record = partners.pms_record_name(location)
    stopped = built.events[-1].at
    if kind in UNCHECKED_AT_INTAKE:
        case.guarantor_id, case.patient_short_name, case.procedures, case.plan_total = "", "", [], None
    if kind in ("patient_other_clinic", "patient_without_clinic"):
        # The patient as the PMS describes them: in another of the database's clinics, or none.
        served = location.clinic_ids
        other = next((c for c in ("1", "2", "3", "4") if c not in served), "9") if kind == "patient_other_clinic" else ""
        return clinic_problem(location, SimpleNamespace(patient_id=plan.patient_id, clinic_id=other))
    if kind == "plan_not_patients":
        return reasons.plan_not_patients(plan.plan_id, plan.patient_id)
    if kind == "plan_not_accepted":
        return reasons.plan_not_accepted(plan.plan_id, "proposed", pms)
    if kind == "plan_without_fees":
        return reasons.plan_without_fees(plan.plan_id)
    if kind == "nothing_to_finance":
        return reasons.nothing_to_finance(plan.down_payment, plan.total)
    if kind == "application_refused":
        return reasons.application_refused(f"{lender} rejected the application: applicant.address.zip must be 5 digits")
    if kind == "step_failing":
        error = RETRY_ERRORS[CaseState.CAPTURED][0]
        case.last_error = error
        return reasons.step_failing(step_description(FinancedCase(location=location, state=CaseState.CAPTURED)), settings.STEP_MAX_ATTEMPTS, error)
    if kind == "unrecordable_decision":
        built.inbound = [(stopped, "approved")]
        return reasons.unrecordable_decision(lender, f"approved amount {plan.requested}5")
    decided = next(e.at for e in built.events if e.state == CaseState.APPROVED)
    if kind in ("approved_without_amount", "promotion_not_offered", "terms"):
        amount, offers, limit = {
            "approved_without_amount": (None, offers_for(plan.requested), credit_limit(plan.requested)),
            "promotion_not_offered": (D("850.00"), offers_for(D("850.00")), D("1000.00")),
            # The lender offered on the whole credit line, the approval is below its minimum.
            "terms": (D("850.00"), offers_for(D("1000.00")), D("1000.00")),
        }[kind]
        record_approval(built, decided, amount, offers, limit=limit)
        try:
            record_arrangement(built, stopped, WriteStatus.PENDING)
        except TermsError as stopped_by:  # the terms code says why, as in the flow
            built.arrangement = None
            return stopped_by.reason
        raise AssertionError(f"{kind}: the terms were computed")
    record_approval(built, decided, plan.requested, offers_for(plan.requested))
    hand_entered = str(60001 + number(plan))
    if kind == "agreement_exists":
        record_arrangement(built, stopped, WriteStatus.PENDING)
        return reasons.agreement_exists(pms, case.guarantor_id, hand_entered, record=record, any_status=partners.pms_counts_any_status(location))
    if kind == "agreement_rules":
        first_stop = next(e for e in built.events if e.state == CaseState.NEEDS_ATTENTION)
        first_stop.reason = reasons.agreement_exists(pms, case.guarantor_id, hand_entered, record=record, any_status=partners.pms_counts_any_status(location))
        resumed = built.events[-2].at
        arrangement = record_arrangement(built, stopped, WriteStatus.PENDING, computed_at=resumed + timedelta(seconds=2))
        problems = partners.agreement_problems(location, agreement_request(case, arrangement))
        assert problems, "agreement_rules: the PMS's rules found nothing to refuse"
        return reasons.agreement_rules(pms, problems, record=record)
    if kind == "agreement_refused":
        record_arrangement(built, stopped, WriteStatus.FAILED)
        return reasons.agreement_refused(pms, f"{pms} rejected the {record}: the guarantor's account is closed to new agreements (HTTP 409)", record=record)
    if kind == "agreement_differs":
        arrangement = record_arrangement(built, stopped, WriteStatus.WRITTEN)
        arrangement.verified_at = None
        stored = arrangement.recurring_amount.to_integral_value() + 1
        mismatch = f"Payment amount: sent {money(arrangement.recurring_amount)}, stored {money(stored)}"
        return reasons.agreement_differs(pms, arrangement.pms_arrangement_id, mismatch, record=record)
    if kind == "step_interrupted":
        arrangement = record_arrangement(built, decided + timedelta(seconds=spec.timing["write"]), WriteStatus.UNKNOWN)
        arrangement.write_attempts = settings.STEP_MAX_ATTEMPTS
        step = step_description(FinancedCase(location=location, state=CaseState.APPROVED))
        return reasons.step_interrupted(step, settings.STEP_MAX_ATTEMPTS)
    written = case.arrangement_written_at
    record_arrangement(built, written, WriteStatus.WRITTEN)
    if kind == "note_rules":
        note = record_note(built, stopped, WriteStatus.PENDING)
        note.note_type = LedgerNoteType.BILLING_STATEMENT  # the location's new note type, a longer text than it takes
        return reasons.note_rules(pms, partners.note_problems(location, LedgerNoteType.BILLING_STATEMENT, note.text))
    if kind == "note_refused":
        record_note(built, stopped, WriteStatus.UNKNOWN)
        return reasons.note_refused(pms, f"{pms} could not find patient {plan.patient_id} (HTTP 404)")
    raise ValueError(f"no demo case for the reason kind {kind!r}")
