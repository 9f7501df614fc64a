"""The coordinators' morning message, after a day screened over HTTP: one per coordinator and
channel, its sentence exactly, the email's list, an SMS with no more of a name than "Ava T.",
sent once per run, nothing to billing staff, nothing when nobody qualified."""

from decimal import Decimal as D

import pytest
from django.core import mail

from financing.models import Membership
from notifications.models import Notification
from notifications.sms import LocmemBackend
from tests.conftest import make_user
from tests.financing.prescreening import at, book, new_patient, prescreen_location, run_day, start_and_run

pytestmark = pytest.mark.django_db(transaction=True)

SURNAMES = ("Thompson", "Lee", "Moreau", "Partial-Nguyen", "Cardholder-Reyes", "Decline-Parker", "Young")


def _day(sandboxes, day="2027-03-15"):
    """Four pre-qualified ($2,000 + $3,000 + $4,500 + $1,611 = $11,111), one cardholder, one
    declined, one minor."""
    people = [
        ("Ava", "Thompson", ("1680.00",), "13:00"),
        ("Cara", "Lee", ("2710.00",), "14:00"),
        ("Ivy", "Moreau", ("4150.00",), "14:30"),
        ("Dev", "Partial-Nguyen", ("2685.00",), "15:00"),
        ("Jay", "Cardholder-Reyes", ("1560.00",), "13:30"),
        ("Ben", "Decline-Parker", ("4150.00",), "16:00"),
    ]
    for first, last, fees, hour in people:
        book(sandboxes, new_patient(sandboxes, last, first_name=first, fees=fees), f"{day}T{hour}:00Z")
    minor = new_patient(sandboxes, "Young", first_name="Gus", birth_date="2015-06-01")
    book(sandboxes, minor, f"{day}T17:00:00Z")


def test_each_coordinator_gets_the_mornings_list_once(template, sandboxes, tasks):
    sandboxes.carecredit_config(cardholder_available_credit="3000.00")
    location = prescreen_location(template, sandboxes, name="Main Street Dental")
    coordinator = make_user("coord", location)  # email and SMS
    email_only = make_user("coord2", location, phone="")
    make_user("biller", location, role=Membership.Role.BILLING)
    other = prescreen_location(template, sandboxes, "north", pms_clinic_ids="9")  # nobody booked there
    make_user("north-coord", other)
    _day(sandboxes)
    with at("2027-03-12T11:00:00Z"):  # Friday 6:00 AM EST: Monday's list
        start_and_run(tasks)

    headline = "Monday at Main Street Dental: 4 patients pre-qualified up to $11,111.00; 1 existing cardholder with $3,000.00 available."
    url = f"http://127.0.0.1:9/admin/tomorrow/?location={location.pk}"
    sent = Notification.objects.filter(template="prescreen_morning").order_by("pk")
    assert [(n.channel, n.recipient, n.subject, n.status) for n in sent] == [
        ("email", "coord@example.com", headline, "sent"),
        ("sms", "+15555550100", headline, "sent"),
        ("email", "coord2@example.com", headline, "sent"),
    ]
    assert {n.reference for n in sent} == {f"prescreen-20270315-{location.pk}"}
    # The SMS: the sentence and the page, no name at all.
    [sms] = LocmemBackend.outbox
    assert sms["body"] == f"Chairside: {headline} {url}"
    # The email: each patient to act on, earliest first, as "Ava T."; then the rest counted.
    [first, second] = [m for m in mail.outbox if m.subject == headline]
    assert first.to == [coordinator.email] and second.to == [email_only.email]
    assert first.body == (
        f"{headline}\n\n"
        "Main Street Dental, Mar 15, 2027: the patients CareCredit pre-screened for their visit.\n\n"
        "- 9:00 AM EDT  Ava T.  planned $1,680.00  Pre-qualified up to $2,000.00, until Apr 11, 2027\n"
        "- 9:30 AM EDT  Jay C.  planned $1,560.00  Existing cardholder: $3,000.00 available\n"
        "- 10:00 AM EDT  Cara L.  planned $2,710.00  Pre-qualified up to $3,000.00, until Apr 11, 2027\n"
        "- 10:30 AM EDT  Ivy M.  planned $4,150.00  Pre-qualified up to $4,500.00, until Apr 11, 2027\n"
        "- 11:00 AM EDT  Dev P.  planned $2,685.00  Pre-qualified up to $1,611.00, until Apr 11, 2027\n\n"
        "Also screened: 1 not pre-qualified (they may still apply); not screened: 1 under 18.\n\n"
        "A pre-screen is a soft check: the patient's credit is untouched, and the amount is what CareCredit "
        f"would likely approve, not an approval. Start financing from Tomorrow's patients: {url}"
    )
    html = first.alternatives[0][0]
    assert "Ava T." in html and "$11,111.00" in html
    for message in [sms["body"], first.body, html]:
        for surname in SURNAMES:
            assert surname not in message

    # The north location had nobody: nothing to its coordinator. Billing gets no list.
    assert not Notification.objects.filter(template="prescreen_morning", recipient__in=["north-coord@example.com", "biller@example.com"]).exists()
    # Once per run: a rerun refreshes the list and sends nothing more.
    from financing.services import prescreen

    with at("2027-03-12T12:00:00Z"):
        prescreen.rerun(location)
        run_day(tasks)
    assert Notification.objects.filter(template="prescreen_morning").count() == 3


def test_a_next_business_day_that_is_tomorrow_says_so(template, sandboxes, tasks):
    location = prescreen_location(template, sandboxes, name="Main Street Dental")
    make_user("coord", location, phone="")
    book(sandboxes, new_patient(sandboxes, "Thompson", fees=("1680.00",)), "2027-03-16T13:00:00Z")
    with at("2027-03-15T10:00:00Z"):  # Monday 6:00 AM EDT: Tuesday's list
        start_and_run(tasks)
    [email] = mail.outbox
    assert email.subject == "Tomorrow at Main Street Dental: 1 patient pre-qualified up to $2,000.00."


def test_a_day_with_nobody_to_act_on_sends_nothing(template, sandboxes, tasks):
    location = prescreen_location(template, sandboxes)
    make_user("coord", location)
    book(sandboxes, new_patient(sandboxes, "Decline-Parker", fees=("4150.00",)), "2027-03-15T13:00:00Z")
    book(sandboxes, new_patient(sandboxes, "Nomatch-Olsen", fees=("2150.00",)), "2027-03-15T14:00:00Z")
    with at("2027-03-12T11:00:00Z"):
        start_and_run(tasks)
    assert not Notification.objects.exists()
    assert mail.outbox == [] and LocmemBackend.outbox == []
    from financing.models import PrescreenRun

    assert PrescreenRun.objects.get().messaged_at is None
    assert sorted(location.prescreens.values_list("result", flat=True)) == ["no_result", "not_prequalified"]
    assert D("0") == sum(location.prescreens.exclude(amount=None).values_list("amount", flat=True))
