"""A cancelled case says what really happened at the PMS, and its coordinator is told once,
through their own channels (issue 12, defect 5)."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from financing import messages, services
from financing.models import CaseState, FinancedCase, PaymentArrangement, WriteStatus
from notifications.models import Channel, ContactPreference, Notification
from notifications.sms import LocmemBackend
from tests.conftest import make_user
from tests.console.console_factories import console_client, make_case

pytestmark = pytest.mark.django_db(transaction=True)  # messages are queued on commit


@pytest.fixture
def cora(main):
    return make_user("cora", main)  # email and SMS


def page_of(client, case):
    return client.get(f"/admin/financing/financedcase/{case.pk}/change/").text


def stopped_at_the_ledger_note(location, coordinator):
    """A case whose agreement was written, stopped at the ledger-note step (it can still be cancelled)."""
    case = make_case(location, state=CaseState.ARRANGEMENT_WRITTEN, coordinator=coordinator)
    FinancedCase.objects.filter(pk=case.pk).update(
        state=CaseState.NEEDS_ATTENTION, resume_state=CaseState.ARRANGEMENT_WRITTEN, state_reason="Dentrix refused the ledger note"
    )
    return case


def test_cancelled_before_the_arrangement_step_says_nothing_was_written_and_tells_the_coordinator_once(main, ann, cora, tasks):
    case = make_case(main, state=CaseState.AWAITING_DECISION, coordinator=cora)
    client = console_client(ann)
    client.post(f"/admin/financing/financedcase/{case.pk}/cancel/", {"reason": "Patient chose to pay cash"})
    tasks.drain()

    page = page_of(client, case)
    assert "Not written: the case was cancelled before the arrangement step. Nothing was written to Dentrix." in page
    assert "Pending" not in page and "Not computed yet." not in page

    link = f"http://127.0.0.1:9/admin/financing/financedcase/{case.pk}/change/"
    [email] = mail.outbox
    assert email.to == ["cora@example.com"]
    assert email.subject == f"Cancelled: {case.reference}, nothing written to Dentrix"
    assert email.body.splitlines() == [
        f"{case.reference}: the financing case for Ava T. was cancelled by ann in the billing console.",
        "",
        "Nothing was written to Dentrix.",
        "",
        f"Chairside will not go on with this financing. The reason is on the case: {link}",
    ]
    [sms] = LocmemBackend.outbox
    assert sms["to"] == "+15555550100"
    assert sms["body"] == f"Chairside {case.reference}: Ava T. financing CANCELLED by billing, nothing written to Dentrix. {link}"
    assert "cash" not in sms["body"] and "cash" not in email.body  # the reason stays on the case page

    # Exactly once: queuing it again (a second process, a retried request) finds the records there.
    messages.queue_cancelled(FinancedCase.objects.get(pk=case.pk))
    tasks.drain()
    assert len(mail.outbox) == 1 and len(LocmemBackend.outbox) == 1
    assert list(Notification.objects.filter(reference=case.reference).values_list("template", "channel")) == [
        ("case_cancelled", Channel.EMAIL), ("case_cancelled", Channel.SMS),
    ]
    # A cancelled case cannot be cancelled again, and nothing more is sent.
    again = client.post(f"/admin/financing/financedcase/{case.pk}/cancel/", {"reason": "again"}, follow=True)
    assert "not allowed" in again.text
    assert Notification.objects.filter(reference=case.reference).count() == 2


def test_a_written_agreement_stays_in_dentrix_and_the_page_says_what_to_do(main, ann, cora, tasks):
    case = stopped_at_the_ledger_note(main, cora)
    agreement = PaymentArrangement.objects.get(case=case).pms_arrangement_id
    client = console_client(ann)
    client.post(f"/admin/financing/financedcase/{case.pk}/cancel/", {"reason": "Treatment postponed"})
    tasks.drain()

    page = page_of(client, case)
    assert "Written before the case was cancelled: it stays in Dentrix" in page
    assert (
        f"Payment agreement {agreement} was written to Dentrix before the case was cancelled, and it stays there: "
        f"Chairside never deletes from Dentrix. Unless the patient goes ahead, inactivate agreement {agreement} on "
        f"guarantor account {case.guarantor_id} in Dentrix."
    ) in page
    [email] = mail.outbox
    assert email.subject == f"Cancelled: {case.reference}, agreement stays in Dentrix"
    assert ("The payment agreement was already written to Dentrix, and it stays there until billing inactivates it. "
            "If the patient still wants the treatment financed, talk to billing first.") in email.body.splitlines()
    assert case.guarantor_id not in email.body and agreement not in email.body  # no account or record ids in messages
    [sms] = LocmemBackend.outbox
    assert sms["body"].startswith(f"Chairside {case.reference}: Ava T. financing CANCELLED by billing, agreement stays in Dentrix.")


def test_computed_but_never_written_and_perhaps_written_say_so(main, ann, cora, tasks):
    client = console_client(ann)

    def cancelled_while(write_status):
        """An approved case whose arrangement is in `write_status`, cancelled from its page."""
        case = make_case(main, state=CaseState.ARRANGEMENT_WRITTEN, coordinator=cora, written=False)
        FinancedCase.objects.filter(pk=case.pk).update(state=CaseState.APPROVED)
        PaymentArrangement.objects.filter(case=case).update(write_status=write_status, pms_arrangement_id="", written_at=None)
        client.post(f"/admin/financing/financedcase/{case.pk}/cancel/", {"reason": "Patient changed their mind"})
        return case, page_of(client, case)

    computed, page = cancelled_while(WriteStatus.PENDING)
    assert "Not written: the case was cancelled before the payment agreement was written to Dentrix" in page
    assert ">Pending<" not in page and "Pending ·" not in page

    unsure, page = cancelled_while(WriteStatus.UNKNOWN)
    assert "Perhaps written: the write to Dentrix had no answer when the case was cancelled" in page
    assert f"look on guarantor account {unsure.guarantor_id} in Dentrix for an agreement whose note holds {unsure.marker}".lower() in page.lower()
    tasks.drain()
    subjects = sorted(m.subject for m in mail.outbox)
    assert subjects == sorted([
        f"Cancelled: {computed.reference}, nothing written to Dentrix",
        f"Cancelled: {unsure.reference}, may have been written to Dentrix",
    ])


def test_the_coordinators_own_channels_decide_how_they_are_told(main, ann, tasks):
    email_only = make_user("eve", main, phone="")
    case = make_case(main, state=CaseState.CAPTURED, coordinator=email_only)
    services.cancel_case(case.pk, reason="Duplicate", actor=ann)
    tasks.drain()
    assert [m.to for m in mail.outbox] == [["eve@example.com"]] and LocmemBackend.outbox == []

    sms_only = make_user("sam", main)
    ContactPreference.objects.filter(user=sms_only).update(by_email=False, by_sms=True)
    other = make_case(main, state=CaseState.CAPTURED, coordinator=sms_only)
    services.cancel_case(other.pk, reason="Duplicate", actor=ann)
    tasks.drain()
    assert len(mail.outbox) == 1 and [m["to"] for m in LocmemBackend.outbox] == ["+15555550100"]


def test_a_case_a_worker_is_on_cannot_be_cancelled_and_nobody_is_told(main, ann, cora, tasks):
    case = make_case(main, state=CaseState.APPROVED, coordinator=cora)
    FinancedCase.objects.filter(pk=case.pk).update(lease_until=timezone.now() + timedelta(seconds=60), lease_token="x")
    response = console_client(ann).post(f"/admin/financing/financedcase/{case.pk}/cancel/", {"reason": "x"}, follow=True)
    assert "a worker is on this step right now; look again in a minute." in response.text
    case.refresh_from_db()
    assert case.state == CaseState.APPROVED
    assert Notification.objects.count() == 0
