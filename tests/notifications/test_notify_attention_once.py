"""Billing is alerted once per distinct needs-attention reason per case (issue 12, defect 4):
a case resumed before its cause was fixed stops again for the same reason without alerting
anyone again; a changed reason alerts again. The dedupe is the delivery record's unique key,
so it holds in the database, whatever process queues the alert. The case page says that the
reason still stands, and when billing was told."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
import time_machine
from django.contrib.auth.models import Permission
from django.core import mail
from django.test import Client
from django.utils import timezone

from financing import messages, services
from financing.models import CaseState, FinancedCase, Membership
from notifications.models import Channel, Notification
from notifications.sms import LocmemBackend
from tests.conftest import make_user, verified_login

pytestmark = pytest.mark.django_db(transaction=True)


def hand_entered_agreement(sandboxes, guarantor_id, location, amount="300.00"):
    """An active agreement someone entered in Dentrix by hand: Dentrix allows one per account."""
    today = timezone.localdate(timezone.now(), ZoneInfo(location.timezone))
    body = {
        "agreement_date": today.isoformat(), "interval": "monthly", "total_agreed_amount": amount, "down_payment": "0.00",
        "payment_amount": "100.00", "number_of_payments": int(float(amount) // 100), "annual_finance_charge_pct": "0.00",
        "first_payment_due": (today + timedelta(days=30)).isoformat(), "note": "entered by hand",
    }
    response = requests.post(f"{sandboxes.dentrix_url}/v1/accounts/{guarantor_id}/payment-agreements", json=body,
                             headers={"X-API-Key": "sandbox"}, timeout=5)
    response.raise_for_status()
    return response.json()["agreement_id"]


def inactivate(sandboxes, agreement_id):
    requests.put(f"{sandboxes.dentrix_url}/_sandbox/payment-agreements/{agreement_id}", json={"status": "inactive"}, timeout=5).raise_for_status()


def alerts_to(address):
    return [m for m in mail.outbox if m.to == [address] and m.subject.startswith("Needs attention:")]


def attention_sms():
    return [m for m in LocmemBackend.outbox if "needs attention" in m["body"]]


def test_resuming_into_the_same_failure_alerts_once_and_a_new_reason_alerts_again(sandboxes, location, coordinator, billing, tasks):
    bea = make_user("bea", location, role=Membership.Role.BILLING, phone="+15555550123")  # email and SMS
    patient = sandboxes.new_patient("Thompson")
    first_block = hand_entered_agreement(sandboxes, patient["guarantor_id"], location)
    case = services.capture_case(location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"], actor=coordinator)
    tasks.drain()
    services.refresh_decision(case.pk)
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.NEEDS_ATTENTION and f"Dentrix id {first_block}" in case.state_reason
    assert (len(alerts_to("biller@example.com")), len(alerts_to("bea@example.com")), len(attention_sms())) == (1, 1, 1)

    # Resumed three times before anyone closed the blocking agreement, minutes apart (as a
    # clerk would): three more stops, no more alerts.
    with time_machine.travel(timezone.now(), tick=True) as clock:
        for _ in range(3):
            clock.shift(timedelta(minutes=7))
            services.resume_case(case.pk, actor=billing)
            tasks.drain()
            case.refresh_from_db()
            assert case.state == CaseState.NEEDS_ATTENTION and f"Dentrix id {first_block}" in case.state_reason
        assert (len(alerts_to("biller@example.com")), len(alerts_to("bea@example.com")), len(attention_sms())) == (1, 1, 1)
        assert Notification.objects.filter(reference=case.reference, template="case_needs_attention").count() == 3

        # Someone closes that agreement but another one is entered: a different reason, alerted once more.
        clock.shift(timedelta(minutes=7))
        inactivate(sandboxes, first_block)
        second_block = hand_entered_agreement(sandboxes, patient["guarantor_id"], location, amount="400.00")
        services.resume_case(case.pk, actor=billing)
        tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.NEEDS_ATTENTION and f"Dentrix id {second_block}" in case.state_reason
    assert (len(alerts_to("biller@example.com")), len(alerts_to("bea@example.com")), len(attention_sms())) == (2, 2, 2)
    sms_bodies = [m["body"] for m in attention_sms()]
    assert all("Thompson" not in body for body in sms_bodies)
    assert Notification.objects.filter(reference=case.reference, template="case_needs_attention", channel=Channel.SMS).count() == 2


def test_the_dedupe_is_the_delivery_records_unique_key(location, coordinator, billing, tasks):
    """Queuing the same reason again, as a second process would (nothing in memory is shared),
    finds the record already there and sends nothing."""
    case = FinancedCase.objects.create(
        location=location, coordinator=coordinator, patient_id="1001", treatment_plan_id="5001", promotion="deferred_12",
        state=CaseState.NEEDS_ATTENTION, state_reason="Dentrix refused the payment agreement: Payment cannot be 0.",
    )
    messages.queue_needs_attention(case)
    again = FinancedCase.objects.get(pk=case.pk)  # a fresh copy, as another worker would load it
    again.state_reason = "Dentrix refused the payment agreement:  Payment cannot be 0. "  # only whitespace differs
    messages.queue_needs_attention(again)
    [alert] = Notification.objects.filter(reference=case.reference)
    assert alert.dedupe_key == f"case:{case.pk}:case_needs_attention:reason-{messages.attention_key(case.state_reason)}:email:{billing.pk}"
    assert tasks.names() == ["notifications.send"]

    again.state_reason = "Dentrix refused the payment agreement: Payment amount does not match."
    messages.queue_needs_attention(again)
    assert Notification.objects.filter(reference=case.reference).count() == 2


def test_the_case_page_says_the_reason_still_stands_and_when_billing_was_told(location, coordinator, billing, tasks):
    reason = "Guarantor account 1001 already has an active payment agreement (Dentrix id 7001)."
    case = FinancedCase.objects.create(
        location=location, coordinator=coordinator, patient_id="1001", treatment_plan_id="5001", promotion="deferred_12",
        state=CaseState.APPROVED,
    )
    client = staff_client(billing)
    # 19:58 UTC is 2:58 PM in New York (EST in December).
    with time_machine.travel(datetime(2026, 12, 1, 19, 58, tzinfo=UTC), tick=False):
        services.leases.needs_attention(case.pk, None, reason)
        page = client.get(f"/admin/financing/financedcase/{case.pk}/change/").text
    assert 'id="still-stands"' not in page  # the first stop: billing is being told now
    for minute in (5, 12):
        with time_machine.travel(datetime(2026, 12, 1, 20, minute, tzinfo=UTC), tick=False):
            services.resume_case(case.pk, actor=billing)
            services.leases.needs_attention(case.pk, None, reason)
    with time_machine.travel(datetime(2026, 12, 1, 20, 13, tzinfo=UTC), tick=False):
        page = client.get(f"/admin/financing/financedcase/{case.pk}/change/").text
    assert (
        "Stopped again for the same reason at 3:12 PM EST (stopped 3 times for it); "
        "billing was alerted the first time, at 2:58 PM EST, and not again."
    ) in page
    assert Notification.objects.filter(reference=case.reference).count() == 1  # the one alert, by email

    # A different reason is news: alerted, and nothing "still stands".
    with time_machine.travel(datetime(2026, 12, 1, 20, 40, tzinfo=UTC), tick=False):
        services.resume_case(case.pk, actor=billing)
        services.leases.needs_attention(case.pk, None, "Dentrix refused the payment agreement: Payment cannot be 0.")
        page = client.get(f"/admin/financing/financedcase/{case.pk}/change/").text
    assert 'id="still-stands"' not in page
    assert Notification.objects.filter(reference=case.reference).count() == 2


def staff_client(user):
    user.is_staff = True
    user.save()
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_financedcase", "change_financedcase"]))
    client = Client()
    verified_login(client, user)
    return client
