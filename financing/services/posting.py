"""One ledger posting (a payment or an adjustment) written to the PMS exactly once.

The one place every posting goes through: the CareCredit payment and the merchant fee (the
posting step, below), and a refund's adjustment (services for refunds). Like the ledger note
(ledger_note.py):

- each posting has its own marker (`markers.posting_marker`) in the entry's note, and its
  row is unique on it: preparing a posting twice returns the same row;
- before the POST, the row is marked UNKNOWN with its attempt counted, in one commit (and,
  inside a step, with the proof that the case's lease is still ours: `before_write`);
- a posting that may have been sent (UNKNOWN, WRITTEN) is looked up by its marker before
  anything is sent again; a PENDING one was never sent and needs no lookup;
- what the PMS holds is read back: another amount or type is a person's work
  (`PostingDiffers`), never a second entry;
- our own limiter holding the POST back (`RateLimited`) gives the attempt back: nothing left.

Then the posting step of a payment-recording case: PURCHASED → payment (net) + merchant fee
(−fee) → POSTED, whose transition queues the ledger note.
"""

import logging
from datetime import date
from decimal import Decimal

from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core.faults import fault_point

from .. import partners, reasons
from ..markers import find_by_marker, posting_marker
from ..models import CaseState, FinancedCase, LedgerPosting, Purchase, WriteStatus, effective_template, related_or_none
from ..ports import LedgerEntry, LedgerEntryKind, LedgerEntryRequest, PermanentPartnerError, RateLimited, TransientPartnerError
from ..terms import money
from .leases import LeaseLost, before_write, claim, finish, needs_attention, retry_later

log = logging.getLogger(__name__)


# What each posting is, in a clerk's words (a note, a reason).
KIND_WORDS = {LedgerPosting.Kind.PAYMENT: "payment", LedgerPosting.Kind.MERCHANT_FEE: "merchant fee", LedgerPosting.Kind.REFUND: "refund"}


class PostingDiffers(Exception):
    """The PMS holds the posting with another amount or type than Chairside sent (in words)."""


def prepare_posting(
    case: FinancedCase,
    kind: str,
    *,
    type_name: str,
    amount: Decimal,
    entry_date: date,
    number: int | None = None,
    refund=None,
) -> LedgerPosting:
    """The case's posting of `kind` (and `number`, for the nth refund): the stored one, or a
    new PENDING row with these values (saved: its marker is then taken for good)."""
    marker = posting_marker(case.reference, kind, number)
    existing = LedgerPosting.objects.filter(marker=marker).first()
    if existing is not None:
        return existing
    entry_kind = LedgerEntryKind.PAYMENT if kind == LedgerPosting.Kind.PAYMENT else LedgerEntryKind.ADJUSTMENT
    posting = LedgerPosting(
        case=case, refund=refund, kind=kind, entry_kind=entry_kind.value, type_name=type_name,
        amount=amount, entry_date=entry_date, marker=marker,
        note=f"{marker} {partners.lender_name(case.location)} {KIND_WORDS[kind]} {case.reference}"[:255],
    )
    try:
        with transaction.atomic():  # the row and its history row: one commit
            posting.save()
    except IntegrityError:
        # Another worker prepared it meanwhile: theirs is the posting.
        return LedgerPosting.objects.get(marker=marker)
    return posting


def request_for(case: FinancedCase, posting: LedgerPosting) -> LedgerEntryRequest:
    return LedgerEntryRequest(
        kind=LedgerEntryKind(posting.entry_kind), patient_id=case.patient_id, guarantor_id=case.guarantor_id,
        entry_date=posting.entry_date, amount=posting.amount, type_name=posting.type_name, note=posting.note,
    )


def post_once(case: FinancedCase, posting: LedgerPosting, *, token: str | None = None) -> LedgerPosting:
    """Write `posting` to the PMS exactly once and read it back; returns it WRITTEN.

    `token`: the case's lease, when a step holds it (proved before the POST; LeaseLost if
    gone). Raises TransientPartnerError (RateLimited with the attempt given back),
    PermanentPartnerError (the PMS refused it: the posting is FAILED), PostingDiffers.
    """
    if posting.write_status == WriteStatus.WRITTEN and posting.pms_entry_id:
        return posting
    pms = partners.pms_for(case.location)
    entry = None
    if posting.write_status != WriteStatus.PENDING:
        # Sent before, or may have been: look before writing again.
        entry = find_by_marker(pms.list_ledger_entries(case.patient_id), posting.marker)
    if entry is None:
        status_before = posting.write_status
        with transaction.atomic():  # the mark (and the proof the case is still ours): one commit
            if token is not None:
                before_write(case, token)
            LedgerPosting.objects.filter(pk=posting.pk).update(write_status=WriteStatus.UNKNOWN, write_attempts=F("write_attempts") + 1)
        fault_point("before_pms_posting_write")
        try:
            entry = pms.post_ledger_entry(request_for(case, posting))
        except RateLimited:
            # Held back by our own limiter: nothing was sent, so this was no attempt.
            LedgerPosting.objects.filter(pk=posting.pk).update(write_status=status_before, write_attempts=F("write_attempts") - 1)
            raise
        except PermanentPartnerError:
            LedgerPosting.objects.filter(pk=posting.pk, write_status=WriteStatus.UNKNOWN).update(write_status=WriteStatus.FAILED)
            raise
        fault_point("after_pms_posting_write")
        # Read back: what the ledger holds under the marker now.
        entry = find_by_marker(pms.list_ledger_entries(case.patient_id), posting.marker) or entry
    mismatch = differences(posting, entry)
    LedgerPosting.objects.filter(pk=posting.pk).update(
        pms_entry_id=entry.entry_id, write_status=WriteStatus.WRITTEN, written_at=timezone.now()
    )
    posting.refresh_from_db()
    if mismatch:
        raise PostingDiffers(mismatch)
    return posting


def differences(posting: LedgerPosting, entry: LedgerEntry) -> str:
    found = []
    if entry.amount != posting.amount:
        found.append(f"amount: sent {money(posting.amount)}, stored {money(entry.amount)}")
    if entry.type_name.strip().lower() != posting.type_name.strip().lower():
        found.append(f"type: sent {posting.type_name}, stored {entry.type_name}")
    if entry.kind != LedgerEntryKind(posting.entry_kind):
        found.append(f"kind: sent {posting.entry_kind}, stored {entry.kind}")
    return "; ".join(found)


# --- the posting step (Recording.PAYMENT): PURCHASED → POSTED ---------------------------------


def post_payment(case_id: int) -> str:
    claimed = claim(case_id, CaseState.PURCHASED)
    if claimed is None:
        return "skipped"
    case, token = claimed
    purchase = related_or_none(case, "purchase")
    if purchase is None or purchase.status != Purchase.Status.SETTLED:
        needs_attention(case.pk, token, reasons.purchase_not_settled(partners.lender_name(case.location)))
        return "needs_attention"
    template = effective_template(case.location)
    # The practice's own day the account was charged (its zone, not the lender's).
    day = timezone.localdate(purchase.charged_at or timezone.now(), ZoneInfo(case.location.timezone))
    # The payment is the money the practice receives (net); the merchant fee is credited
    # off the account, so the patient's balance drops by the full amount charged.
    wanted = [
        (LedgerPosting.Kind.PAYMENT, template.payment_type, purchase.net_amount),
        (LedgerPosting.Kind.MERCHANT_FEE, template.fee_adjustment_type, -purchase.merchant_fee),
    ]
    pms_name = partners.pms_name(case.location)
    label = ""
    try:
        for kind, type_name, amount in wanted:
            if kind == LedgerPosting.Kind.MERCHANT_FEE and amount == 0:
                continue  # a 0% rate: no adjustment to post
            label = KIND_WORDS[kind]
            posting = prepare_posting(case, kind, type_name=type_name, amount=amount, entry_date=day)
            post_once(case, posting, token=token)
        outcome = write_remainder(case, token)
        if outcome:
            return outcome
    except TransientPartnerError as exc:
        return retry_later(case, token, exc)
    except PermanentPartnerError as exc:
        needs_attention(case.pk, token, reasons.posting_refused(pms_name, label or "remainder", exc))
        return "needs_attention"
    except PostingDiffers as exc:
        needs_attention(case.pk, token, reasons.posting_differs(pms_name, str(exc)))
        return "needs_attention"
    finish(case.pk, token, CaseState.PURCHASED, CaseState.POSTED, posted_at=timezone.now())
    return "posted"


def write_remainder(case: FinancedCase, token: str) -> str:
    """The in-house remainder (Shortfall.IN_HOUSE): write the IN_HOUSE payment arrangement
    for what the practice itself carries, once the payment and fee are posted
    (services/remainder.py). Returns "" to go on to POSTED, or the step's outcome when it
    stopped the case (retry, needs attention)."""
    from .remainder import carry_remainder  # remainder → arrangement → production: kept out of import time

    return carry_remainder(case, token)


__all__ = ["LeaseLost", "PostingDiffers", "post_once", "post_payment", "prepare_posting", "write_remainder"]
