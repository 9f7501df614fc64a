"""Step 5, the ledger note: posted once (lookup-before-write on the case's marker); the case
completes with it, and the coordinator's confirmation follows the transition."""


from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core.faults import fault_point

from .. import display, partners, reasons
from ..markers import find_by_marker
from ..models import ArrangementTemplate, CaseState, FinancedCase, LedgerNote, Recording, WriteStatus, effective_template, related_or_none
from ..ports import LedgerNoteType, PermanentPartnerError, RateLimited, TransientPartnerError
from ..terms import money
from .remainder import in_house_summary
from .leases import LeaseLost, before_write, claim, finish, needs_attention, retry_later


# The states the note is posted from: the arrangement written (Recording.ARRANGEMENT), or the
# payment and merchant fee posted (Recording.PAYMENT).
NOTE_STATES = (CaseState.ARRANGEMENT_WRITTEN, CaseState.POSTED)


def post_ledger_note(case_id: int) -> str:
    claimed = claim(case_id, NOTE_STATES)
    if claimed is None:
        return "skipped"
    case, token = claimed
    state = case.state  # which of them: the lease keeps it so until the step finishes
    note = prepare_note(case)
    pms_name = partners.pms_name(case.location)
    problems = partners.note_problems(case.location, LedgerNoteType(note.note_type), note.text)
    if problems:
        if note.pk is None:
            _save_note(note)  # the billing team sees what Chairside would have posted
        needs_attention(case.pk, token, reasons.note_rules(pms_name, problems))
        return "needs_attention"
    pms = partners.pms_for(case.location)
    try:
        record = None
        if note.pk is not None and note.write_status != WriteStatus.PENDING:
            # An earlier attempt sent it, or may have: look before writing again. A note
            # that is new or still PENDING was never sent (UNKNOWN is committed before
            # every POST), so it needs no lookup: one partner call saved per case.
            record = find_by_marker(pms.list_ledger_notes(case.patient_id), case.marker)
        if record is None:
            with transaction.atomic():  # the mark and the proof the case is still ours
                before_write(case, token)
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
        return retry_later(case, token, exc)
    except PermanentPartnerError as exc:
        needs_attention(case.pk, token, reasons.note_refused(pms_name, exc))
        return "needs_attention"
    # The note's outcome and the case's completion commit together; should this commit be
    # lost, the note is still UNKNOWN and the next attempt finds it by its marker.
    with transaction.atomic():
        LedgerNote.objects.filter(pk=note.pk).update(pms_note_id=record.note_id, write_status=WriteStatus.WRITTEN, written_at=timezone.now())
        finish(case.pk, token, state, CaseState.COMPLETED, completed_at=timezone.now())
    return "completed"


def _save_note(note: LedgerNote):
    try:
        with transaction.atomic():  # the row and its history row: one commit
            note.save()
    except IntegrityError:
        # Another worker made this case's note meanwhile: it holds the case now, not us.
        raise LeaseLost(note.case.reference) from None


PAYMENT_PLACEHOLDERS = ("purchase_amount", "merchant_fee", "net_amount")
PAYMENT_NOTE = (
    "CareCredit {promotion}: charged {purchase_amount} to the patient's account, merchant fee {merchant_fee}, "
    "net {net_amount} to the practice. Approved {approved_amount}. Application {application_id}. {marker}"
)


def _arrangement_values(arrangement) -> dict:
    if arrangement is None:
        return dict.fromkeys(
            ("financed_amount", "number_of_payments", "recurring_amount", "final_payment", "first_payment_date", "down_payment", "apr"),
            display.NOTHING,
        )
    return {
        "financed_amount": money(arrangement.financed_amount),
        "number_of_payments": arrangement.number_of_payments,
        "recurring_amount": money(arrangement.recurring_amount),
        "final_payment": money(arrangement.final_payment),
        "first_payment_date": display.day(arrangement.first_payment_date),
        "down_payment": money(arrangement.down_payment),
        "apr": f"{arrangement.apr:.2f}%",
    }


def prepare_note(case: FinancedCase, *, now=None) -> LedgerNote:
    """The case's ledger note: the stored one, or its text as of `now` (not saved yet)."""
    existing = related_or_none(case, "ledger_note")
    if existing:
        return existing
    arrangement = related_or_none(case, "arrangement")
    # Only a case recorded as a payment has a purchase: no query for the others.
    purchase = related_or_none(case, "purchase") if case.recording == Recording.PAYMENT else None
    template = effective_template(case.location)
    values = {
        "promotion": case.get_promotion_display(),
        "approved_amount": money(case.decision.approved_amount),
        "application_id": case.application_id,
        "reference": case.reference,
        "marker": case.marker,
        # The money (Recording.PAYMENT): gross charged, merchant fee, net funded.
        "purchase_amount": money(purchase.amount) if purchase else display.NOTHING,
        "merchant_fee": money(purchase.merchant_fee) if purchase else display.NOTHING,
        "net_amount": money(purchase.net_amount) if purchase else display.NOTHING,
    }
    values.update(_arrangement_values(arrangement))
    in_house = in_house_summary(case)
    values["in_house"] = in_house or display.NOTHING
    note_template = template.note_template
    if case.recording == Recording.PAYMENT and not any(f"{{{name}}}" in note_template for name in PAYMENT_PLACEHOLDERS):
        # A template worded for the arrangement way says nothing of the money: the standard
        # payment wording instead (a group can word its own with the placeholders).
        note_template = PAYMENT_NOTE
    try:
        text = note_template.format(**values)
    except (KeyError, IndexError, ValueError):
        # A broken template must not block the ledger: fall back to the standard wording.
        standard = PAYMENT_NOTE if case.recording == Recording.PAYMENT else ArrangementTemplate._meta.get_field("note_template").default
        text = standard.format(**values)
    if in_house and in_house not in text:
        # What the practice itself carries (services/remainder.py), before the marker.
        text = f"{text.replace(case.marker, '').rstrip()} {in_house}."
    if case.marker not in text:
        text = f"{text} {case.marker}"
    stamp = display.when(now or timezone.now(), case.location)
    if template.note_type == LedgerNoteType.BILLING_STATEMENT and purchase is not None:
        # 82 characters at most (Dentrix): gross, fee and net, then the marker.
        text = f"{partners.lender_name(case.location)} {money(purchase.amount)} fee {money(purchase.merchant_fee)} net {money(purchase.net_amount)} {case.marker}"
    elif template.note_type == LedgerNoteType.BILLING_STATEMENT:
        text = f"{partners.lender_name(case.location)} {arrangement.number_of_payments}x{money(arrangement.recurring_amount)} {case.marker}"
    else:
        text = f"{stamp} {text}"
    # Not saved yet: post_ledger_note saves it with its write status, in one commit.
    return LedgerNote(case=case, note_type=template.note_type, text=text)
