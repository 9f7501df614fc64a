"""How the billing team shares out the work, beside the case's state machine: a clerk takes a
case (assigns it to themselves) or gives it back, leaves an internal note, marks a shadow
comparison's discrepancies reviewed.

Assignment and reviews go through `audit.begin(actor)` like every staff action: one entry
in the admin's log against the case, and the history row they write credited to the person
at the same moment (the timeline folds it into the action's line). A note is credited by its
author; its text is never logged (not even in the admin's log), sent or exported: it is for
the team, on the case page. None of them changes the case's state.
"""

import logging

from django.db import transaction
from ..models import CaseNote, ShadowComparison
from .audit import begin
from .leases import locked

log = logging.getLogger(__name__)

NOTE_MAX_LENGTH = 2000


class CaseworkError(Exception):
    """What cannot be done, in words for the person who tried."""


def _person(actor):
    """Assignment, notes and reviews are nothing without the person they name."""
    if not getattr(actor, "pk", None):
        raise CaseworkError("Only a signed-in staff member can do this.")
    return actor


def assign_case(case_id: int, *, actor):
    """Take the case on: the team sees it is yours. Taking a colleague's case is allowed (they
    may be away) and the timeline says from whom."""
    action = begin(_person(actor))
    with transaction.atomic():
        case = locked(case_id)
        if case.assigned_to_id == actor.pk:
            raise CaseworkError(f"{case.reference} is already assigned to you.")
        previous = case.assigned_to
        case.assigned_to, case.assigned_at = actor, action.at
        what = f"Assigned to {actor.get_username()}" + (f" (was {previous.get_username()})" if previous else "")
        action.attribute(case, what)
        case.save(update_fields=["assigned_to", "assigned_at"])
        action.log(case, what)
    log.info("case %s: assigned to user %s by themselves", case.reference, actor.pk)
    return case


def unassign_case(case_id: int, *, actor):
    action = begin(_person(actor))
    with transaction.atomic():
        case = locked(case_id)
        if case.assigned_to_id is None:
            raise CaseworkError(f"{case.reference} is not assigned to anyone.")
        what = f"Unassigned (was {case.assigned_to.get_username()})"
        case.assigned_to, case.assigned_at = None, None
        action.attribute(case, what)
        case.save(update_fields=["assigned_to", "assigned_at"])
        action.log(case, what)
    log.info("case %s: unassigned by user %s", case.reference, actor.pk)
    return case


def add_note(case_id: int, *, text: str, actor) -> CaseNote:
    actor = _person(actor)
    text = (text or "").strip()
    if not text:
        raise CaseworkError("Write the note first.")
    if len(text) > NOTE_MAX_LENGTH:
        raise CaseworkError(f"A note holds at most {NOTE_MAX_LENGTH:,} characters ({len(text):,} given).")
    with transaction.atomic():
        case = locked(case_id)  # a note on a case being deleted must fail, not dangle
        note = CaseNote.objects.create(case=case, author=actor, text=text)
    # Who and where, never what: a note may name the patient.
    log.info("case %s: internal note %s added by user %s", case.reference, note.pk, actor.pk)
    return note


def mark_shadow_reviewed(case_id: int, *, actor) -> ShadowComparison:
    """Someone looked at what differs between Chairside's computed agreement and the one staff
    entered (and settled it with them): the discrepancies leave the work of the day."""
    action = begin(_person(actor))
    with transaction.atomic():
        comparison = ShadowComparison.objects.select_for_update().select_related("case").filter(case_id=case_id).first()
        if comparison is None or comparison.outcome != ShadowComparison.Outcome.MISMATCH:
            raise CaseworkError("This case has no shadow discrepancies to review.")
        if comparison.reviewed_at is not None:
            raise CaseworkError(
                f"{comparison.case.reference}: the discrepancies were reviewed by "
                f"{comparison.reviewed_by.get_username() if comparison.reviewed_by else 'someone'} already."
            )
        comparison.reviewed_by, comparison.reviewed_at = actor, action.at
        action.attribute(comparison)
        comparison.save(update_fields=["reviewed_by", "reviewed_at"])
        action.log(comparison.case, "Marked the shadow discrepancies reviewed")
    log.info("case %s: shadow discrepancies reviewed by user %s", comparison.case.reference, actor.pk)
    return comparison
