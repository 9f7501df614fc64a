"""The practice's own remainder (issue 15): when CareCredit is charged less than the plan
leaves to finance and the location carries the rest itself (Shortfall.IN_HOUSE, payment
recording only), an in-house payment arrangement (PaymentArrangement.Kind.IN_HOUSE) is
written for it in the posting step, after the payment and the merchant fee, exactly like
the CareCredit schedule is written in arrangement recording: the same rules check,
lookup by the case's marker before the write, the mark before the POST, the read-back
(services/arrangement.py's `rules_stop`, `put_agreement`, `mark_written`).

The terms are `financing.in_house`'s, from the group's in-house terms; the first payment
follows the template's first-payment rule counted from the day of the purchase.
With Shortfall.DOWN_PAYMENT nothing is written: the rest is the patient's down payment.
"""

import dataclasses
import logging
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from .. import partners, reasons
from ..in_house import in_house_terms, summary
from ..models import (
    FinancedCase,
    Location,
    PaymentArrangement,
    Recording,
    Shortfall,
    WriteStatus,
    effective_template,
    related_or_none,
)
from ..ports import PermanentPartnerError, TransientPartnerError
from ..terms import TermsError
from .arrangement import agreement_request, mark_written, procedures_as_held, put_agreement, rules_stop, save_arrangement, terms_fields
from .leases import needs_attention, retry_later

log = logging.getLogger(__name__)

ZERO = Decimal("0.00")


def shortfall_of(case: FinancedCase) -> Decimal:
    """What the plan leaves after the patient's down payment and the CareCredit purchase
    (0 when CareCredit covers it, or nothing is charged yet)."""
    purchase = related_or_none(case, "purchase")
    if purchase is None:
        return ZERO
    return max(case.plan_total - case.requested_down_payment - purchase.amount, ZERO)


def carries_in_house(case: FinancedCase) -> bool:
    """Whether the practice carries this case's shortfall itself."""
    if case.recording != Recording.PAYMENT or shortfall_of(case) <= 0:
        return False
    arrangement = related_or_none(case, "arrangement")
    if arrangement is not None:  # decided once: a template changed since never rewrites it
        return arrangement.kind == PaymentArrangement.Kind.IN_HOUSE
    return effective_template(case.location).shortfall == Shortfall.IN_HOUSE


def carry_remainder(case: FinancedCase, token: str) -> str:
    """The posting step's hook, after the payment and the fee are posted: write the in-house
    arrangement where the practice carries the rest. Returns "" when the step may go on
    (written, shadow, or nothing to carry), else the step's outcome ("retry",
    "needs_attention"): the step stops there and its next attempt comes back here, where
    the lookup by marker adopts what an earlier attempt wrote."""
    if not carries_in_house(case):
        return ""
    try:
        arrangement = prepare_in_house(case)
    except TermsError as exc:
        needs_attention(case.pk, token, reasons.in_house_terms(exc.reason))
        return "needs_attention"
    if arrangement.write_status in (WriteStatus.WRITTEN, WriteStatus.SHADOW):
        return ""
    request = dataclasses.replace(agreement_request(case, arrangement), name=f"In-house {case.reference}"[:30])
    pms_name, record = partners.pms_name(case.location), partners.pms_record_name(case.location)
    try:
        procedures = procedures_as_held(case, arrangement)
    except TransientPartnerError as exc:
        save_arrangement(arrangement)
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
        return ""
    put = put_agreement(case, token, arrangement, request)
    if put.outcome:
        return put.outcome
    with transaction.atomic():
        if not mark_written(case, token, arrangement, put, timezone.now()):
            return "needs_attention"
    log.info("case %s: in-house arrangement written", case.reference)
    return ""


def prepare_in_house(case: FinancedCase, *, now=None) -> PaymentArrangement:
    """The stored in-house arrangement, or one with fresh terms (not saved yet: the write
    saves it with its status). TermsError when the in-house terms cannot carry the rest."""
    existing = related_or_none(case, "arrangement")
    if existing and existing.write_status != WriteStatus.PENDING:
        return existing
    zone = ZoneInfo(case.location.timezone)
    purchase = case.purchase
    now = now or timezone.now()
    template = effective_template(case.location)
    terms = in_house_terms(
        plan_total=case.plan_total,
        shortfall=shortfall_of(case),
        apr=template.in_house_apr,
        max_months=template.in_house_max_months,
        min_payment=template.in_house_min_payment,
        start=timezone.localdate(purchase.charged_at or now, zone),
        first_payment_offset_days=template.first_payment_offset_days,
        first_payment_day_of_month=template.first_payment_day_of_month,
    )
    terms = partners.fit_terms(case.location, terms)
    arrangement = existing or PaymentArrangement(case=case)
    values = dict(
        kind=PaymentArrangement.Kind.IN_HOUSE,
        marker=case.marker,
        promotion=case.promotion,  # the CareCredit promotion beside it; the kind says in-house
        agreement_date=timezone.localdate(now, zone),
        plan_total=case.plan_total,
        **terms_fields(terms),
        note=f"{case.marker} In-house remainder beside {partners.lender_name(case.location)} {case.reference}"[:255],
        template_snapshot=template.snapshot(),
    )
    for name, value in values.items():
        setattr(arrangement, name, value)
    return arrangement


def in_house_summary(case: FinancedCase) -> str:
    return summary(related_or_none(case, "arrangement"))
