"""What a case sends, to whom, and what happens when it cannot be delivered."""

import itertools
import re
from decimal import Decimal as D

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client
from rest_framework.test import APIClient

from financing import messages, services
from financing.models import CaseState, FinancedCase
from notifications.models import Channel, ContactPreference, Notification
from notifications.sms import LocmemBackend
from tests.conftest import make_user, verified_login

pytestmark = pytest.mark.django_db(transaction=True)

CANARIES = ("Thompson", "1980", "04-12", "Elm St", "Springfield", "canary.patient", "+15555550188")
_plans = itertools.count(9000)


def make_case(location, coordinator, state=CaseState.DECLINED, **fields):
    """A case as the state machine would have left it, without running the partners."""
    return FinancedCase.objects.create(
        location=location,
        coordinator=coordinator,
        patient_id="1001",
        treatment_plan_id=str(next(_plans)),
        patient_short_name="Ava T.",
        plan_total=D("2500.00"),
        promotion="deferred_12",
        state=state,
        **fields,
    )


def run_case(sandboxes, location, coordinator, tasks, surname="Thompson", consent=False):
    patient = sandboxes.new_patient(surname, fees=("1250.00", "1250.00"))
    case = services.capture_case(
        location=location,
        patient_id=patient["patient_id"],
        treatment_plan_id=patient["treatment_plan_id"],
        actor=coordinator,
        patient_consents_to_messages=consent,
    )
    tasks.drain()
    services.refresh_decision(case.pk)
    tasks.drain()
    case.refresh_from_db()
    return case


def test_the_approval_confirmation_has_the_terms_the_promotion_and_a_link_and_no_phi(sandboxes, location, coordinator, tasks):
    case = run_case(sandboxes, location, coordinator, tasks)
    assert case.state == CaseState.COMPLETED
    link = f"http://127.0.0.1:9/admin/financing/financedcase/{case.pk}/change/"
    first_due = case.arrangement.first_payment_date

    [email] = mail.outbox
    assert email.to == ["coord@example.com"]
    assert email.subject == f"Approved: {case.reference}, 12 payments of $208.34"
    for line in (
        f"{case.reference}: Ava T. is approved by CareCredit. Book the treatment now.",
        "Promotion: 12 months deferred interest",
        "Down payment at the office: $0.00",
        "Monthly payment: $208.34 x 12 (last payment $208.26)",
        f"First payment due: {first_due:%b} {first_due.day}, {first_due.year}",
        f"Case: {link}",
    ):
        assert line in email.body.splitlines()
    html = email.alternatives[0][0]
    assert f'<a href="{link}">Open the case</a>' in html and "$208.34 &times; 12" in html

    [sms] = LocmemBackend.outbox
    assert sms["body"] == (
        f"Chairside {case.reference}: Ava T. APPROVED. Down $0.00, $208.34/mo x 12, "
        f"1st due {first_due:%b} {first_due.day}, {first_due.year}, 12 months deferred interest. Book now. {link}"
    )
    for n in Notification.objects.filter(reference=case.reference):
        for text in (n.subject, n.body, n.html_body):
            assert not any(canary in text for canary in CANARIES), (n.template, n.channel)


def test_a_declined_case_tells_the_coordinator_the_next_steps(sandboxes, location, coordinator, tasks):
    case = run_case(sandboxes, location, coordinator, tasks, surname="Decline-Parker")
    assert case.state == CaseState.DECLINED
    [email] = mail.outbox
    assert "- a co-applicant (a spouse or family member) on a new application," in email.body.splitlines()
    assert "Parker" not in email.body and "Parker" not in LocmemBackend.outbox[0]["body"]


def test_the_apply_link_goes_to_the_patient_only_with_recorded_consent(sandboxes, location, coordinator, tasks):
    consenting = run_case(sandboxes, location, coordinator, tasks, consent=True)
    [link] = Notification.objects.filter(reference=consenting.reference, template="patient_apply_link")
    assert (link.channel, link.recipient, link.status) == (Channel.SMS, "+15555550188", Notification.Status.SENT)
    assert link.body == f"Main Dental: to finish your CareCredit application for your treatment (ref {consenting.reference}), open {consenting.apply_url}"
    assert [m["to"] for m in LocmemBackend.outbox].count("+15555550188") == 1
    assert "Ava" not in link.body and "Thompson" not in link.body

    LocmemBackend.outbox.clear()
    silent = run_case(sandboxes, location, coordinator, tasks, consent=False)
    assert not Notification.objects.filter(reference=silent.reference, template="patient_apply_link").exists()
    assert "+15555550188" not in [m["to"] for m in LocmemBackend.outbox]


def test_the_api_records_the_patients_consent(sandboxes, location, coordinator, tasks):
    api = APIClient()
    api.force_authenticate(coordinator)
    patient = sandboxes.new_patient("Thompson")
    body = {"location": "main", "patient_id": patient["patient_id"], "treatment_plan_id": patient["treatment_plan_id"]}
    response = api.post("/api/v1/cases/", {**body, "patient_consents_to_messages": True}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["patient_consents_to_messages"] is True
    assert FinancedCase.objects.get(pk=response.json()["id"]).patient_consents_to_messages is True

    other = sandboxes.new_patient("Rivera")
    response = api.post("/api/v1/cases/", {**body, "patient_id": other["patient_id"], "treatment_plan_id": other["treatment_plan_id"]}, format="json")
    assert response.json()["patient_consents_to_messages"] is False


def test_a_bad_number_is_shown_on_the_case_and_billing_is_told_once(location, coordinator, billing, smtp, twilio, tasks, settings):
    ContactPreference.objects.filter(user=coordinator).update(phone="+15005550001")
    case = make_case(location, coordinator)
    messages.queue_declined(case)
    tasks.drain()

    sms = Notification.objects.get(reference=case.reference, channel=Channel.SMS, template="case_declined")
    assert sms.status == Notification.Status.FAILED
    assert sms.error == "Twilio refused the message (error 21211: the phone number is not a valid phone number)"
    [alert] = Notification.objects.filter(template="notification_failed")
    assert (alert.reference, alert.channel, alert.recipient) == (case.reference, Channel.EMAIL, "biller@example.com")
    assert alert.status == Notification.Status.SENT and alert.escalate is False
    assert alert.subject == f"Not delivered: decline notice for {case.reference}"
    assert "Why: Twilio refused the message (error 21211: the phone number is not a valid phone number)" in alert.body.splitlines()
    assert "5005550001" not in alert.body
    assert sorted(m["rcpt_tos"][0] for m in smtp.messages) == ["biller@example.com", "coord@example.com"]

    # A second report of the same failure (Twilio retrying, a redelivered signal) adds nothing.
    messages.on_delivery_failed(sender=Notification, notification_id=sms.pk)
    assert tasks.queue == []
    assert Notification.objects.filter(template="notification_failed").count() == 1

    # The case page shows the failure, with its reason.
    client = clerk_client(location)
    page = client.get(f"/admin/financing/financedcase/{case.pk}/change/").content.decode()
    assert "Decline notice by SMS: Failed (Twilio refused the message (error 21211: the phone number is not a valid phone number))" in page


def test_a_failed_alert_about_a_failure_is_not_alerted_about(location, coordinator, billing, smtp, twilio, tasks, failures):
    ContactPreference.objects.filter(user=coordinator).update(phone="+15005550001")
    smtp.refuse["biller@example.com"] = ["550 5.1.1 No such user"]
    case = make_case(location, coordinator)
    messages.queue_declined(case)
    tasks.drain()

    alert = Notification.objects.get(template="notification_failed")
    assert alert.status == Notification.Status.FAILED
    assert Notification.objects.filter(reference=case.reference).count() == 3  # email, SMS, one alert
    sms = Notification.objects.get(reference=case.reference, channel=Channel.SMS)
    assert failures == [sms.pk]  # the alert's own failure is not announced
    assert tasks.queue == []


def clerk_client(location):
    clerk = make_user("clerk", location, role="billing", phone="", is_staff=True)
    clerk.user_permissions.set(Permission.objects.filter(codename__in=["view_financedcase", "change_financedcase"]))
    client = Client()
    verified_login(client, clerk)
    return client


def test_the_billing_console_resends_the_confirmation_to_current_channels(location, coordinator, tasks):
    case = make_case(location, coordinator)
    messages.queue_declined(case)
    tasks.drain()
    ContactPreference.objects.filter(user=coordinator).update(phone="+15555550111")  # fixed since

    response = clerk_client(location).post(f"/admin/financing/financedcase/{case.pk}/resend/")
    assert response.status_code == 302
    tasks.drain()
    resent = Notification.objects.filter(reference=case.reference, dedupe_key__contains=":resend:")
    assert sorted((n.channel, n.recipient, n.status) for n in resent) == [
        ("email", "coord@example.com", "sent"),
        ("sms", "+15555550111", "sent"),
    ]
    assert [m["to"] for m in LocmemBackend.outbox] == ["+15555550100", "+15555550111"]


def test_each_user_chooses_email_sms_or_both(location, template):
    both = make_user("both", location)
    sms_only = make_user("smsonly", location)
    ContactPreference.objects.filter(user=sms_only).update(by_email=False)
    email_only = make_user("emailonly", location, phone="")
    assert messages._channels(both, template) == [(Channel.EMAIL, "both@example.com"), (Channel.SMS, "+15555550100")]
    assert messages._channels(sms_only, template) == [(Channel.SMS, "+15555550100")]
    assert messages._channels(email_only, template) == [(Channel.EMAIL, "emailonly@example.com")]
    # The group turned SMS off: an SMS-only user still hears about it, by email.
    template.notify_sms = False
    assert messages._channels(sms_only, template) == [(Channel.EMAIL, "smsonly@example.com")]


def test_a_preference_needs_a_channel_and_sms_needs_an_e164_phone(location):
    user = make_user("pref", location)
    contact = ContactPreference.objects.get(user=user)
    contact.by_email = contact.by_sms = False
    with pytest.raises(ValidationError, match="Choose email, SMS or both"):
        contact.full_clean()
    contact.by_sms, contact.phone = True, ""
    with pytest.raises(ValidationError, match="A phone number is needed for SMS"):
        contact.full_clean()
    contact.phone = "555-0100"
    with pytest.raises(ValidationError, match="E.164"):
        contact.full_clean()


def test_staff_edit_their_own_channels_and_nobody_elses(location):
    me = make_user("me", location, is_staff=True)
    other = make_user("other", location, is_staff=True)
    mine, theirs = ContactPreference.objects.get(user=me), ContactPreference.objects.get(user=other)
    client = Client()
    verified_login(client, me)

    listing = client.get("/admin/notifications/contactpreference/").content.decode()
    assert f"/admin/notifications/contactpreference/{mine.pk}/change/" in listing
    assert f"/admin/notifications/contactpreference/{theirs.pk}/change/" not in listing

    response = client.post(
        f"/admin/notifications/contactpreference/{mine.pk}/change/",
        {"phone": "+15555550122", "by_sms": "on"},
    )
    assert response.status_code == 302
    mine.refresh_from_db()
    assert (mine.user_id, mine.phone, mine.by_email, mine.by_sms) == (me.pk, "+15555550122", False, True)

    client.post(f"/admin/notifications/contactpreference/{theirs.pk}/change/", {"phone": "+15555550999", "by_sms": "on"})
    theirs.refresh_from_db()
    assert theirs.phone == "+15555550100" and theirs.by_email is True

    refused = client.post(f"/admin/notifications/contactpreference/{mine.pk}/change/", {"phone": "", "by_sms": "on"})
    assert refused.status_code == 200 and re.search(r"A phone number is needed for SMS", refused.content.decode())
