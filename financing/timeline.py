"""A case's whole story for the billing console, in a fixed number of queries.

The timeline merges these sources, oldest first:

- the staff actions on the case (the admin's log, `LogEntry`): who did what from the
  console. Each action stamps the history rows it wrote with its own moment and person
  (`services.audit`), so those rows are folded into the action's line, not shown again;
- the case's own history rows (simple-history): every state change, with who and why;
- the history rows of what hangs off the case (decision, arrangement, ledger note,
  corrections, shadow comparison): who changed which field, before → after;
- the moments a partner write happened. Those are bookkeeping UPDATEs that write no
  history row (see services), so their timestamps on the records stand in for one;
- the notifications sent about the case (a resent confirmation is folded into the resend).
- the billing team's internal notes (never sent anywhere: they live on this page only).
"""

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.contrib.admin.models import LogEntry
from django.utils import timezone

from notifications.models import Notification

from . import display
from .messages import attention_key
from .models import (
    CaseState,
    CaseNote,
    Correction,
    Decision,
    FinancedCase,
    LedgerNote,
    PaymentArrangement,
    ShadowComparison,
    related_or_none,
)
from .outcomes import PmsOutcome, cancelled_outcome
from .services.audit import case_content_type, stamp
from .services.corrections import Chain, record_chain

# Fields whose changes are noise on a timeline: step bookkeeping, the state's own clock.
QUIET_FIELDS = {"id", "step_attempts", "next_attempt_at", "state_changed_at", "schedule", "template_snapshot", "offers", "updated_at"}
# Partner-write bookkeeping is set by UPDATEs that write no history row; the write entries
# below report it, so a later history row must not present it as that row's change.
WRITE_FIELDS = {"write_status", "write_attempts", "written_at", "verified_at", "pms_arrangement_id", "pms_note_id"}
HISTORY_TYPES = {"+": "created", "~": "changed", "-": "deleted"}


@dataclass
class Entry:
    at: datetime
    what: str
    who: str = ""
    why: str = ""
    changes: list = field(default_factory=list)  # (field label, before, after)
    kind: str = "audit"  # action | state | audit | write | notification | note
    effects: list = field(default_factory=list)  # what an action did, one line each
    user_id: int | None = None  # who, for folding a history row into its staff action


@dataclass
class Story:
    case: FinancedCase
    decision: Decision | None
    arrangement: PaymentArrangement | None
    ledger_note: LedgerNote | None
    shadow: ShadowComparison | None
    corrections: list
    notifications: list
    timeline: list
    # Stopped again for a reason billing was already alerted about: a sentence, else "".
    still_stands: str = ""
    # What a cancelled case left in the PMS; None for any other case.
    cancelled: PmsOutcome | None = None
    notes: list = field(default_factory=list)
    # The wait for the treatment to be posted (awaiting_production), in a sentence; "" if none.
    production_wait: str = ""
    # The arrangement's PMS record through its corrections (a new version, created again).
    record_chain: Chain | None = None


def build_story(case: FinancedCase) -> Story:
    """`case` should come with its one-to-one relations select_related (see the admin)."""
    decision = related_or_none(case, "decision")
    arrangement = related_or_none(case, "arrangement")
    note = related_or_none(case, "ledger_note")
    shadow = related_or_none(case, "shadow_comparison")
    corrections = list(Correction.objects.filter(case=case).select_related("actor").order_by("created_at", "pk"))
    notifications = list(
        Notification.objects.filter(reference=case.reference)
        .only("dedupe_key", "template", "channel", "status", "error", "attempts", "provider_id", "created_at", "sent_at")
        .order_by("created_at", "pk")
    )
    case_rows = _rows(FinancedCase, case)
    actions = _action_entries(case)
    notes = list(CaseNote.objects.filter(case=case).select_related("author").order_by("created_at", "pk"))
    timeline = []
    timeline += _case_entries(case_rows, case.location)
    for model, label in (
        (Decision, "Decision"),
        (PaymentArrangement, "Arrangement"),
        (LedgerNote, "Ledger note"),
        (Correction, "Correction"),
        (ShadowComparison, "Shadow comparison"),
    ):
        timeline += _history_entries(model, label, case)
    timeline += _write_entries(arrangement, note, case.location.pms_name)
    timeline = _fold_into_actions(actions, timeline) + _notification_entries(notifications, actions)
    timeline += [
        Entry(at=n.created_at, what="Internal note", who=n.author.get_username() if n.author else "—", why=n.text, kind="note")
        for n in notes
    ]
    timeline.sort(key=lambda e: e.at)
    return Story(
        case, decision, arrangement, note, shadow, corrections, notifications, timeline,
        still_stands=_still_stands(case, case_rows, notifications),
        cancelled=cancelled_outcome(case, arrangement, note),
        notes=notes,
        production_wait=production_wait(case),
        record_chain=record_chain(case, corrections),
    )


def production_wait(case: FinancedCase, now: datetime | None = None) -> str:
    """"Waited 3 days 4 hours for the treatment to be posted in Dentrix Ascend (…)", or, while
    it waits, "Waiting since …", on the location's clock."""
    awaited, posted = case.production_awaited_at, case.production_posted_at
    if awaited is None:
        return ""
    pms, where = case.location.pms_name, case.location
    if posted is not None:
        return (
            f"Waited {display.rough_span(posted - awaited)} for the treatment to be posted in {pms} "
            f"(from {display.when(awaited, where)} to {display.when(posted, where)})."
        )
    so_far = display.rough_span((now or timezone.now()) - awaited)
    if case.state == CaseState.AWAITING_PRODUCTION:
        return f"Waiting since {display.when(awaited, where)} ({so_far} so far) for the treatment to be posted in {pms}."
    return f"Waited from {display.when(awaited, where)} for the treatment to be posted in {pms}; it was not posted."


def _action_entries(case) -> list:
    rows = LogEntry.objects.filter(content_type_id=case_content_type().pk, object_id=str(case.pk)).select_related("user")
    return [
        Entry(at=row.action_time, what=row.get_change_message(), who=row.user.get_username(), kind="action", user_id=row.user_id)
        for row in rows.order_by("action_time", "pk")
    ]


def _fold_into_actions(actions: list, entries: list) -> list:
    """The actions, each with the history rows it wrote (same person, same moment) folded in,
    and every other entry as it is."""
    by_moment = {(a.user_id, a.at): a for a in actions}
    rest = []
    for entry in entries:
        action = by_moment.get((entry.user_id, entry.at)) if entry.user_id else None
        if action is None:
            rest.append(entry)
            continue
        if entry.kind == "state" or entry.what not in ("Case changed", "Arrangement changed"):
            action.effects.append(entry.what)
        # A reason the action's own line already gives ("Correction: why" gives the why) is not repeated.
        tail = entry.why.partition(": ")[2]
        said = entry.why in action.what or (tail and tail in action.what)
        if entry.why and not said and entry.why not in action.effects:
            action.effects.append(entry.why)
        action.changes += [c for c in entry.changes if c not in action.changes]
    return actions + rest


def _notification_entries(notifications: list, actions: list) -> list:
    """One entry per notification; a resent one is told on the resend's line instead."""
    by_stamp = {stamp(a.at): a for a in actions}
    entries = []
    for n in notifications:
        what = f"{n.template.replace('_', ' ').capitalize()} by {n.get_channel_display()}: {n.get_status_display().lower()}"
        _, _, resend = n.dedupe_key.partition(":resend:")
        action = by_stamp.get(resend.split(":")[0]) if resend else None
        if action is not None:
            action.effects.append(what + (f" ({n.error})" if n.error else ""))
            continue
        entries.append(Entry(at=n.created_at, what=what, who="Chairside", why=n.error, kind="notification"))
    return entries


def _still_stands(case, case_rows, notifications) -> str:
    """For a case that stopped again for a reason billing was already alerted about, say so
    (the repeat was not alerted: see messages.attention_key)."""
    if case.state != CaseState.NEEDS_ATTENTION or not case.state_reason:
        return ""
    key = f":reason-{attention_key(case.state_reason)}:"
    alerts = [n for n in notifications if n.template == "case_needs_attention" and key in n.dedupe_key]
    if not alerts or alerts[0].created_at >= case.state_changed_at:
        return ""  # this stop is the first for the reason (or was never alerted)
    stops = sum(
        1 for before, row in zip([None, *case_rows], case_rows)
        if row.state == CaseState.NEEDS_ATTENTION and row.state_reason == case.state_reason
        and (before is None or before.state != CaseState.NEEDS_ATTENTION)
    )
    zone = case.location.timezone
    times = f" (stopped {stops} times for it)" if stops > 1 else ""
    return (
        f"Stopped again for the same reason at {display.local_moment(case.state_changed_at, zone)}{times}; "
        f"billing was alerted the first time, at {display.local_moment(alerts[0].created_at, zone)}, and not again."
    )


def _who(row) -> str:
    user = row.history_user
    return user.get_username() if user else "Chairside"


# The decimal fields on these records that are not money.
PERCENT_FIELDS = {"apr"}


def _shown(value, name: str, where) -> str:
    """A field's value as the console shows it (financing.display): money, dates, and
    moments on the location's wall clock with the zone's label."""
    if value is None or value == "":
        return display.NOTHING
    if isinstance(value, datetime):
        return display.when(value, where)
    if isinstance(value, date):
        return display.day(value)
    if isinstance(value, Decimal):
        return f"{value}%" if name in PERCENT_FIELDS else display.money(value)
    return str(value)


def _shown_field(row, f, where) -> str:
    """A field of a history row as a clerk reads it: a person's name rather than their id, a
    choice's label ("12 months deferred interest") rather than its code."""
    if f.name in PEOPLE_FIELDS and getattr(row, f.attname) is not None:
        return getattr(row, f.name).get_username()
    value = getattr(row, f.attname)
    if f.choices and value:
        return str(dict(f.flatchoices).get(value, value))
    return _shown(value, f.name, where)


def _diff(old, new, fields, where) -> list:
    changes = []
    for f in fields:
        if getattr(old, f.attname) != getattr(new, f.attname):
            changes.append((f.verbose_name, _shown_field(old, f, where), _shown_field(new, f, where)))
    return changes


def _tracked(model):
    return [f for f in model.history.model._meta.fields if not f.name.startswith("history_") and f.name not in QUIET_FIELDS]


# The people a history row names besides its author, fetched with the row (no query per row).
PEOPLE = {FinancedCase: ("assigned_to",), ShadowComparison: ("reviewed_by",)}
PEOPLE_FIELDS = {name for names in PEOPLE.values() for name in names}


def _rows(model, case):
    history = model.history.model
    key = {"id": case.pk} if model is FinancedCase else {"case_id": case.pk}
    related = ("history_user", *PEOPLE.get(model, ()))
    return list(history.objects.filter(**key).select_related(*related).order_by("history_date", "history_id"))


def _case_entries(rows, where) -> list:
    fields = [f for f in _tracked(FinancedCase) if f.name not in {"lease_token", "lease_until", "last_polled_at"}]
    entries, previous = [], None
    for row in rows:
        if previous is None:
            entry = Entry(at=row.history_date, what="Case captured", who=_who(row), kind="state")
        else:
            changes = _diff(previous, row, fields, where)
            if previous.state != row.state:
                what = f"{previous.get_state_display()} → {row.get_state_display()}"
                kind = "state"
            else:
                what, kind = "Case changed", "audit"
            entry = Entry(at=row.history_date, what=what, who=_who(row), changes=changes, kind=kind)
        entry.why = row.history_change_reason or (row.state_reason if entry.kind == "state" else "")
        entry.user_id = row.history_user_id
        entries.append(entry)
        previous = row
    return entries


def _history_entries(model, label, case) -> list:
    fields = [f for f in _tracked(model) if f.name not in WRITE_FIELDS]
    entries, previous = [], {}
    for row in _rows(model, case):
        before = previous.get(row.id)
        if row.history_type == "+" or before is None:
            changes = []
            what = f"{label} recorded"
            if model is Correction:
                what = f"Correction of {row.field.replace('_', ' ')}"
                kind = Correction.FIELDS.get(row.field, "text")
                changes = [(row.field.replace("_", " "), display.of_kind(kind, row.before), display.of_kind(kind, row.after))]
            elif model is Decision:
                what = f"Decision recorded: {row.status}"
            elif model is ShadowComparison:
                what = f"Shadow comparison: {row.get_outcome_display().lower()}"
        else:
            changes = _diff(before, row, fields, case.location)
            what = f"{label} {HISTORY_TYPES[row.history_type]}"
        why = row.history_change_reason or (row.why if model is Correction else "")
        entries.append(Entry(at=row.history_date, what=what, who=_who(row), why=why or "", changes=changes, user_id=row.history_user_id))
        previous[row.id] = row
    return entries


def _write_entries(arrangement, note, pms_name: str) -> list:
    entries = []
    if arrangement and arrangement.written_at:
        entries.append(
            Entry(at=arrangement.written_at, what=f"Payment agreement written to {pms_name} (id {arrangement.pms_arrangement_id})", who="Chairside", kind="write")
        )
    if arrangement and arrangement.verified_at:
        entries.append(Entry(at=arrangement.verified_at, what=f"Payment agreement read back from {pms_name}: terms match", who="Chairside", kind="write"))
    if note and note.written_at:
        entries.append(Entry(at=note.written_at, what=f"Ledger note posted to {pms_name} (id {note.pms_note_id})", who="Chairside", kind="write"))
    return entries
