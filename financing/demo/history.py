"""Twelve weeks of history for the demo locations, so the console has something to show on
first run: `seed_demo --history` (what `make run` seeds).

What it makes, per location, from a seeded RNG (the same seed, the same cases):

- a week's worth of cases for each of the last twelve weeks (Monday to Saturday, in the
  location's business hours and time zone, never after now): completed (approved, partly
  approved, decided after a pending review), declined, expired, cancelled with a reason;
- the records the flow leaves: decision and offers, the arrangement computed by the flow's
  own code (`prepare_arrangement`, so `financing.terms` makes every schedule), the ledger
  note (`prepare_note`), the confirmations, cancellation notices and alerts (`financing.messages`), the webhook
  events, a history row per state change with who did it, corrections recorded through
  `services.record_correction`;
- at the shadow location, comparisons with a hand-entered agreement: matches, differences
  and some not entered yet;
- open work (`open_cases`): a case needing attention for every kind of reason
  (`financing.reasons.KINDS`), cases retrying after an error, one stalled, some waiting on
  the lender, and two confirmations that did not reach the coordinator;
- at the demo locations whose PMS writes a plan only over posted treatment (Dentrix Ascend,
  Eaglesoft), if `seed_demo` made any (`production`): cases that waited for the treatment to
  be posted, two still waiting, and the reasons only those locations give;
- at the demo locations that record CareCredit as a payment (`money`): cases charged and
  posted (payment, merchant fee, an in-house remainder, a refund), one still waiting for its
  treatment, an approval that expired unused, and each settled day reconciled.

Nothing is sent to a partner: the records are written as the flow would have left them
(the sandboxes do not know these patients). Writing is in bulk, in one transaction; a
second run finds the first run's references and adds nothing.
"""

import hashlib
import random
from datetime import UTC, datetime, time, timedelta
from decimal import ROUND_CEILING
from zoneinfo import ZoneInfo

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from notifications.models import Channel, Notification
from notifications.sms import describe_twilio_error

from .. import messages, partners
from ..dashboard import week_start
from ..models import (
    CaseState,
    Correction,
    Decision,
    FinancedCase,
    InboundEvent,
    LedgerNote,
    Location,
    Membership,
    PaymentArrangement,
    ShadowComparison,
    WriteStatus,
)
from ..services.arrangement import shown
from ..services.corrections import record_correction
from . import cases, catalogue, money, open_cases, production
from .cases import DAY_CLOSES, DAY_OPENS, Built, Spec
from .plans import draw_plan

SEED = 12
WEEKS = 12
# Cases captured per week at each demo location (low, high).
VOLUME = {"demo-main": (11, 16), "demo-north": (8, 12), "demo-south": (6, 10)}
# How a case ended, and how often (per 100).
FLAVOURS = [
    ("approved", 56), ("partial", 8), ("pending", 8), ("declined", 12), ("referred_declined", 2), ("expired", 6), ("cancelled", 8),
]
# An application left unanswered expires after CASE_EXPIRY_DAYS: only older weeks can hold one.
EXPIRY_WEEKS = 5
# Recent confirmations that did not reach the coordinator (an SMS to a phone that was off).
UNDELIVERED = 2


def write_history(*, seed: int = SEED, now: datetime | None = None) -> dict:
    """Write the history (once). Returns {"created": n, "corrections": n}, {"existing": n} when
    this seed's history is there already, or {"other": n} when another seed's is (their
    patients and plans share the demo's id range)."""
    now = now or timezone.now()
    locations = {loc.code: loc for loc in Location.objects.select_related("template").filter(code__in=VOLUME)}
    missing = set(VOLUME) - set(locations)
    if missing:
        raise ValueError(f"run seed_demo first: no location {', '.join(sorted(missing))}")
    specs = draw(random.Random(seed), locations)
    # Locations that wait for posted treatment: their cases from a stream of their own, so the
    # rest of the history does not depend on whether there are any.
    candidates = Location.objects.select_related("template").filter(code__startswith="demo-").exclude(code__in=VOLUME)
    waiting_at = production.locations(candidates)
    locations.update({loc.code: loc for loc in waiting_at})
    for spec in production.draw(random.Random(f"{seed}:posted-production"), waiting_at):
        _draw_timing(random.Random(f"{seed}:{spec.plan.reference}"), spec)
        specs.append(spec)
    # Locations that record CareCredit as a payment: their money, from a stream of its own too.
    paying = money.locations(Location.objects.select_related("template").filter(code__startswith="demo-"))
    locations.update({loc.code: loc for loc in paying})
    for spec in money.draw(random.Random(f"{seed}:money"), paying):
        _draw_timing(random.Random(f"{seed}:{spec.plan.reference}"), spec)
        specs.append(spec)
    references = [s.plan.reference for s in specs]
    existing = FinancedCase.objects.filter(reference__in=references).count()
    if existing:
        return {"existing": existing}
    plans = [s.plan.plan_id for s in specs]
    other = FinancedCase.objects.filter(location__in=locations.values(), treatment_plan_id__in=plans).count()
    if other:
        return {"other": other}
    people = _people(locations)
    with transaction.atomic():
        built = [_build(spec, now, people) for spec in specs]
        _write(built, people)
        money.write(built, now)
        corrected = _corrections(built, people, now)
    return {"created": len(built), "corrections": corrected}


# --- drawing ---------------------------------------------------------------------------------


def draw(rng: random.Random, locations: dict) -> list[Spec]:
    specs, n = [], 0
    names, weights = zip(*FLAVOURS)
    for code in sorted(VOLUME):
        location = locations[code]
        low, high = VOLUME[code]
        for week in range(WEEKS - 1, -1, -1):
            for _ in range(rng.randint(low, high)):
                flavour = rng.choices(names, weights)[0]
                if flavour == "expired" and week < EXPIRY_WEEKS:
                    flavour = "declined"
                spec = Spec(location, flavour, draw_plan(rng, n), week=week, day=rng.choice([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5]),
                            minute=rng.randint(DAY_OPENS, DAY_CLOSES))
                _draw_timing(rng, spec)
                specs.append(spec)
                n += 1
    recent = [s for s in specs if s.week <= 1 and s.flavour in ("approved", "declined") and s.location.mode == Location.Mode.LIVE]
    for spec in recent[-UNDELIVERED:]:
        spec.extra["sms_undelivered"] = True
    for spec in open_cases.draw(rng, locations, first_number=n):
        _draw_timing(rng, spec)
        specs.append(spec)
    return specs


def _draw_timing(rng, spec: Spec):
    # The patient completes CareCredit's application at the chair: minutes, now and then hours.
    decide = rng.lognormvariate(2.2, 0.55) * 60
    if rng.random() < 0.1:
        decide = rng.uniform(2, 20) * 3600
    spec.timing = {
        "send": rng.uniform(3, 25),
        "decide": decide,
        "wait": rng.uniform(3, 52) * 3600,  # a pending or referred application's decision
        "write": rng.uniform(4, 40),
        "note": rng.uniform(1, 6),
        "cancel": rng.uniform(1, 72) * 3600,
        "lender_expiry_days": rng.uniform(7, 25),
        "notice": rng.uniform(2, 9),  # a notification's hand-off
    }
    spec.extra.setdefault("cancel_reason", rng.choice(catalogue.CANCEL_REASONS))
    spec.extra.setdefault("cancel_by_billing", rng.random() < 0.4)
    spec.extra.setdefault("lender_expired", rng.random() < 0.4)
    spec.extra.setdefault("shadow", rng.choices(["match", "mismatch", "missing"], [55, 35, 10])[0])
    spec.extra.setdefault("slips", rng.sample(catalogue.HAND_ENTRY_SLIPS, rng.choice([1, 1, 2])))
    spec.extra.setdefault("correction", rng.choice(catalogue.CORRECTIONS) if rng.random() < 0.09 else None)
    spec.extra.setdefault("correction_days", rng.uniform(1, 6))


# --- placing in time --------------------------------------------------------------------------


def captured_at(spec: Spec, now: datetime, needs: timedelta) -> datetime:
    """When the patient said yes: in the location's business hours, early enough that what
    followed (`needs`) has happened by now. Open work placed "minutes ago" is just that."""
    if "minutes_ago" in spec.extra:
        return now - timedelta(minutes=spec.extra["minutes_ago"])
    tz = ZoneInfo(spec.location.timezone)
    if spec.days_ago is None:
        day = week_start(now.astimezone(UTC).date()) - timedelta(weeks=spec.week) + timedelta(days=spec.day)
    else:
        day = timezone.localdate(now, tz) - timedelta(days=spec.days_ago)
    latest = now - needs - timedelta(minutes=2)
    moment = datetime.combine(day, time.min, tzinfo=tz) + timedelta(minutes=spec.minute)
    while moment > latest or moment.weekday() == 6:  # not yet (or a Sunday): the day before
        moment = datetime.combine(moment.date() - timedelta(days=1), time.min, tzinfo=tz) + timedelta(minutes=spec.minute)
    return moment.astimezone(UTC)


def _events(spec: Spec, t0: datetime, lender: str, people: dict) -> list:
    kind = spec.flavour.partition(":")[0] if ":" in spec.flavour else ""
    paths = {"open": open_cases.path, "production": production.path, "money": money.path}
    return paths.get(kind, cases.path)(spec, t0, lender, people)


def _duration(spec: Spec, lender: str, people: dict) -> timedelta:
    t0 = datetime(2000, 1, 3, tzinfo=UTC)
    return _events(spec, t0, lender, people)[-1].at - t0 + timedelta(seconds=spec.timing["notice"] + 10)


# --- building -------------------------------------------------------------------------------


def _people(locations: dict) -> dict:
    """Who acts at each location: its (first) coordinator and billing member."""
    people = {"coordinator": {}, "billing": {}}
    for m in Membership.objects.select_related("user", "location").filter(location__in=locations.values()).order_by("pk"):
        role = "coordinator" if m.role == Membership.Role.COORDINATOR else "billing"
        people[role].setdefault(m.location.code, m.user)
    return people


def _build(spec: Spec, now: datetime, people: dict) -> Built:
    location, plan = spec.location, spec.plan
    lender = partners.lender_name(location)
    t0 = captured_at(spec, now, _duration(spec, lender, people))
    events = _events(spec, t0, lender, people)
    case = FinancedCase(
        reference=plan.reference,
        location=location,
        # What capture stores (bulk_create skips FinancedCase.save, which would fill it).
        pms_identity=partners.pms_identity(location),
        coordinator=people["coordinator"].get(location.code),
        patient_id=plan.patient_id,
        guarantor_id=plan.guarantor_id,
        treatment_plan_id=plan.plan_id,
        patient_short_name=plan.short_name,
        procedures=plan.procedures,
        plan_total=plan.total,
        requested_down_payment=plan.down_payment,
        promotion=plan.promotion,
        patient_consents_to_messages=plan.consents,
    )
    built = Built(spec, case, events)
    cases.apply_events(case, plan, events)
    if spec.flavour.startswith("open:"):
        open_cases.finish(built, now)
        return built
    if spec.flavour.startswith("production:"):
        production.finish(built, now)
        return built
    if spec.flavour.startswith("money:"):
        money.finish(built, now)
        return built
    decided = next((e for e in events if e.state in (CaseState.APPROVED, CaseState.DECLINED)), None)
    if spec.flavour in ("approved", "partial", "pending"):
        cases.approved(built, decided.at, partial=spec.flavour == "partial", pending=spec.flavour == "pending")
    elif decided is not None:
        cases.declined(built, decided.at)
    elif spec.flavour == "expired" and spec.extra["lender_expired"]:
        cases.lender_expired(built)
    elif spec.flavour == "cancelled":
        built.notify.append(("cancelled", events[-1].at))  # the coordinator's notice
    return built


# --- writing --------------------------------------------------------------------------------


def _write(built: list[Built], people: dict):
    cases = [b.case for b in built]
    _bulk_create_keeping(FinancedCase, cases, ["captured_at", "state_changed_at"])
    _case_history(built)
    decisions = [b.decision for b in built if b.decision]
    Decision.objects.bulk_create(decisions)
    _decision_history(built)
    for b in built:
        if b.arrangement is not None:
            b.arrangement.case_id = b.case.pk
    arrangements = [b.arrangement for b in built if b.arrangement]
    PaymentArrangement.objects.bulk_create(arrangements)
    _created_history(PaymentArrangement, [(b.arrangement, b.arrangement_at) for b in built if b.arrangement],
                     write_status=lambda a: WriteStatus.SHADOW if a.write_status == WriteStatus.SHADOW else WriteStatus.UNKNOWN)
    for b in built:
        if b.note is not None:
            b.note.case_id = b.case.pk
    LedgerNote.objects.bulk_create([b.note for b in built if b.note])
    _created_history(LedgerNote, [(b.note, b.note_at) for b in built if b.note], write_status=lambda n: WriteStatus.UNKNOWN)
    shadows = [b.shadow for b in built if b.shadow]
    for s in shadows:
        s.case_id = s.case.pk
    ShadowComparison.objects.bulk_create(shadows)
    _created_history(ShadowComparison, [(s, s.compared_at) for s in shadows])
    _inbound(built)
    _notifications(built)


def _bulk_create_keeping(model, rows, stamped: list[str]):
    """bulk_create, keeping the flow's own times in fields Django stamps with now on create
    (auto_now_add): it overwrites them on the instances, so they are put back after."""
    kept = [[getattr(row, name) for name in stamped] for row in rows]
    model.objects.bulk_create(rows, batch_size=500)
    for row, values in zip(rows, kept):
        for name, value in zip(stamped, values):
            setattr(row, name, value)
    model.objects.bulk_update(rows, stamped, batch_size=500)


def _case_history(built: list[Built]):
    History = FinancedCase.history.model
    tracked = [f.attname for f in History._meta.fields if not f.name.startswith("history_")]
    rows = []
    for b in built:
        replay = FinancedCase(pk=b.case.pk, reference=b.case.reference, location=b.case.location)
        for name in tracked:
            if name not in ("id",):
                setattr(replay, name, getattr(b.case, name))
        # Replay from capture: milestones appear as they happened.
        for name in ("application_id", "apply_url", "application_sent_at", "decided_at", "production_awaited_at",
                     "production_posted_at", "arrangement_written_at", "purchased_at", "posted_at", "completed_at"):
            setattr(replay, name, "" if name in ("application_id", "apply_url") else None)
        replay.resume_state, replay.state_reason = "", ""
        replay.next_attempt_at, replay.last_error, replay.step_attempts = None, "", 0
        for n, (previous, event) in enumerate(zip([None, *b.events], b.events)):
            cases.step(replay, b.spec.plan, previous, event)
            last = n == len(b.events) - 1
            if last:  # the bookkeeping of the case as it stands (retries, errors)
                replay.next_attempt_at, replay.last_error, replay.step_attempts = b.case.next_attempt_at, b.case.last_error, b.case.step_attempts
            values = {name: getattr(replay, name) for name in tracked}
            rows.append(History(**values, history_date=event.at, history_type="+" if n == 0 else "~",
                                history_user_id=getattr(event.by, "pk", None)))
    History.objects.bulk_create(rows, batch_size=500)


def _decision_history(built: list[Built]):
    History = Decision.history.model
    fields = [f.attname for f in Decision._meta.fields]
    rows = []
    for b in built:
        if b.decision is None:
            continue
        for n, (at, status) in enumerate(b.decision_history):
            values = {name: getattr(b.decision, name) for name in fields}
            last = n == len(b.decision_history) - 1
            if not last:  # an earlier answer: pending or referred, nothing approved yet
                values.update(status=status, raw_status=status.upper(), approved_amount=None, credit_limit=None, offers=[], decided_at=None)
            values["updated_at"] = at
            rows.append(History(**values, history_date=at, history_type="+" if n == 0 else "~"))
    History.objects.bulk_create(rows, batch_size=500)
    for b in built:
        if b.decision is not None:
            b.decision.updated_at = b.decision_history[-1][0]
    Decision.objects.bulk_update([b.decision for b in built if b.decision], ["updated_at"], batch_size=500)


def _created_history(model, items, **overrides):
    History = model.history.model
    fields = [f.attname for f in model._meta.fields]
    rows = []
    for record, at in items:
        values = {name: getattr(record, name) for name in fields}
        for name, value in overrides.items():
            values[name] = value(record)
        if "write_status" in overrides and values["write_status"] == WriteStatus.UNKNOWN:
            # Recorded before the write: no id, no time yet (those come with the write).
            values.update({k: v for k, v in (("pms_arrangement_id", ""), ("pms_note_id", ""), ("written_at", None), ("verified_at", None)) if k in values})
        rows.append(History(**values, history_date=at, history_type="+"))
    History.objects.bulk_create(rows, batch_size=500)


def _inbound(built: list[Built]):
    events, stamps = [], []
    for b in built:
        for n, (at, _status) in enumerate(b.inbound):
            event_id = f"evt_{b.case.application_id[4:]}{n:02d}"
            events.append(InboundEvent(provider="carecredit", event_id=event_id, application_id=b.case.application_id, case=b.case))
            stamps.append(at + timedelta(seconds=1))
    InboundEvent.objects.bulk_create(events, batch_size=500)
    for event, at in zip(events, stamps):
        event.received_at = at
    InboundEvent.objects.bulk_update(events, ["received_at"], batch_size=500)


def _notifications(built: list[Built]):
    """The messages the flow sent, as delivered (or not) long ago."""
    rows = []
    for b in built:
        for kind, at in b.notify:
            sent = []
            if kind == "cancelled":
                messages.queue_cancelled(b.case, by=b.events[-1].by, send=sent.append)
            else:
                queue = {"approved": messages.queue_approved, "declined": messages.queue_declined,
                         "needs_attention": messages.queue_needs_attention,
                         "approval_expired": messages.queue_approval_expired}[kind]
                queue(b.case, send=sent.append)
            for message in sent:
                rows.append(_delivered(message, at, b.spec))
    _bulk_create_keeping(Notification, rows, ["created_at"])


def _delivered(message, at: datetime, spec: Spec) -> Notification:
    handed = at + timedelta(seconds=spec.timing["notice"])
    row = Notification(
        dedupe_key=message.dedupe_key, reference=message.reference, channel=message.channel, recipient=message.recipient,
        template=message.template, subject=message.subject, body=message.body, html_body=message.html_body,
        escalate=message.escalate, attempts=1, sent_at=handed,
    )
    row.created_at = at
    if message.channel == Channel.SMS:
        row.provider_id = "SM" + hashlib.sha256(message.dedupe_key.encode()).hexdigest()[:32]
        if spec.extra.get("sms_undelivered") and message.template in ("case_approved", "case_declined"):
            row.status, row.provider_status = Notification.Status.UNDELIVERED, "undelivered"
            row.error = f"Twilio reports the message undelivered ({describe_twilio_error(30003)})"
        else:
            row.status, row.provider_status, row.delivered_at = Notification.Status.DELIVERED, "delivered", handed + timedelta(seconds=4)
    else:
        row.status = Notification.Status.SENT
    return row


# --- corrections ------------------------------------------------------------------------------


def _backdate_action(correction: Correction, arrangement: PaymentArrangement, case: FinancedCase, at: datetime):
    """Move a correction recorded now to the day billing made it. The service stamps every
    row of one staff action with the action's moment (services.audit): the correction, its
    history row, the arrangement's, the admin's log entry. All of them move together."""
    moment = Correction.history.model.objects.get(id=correction.pk).history_date
    Correction.objects.filter(pk=correction.pk).update(created_at=at)
    Correction.history.model.objects.filter(id=correction.pk, history_date=moment).update(history_date=at)
    PaymentArrangement.history.model.objects.filter(id=arrangement.pk, history_date=moment).update(history_date=at)
    LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(FinancedCase), object_id=str(case.pk), action_time=moment
    ).update(action_time=at)


def _corrections(built: list[Built], people: dict, now: datetime) -> int:
    """Billing's fixes of written arrangements, through the service that records them."""
    made = 0
    for b in built:
        pick = b.spec.extra.get("correction")
        if pick is None or b.arrangement is None or b.arrangement.write_status != WriteStatus.WRITTEN or b.spec.week < 2:
            continue
        if b.case.state != CaseState.COMPLETED:
            continue
        field, why, how = pick
        arrangement = b.arrangement
        after = {
            "next_15th": lambda: (arrangement.first_payment_date.replace(day=15) if arrangement.first_payment_date.day < 15
                                  else (arrangement.first_payment_date.replace(day=1) + timedelta(days=32)).replace(day=15)).isoformat(),
            "whole_dollars": lambda: f"{arrangement.recurring_amount.to_integral_value(rounding=ROUND_CEILING):.2f}",
            "plus_100": lambda: f"{arrangement.down_payment + 100:.2f}",
            "new_id": lambda: str(int(arrangement.pms_arrangement_id) + 50000),
        }[how]()
        if after == shown(getattr(arrangement, field)):
            continue
        actor = people["billing"].get(b.case.location.code)
        # No partner call in the demo: the id the correction records is the one in force.
        correction = record_correction(b.case.pk, field=field, after=after, why=why, actor=actor, read_back=False)
        at = min(b.case.completed_at + timedelta(days=b.spec.extra["correction_days"]), now - timedelta(hours=1))
        _backdate_action(correction, arrangement, b.case, at)
        made += 1
    return made
