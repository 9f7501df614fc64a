"""Step 4, the arrangement: the terms computed once, checked against the PMS's rules,
written once (lookup-before-write on the case's marker) and read back. In shadow mode the
terms are compared with what staff entered by hand instead, and nothing is written."""

import logging
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.faults import fault_point

from .. import partners, reasons
from ..display import agreement_term
from ..markers import find_by_marker, is_ours
from ..models import CaseState, FinancedCase, Location, PaymentArrangement, ShadowComparison, WriteStatus
from ..models import PROMOTION_CHOICES, PROMOTION_LABELS, effective_template, related_or_none
from ..ports import Agreement, AgreementRequest, AppliedProcedure, PartnerError, PermanentPartnerError, RateLimited, TransientPartnerError
from ..terms import Terms, TermsError, compute_terms
from .decision import offer_from_json
from .leases import before_write, claim, finish, needs_attention, retry_later
from .production import hold_until_posted

log = logging.getLogger(__name__)


def write_arrangement(case_id: int) -> str:
    claimed = claim(case_id, CaseState.APPROVED)
    if claimed is None:
        return "skipped"
    case, token = claimed
    try:
        arrangement = prepare_arrangement(case)
    except TermsError as exc:
        needs_attention(case.pk, token, exc.reason)
        return "needs_attention"
    request = agreement_request(case, arrangement)
    pms_name, record = partners.pms_name(case.location), partners.pms_record_name(case.location)
    # Treatment not posted yet, where the product needs it posted: the case waits, nothing
    # is written (services/production.py). The plans it read serve the rules below.
    held = hold_until_posted(case, token, arrangement)
    if held.outcome:
        return held.outcome
    try:
        procedures = procedures_as_held(case, arrangement, plans=held.plans)
    except TransientPartnerError as exc:
        save_arrangement(arrangement)  # the terms stay visible while the case waits
        return retry_later(case, token, exc)
    except PermanentPartnerError as exc:
        save_arrangement(arrangement)
        needs_attention(case.pk, token, reasons.agreement_refused(pms_name, exc, record=record))
        return "needs_attention"
    if stopped := rules_stop(case, token, arrangement, request, procedures=procedures):
        return stopped
    if case.location.mode == Location.Mode.SHADOW:
        arrangement.write_status = WriteStatus.SHADOW
        save_arrangement(arrangement)
        compare_with_hand_entered(case, request)
        finish(case.pk, token, CaseState.APPROVED, CaseState.COMPLETED, reason=reasons.SHADOW_COMPLETED, completed_at=timezone.now())
        return "shadow"
    put = put_agreement(case, token, arrangement, request)
    if put.outcome:
        return put.outcome
    # The outcome and the case's next state commit together. Should this commit be lost,
    # the arrangement is still UNKNOWN and the next attempt adopts it by its marker.
    now = timezone.now()
    with transaction.atomic():
        if not mark_written(case, token, arrangement, put, now):
            return "needs_attention"
        finish(case.pk, token, CaseState.APPROVED, CaseState.ARRANGEMENT_WRITTEN, arrangement_written_at=now)
    return "written"


# --- writing one arrangement: shared by the CareCredit schedule (above) and the practice's
# own in-house remainder (services/remainder.py) --------------------------------------------


@dataclass(frozen=True)
class Put:
    """What putting an arrangement in the PMS came to: the agreement as written and what its
    read-back found different, or the step's outcome when it stopped (retry later, needs
    attention)."""

    outcome: str = ""
    agreement: Agreement | None = None
    mismatch: str = ""


def rules_stop(case: FinancedCase, token: str, arrangement: PaymentArrangement, request: AgreementRequest, *, procedures) -> str:
    """Check the arrangement against the PMS product's rules before anything is written:
    "needs_attention" (the terms saved for the billing team to see) or "" when it passes."""
    problems = partners.agreement_problems(case.location, request, procedures=procedures)
    if not problems:
        return ""
    save_arrangement(arrangement)  # the billing team sees what Chairside computed
    pms_name, record = partners.pms_name(case.location), partners.pms_record_name(case.location)
    needs_attention(case.pk, token, reasons.agreement_rules(pms_name, problems, record=record))
    return "needs_attention"


def put_agreement(case: FinancedCase, token: str, arrangement: PaymentArrangement, request: AgreementRequest) -> Put:
    """Write the arrangement once: lookup by the case's marker first (an earlier attempt's
    write is adopted), a record in the way stops for the billing team, the attempt is
    marked UNKNOWN (committed, the lease proved ours) before the POST, and the guarantor's
    records are read back. Nothing is marked written here: the caller commits that with
    the case's next state (`mark_written`)."""
    pms_name, record = partners.pms_name(case.location), partners.pms_record_name(case.location)
    pms = partners.pms_for(case.location)
    try:
        existing = pms.list_payment_agreements(case.guarantor_id)
        agreement = find_by_marker(existing, case.marker)
        if agreement is None:
            # What the product keeps beside ours: nothing in the way where it keeps several
            # (Dentrix Enterprise); else the one it allows (an active one, or any at all).
            blocking = partners.pms_records_in_the_way(case.location, existing)
            if blocking:
                save_arrangement(arrangement)
                needs_attention(case.pk, token, reasons.agreement_exists(
                    pms_name, case.guarantor_id, blocking[0].agreement_id,
                    record=record, any_status=partners.pms_counts_any_status(case.location),
                ))
                return Put("needs_attention")
            # Recorded (committed) before the POST: if we die mid-request, the next attempt
            # knows the outcome is unknown and must look up (it always does, but the record
            # says why), after the settle time (before_write). One commit stores the
            # computed terms, this mark and that proof that the case is still ours.
            status_before = arrangement.write_status
            with transaction.atomic():
                before_write(case, token)
                arrangement.write_status = WriteStatus.UNKNOWN
                arrangement.write_attempts += 1
                save_arrangement(arrangement)
            fault_point("before_pms_agreement_write")
            try:
                agreement = pms.create_payment_agreement(request)
            except RateLimited:
                # Held back by our own limiter: nothing was sent, so this was no attempt and
                # the status is what it was (still UNKNOWN if an earlier POST may have landed).
                PaymentArrangement.objects.filter(pk=arrangement.pk).update(
                    write_status=status_before, write_attempts=F("write_attempts") - 1)
                raise
            fault_point("after_pms_agreement_write")
        mismatch = _read_back(case.location, pms.list_payment_agreements(case.guarantor_id), agreement.agreement_id, request)
    except TransientPartnerError as exc:
        if arrangement.pk is None:
            save_arrangement(arrangement)  # the terms stay visible while the case waits
        return Put(retry_later(case, token, exc))
    except PermanentPartnerError as exc:
        PaymentArrangement.objects.filter(pk=arrangement.pk, write_status=WriteStatus.UNKNOWN).update(write_status=WriteStatus.FAILED)
        needs_attention(case.pk, token, reasons.agreement_refused(pms_name, exc, record=record))
        return Put("needs_attention")
    return Put(agreement=agreement, mismatch=mismatch)


def mark_written(case: FinancedCase, token: str, arrangement: PaymentArrangement, put: Put, now) -> bool:
    """Inside the caller's transaction: the arrangement written (verified unless the
    read-back differed). False when it differed: the case then needs attention, and the
    caller does not move it on."""
    if arrangement.pk is None:  # adopted from the PMS before this database knew of it
        save_arrangement(arrangement)
    PaymentArrangement.objects.filter(pk=arrangement.pk).update(
        pms_arrangement_id=put.agreement.agreement_id,
        write_status=WriteStatus.WRITTEN,
        written_at=now,
        verified_at=None if put.mismatch else now,
    )
    if put.mismatch:
        pms_name, record = partners.pms_name(case.location), partners.pms_record_name(case.location)
        needs_attention(case.pk, token, reasons.agreement_differs(pms_name, put.agreement.agreement_id, put.mismatch, record=record))
        return False
    return True


def prepare_arrangement(case: FinancedCase, *, now=None) -> PaymentArrangement:
    """Compute the terms, unless an earlier attempt may already have written them.

    Returns the stored arrangement, or one with fresh terms that is not saved yet: the
    caller saves it together with its next write status (one commit instead of two).
    `now` is when the step runs (the demo history computes its arrangements as of the day
    they were made).
    """
    now = now or timezone.now()
    existing = related_or_none(case, "arrangement")
    if existing and existing.write_status != WriteStatus.PENDING:
        return existing
    decision = case.decision
    lender = partners.lender_name(case.location)
    if decision.approved_amount is None:
        raise TermsError(reasons.approved_without_amount(lender))
    offers = {o["code"]: o for o in decision.offers}
    if case.promotion not in offers:
        # By their labels, in the promotions table's order (a code the table lacks, last, as is).
        known = [label for code, label in PROMOTION_CHOICES if code in offers]
        offered = ", ".join(known + sorted(set(offers) - set(PROMOTION_LABELS))) or "none"
        raise TermsError(reasons.promotion_not_offered(lender, case.get_promotion_display(), offered))
    template = effective_template(case.location)
    # The schedule runs from the decision, or from the day the treatment was posted when the
    # case waited for it (services/production.py): a plan written weeks after the decision
    # must not start with payments already due.
    starts = max(filter(None, (decision.decided_at, case.production_posted_at)), default=now)
    decision_day = timezone.localdate(starts, ZoneInfo(case.location.timezone))
    terms = compute_terms(
        plan_total=case.plan_total,
        requested_down_payment=case.requested_down_payment,
        approved_amount=decision.approved_amount,
        offer=offer_from_json(offers[case.promotion]),
        decision_date=decision_day,
        first_payment_offset_days=template.first_payment_offset_days,
        first_payment_day_of_month=template.first_payment_day_of_month,
    )
    terms = partners.fit_terms(case.location, terms)
    values = dict(
        marker=case.marker,
        promotion=case.promotion,
        agreement_date=timezone.localdate(now, ZoneInfo(case.location.timezone)),
        plan_total=case.plan_total,
        **terms_fields(terms),
        note=f"{case.marker} {lender} {case.promotion} app {case.application_id}"[:255],
        template_snapshot=template.snapshot(),
    )
    arrangement = existing or PaymentArrangement(case=case)
    for name, value in values.items():
        setattr(arrangement, name, value)
    return arrangement


def terms_fields(terms: Terms) -> dict:
    """The arrangement's copy of computed terms, schedule included: one shape for the first
    computation and for a correction's recomputation."""
    return dict(
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
    )


def save_arrangement(arrangement: PaymentArrangement):
    # Atomic, so the row and its history row are one commit, not two.
    with transaction.atomic():
        arrangement.save()


def agreement_request(case: FinancedCase, arrangement: PaymentArrangement) -> AgreementRequest:
    """The arrangement as the port writes it. The plan's procedures (by the PMS's ids, each at
    its fee) and a plan name go along for the products that build a plan over procedures or
    name their plans; a product with no use for them ignores them."""
    return AgreementRequest(
        patient_id=case.patient_id,
        treatment_plan_id=case.treatment_plan_id,
        procedures=tuple(
            AppliedProcedure(p["procedure_id"], Decimal(p["fee"])) for p in case.procedures if p.get("procedure_id")
        ),
        name=f"{partners.lender_name(case.location)} {case.reference}"[:30],
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


COMPARED_AGREEMENT_FIELDS = (
    "interval",
    "total_agreed_amount",
    "down_payment",
    "payment_amount",
    "number_of_payments",
    "first_payment_due",
    "annual_finance_charge_pct",
)


def _read_back(location, agreements, agreement_id: str, request: AgreementRequest) -> str:
    """What the PMS holds that differs from what was sent, in words ("" when nothing): the
    terms every product stores, then the product's own fields (a plan's name and patients,
    the procedures it is built over, its start, a contract amount). A product that stores a
    payment other than the one sent (Dentrix Ascend rounds one that does not fit) shows here."""
    stored = next((a for a in agreements if a.agreement_id == agreement_id), None)
    if stored is None:
        return f"{partners.pms_record_name(location)} {agreement_id} is missing on read-back"
    diffs = [
        (ShadowComparison.FIELD_LABELS[name], agreement_term(name, getattr(request, name)), agreement_term(name, getattr(stored, name)))
        for name in COMPARED_AGREEMENT_FIELDS
        if getattr(stored, name) != getattr(request, name)
    ]
    diffs += partners.stored_differences(location, request, stored)
    return "; ".join(f"{label}: sent {sent}, stored {held}" for label, sent, held in diffs)


def procedures_as_held(case: FinancedCase, arrangement: PaymentArrangement, *, plans=None):
    """The case's plan's procedures as the PMS holds them now (posted, balance), for a product
    that writes only over posted production (its rules check them); None for the others,
    which are not asked (no partner call).

    None too once a write may have gone out (unknown, or written and read back with other
    terms): our own plan may have used the balance up, and the lookup by marker, not the
    ledger, says what happened to it. `plans`: the patient's plans, when the step has just read
    them (the wait for posted production did)."""
    if not partners.pms_needs_posted_production(case.location):
        return None
    if arrangement.write_status in (WriteStatus.UNKNOWN, WriteStatus.WRITTEN):
        return None
    if plans is None:
        plans = partners.pms_for(case.location).get_treatment_plans(case.patient_id)
    plan = next((p for p in plans if p.plan_id == case.treatment_plan_id), None)
    return plan.procedures if plan is not None else ()


def compare_with_hand_entered(case: FinancedCase, request: AgreementRequest, *, attribute=None) -> ShadowComparison:
    """Shadow mode: compare what Chairside would have written with the agreement staff
    entered by hand. Read-only at the PMS: a lookup failure is recorded, never a reason to stop the case.

    `attribute(instance)` credits the comparison's history row to a person (a staff action)."""
    values = {"location": case.location, "compared_at": timezone.now(), "pms_agreement_id": "", "discrepancies": [], "detail": ""}
    try:
        agreements = partners.pms_for(case.location).list_payment_agreements(case.guarantor_id)
    except PartnerError as exc:
        values.update(outcome=ShadowComparison.Outcome.ERROR, detail=str(exc))
    else:
        # A person's agreement carries no Chairside marker; the active one is the one in force.
        by_hand = [a for a in agreements if not is_ours(a.note)]
        by_hand.sort(key=lambda a: (a.status == "active", a.agreement_date, a.agreement_id))
        if not by_hand:
            values.update(outcome=ShadowComparison.Outcome.MISSING, detail=f"Guarantor account {case.guarantor_id} has no hand-entered payment agreement yet.")
        else:
            stored = by_hand[-1]
            diffs = [
                {"field": name, "chairside": shown(getattr(request, name)), "dentrix": shown(getattr(stored, name))}
                for name in COMPARED_AGREEMENT_FIELDS
                if getattr(stored, name) != getattr(request, name)
            ]
            values.update(
                outcome=ShadowComparison.Outcome.MISMATCH if diffs else ShadowComparison.Outcome.MATCH,
                pms_agreement_id=stored.agreement_id,
                discrepancies=diffs,
            )
    values["discrepancy_count"] = len(values["discrepancies"])
    with transaction.atomic():
        comparison = ShadowComparison.objects.select_for_update().filter(case=case).first() or ShadowComparison(case=case)
        if comparison.reviewed_at and (comparison.outcome, comparison.discrepancies) != (values["outcome"], values["discrepancies"]):
            # A review vouches for the discrepancies it saw, not for new ones.
            values.update(reviewed_by=None, reviewed_at=None)
        for name, value in values.items():
            setattr(comparison, name, value)
        if attribute is not None:
            attribute(comparison)
        comparison.save()
    log.info("case %s: shadow comparison %s (%s fields differ)", case.reference, comparison.outcome, comparison.discrepancy_count)
    return comparison


def shown(value) -> str:
    """A term as a clerk reads it in a comparison or a correction."""
    if isinstance(value, date):
        return value.isoformat()
    return "" if value is None else str(value)
