"""The purchase (Recording.PAYMENT): an approved case charged to the patient's CareCredit
account, exactly once; staff's *Charge now*; approvals that expire unused.

- Amount (gross) = min(approved amount, plan total − requested down payment); the merchant fee
  is gross × the template's rate for the promotion / 100, rounded half-up to the cent; net =
  gross − fee. No rate for the promotion: the case needs a person, nothing is charged.
- Exactly once: the Purchase row carries the idempotency key `f"{reference}-purchase"`; it is
  marked UNKNOWN (attempt counted, lease proved) in one commit before the request; a step
  that finds it UNKNOWN looks the key up at the lender first (`find_transaction`), and only
  then sends the same key again (the lender keeps one transaction per key).
- A DECLINED purchase is the lender's answer, not an error: the clerk sees its reason; an
  approval past its last day ends the case as EXPIRED (billing is told).
- When: `production.hold_for_charge` (on posting, or on *Charge now*).
"""

import logging
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core import leases
from core.faults import fault_point

from .. import display, messages, partners, reasons
from ..models import CaseState, FinancedCase, Location, Membership, Purchase, Recording, effective_template, related_or_none
from ..ports import DeclineCode, LenderTransaction, PermanentPartnerError, PurchaseRequest, RateLimited, TransactionStatus, TransientPartnerError
from .audit import begin
from .leases import before_write, claim, finish, locked, needs_attention, retry_later
from .production import hold_for_charge
from .states import InvalidTransition, enqueue_step, transition

log = logging.getLogger(__name__)

CENT = Decimal("0.01")
# The lender's business day is its own date (Synchrony: Stamford, CT).
LENDER_ZONE = ZoneInfo("America/New_York")


def purchase_key(reference: str) -> str:
    return f"{reference}-purchase"


def lender_today(now=None) -> date:
    return timezone.localdate(now or timezone.now(), LENDER_ZONE)


def local_today(location: Location, now=None) -> date:
    return timezone.localdate(now or timezone.now(), ZoneInfo(location.timezone))


def gross_amount(case: FinancedCase) -> Decimal:
    """What the account is charged: the approval, at most what the plan leaves after the
    requested down payment (the rest is the shortfall: a down payment, or in-house)."""
    return min(case.decision.approved_amount, case.plan_total - case.requested_down_payment)


def merchant_fee(gross: Decimal, rate: Decimal) -> Decimal:
    return (gross * rate / Decimal(100)).quantize(CENT, rounding=ROUND_HALF_UP)


def purchase_values(case: FinancedCase) -> dict | None:
    """The purchase's amounts, or None when the template has no fee rate for the promotion."""
    rate = effective_template(case.location).merchant_fee_rate(case.promotion)
    if rate is None:
        return None
    gross = gross_amount(case)
    fee = merchant_fee(gross, rate)
    return {"amount": gross, "promotion": case.promotion, "fee_rate": rate, "merchant_fee": fee, "net_amount": gross - fee}


def approval_expired(case: FinancedCase, *, today: date | None = None) -> bool:
    decision = related_or_none(case, "decision")
    expires_on = getattr(decision, "expires_on", None)
    return expires_on is not None and expires_on < (today or lender_today())


# --- the purchase step: APPROVED → PURCHASED -----------------------------------------------------


def charge_purchase(case_id: int) -> str:
    claimed = claim(case_id, CaseState.APPROVED)
    if claimed is None:
        return "skipped"
    case, token = claimed
    lender_name = partners.lender_name(case.location)
    purchase = related_or_none(case, "purchase")
    lender = partners.lender_for(case.location)
    try:
        if purchase is not None and purchase.status == Purchase.Status.SETTLED:
            return _charged(case, token, purchase, None)  # the step's own commit was lost
        if purchase is not None and purchase.status == Purchase.Status.UNKNOWN:
            # Sent, answer lost: the lender's record decides, before anything is sent again.
            found = lender.find_transaction(case.location.merchant_number, purchase.idempotency_key)
            if found is not None:
                return _outcome(case, token, purchase, found)
        else:
            held = hold_for_charge(case, token, purchase, effective_template(case.location).charge_when)
            if held.outcome:
                return held.outcome
            if approval_expired(case):
                expire_unused(case.pk, token=token)
                return "expired"
            values = purchase_values(case)
            if values is None:
                needs_attention(case.pk, token, reasons.no_fee_rate(case.get_promotion_display()))
                return "needs_attention"
            purchase = _pending(case, purchase, values)
        status_before = purchase.status
        with transaction.atomic():  # the mark and the proof the case is still ours: one commit
            before_write(case, token)
            Purchase.objects.filter(pk=purchase.pk).update(status=Purchase.Status.UNKNOWN, attempts=F("attempts") + 1)
        fault_point("before_lender_purchase")
        try:
            transaction_ = lender.purchase(PurchaseRequest(
                merchant_number=case.location.merchant_number, application_id=case.application_id,
                reference=case.reference, idempotency_key=purchase.idempotency_key,
                amount=purchase.amount, promotion=purchase.promotion,
            ))
        except RateLimited:
            # Held back by our own limiter: nothing was sent, so this was no attempt.
            Purchase.objects.filter(pk=purchase.pk).update(status=status_before, attempts=F("attempts") - 1)
            raise
        except PermanentPartnerError:
            # Refused outright (a 4xx): nothing was charged.
            Purchase.objects.filter(pk=purchase.pk).update(status=Purchase.Status.PENDING)
            raise
        fault_point("after_lender_purchase")
    except TransientPartnerError as exc:
        return retry_later(case, token, exc)
    except PermanentPartnerError as exc:
        needs_attention(case.pk, token, reasons.purchase_refused(lender_name, purchase.amount if purchase else 0, exc))
        return "needs_attention"
    return _outcome(case, token, purchase, transaction_)


def _pending(case: FinancedCase, purchase: Purchase | None, values: dict) -> Purchase:
    """The purchase about to be sent, with its amounts as of now (never sent before: PENDING,
    or DECLINED and resumed by a person, which needs a key of its own at the lender)."""
    if purchase is None:
        purchase = Purchase(case=case, idempotency_key=purchase_key(case.reference))
    elif purchase.status == Purchase.Status.DECLINED:
        # The lender keeps the declined transaction under the first key: a new try is a new key.
        purchase.idempotency_key = f"{purchase_key(case.reference)}-{purchase.attempts + 1}"
        purchase.status, purchase.decline_reason = Purchase.Status.PENDING, ""
    for name, value in values.items():
        setattr(purchase, name, value)
    with transaction.atomic():  # the row and its history row
        purchase.save()
    return purchase


def _outcome(case: FinancedCase, token: str, purchase: Purchase, found: LenderTransaction) -> str:
    lender_name = partners.lender_name(case.location)
    if found.status == TransactionStatus.SETTLED:
        return _charged(case, token, purchase, found)
    reason = found.decline_reason or found.status.value
    Purchase.objects.filter(pk=purchase.pk).update(
        status=Purchase.Status.DECLINED if found.status == TransactionStatus.DECLINED else Purchase.Status.VOIDED,
        lender_transaction_id=found.transaction_id, decline_reason=reason[:255],
    )
    if approval_expired(case) or found.decline_code == DeclineCode.APPROVAL_EXPIRED:
        expire_unused(case.pk, token=token)
        return "expired"
    needs_attention(case.pk, token, reasons.purchase_declined(lender_name, purchase.amount, reason))
    return "declined"


def _charged(case: FinancedCase, token: str, purchase: Purchase, found: LenderTransaction | None) -> str:
    """Settled: record the lender's transaction and move on to the posting step, in one commit."""
    with transaction.atomic():
        if found is not None:
            Purchase.objects.filter(pk=purchase.pk).update(
                status=Purchase.Status.SETTLED, lender_transaction_id=found.transaction_id,
                authorization_code=found.authorization_code, business_day=found.business_day, charged_at=found.created_at,
            )
        by = purchase.charged_by.get_username() if purchase.charged_by_id else ""
        finish(case.pk, token, CaseState.APPROVED, CaseState.PURCHASED,
               reason=reasons.charged(partners.lender_name(case.location), purchase.amount, by), purchased_at=timezone.now())
    if found is not None and found.amount != purchase.amount:
        log.error("case %s: the lender charged %s, Chairside asked %s", case.reference, found.amount, purchase.amount)
    return "purchased"


# --- Charge now: a billing person's word ---------------------------------------------------------


def may_charge_now(user, case: FinancedCase) -> bool:
    """Billing staff of the case's location (or central billing, an administrator)."""
    if not getattr(user, "pk", None):
        return False
    if user.is_superuser:
        return True
    return Membership.objects.filter(
        user=user, location=case.location, role__in=[Membership.Role.BILLING, Membership.Role.ADMIN]
    ).exists()


def charge_now_problem(case: FinancedCase, treatment_day: date | None = None, *, now=None) -> str:
    """Why *Charge now* cannot be done for this case now ("" when it can)."""
    if case.recording != Recording.PAYMENT:
        return f"{case.reference} records CareCredit as a payment arrangement: there is no purchase to charge."
    if case.state not in (CaseState.APPROVED, CaseState.AWAITING_PRODUCTION):
        return f"{case.reference} is {case.get_state_display().lower()}: only an approved case waiting to be charged can be."
    purchase = related_or_none(case, "purchase")
    if purchase is not None and (purchase.charged_by_id or purchase.status not in (Purchase.Status.PENDING, Purchase.Status.DECLINED)):
        return f"{case.reference}: the purchase is already under way ({purchase.get_status_display().lower()})."
    if approval_expired(case, today=lender_today(now)):
        return f"The {partners.lender_name(case.location)} approval expired on {display.day(case.decision.expires_on)}: it cannot be charged."
    template = effective_template(case.location)
    if template.merchant_fee_rate(case.promotion) is None:
        return reasons.no_fee_rate(case.get_promotion_display())
    if treatment_day is not None:
        today = local_today(case.location, now)
        last = today + timedelta(days=template.charge_window_days)
        if treatment_day > last:
            return (
                f"The treatment on {display.day(treatment_day)} is more than {template.charge_window_days} days away: "
                f"{partners.lender_name(case.location)} may be charged at most {template.charge_window_days} days before "
                f"the treatment (from {display.day(treatment_day - timedelta(days=template.charge_window_days))})."
            )
    return ""


def charge_now(case_id: int, *, treatment_day: date, actor) -> FinancedCase:
    """Staff's *Charge now*: the purchase is charged now, for a treatment at most the template's
    window ahead (the location's own day). Recorded on the purchase (`charged_by`) and audited."""
    action = begin(actor)
    with transaction.atomic():
        case = locked(case_id)
        if not may_charge_now(actor, case):
            raise InvalidTransition("Only billing staff of this location may charge a purchase.")
        if case.lease_until and case.lease_until > timezone.now():
            raise InvalidTransition(f"{case.reference}: a worker is on this step right now; look again in a minute.")
        problem = charge_now_problem(case, treatment_day)
        if problem:
            raise InvalidTransition(problem)
        purchase = related_or_none(case, "purchase") or Purchase(case=case, idempotency_key=purchase_key(case.reference))
        for name, value in purchase_values(case).items():
            setattr(purchase, name, value)
        purchase.charged_by = action.person
        action.attribute(purchase, "Charge now")
        purchase.save()
        by = action.person.get_username() if action.person else "staff"
        reason = reasons.charge_now_clicked(by, display.day(treatment_day))
        action.attribute(case)
        if case.state == CaseState.AWAITING_PRODUCTION:
            transition(case, CaseState.APPROVED, reason=reason)  # queues the purchase step
        else:
            case.next_attempt_at = None
            case.save(update_fields=["next_attempt_at"])
            enqueue_step(case)
        action.log(case, f"Charge now: {display.money(purchase.amount)} to {partners.lender_name(case.location)}, treatment on {display.day(treatment_day)}")
    log.info("case %s: charge now by user %s", case.reference, getattr(actor, "pk", None))
    return case


# --- approvals that expire unused ------------------------------------------------------------------


def expire_unused(case_id: int, *, token: str | None = None) -> bool:
    """End an approved case whose approval lapsed before it was charged; billing is told."""
    with transaction.atomic(savepoint=False):
        case = locked(case_id)
        if token is not None and case.lease_token != token:
            return False
        if case.state not in (CaseState.APPROVED, CaseState.AWAITING_PRODUCTION):
            return False
        purchase = related_or_none(case, "purchase")
        if purchase is not None and purchase.status in (Purchase.Status.UNKNOWN, Purchase.Status.SETTLED):
            return False  # it may be charged: the purchase step decides, not the calendar
        expires_on = case.decision.expires_on
        transition(case, CaseState.EXPIRED, reason=reasons.approval_expired_unused(
            partners.lender_name(case.location), display.day(expires_on) if expires_on else "its last day"))
        messages.queue_approval_expired(case)
    log.info("case %s: approval expired unused", case.reference)
    return True


def expire_unused_approvals(now=None, limit: int = 1000) -> int:
    """Beat: cases never charged whose approval's last day is before their location's today
    move to EXPIRED: those waiting for their treatment (any recording), and approved cases
    waiting for their purchase. An approved case recorded as an arrangement is not one: its
    step writes the arrangement now, and the practice charges the account itself."""
    now = now or timezone.now()
    latest_today = (now + timedelta(days=1)).date()  # no zone's today is later than this
    waiting = Q(state=CaseState.AWAITING_PRODUCTION) | Q(state=CaseState.APPROVED, recording=Recording.PAYMENT)
    candidates = (
        FinancedCase.objects.filter(waiting, decision__expires_on__lt=latest_today)
        .filter(leases.free("lease_until", now))
        .exclude(purchase__status__in=[Purchase.Status.UNKNOWN, Purchase.Status.SETTLED])
        .select_related("location", "decision")
        .order_by("pk")[:limit]
    )
    expired = 0
    for case in candidates:
        if case.decision.expires_on < local_today(case.location, now) and expire_unused(case.pk):
            expired += 1
    return expired


