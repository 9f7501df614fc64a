"""`seed_demo --history`: twelve weeks of demo cases, the same from the same seed whatever the
day, written once, fast, without a partner call, and enough of everything that every chart,
list filter and page of the console has something to show."""

import io
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from financing import partners, reasons
from financing.demo import money, production
from financing.dashboard import _charts, build_dashboard, week_start
from financing.demo import history
from financing.models import (
    PROMOTION_CHOICES,
    CaseState,
    Correction,
    Decision,
    FinancedCase,
    InboundEvent,
    LedgerNote,
    PaymentArrangement,
    ShadowComparison,
    WriteStatus,
)
from financing.ports import Offer, PromotionKind
from financing.terms import compute_terms
from notifications.models import Notification
from tests.console.console_factories import console_client

pytestmark = pytest.mark.django_db

# From seed 12 (history.SEED), whatever the day it is written on.
EXPECTED = {
    "demo-main": {
        "application_sent": 1, "approved": 1, "awaiting_decision": 1, "cancelled": 12, "captured": 1, "completed": 128,
        "declined": 22, "expired": 4, "needs_attention": 8,
    },
    "demo-north": {
        "application_sent": 1, "arrangement_written": 1, "cancelled": 7, "captured": 1, "completed": 78, "declined": 27,
        "expired": 4, "needs_attention": 7,
    },
    "demo-south": {"awaiting_decision": 1, "cancelled": 7, "completed": 78, "declined": 17, "needs_attention": 4},
}
BASE_CASES = 411
# At each demo location whose PMS writes a plan only over posted treatment (Dentrix Ascend,
# Eaglesoft), when seed_demo makes one: cases that waited, two still waiting, and the stops
# only such a location gives (financing/demo/production.py).
WAITING_KINDS = {"production_plan_changed", "production_check_refused"}
# A Monday just after midnight UTC (the week has barely begun) and a Thursday afternoon.
MOMENTS = [datetime(2026, 12, 7, 0, 30, tzinfo=UTC), datetime(2026, 12, 3, 19, 15, tzinfo=UTC)]


def waiting_locations() -> list[str]:
    """The demo's locations that wait for posted treatment (none until seed_demo makes one)."""
    from financing.models import Location

    return [loc.code for loc in production.locations(Location.objects.filter(code__startswith="demo-"))]


def paying_locations() -> list[str]:
    """The demo's locations that record CareCredit as a payment (seed_demo's overrides)."""
    from financing.models import Location

    return [loc.code for loc in money.locations(Location.objects.filter(code__startswith="demo-"))]


# At each of them (financing/demo/money.py): charged and posted, one waiting, one expired
# unused, one charged and one posted this afternoon (live work).
PAYING_STATES = {"completed": money.POSTED, "awaiting_production": 1, "expired": 1, "purchased": 1, "posted": 1}


def paying_states() -> dict:
    """Each paying location's cases: PAYING_STATES, and the money's stops shared out (money.STOPS)."""
    paying = paying_locations()
    result = {}
    for index, code in enumerate(paying):
        stops = sum(1 for i in range(len(money.STOPS)) if i % len(paying) == index)
        result[code] = {**PAYING_STATES, **({"needs_attention": stops} if stops else {})}
    return result


def expected_states() -> dict:
    """EXPECTED, and each waiting location's cases: the reasons only such locations give are
    shared out among them (production.STOPS), one case each; and each paying location's."""
    expected = {code: dict(states) for code, states in EXPECTED.items()}
    for code, states in paying_states().items():
        for state, n in states.items():
            expected.setdefault(code, {})[state] = expected.get(code, {}).get(state, 0) + n
    waiting = waiting_locations()
    for index, code in enumerate(waiting):
        stops = sum(1 for i in range(len(production.STOPS)) if i % len(waiting) == index)
        expected[code] = {"awaiting_production": 2, "completed": production.WAITED, **({"needs_attention": stops} if stops else {})}
    return expected


def expected_total() -> int:
    return sum(sum(states.values()) for states in expected_states().values())


@pytest.fixture
def no_partner_calls(monkeypatch):
    import requests

    def refuse(*args, **kwargs):
        raise AssertionError("the demo history must not call a partner")

    monkeypatch.setattr(requests.Session, "send", refuse)


def seed(**options) -> str:
    out = io.StringIO()
    call_command("seed_demo", history=True, stdout=out, **options)
    return out.getvalue()


def states_by_location() -> dict:
    counts = Counter(FinancedCase.objects.values_list("location__code", "state"))
    result = {}
    for (code, state), n in sorted(counts.items()):
        result.setdefault(code, {})[state] = n
    return result


@pytest.mark.parametrize("moment", MOMENTS, ids=["monday-00:30", "thursday-19:15"])
def test_the_same_seed_makes_exactly_the_same_cases_whatever_the_day(moment, no_partner_calls):
    with time_machine.travel(moment, tick=False):
        output = seed()
    assert expected_total() == (
        BASE_CASES + len(waiting_locations()) * (production.WAITED + 2) + (len(production.STOPS) if waiting_locations() else 0)
        + sum(sum(states.values()) for states in paying_states().values())
    )
    assert f"Demo history: {expected_total()} cases over twelve weeks, 14 corrections" in output
    assert states_by_location() == expected_states()
    assert Correction.objects.count() == 14
    assert Counter(ShadowComparison.objects.values_list("outcome", flat=True)) == {"match": 50, "mismatch": 20, "missing": 8}
    # Nothing is in the future, and every case was captured in the dashboard's last twelve weeks.
    first_monday = datetime.combine(week_start(moment.date()) - timedelta(weeks=11), datetime.min.time(), tzinfo=UTC)
    assert FinancedCase.objects.filter(captured_at__gt=moment).count() == 0
    assert FinancedCase.objects.filter(state_changed_at__gt=moment).count() == 0
    assert FinancedCase.objects.filter(captured_at__lt=first_monday).count() == 0


def test_every_kind_of_needs_attention_reason_is_there_once():
    seed()
    stopped = FinancedCase.objects.filter(state=CaseState.NEEDS_ATTENTION)
    kinds = Counter(reasons.kind_of(reason) for reason in stopped.values_list("state_reason", flat=True))
    # The reasons only a location waiting for posted treatment gives are there when the demo
    # has such a location.
    expected = {kind.key for kind in reasons.KINDS} - (set() if waiting_locations() else WAITING_KINDS) - (set() if paying_locations() else set(money.STOPS))
    assert kinds == {key: 1 for key in expected}
    # Each resumes to the step it stopped at, and billing was alerted about it.
    for case in stopped:
        assert case.resume_state in (CaseState.CAPTURED, CaseState.APPLICATION_SENT, CaseState.APPROVED, CaseState.AWAITING_PRODUCTION,
                                     CaseState.ARRANGEMENT_WRITTEN, CaseState.PURCHASED)
        assert Notification.objects.filter(reference=case.reference, template="case_needs_attention").exists()


def test_a_second_run_adds_nothing():
    seed()
    tables = (FinancedCase, FinancedCase.history.model, Decision, PaymentArrangement, LedgerNote, ShadowComparison,
              Correction, InboundEvent, Notification)
    before = {model: model.objects.count() for model in tables}
    output = seed()
    assert f"Demo history already there ({expected_total()} cases): nothing added." in output
    assert {model: model.objects.count() for model in tables} == before
    # Another seed's history would share the demo's patients and plans: refused, clearly.
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="Another demo history .* from another --seed"):
        seed(seed=13)
    assert {model: model.objects.count() for model in tables} == before


def test_it_is_fast():
    started = time.monotonic()
    seed()
    assert time.monotonic() - started < 30  # about 5 s on the 2-core development machine


def test_records_are_what_the_flow_would_have_written():
    seed()
    completed = FinancedCase.objects.filter(state=CaseState.COMPLETED, recording="arrangement").select_related(
        "location", "decision", "arrangement")
    for case in completed:
        arrangement, decision = case.arrangement, case.decision
        live = case.location.mode == "live"
        assert arrangement.write_status == (WriteStatus.WRITTEN if live else WriteStatus.SHADOW)
        assert LedgerNote.objects.filter(case=case, write_status=WriteStatus.WRITTEN).exists() == live
        assert (case.arrangement_written_at is not None) == live
        # The terms are financing.terms' (as of the decision, before any correction).
        offer = next(o for o in decision.offers if o["code"] == case.promotion)
        corrected = set(Correction.objects.filter(case=case).values_list("field", flat=True))
        if not corrected & {"down_payment", "recurring_amount"}:
            terms = compute_terms(
                plan_total=case.plan_total, requested_down_payment=case.requested_down_payment,
                approved_amount=decision.approved_amount,
                offer=Offer(offer["code"], PromotionKind(offer["kind"]), offer["months"], Decimal(offer["apr"]), Decimal(offer["min_amount"])),
                # From the treatment posted, when the case waited for it.
                decision_date=timezone.localdate(case.production_posted_at or decision.decided_at, ZoneInfo(case.location.timezone)),
                first_payment_offset_days=30,
                first_payment_day_of_month=15 if case.location.code == "demo-north" else None,
            )
            assert (arrangement.recurring_amount, arrangement.number_of_payments, arrangement.financed_amount) == (
                terms.recurring_amount, terms.number_of_payments, terms.financed_amount)
        assert sum(Decimal(row["amount"]) for row in arrangement.schedule) == arrangement.total_of_payments
        # Captured in the location's business hours (Monday to Saturday).
        local = timezone.localtime(case.captured_at, ZoneInfo(case.location.timezone))
        assert local.weekday() < 6 and 8 <= local.hour <= 17
        # One history row per state change, the first by the coordinator.
        rows = list(FinancedCase.history.model.objects.filter(id=case.pk).order_by("history_date"))
        assert rows[0].state == CaseState.CAPTURED and rows[0].history_user == case.coordinator
        assert rows[-1].state == CaseState.COMPLETED
    cancelled = FinancedCase.objects.filter(state=CaseState.CANCELLED)
    assert all(c.state_reason for c in cancelled)
    assert FinancedCase.history.model.objects.filter(state=CaseState.CANCELLED, history_user__isnull=False).count() == cancelled.count()
    # Each coordinator was told of the cancellation (and of nothing written to Dentrix).
    notices = Notification.objects.filter(template="case_cancelled", channel="email")
    assert sorted(notices.values_list("reference", flat=True)) == sorted(cancelled.values_list("reference", flat=True))


def test_every_dashboard_chart_has_lines_for_the_twelve_weeks():
    with time_machine.travel(MOMENTS[1], tick=False):
        seed()
        admin = get_user_model().objects.get(username="admin")
        dashboard = build_dashboard(admin, weeks=12)
        charts = _charts(dashboard)
        page = console_client(admin).get("/admin/dashboard/")
    assert len(charts) == 5
    for title, svg in charts:
        assert svg.count("<polyline") >= 3, title  # all shown + the live locations at least
    overall = [dashboard.cell(None, week) for week in dashboard.weeks]
    assert all(cell.captured > 0 for cell in overall)
    assert all(cell.median_seconds and cell.p90_seconds and cell.acceptance for cell in overall[:-1])
    assert sum(cell.corrections for cell in overall) == 14
    # The live locations the history covers (the connector products' demo locations have none yet).
    live = [loc for loc in dashboard.locations if loc.mode == "live" and loc.code in history.VOLUME]
    assert len(live) == 2
    for loc in live:
        assert sum(dashboard.cell(loc.pk, week).written > 0 for week in dashboard.weeks) >= 11
    south = next(loc for loc in dashboard.locations if loc.code == "demo-south")
    assert dashboard.shadow[south.pk].match == 50 and dashboard.shadow[south.pk].mismatch == 20
    assert page.status_code == 200 and page.content.decode().count('class="chart"') >= 4


def test_every_list_filter_and_page_has_something_to_show():
    seed()
    admin = console_client(get_user_model().objects.get(username="admin"))
    cases = "/admin/financing/financedcase/"

    def rows(url) -> int:
        response = admin.get(url)
        assert response.status_code == 200, url
        return len(re.findall(r'<tr[^>]*>\s*<td class="action-checkbox"|<tr class="row', response.content.decode())) or (
            0 if "0 financed cases" in response.content.decode() else len(re.findall(r"<tr", response.content.decode())))

    for state in CaseState.values:
        if state == CaseState.AWAITING_PRODUCTION and not waiting_locations():
            continue  # only a location whose PMS needs posted treatment waits for it
        assert FinancedCase.objects.filter(state=state).exists(), state
        assert rows(f"{cases}?state__exact={state}") >= 1
    for code, _ in PROMOTION_CHOICES:
        assert FinancedCase.objects.filter(promotion=code).exists(), code
    for attention in ("needs_attention", "retrying", "stalled"):
        assert rows(f"{cases}?attention={attention}") >= 1
    today = timezone.localdate()
    assert FinancedCase.objects.filter(captured_at__date__gte=today - timedelta(days=6)).exists()
    for page in ("/admin/financing/correction/", "/admin/financing/shadowcomparison/", "/admin/financing/inboundevent/",
                 "/admin/notifications/notification/", "/admin/financing/templateoverride/", "/admin/financing/location/",
                 "/admin/dashboard/", "/admin/dashboard.csv"):
        assert admin.get(page).status_code == 200, page
    # A confirmation that did not reach the coordinator, and retrying cases with their error.
    assert Notification.objects.filter(template__in=["case_approved", "case_declined"], status="undelivered").count() == 2
    retrying = FinancedCase.objects.filter(next_attempt_at__isnull=False).exclude(last_error="")
    assert retrying.count() == 3
    # Every case page tells its story.
    for case in FinancedCase.objects.all():
        assert admin.get(f"{cases}{case.pk}/change/").status_code == 200, case.reference


def test_the_locations_that_wait_for_posted_treatment_show_the_wait(no_partner_calls, settings):
    """At Dentrix Ascend and Eaglesoft, cases waited for the treatment to be posted (written
    from the posting), two still wait at each (one longer than PRODUCTION_WAIT_ALERT_DAYS:
    billing's work), and the reasons only such a location gives are there."""
    from financing import worklist
    from financing.models import Location

    with time_machine.travel(MOMENTS[1], tick=False):
        seed()
        assert waiting_locations() == ["demo-ascend", "demo-eaglesoft"]  # not demo-enterprise: it writes at once
        waiting_at = list(Location.objects.filter(code__in=waiting_locations()).order_by("code"))
        admin = get_user_model().objects.get(username="admin")
        dashboard = build_dashboard(admin, weeks=12)
        work = worklist.counts([loc.pk for loc in waiting_at], timezone.now())
        late = FinancedCase.objects.filter(location__in=waiting_at, state=CaseState.AWAITING_PRODUCTION,
                                           production_awaited_at__lt=timezone.now() - timedelta(days=settings.PRODUCTION_WAIT_ALERT_DAYS))
        pages = [console_client(admin).get(f"/admin/financing/financedcase/{case.pk}/change/").text for case in late]
    assert states_by_location()["demo-ascend"] == {"awaiting_production": 2, "completed": production.WAITED, "needs_attention": 1}
    assert states_by_location()["demo-eaglesoft"] == {"awaiting_production": 2, "completed": production.WAITED, "needs_attention": 1}
    assert "demo-enterprise" not in states_by_location()

    for location in waiting_at:
        waited = FinancedCase.objects.filter(location=location, state=CaseState.COMPLETED).select_related("arrangement")
        assert waited.count() == production.WAITED
        for case in waited:
            assert case.decided_at < case.production_awaited_at < case.production_posted_at < case.arrangement_written_at
            rows = [row.state for row in FinancedCase.history.model.objects.filter(id=case.pk).order_by("history_date")]
            assert rows == ["captured", "application_sent", "approved", "awaiting_production", "approved", "arrangement_written", "completed"]
            # The schedule runs from the posting: its first payment follows the posting day.
            posted_day = timezone.localdate(case.production_posted_at, ZoneInfo(location.timezone))
            assert posted_day < case.arrangement.first_payment_date <= posted_day + timedelta(days=31)
            assert all(p["procedure_id"] for p in case.procedures)
        cell = dashboard.cell(location.pk, None)
        # Every case here waited (the two stopped ones too); the wait is counted apart.
        assert (cell.waited, cell.waiting) == (production.WAITED + 2 + 1, 2)
        assert cell.wait_median_seconds >= 86400 and cell.median_seconds < 3600
        assert work.of(location.pk, "production_overdue") == 1
    stopped = FinancedCase.objects.filter(location__in=waiting_at, state=CaseState.NEEDS_ATTENTION)
    assert {reasons.kind_of(c.state_reason) for c in stopped} == WAITING_KINDS
    assert {c.resume_state for c in stopped} == {CaseState.AWAITING_PRODUCTION}
    assert len(pages) == 2
    for page in pages:
        assert "Waiting since " in page and " for the treatment to be posted in " in page


def test_the_locations_that_record_carecredit_as_a_payment_show_the_money(no_partner_calls):
    """Northside and Lakeside record CareCredit as a payment: charged once the treatment was
    posted, the payment (net) and the merchant fee (−fee) on the ledger at the example rates,
    a refund (+amount), one case waiting, one approval expired unused, every settled day
    reconciled and matched."""
    from financing.models import (
        ArrangementTemplate,
        LedgerPosting,
        Location,
        Purchase,
        ReconciliationItem,
        ReconciliationRun,
        Refund,
        effective_template,
    )

    with time_machine.travel(MOMENTS[1], tick=False):
        seed()
        assert paying_locations() == ["demo-north", "demo-od"]
        assert ArrangementTemplate.objects.get(name="Group standard").merchant_fee_rates == money.EXAMPLE_FEE_RATES
        assert effective_template(Location.objects.get(code="demo-north")).shortfall == "in_house"
        assert effective_template(Location.objects.get(code="demo-od")).shortfall == "down_payment"
        assert effective_template(Location.objects.get(code="demo-main")).recording == "arrangement"
        admin = console_client(get_user_model().objects.get(username="admin"))
        template_page = admin.get(f"/admin/financing/arrangementtemplate/{ArrangementTemplate.objects.get().pk}/change/").text
    assert money.EXAMPLE_LABEL in template_page

    paid = FinancedCase.objects.filter(recording="payment", state=CaseState.COMPLETED).select_related("decision", "purchase")
    assert paid.count() == money.POSTED * 2
    for case in paid:
        purchase = case.purchase
        gross = min(case.decision.approved_amount, case.plan_total - case.requested_down_payment)
        rate = Decimal(money.EXAMPLE_FEE_RATES[case.promotion])
        fee = (gross * rate / 100).quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")
        assert (purchase.status, purchase.amount, purchase.fee_rate, purchase.merchant_fee, purchase.net_amount) == (
            "settled", gross, rate, fee, gross - fee)
        assert purchase.idempotency_key == f"{case.reference}-purchase"
        postings = {p.kind: p for p in case.postings.all()}
        assert (postings["payment"].amount, postings["payment"].entry_kind, postings["payment"].type_name) == (
            gross - fee, "payment", "CareCredit Payment")
        assert (postings["merchant_fee"].amount, postings["merchant_fee"].type_name) == (-fee, "CareCredit Merchant Fee")
        assert postings["payment"].marker == f"[chairside:{case.reference}/payment]" and postings["payment"].marker in postings["payment"].note
        assert case.decided_at < case.production_posted_at < case.purchased_at < case.posted_at <= case.completed_at
        rows = [row.state for row in FinancedCase.history.model.objects.filter(id=case.pk).order_by("history_date")]
        assert rows == ["captured", "application_sent", "approved", "awaiting_production", "approved", "purchased", "posted", "completed"]
    # A partial approval at each; one refund at each, posted as a charge of its amount.
    assert sum(c.decision.approved_amount < c.plan_total - c.requested_down_payment for c in paid) == 2
    refunds = list(Refund.objects.select_related("posting"))
    assert len(refunds) == 2
    for refund in refunds:
        assert (refund.status, refund.posting.kind, refund.posting.amount, refund.posting.type_name) == (
            "refunded", "refund", refund.amount, "CareCredit Refund")
        assert 0 < refund.amount <= refund.purchase.amount
    assert LedgerPosting.objects.count() == (money.POSTED + 1) * 2 * 2 + 2
    # Nothing charged for the waiting or lapsed cases; the stops kept what the flow had by then.
    assert Purchase.objects.filter(status="settled", case__state__in=["completed", "purchased", "posted"]).count() == (money.POSTED + 2) * 2
    assert Purchase.objects.count() == (money.POSTED + 2) * 2 + 4
    # Northside carries its partial approval's rest on an in-house plan; Lakeside has none.
    from financing.models import PaymentArrangement

    [in_house] = PaymentArrangement.objects.filter(kind="in_house").select_related("case__purchase", "case__location")
    assert in_house.case.location.code == "demo-north" and in_house.write_status == "written"
    assert in_house.financed_amount == in_house.case.plan_total - in_house.case.requested_down_payment - in_house.case.purchase.amount
    lapsed = FinancedCase.objects.filter(recording="payment", state=CaseState.EXPIRED)
    assert lapsed.count() == 2
    for case in lapsed:
        assert re.fullmatch(r"The CareCredit approval expired unused on [A-Z][a-z]{2} \d{1,2}, \d{4}\.?", case.state_reason)
        assert case.decision.expires_on < timezone.localdate(case.state_changed_at, ZoneInfo(case.location.timezone))
    # Every settled day before today was read and matched, line by line, to the cent.
    runs = ReconciliationRun.objects.all()
    assert runs.exists() and not ReconciliationItem.objects.exclude(outcome="matched").exists()
    for run in runs:
        items = run.items.all()
        assert run.purchases == sum((i.lender_amount for i in items if i.transaction_kind == "purchase"), Decimal("0"))
        assert run.fees == sum((i.lender_fee for i in items), Decimal("0"))
        assert run.net == run.purchases - run.fees - run.refunds
    # This afternoon's purchases wait for tomorrow's report.
    assert sum(run.purchases for run in runs) == sum(p.amount for p in Purchase.objects.filter(case__state="completed"))
