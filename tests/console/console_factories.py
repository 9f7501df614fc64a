"""Cases in any state, written straight to the database (no partner round trips), for the
billing console's tests and screenshots. The flow tests prove the services make such rows."""

import itertools
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from financing.models import (
    CaseState,
    Decision,
    FinancedCase,
    LedgerNote,
    Location,
    Membership,
    PaymentArrangement,
    WriteStatus,
)
from tests.conftest import make_user, verified_login

D = Decimal
_ids = itertools.count(1)

BILLING_PERMISSIONS = [
    "view_financedcase",
    "change_financedcase",
    "view_location",
    "view_arrangementtemplate",
    "change_arrangementtemplate",
    "view_templateoverride",
    "change_templateoverride",
    "add_templateoverride",
    "view_correction",
    "add_correction",
    "view_shadowcomparison",
    "view_inboundevent",
]


def plain_location(template, code, **extra) -> Location:
    values = dict(
        code=code,
        name=f"{code.title()} Dental",
        template=template,
        pms_base_url="http://127.0.0.1:9",
        pms_api_key="sandbox",
        lender_base_url="http://127.0.0.1:9",
        lender_client_id="chairside-sandbox",
        lender_client_secret="sandbox-secret",
        merchant_number="5348120000000001",
    )
    values.update(extra)
    return Location.objects.create(**values)


def billing_user(username, *locations, perms=BILLING_PERMISSIONS):
    user = make_user(username, phone="", is_staff=True)
    for location in locations:
        Membership.objects.create(user=user, location=location, role=Membership.Role.BILLING)
    user.user_permissions.set(Permission.objects.filter(codename__in=perms))
    return user


def console_client(user) -> Client:
    client = Client()
    verified_login(client, user)
    return client


def make_case(
    location,
    *,
    state=CaseState.COMPLETED,
    coordinator=None,
    captured_at=None,
    took=timedelta(minutes=5),
    plan_total=D("2500.00"),
    reason="",
    resume_state="",
    written=None,
    shadow=False,
) -> FinancedCase:
    """A case as the flow leaves it in `state`; completed cases have a written arrangement
    (`took` after capture) and a ledger note."""
    n = next(_ids)
    captured_at = captured_at or timezone.now() - timedelta(hours=1)
    case = FinancedCase.objects.create(
        location=location,
        coordinator=coordinator,
        patient_id=str(3000 + n),
        guarantor_id=str(3000 + n),
        treatment_plan_id=str(8000 + n),
        patient_short_name="Ava T.",
        procedures=[
            {"code": "D2740", "tooth": "3", "surface": "", "fee": "1250.00"},
            {"code": "D2740", "tooth": "4", "surface": "", "fee": str(plan_total - D("1250.00"))},
        ],
        plan_total=plan_total,
        promotion="deferred_12",
        state=state,
        state_reason=reason,
        resume_state=resume_state,
        application_id=f"APP-{n:05d}" if state != CaseState.CAPTURED else "",
    )
    if written is None:
        written = state in (CaseState.ARRANGEMENT_WRITTEN, CaseState.COMPLETED) and not shadow
    decided = state in (CaseState.APPROVED, CaseState.ARRANGEMENT_WRITTEN, CaseState.COMPLETED) or resume_state == CaseState.APPROVED
    timestamps = {"captured_at": captured_at, "state_changed_at": captured_at + took}
    if decided:
        Decision.objects.create(
            case=case,
            status="approved",
            raw_status="APPROVED",
            requested_amount=plan_total,
            approved_amount=plan_total,
            credit_limit=D("5000.00"),
            offers=[{"code": "deferred_12", "kind": "deferred", "months": 12, "apr": "0.00", "min_amount": "200.00"}],
            decided_at=captured_at + took / 2,
        )
        timestamps["decided_at"] = captured_at + took / 2
    if state in (CaseState.ARRANGEMENT_WRITTEN, CaseState.COMPLETED):
        PaymentArrangement.objects.create(
            case=case,
            marker=case.marker,
            promotion="deferred_12",
            agreement_date=captured_at.date(),
            plan_total=plan_total,
            down_payment=D("0.00"),
            financed_amount=plan_total,
            recurring_amount=(plan_total / 12).quantize(D("0.01")) + D("0.01"),
            number_of_payments=12,
            final_payment=plan_total - 11 * ((plan_total / 12).quantize(D("0.01")) + D("0.01")),
            frequency="monthly",
            first_payment_date=(captured_at + timedelta(days=30)).date(),
            apr=D("0.00"),
            total_of_payments=plan_total,
            finance_charge=D("0.00"),
            schedule=[],
            note=f"{case.marker} CareCredit deferred_12",
            pms_arrangement_id=str(7000 + n) if written else "",
            write_status=WriteStatus.WRITTEN if written else WriteStatus.SHADOW,
            written_at=captured_at + took if written else None,
        )
        if written:
            timestamps["arrangement_written_at"] = captured_at + took
    if state == CaseState.COMPLETED:
        if written:
            LedgerNote.objects.create(
                case=case, note_type="account", text=f"CareCredit approved. {case.marker}", pms_note_id=str(9000 + n),
                write_status=WriteStatus.WRITTEN, written_at=captured_at + took,
            )
        timestamps["completed_at"] = captured_at + took
    # Bookkeeping timestamps, set as the flow would have (update(): no history row).
    FinancedCase.objects.filter(pk=case.pk).update(**timestamps)
    case.refresh_from_db()
    return case


def with_computed_terms(case, *, decision_date, promotion="deferred_12", months=12, apr=D("0.00")) -> FinancedCase:
    """Give a written case's arrangement the terms (schedule included) the arrangement step
    computes for a decision on `decision_date`, for tests that read the schedule."""
    from financing.ports import Offer, PromotionKind
    from financing.terms import compute_terms

    kind = PromotionKind.DEFERRED if promotion.startswith("deferred") else PromotionKind.REDUCED_APR
    offer = Offer(code=promotion, kind=kind, months=months, apr=apr, min_amount=D("200.00"))
    terms = compute_terms(plan_total=case.plan_total, requested_down_payment=D("0.00"), approved_amount=case.plan_total,
                          offer=offer, decision_date=decision_date)
    PaymentArrangement.objects.filter(case=case).update(
        promotion=promotion, down_payment=terms.down_payment, financed_amount=terms.financed_amount,
        recurring_amount=terms.recurring_amount, number_of_payments=terms.number_of_payments,
        final_payment=terms.final_payment, first_payment_date=terms.first_payment_date, apr=terms.apr,
        total_of_payments=terms.total_of_payments, finance_charge=terms.finance_charge,
        schedule=[
            {"number": i.number, "due_date": i.due_date.isoformat(), "amount": f"{i.amount:.2f}", "principal": f"{i.principal:.2f}",
             "interest": f"{i.interest:.2f}", "balance_after": f"{i.balance_after:.2f}"}
            for i in terms.schedule
        ],
    )
    return case
