"""What a cancelled case left in the PMS, said one way on the case page and to the coordinator.

A case can be cancelled before its arrangement step, after the terms were computed but
before they were written, while a write's outcome was still unknown, or (from needs
attention, at the ledger-note step) after the payment agreement was written. Chairside
never deletes from the PMS, so each of those leaves something different for people to do.
"""

from dataclasses import dataclass

from .models import CaseState, FinancedCase, LedgerNote, PaymentArrangement, WriteStatus


@dataclass(frozen=True)
class PmsOutcome:
    written: bool | None  # None: perhaps (a write went out without an answer)
    status: str  # the case page's "Written to Dentrix" cell, in a few words
    detail: str  # what happened and what to do, for billing (may name PMS record ids)
    told: str  # the same for the coordinator's message: no account or record ids


def cancelled_outcome(case: FinancedCase, arrangement: PaymentArrangement | None, note: LedgerNote | None) -> PmsOutcome | None:
    """What the cancellation of `case` left in its PMS; None unless the case is cancelled."""
    if case.state != CaseState.CANCELLED:
        return None
    pms = case.location.pms_name
    status = arrangement.write_status if arrangement else None
    if status == WriteStatus.WRITTEN:
        posted = note is not None and note.write_status == WriteStatus.WRITTEN
        also = f" (with ledger note {note.pms_note_id})" if posted else ""
        return PmsOutcome(
            written=True,
            status=f"Written before the case was cancelled: it stays in {pms}",
            detail=(
                f"Payment agreement {arrangement.pms_arrangement_id}{also} was written to {pms} before the case "
                f"was cancelled, and it stays there: Chairside never deletes from {pms}. Unless the patient goes "
                f"ahead, inactivate agreement {arrangement.pms_arrangement_id} on guarantor account "
                f"{case.guarantor_id} in {pms}."
            ),
            told=(
                f"The payment agreement was already written to {pms}, and it stays there until billing "
                f"inactivates it. If the patient still wants the treatment financed, talk to billing first."
            ),
        )
    if status == WriteStatus.UNKNOWN:
        return PmsOutcome(
            written=None,
            status=f"Perhaps written: the write to {pms} had no answer when the case was cancelled",
            detail=(
                f"A write of the payment agreement to {pms} had gone out without an answer when the case was "
                f"cancelled. Look on guarantor account {case.guarantor_id} in {pms} for an agreement whose note "
                f"holds {case.marker}; if it is there, inactivate it unless the patient goes ahead."
            ),
            told=f"A payment agreement may have reached {pms} before the cancellation: billing is checking it.",
        )
    if status == WriteStatus.SHADOW:
        return PmsOutcome(
            written=False,
            status="Not written: shadow mode computes and compares, never writes",
            detail=f"Not written: the location runs in shadow mode, so nothing was written to {pms}.",
            told=f"Nothing was written to {pms}.",
        )
    if status is None:
        detail = f"Not written: the case was cancelled before the arrangement step. Nothing was written to {pms}."
    else:  # computed (pending) or refused (failed): never written
        detail = (
            f"Not written: the case was cancelled before the payment agreement was written to {pms}. "
            "The terms below were computed, never written."
        )
    return PmsOutcome(written=False, status=detail.split(". ")[0], detail=detail, told=f"Nothing was written to {pms}.")
