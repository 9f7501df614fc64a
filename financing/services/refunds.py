"""Refunds and cancellations after a purchase (issue 15).

- A *Refund* is a billing staff action on a case whose purchase is charged: an amount (no
  more than what is left of the purchase: its amount less every refund not refused) and a
  reason. It becomes a Refund row with its own idempotency key,
  `f"{reference}-refund-{n}"`, and a task (`financing.refund`, the refund's id):
  1. the lender refund, exactly once: the refund is marked UNKNOWN (attempts + 1) in a
     commit before it is sent; a refund found UNKNOWN is looked up by its key
     (`find_transaction`) before anything is sent again, and the lender keeps one
     transaction per key besides;
  2. the REFUND posting (+amount, the template's refund adjustment type) through the
     posting step's own writer (services/posting.py), under its marker `…/refund-n`.
- Cancelling a case whose purchase is charged (`cancel_case` asks `cancel_blocker` and
  `void_if_allowed`): on the purchase's business day (the lender's date, America/New_York)
  and before its payment is posted, the purchase is voided (never funded, nothing posted);
  otherwise the cancellation is refused until everything is refunded ("Refund $1,234.56
  first"), and `refund_rest_and_cancel` does both in one click.
"""

import logging
import re
import uuid
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core import leases
from core.backoff import backoff_seconds
from core.faults import fault_point
from core.queueing import enqueue_on_commit

from .. import messages, partners, reasons
from ..models import CaseState, FinancedCase, LedgerPosting, Membership, Purchase, Refund, WriteStatus, effective_template, related_or_none
from ..ports import (
    AmbiguousWriteError,
    PermanentPartnerError,
    RateLimited,
    RefundRequest,
    TransactionStatus,
    TransientPartnerError,
)
from ..terms import money
from .audit import begin
from .leases import LeaseLost, locked
from .states import ALLOWED_TRANSITIONS, InvalidTransition
from .posting import PostingDiffers, post_once, prepare_posting

log = logging.getLogger(__name__)

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
REFUND_TASK = "financing.refund"
# Synchrony is in Stamford, CT: its business day is New York's date.
LENDER_ZONE = ZoneInfo("America/New_York")


class RefundError(InvalidTransition):
    """A refund or a cancellation staff cannot make; the message says why, in plain words
    (an InvalidTransition, so every console and API handler of staff actions shows it)."""


# --- what is left, and who may give it back ---------------------------------------------------


def left_to_refund(purchase: Purchase) -> Decimal:
    """The purchase less every refund made or under way (a refused one gives nothing back)."""
    taken = sum((r.amount for r in purchase.refunds.all() if r.status != Refund.Status.FAILED), ZERO)
    return max(purchase.amount - taken, ZERO)


def may_refund(user, location) -> bool:
    """Billing (or the location's admin) at the case's location; a superuser anywhere."""
    if getattr(user, "is_superuser", False):
        return True
    return Membership.objects.filter(
        user=user, location=location, role__in=[Membership.Role.BILLING, Membership.Role.ADMIN]
    ).exists()


def charged_purchase(case: FinancedCase) -> Purchase | None:
    purchase = related_or_none(case, "purchase")
    return purchase if purchase is not None and purchase.status == Purchase.Status.SETTLED else None


AMOUNT_TEXT = re.compile(r"\d+(\.\d{1,2})?")  # "1234.56" once "$" and "," are gone


def parse_amount(text) -> Decimal:
    """A clerk's amount ("1,234.56", "$80", Decimal) or RefundError with what is wrong."""
    if isinstance(text, Decimal):
        amount = text
    else:
        cleaned = str(text or "").strip().replace("$", "").replace(",", "")
        # Digits, a point and cents: Decimal alone would also take "1e2", "1_000" or "Infinity".
        if not AMOUNT_TEXT.fullmatch(cleaned):
            if re.fullmatch(r"-?\d+\.\d{3,}", cleaned):
                raise RefundError("Write the amount in dollars and cents, e.g. 1,234.56.")
            if re.fullmatch(r"-\d+(\.\d+)?", cleaned):
                raise RefundError("A refund must be more than $0.00.")
            raise RefundError(f"“{str(text)[:20]}” is not an amount of money: write it as 1,234.56.")
        amount = Decimal(cleaned)
    if not amount.is_finite() or amount.as_tuple().exponent < -2:
        raise RefundError("Write the amount in dollars and cents, e.g. 1,234.56.")
    if amount <= 0:
        raise RefundError("A refund must be more than $0.00.")
    return amount


# --- the staff action ------------------------------------------------------------------------


def request_refund(case_id: int, *, amount, why: str, actor=None, run_now: bool = False) -> Refund:
    """Record a refund and queue its task (or run it at once: `run_now`, for the one-click
    "Refund the rest and cancel"). RefundError when it cannot be made."""
    amount = parse_amount(amount)
    why = (why or "").strip()
    if not why:
        raise RefundError("Give a reason for the refund.")
    action = begin(actor)
    with transaction.atomic():
        case = locked(case_id)
        if actor is not None and not may_refund(actor, case.location):
            raise RefundError("Only billing staff of this location can refund.")
        purchase = charged_purchase(case)
        if purchase is None:
            raise RefundError(f"{case.reference} has no {partners.lender_name(case.location)} purchase to refund.")
        left = left_to_refund(purchase)
        if amount > left:
            raise RefundError(
                f"Only {money(left)} of the {money(purchase.amount)} purchase is left to refund, not {money(amount)}."
            )
        number = case.refunds.count() + 1
        refund = Refund(
            case=case, purchase=purchase, idempotency_key=f"{case.reference}-refund-{number}",
            amount=amount, why=why[:2000], requested_by=action.person,
        )
        action.attribute(refund)
        refund.save()
        action.log(case, f"Refund of {money(amount)} requested: {why}")
        if not run_now:
            enqueue_on_commit(REFUND_TASK, refund.pk)
    if run_now:
        run_refund(refund.pk)
        refund.refresh_from_db()
    return refund


def refund_number(refund: Refund) -> int:
    return int(refund.idempotency_key.rsplit("-", 1)[1])


# --- the task --------------------------------------------------------------------------------


# A refund waiting for its case's lease (a step or another refund run holds it) looks again
# this many seconds later.
BUSY_RETRY_SECONDS = 10


def run_refund(refund_id: int) -> str:
    """The refund at the lender (once), then its posting. Safe to run again at any point, and
    by two workers at once: a run holds its case's lease (so no step, void or other refund
    run writes for the case meanwhile), and proves it before each write."""
    refund = Refund.objects.select_related("case__location", "purchase").get(pk=refund_id)
    if refund.status == Refund.Status.FAILED or done(refund):
        return "failed" if refund.status == Refund.Status.FAILED else "refunded"
    token = _hold(refund.case_id)
    if token is None:
        _queue_again(refund, BUSY_RETRY_SECONDS)
        return "busy"
    try:
        if refund.status != Refund.Status.REFUNDED:
            outcome = _refund_at_lender(refund, token)
            if outcome:
                return outcome
            refund.refresh_from_db()
        return _post(refund, token)
    except LeaseLost:
        return "lease_lost"  # taken over: whoever holds the case now (or this refund's next run) goes on
    finally:
        FinancedCase.objects.filter(pk=refund.case_id, lease_token=token).update(lease_token="", lease_until=None)


def done(refund: Refund) -> bool:
    """Refunded at the lender and its adjustment on the ledger."""
    return refund.status == Refund.Status.REFUNDED and LedgerPosting.objects.filter(
        refund=refund, write_status=WriteStatus.WRITTEN
    ).exists()


def _hold(case_id: int) -> str | None:
    """Take the case's lease for a refund run; None while someone else holds it."""
    now = timezone.now()
    token = uuid.uuid4().hex
    taken = FinancedCase.objects.filter(pk=case_id).filter(leases.free("lease_until", now)).update(
        lease_token=token, lease_until=leases.until(leases.lease_seconds(), now)
    )
    return token if taken else None


def _prove(case_id: int, token: str):
    """Right before a write: the lease is still ours (renewed), else LeaseLost."""
    if not FinancedCase.objects.filter(pk=case_id, lease_token=token).update(lease_until=leases.until(leases.lease_seconds())):
        raise LeaseLost(str(case_id))


def _queue_again(refund: Refund, delay: float):
    due = timezone.now() + timedelta(seconds=delay)
    with transaction.atomic():
        Refund.objects.filter(pk=refund.pk).update(next_attempt_at=due)
        enqueue_on_commit(REFUND_TASK, refund.pk, countdown=delay)


# What a partner's refusal may carry that a clerk should not read: error codes and HTTP statuses.
_CODE_RE = re.compile(r"\b[a-z]+_[a-z0-9_]+\b|\b[A-Z]+_[A-Z0-9_]+\b|\bHTTP \d{3}\b|\(\d{3}\)")


def refusal_in_words(lender: str, text: str) -> str:
    """One plain sentence for a refused refund: the bridge's own sentence when it wrote one
    ("CareCredit refused the refund: only $750.00 …"), never a code; the case page shows it
    instead of the status label, so it names the lender once."""
    text = text.strip().rstrip(".")
    if not text or _CODE_RE.search(text):
        return f"{lender} refused the refund; nothing was given back. Check the purchase with {lender} before trying again."
    if text.startswith(lender):
        return f"{text}."
    return f"{lender} refused the refund: {text}."


def _stopped(refund: Refund, failure: str, outcome: str) -> str:
    """The refund stops short and billing is told (once per refund)."""
    Refund.objects.filter(pk=refund.pk).update(failure=failure[:255], next_attempt_at=None)
    refund.refresh_from_db()
    messages.queue_refund_stuck(refund)
    log.warning("refund %s stopped: %s", refund.idempotency_key, outcome)
    return outcome


def _refund_at_lender(refund: Refund, token: str) -> str:
    case = refund.case
    lender = partners.lender_for(case.location)
    merchant = case.location.merchant_number
    try:
        found = None
        if refund.status == Refund.Status.UNKNOWN:
            # Sent before, answer lost: the lender may have made it. Look before sending again.
            found = lender.find_transaction(merchant, refund.idempotency_key)
        if found is None:
            status_before = refund.status
            with transaction.atomic():  # committed before the request goes out, with the proof the case is ours
                _prove(case.pk, token)
                Refund.objects.filter(pk=refund.pk).update(status=Refund.Status.UNKNOWN, attempts=F("attempts") + 1)
            fault_point("before_lender_refund")
            try:
                found = lender.refund(RefundRequest(
                    merchant_number=merchant, purchase_id=refund.purchase.lender_transaction_id,
                    idempotency_key=refund.idempotency_key, amount=refund.amount,
                ))
            except RateLimited:
                # Our own limiter held it back: nothing was sent, no attempt.
                Refund.objects.filter(pk=refund.pk).update(status=status_before, attempts=F("attempts") - 1)
                raise
            fault_point("after_lender_refund")
    except TransientPartnerError as exc:
        return _again_later(refund, exc)
    except PermanentPartnerError as exc:
        Refund.objects.filter(pk=refund.pk).update(status=Refund.Status.FAILED)
        return _stopped(refund, refusal_in_words(partners.lender_name(case.location), str(exc)), "failed")
    if found.status != TransactionStatus.SETTLED or found.amount != refund.amount:
        failure = found.decline_reason or f"the lender holds {money(found.amount)}, {found.status}"
        Refund.objects.filter(pk=refund.pk).update(status=Refund.Status.FAILED, lender_transaction_id=found.transaction_id)
        return _stopped(refund, failure, "failed")
    Refund.objects.filter(pk=refund.pk).update(
        status=Refund.Status.REFUNDED, lender_transaction_id=found.transaction_id, refunded_at=timezone.now(), failure="",
    )
    log.info("refund %s made at the lender", refund.idempotency_key)
    return ""


def _again_later(refund: Refund, error: TransientPartnerError) -> str:
    refund.refresh_from_db()
    if refund.attempts >= settings.STEP_MAX_ATTEMPTS:
        return _stopped(refund, f"Stopped after {refund.attempts} attempts: {error}", "gave_up")
    delay = backoff_seconds(max(refund.attempts, 1))
    if isinstance(error, AmbiguousWriteError):  # the lender may still commit it: look once it had time
        delay = max(delay, min(settings.AMBIGUOUS_WRITE_SETTLE_SECONDS, settings.RETRY_MAX_SECONDS))
    if error.retry_after:
        delay = max(delay, min(error.retry_after, settings.RETRY_MAX_SECONDS))
    Refund.objects.filter(pk=refund.pk).update(failure=str(error)[:255])
    _queue_again(refund, delay)
    return "retry"


def _post(refund: Refund, token: str) -> str:
    """The refund's adjustment (+amount, the template's refund type, marker `…/refund-n`)
    through the posting writer, outside any case step (no lease: the marker and the
    lookup keep it once)."""
    case = refund.case
    template = effective_template(case.location)
    day = timezone.localdate(refund.refunded_at or timezone.now(), ZoneInfo(case.location.timezone))
    posting = prepare_posting(
        case, LedgerPosting.Kind.REFUND, type_name=template.refund_adjustment_type, amount=refund.amount,
        entry_date=day, number=refund_number(refund), refund=refund,
    )
    pms_name = partners.pms_name(case.location)
    try:
        post_once(case, posting, token=token)
    except TransientPartnerError as exc:
        posting.refresh_from_db()
        if posting.write_attempts >= settings.STEP_MAX_ATTEMPTS:
            return _stopped(refund, reasons.posting_refused(pms_name, "refund", exc), "gave_up")
        delay = backoff_seconds(max(posting.write_attempts, 1))
        if isinstance(exc, AmbiguousWriteError):  # the PMS may still commit it: look once it had time
            delay = max(delay, min(settings.AMBIGUOUS_WRITE_SETTLE_SECONDS, settings.RETRY_MAX_SECONDS))
        _queue_again(refund, delay)
        return "retry"
    except PermanentPartnerError as exc:
        return _stopped(refund, reasons.posting_refused(pms_name, "refund", exc), "posting_refused")
    except PostingDiffers as exc:
        return _stopped(refund, reasons.posting_differs(pms_name, str(exc)), "posting_differs")
    Refund.objects.filter(pk=refund.pk).update(next_attempt_at=None, failure="")
    log.info("refund %s posted", refund.idempotency_key)
    return "refunded"


def refunds_to_redrive(now=None, limit: int = 200) -> list[int]:
    """Refunds under way whose message was lost (the beat sweeper queues them again): not
    refused, not out of attempts, not done, due (`next_attempt_at` passed, or never set and
    requested a while ago), their case not held by anyone."""
    now = now or timezone.now()
    grace = now - timedelta(seconds=max(5, settings.SWEEP_SECONDS // 2))
    under_way = Q(status__in=[Refund.Status.PENDING, Refund.Status.UNKNOWN], attempts__lt=settings.STEP_MAX_ATTEMPTS) | Q(
        status=Refund.Status.REFUNDED
    )
    due = Q(next_attempt_at__lt=grace) | Q(next_attempt_at__isnull=True, requested_at__lt=grace)
    candidates = (
        Refund.objects.filter(under_way, due)
        # Done (written), or refused by the PMS (failed): nothing to run again.
        .exclude(posting__write_status__in=[WriteStatus.WRITTEN, WriteStatus.FAILED])
        .exclude(posting__write_attempts__gte=settings.STEP_MAX_ATTEMPTS)
        .filter(Q(case__lease_until__isnull=True) | Q(case__lease_until__lt=now))
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    return list(candidates)


# --- cancelling a charged case ------------------------------------------------------------


def lender_today():
    return timezone.localdate(timezone.now(), LENDER_ZONE)


def payment_posted(case: FinancedCase) -> bool:
    """Whether the case's CareCredit payment is (or may be) on the ledger."""
    return case.postings.filter(
        kind=LedgerPosting.Kind.PAYMENT, write_status__in=[WriteStatus.WRITTEN, WriteStatus.UNKNOWN]
    ).exists()


def voidable(case: FinancedCase, purchase: Purchase) -> bool:
    return purchase.business_day == lender_today() and not payment_posted(case)


def cancel_blocker(case: FinancedCase) -> str:
    """Why a cancellation must wait for money to go back, or "" (nothing charged, voided,
    or all of it refunded). A purchase that may still be voided is voided before this is
    asked (`void_before_cancel`)."""
    purchase = related_or_none(case, "purchase")
    lender = partners.lender_name(case.location)
    if purchase is None or purchase.status in (Purchase.Status.VOIDED, Purchase.Status.DECLINED):
        return ""
    if purchase.status == Purchase.Status.UNKNOWN or (purchase.status == Purchase.Status.PENDING and purchase.attempts):
        return f"{lender} has not answered about the purchase yet: look again in a minute."
    if purchase.status == Purchase.Status.PENDING:
        return ""
    if purchase.refunds.filter(status__in=[Refund.Status.PENDING, Refund.Status.UNKNOWN]).exists():
        return "A refund of this purchase is under way: cancel once it shows refunded."
    left = purchase.amount - purchase.refunded
    if left > 0:
        return f"Refund {money(left)} first: the {lender} purchase is charged and cannot be voided any more."
    return ""


def void_before_cancel(case_id: int) -> bool:
    """Void the case's purchase when it may still be voided. The case is leased for the call,
    so the posting step cannot post the payment meanwhile. True when voided (the caller
    cancels), False when there was nothing to void. RefundError when the lender refused."""
    case = FinancedCase.objects.select_related("location").get(pk=case_id)
    purchase = charged_purchase(case)
    if purchase is None or not voidable(case, purchase) or CaseState.CANCELLED not in ALLOWED_TRANSITIONS[case.state]:
        return False
    now = timezone.now()
    token = uuid.uuid4().hex
    taken = FinancedCase.objects.filter(pk=case_id).filter(leases.free("lease_until", now)).update(lease_token=token, lease_until=now + timedelta(seconds=settings.AMBIGUOUS_WRITE_SETTLE_SECONDS))
    if not taken:
        raise RefundError(f"{case.reference}: a worker is on this step right now; look again in a minute.")
    try:
        if payment_posted(case):  # posted between the check and the lease
            return False
        transaction_ = partners.lender_for(case.location).void(case.location.merchant_number, purchase.lender_transaction_id)
    except PermanentPartnerError:
        # The lender's day has closed (its clock decides): a refund, not a void, undoes it.
        FinancedCase.objects.filter(pk=case_id, lease_token=token).update(lease_token="", lease_until=None)
        return False
    except TransientPartnerError as exc:
        FinancedCase.objects.filter(pk=case_id, lease_token=token).update(lease_token="", lease_until=None)
        raise RefundError(f"{partners.lender_name(case.location)} could not void the purchase just now: {exc}") from None
    except BaseException:
        FinancedCase.objects.filter(pk=case_id, lease_token=token).update(lease_token="", lease_until=None)
        raise
    Purchase.objects.filter(pk=purchase.pk).update(status=Purchase.Status.VOIDED if transaction_.status == TransactionStatus.VOIDED else purchase.status)
    FinancedCase.objects.filter(pk=case_id, lease_token=token).update(lease_token="", lease_until=None)
    if transaction_.status != TransactionStatus.VOIDED:
        raise RefundError(f"{partners.lender_name(case.location)} did not void the purchase ({transaction_.status}).")
    log.info("case %s: purchase voided", case.reference)
    return True

