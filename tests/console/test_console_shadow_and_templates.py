"""Shadow mode compares with what staff entered by hand; templates are set once for the
group, overridden per location, and never rewrite an arrangement already written."""

from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import requests
from django.utils import timezone

from financing import services
from financing.models import (
    CaseState,
    Location,
    PaymentArrangement,
    ShadowComparison,
    TemplateOverride,
    WriteStatus,
    effective_template,
)
from tests.console.console_factories import billing_user, console_client

pytestmark = pytest.mark.django_db(transaction=True)  # tasks are enqueued on commit

D = Decimal


def approve(sandboxes, location, coordinator, tasks, last_name="Thompson"):
    patient = sandboxes.new_patient(last_name, fees=("1250.00", "1250.00"))
    case = services.capture_case(
        location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"], actor=coordinator
    )
    tasks.drain()
    assert services.refresh_decision(case.pk) == "approved"
    return case


def enter_by_hand(sandboxes, guarantor_id, **changes):
    """What a billing clerk types into Dentrix: Chairside's terms for this plan, plus `changes`."""
    today = timezone.localdate(timezone.now(), ZoneInfo("America/New_York"))
    body = {
        "agreement_date": today.isoformat(),
        "interval": "monthly",
        "total_agreed_amount": "2500.00",
        "down_payment": "0.00",
        "payment_amount": "208.34",
        "number_of_payments": 12,
        "first_payment_due": (today + timedelta(days=30)).isoformat(),
        "annual_finance_charge_pct": "0.00",
        "note": "CareCredit 12 months",
        **changes,
    }
    response = requests.post(
        f"{sandboxes.dentrix_url}/v1/accounts/{guarantor_id}/payment-agreements", json=body, headers={"X-API-Key": "sandbox"}, timeout=5
    )
    response.raise_for_status()
    return response.json()["agreement_id"]


def test_shadow_mode_compares_field_by_field_and_never_writes(sandboxes, location, coordinator, tasks):
    Location.objects.filter(pk=location.pk).update(mode=Location.Mode.SHADOW)
    location.refresh_from_db()
    case = approve(sandboxes, location, coordinator, tasks)
    hand_due = (timezone.localdate(timezone.now(), ZoneInfo("America/New_York")) + timedelta(days=35)).isoformat()
    hand = enter_by_hand(sandboxes, case.guarantor_id, down_payment="100.00", payment_amount="200.00", first_payment_due=hand_due)

    assert [r for _, r in tasks.drain()] == ["shadow"]
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    assert case.arrangement.write_status == WriteStatus.SHADOW
    assert [a["agreement_id"] for a in sandboxes.agreements(case.guarantor_id)] == [hand]  # nothing written
    assert len(sandboxes.dentrix_requests("POST", "/v1/accounts")) == 1  # the clerk's, by hand

    comparison = ShadowComparison.objects.get(case=case)
    first_due = case.arrangement.first_payment_date.isoformat()
    assert (comparison.outcome, comparison.pms_agreement_id, comparison.discrepancy_count) == ("mismatch", hand, 3)
    assert comparison.discrepancies == [
        {"field": "down_payment", "chairside": "0.00", "dentrix": "100.00"},
        {"field": "payment_amount", "chairside": "208.34", "dentrix": "200.00"},
        {"field": "first_payment_due", "chairside": first_due, "dentrix": hand_due},
    ]

    client = console_client(billing_user("ann", location))
    page = client.get(f"/admin/financing/financedcase/{case.pk}/change/")
    assert "Shadow mode: compared with the payment agreement entered by hand" in page.text
    assert "<td>Payment amount</td><td>$208.34</td><td>$200.00</td>" in page.text  # a label, not a field name
    dashboard = client.get("/admin/dashboard/")
    assert dashboard.context["dashboard"].shadow[location.pk].mismatch == 1


def test_shadow_case_without_a_hand_entered_agreement_is_compared_again_later(sandboxes, location, coordinator, tasks):
    Location.objects.filter(pk=location.pk).update(mode=Location.Mode.SHADOW)
    location.refresh_from_db()
    case = approve(sandboxes, location, coordinator, tasks)
    tasks.drain()
    comparison = ShadowComparison.objects.get(case=case)
    assert comparison.outcome == "missing"
    assert comparison.detail == f"Guarantor account {case.guarantor_id} has no hand-entered payment agreement yet."

    hand = enter_by_hand(sandboxes, case.guarantor_id)
    client = console_client(billing_user("ann", location))
    response = client.post(f"/admin/financing/financedcase/{case.pk}/compare/", follow=True)
    assert "Compared again with Dentrix: matches." in response.text
    comparison.refresh_from_db()
    assert (comparison.outcome, comparison.pms_agreement_id, comparison.discrepancies) == ("match", hand, [])


def test_location_override_wins_over_the_group_template_field_by_field(template, location):
    assert effective_template(location).overridden == ()
    TemplateOverride.objects.create(location=location, first_payment_day_of_month=15, note_type="billing_statement", why="Billing runs mid-month")
    template.first_payment_offset_days = 20
    template.default_promotion = "deferred_18"
    template.save()
    location.refresh_from_db()
    effective = effective_template(location)
    assert (effective.first_payment_offset_days, effective.first_payment_day_of_month) == (20, 15)
    assert (effective.default_promotion, effective.note_type) == ("deferred_18", "billing_statement")
    assert effective.overridden == ("first_payment_day_of_month", "note_type")

    # 0 says "use the offset", even when the group template sets a day of month.
    template.first_payment_day_of_month = 1
    template.save()
    TemplateOverride.objects.filter(location=location).update(first_payment_day_of_month=0)
    location.refresh_from_db()
    assert effective_template(location).first_payment_day_of_month is None


def test_arrangements_use_the_effective_template_and_keep_it_when_it_changes(sandboxes, template, location, coordinator, tasks):
    TemplateOverride.objects.create(location=location, first_payment_offset_days=45)
    case = approve(sandboxes, location, coordinator, tasks)
    tasks.drain()
    arrangement = PaymentArrangement.objects.get(case=case)
    decided = timezone.localdate(case.decision.decided_at, ZoneInfo(location.timezone))
    assert arrangement.first_payment_date == decided + timedelta(days=45)
    assert arrangement.template_snapshot["overridden"] == ["first_payment_offset_days"]
    assert arrangement.template_snapshot["first_payment_offset_days"] == 45

    template.first_payment_offset_days = 10
    template.save()
    TemplateOverride.objects.filter(location=location).delete()
    arrangement.refresh_from_db()
    assert arrangement.first_payment_date == decided + timedelta(days=45)
    assert [a["first_payment_due"] for a in sandboxes.agreements(case.guarantor_id)] == [arrangement.first_payment_date.isoformat()]


def test_a_central_biller_changes_a_group_template_only_when_every_site_using_it_is_theirs(template, location, sandboxes):
    from tests.conftest import make_location

    north = make_location(template, sandboxes, code="north")
    one_site = console_client(billing_user("ann", location))
    both_sites = console_client(billing_user("cat", location, north))
    url = f"/admin/financing/arrangementtemplate/{template.pk}/change/"
    form = {
        "name": "Group standard",
        "arrangement_type": "payment_agreement",
        "frequency": "monthly",
        "first_payment_offset_days": "21",
        "default_promotion": "deferred_12",
        "note_type": "account",
        "note_template": template.note_template,
        "notify_email": "on",
        "notify_sms": "on",
        "recording": "arrangement",
        "charge_when": "posted",
        "charge_window_days": "30",
        "payment_type": "CareCredit Payment",
        "fee_adjustment_type": "CareCredit Merchant Fee",
        "refund_adjustment_type": "CareCredit Refund",
        "shortfall": "down_payment",
        "in_house_max_months": "12",
        "in_house_apr": "0.00",
        "in_house_min_payment": "50.00",
    }
    assert one_site.post(url, form).status_code == 403
    template.refresh_from_db()
    assert template.first_payment_offset_days == 30
    assert both_sites.post(url, form).status_code == 302
    template.refresh_from_db()
    assert template.first_payment_offset_days == 21
