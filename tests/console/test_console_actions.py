"""Console actions go through the services: resume, retry, cancel with a reason, resend a
confirmation, record a correction. Each is audited (who, when) and leaves the case right."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from financing import services
from financing.models import CaseState, Correction, FinancedCase, PaymentArrangement
from notifications.models import Notification
from tests.conftest import make_user
from tests.console.console_factories import billing_user, console_client, make_case

pytestmark = pytest.mark.django_db(transaction=True)  # tasks are enqueued on commit

D = Decimal


def test_resume_from_the_case_page_sends_the_case_back_to_its_step(main, ann, tasks):
    case = make_case(main, state=CaseState.NEEDS_ATTENTION, reason="Dentrix refused the payment agreement", resume_state=CaseState.APPROVED)
    client = console_client(ann)
    page = client.get(f"/admin/financing/financedcase/{case.pk}/change/")
    assert 'id="resume-case"' in page.text and "Dentrix refused the payment agreement" in page.text

    response = client.post(f"/admin/financing/financedcase/{case.pk}/resume/")
    assert response.status_code == 302 and response.url == f"/admin/financing/financedcase/{case.pk}/change/"
    case.refresh_from_db()
    assert case.state == CaseState.APPROVED and case.state_reason == "Resumed by ann"
    assert tasks.names() == ["financing.write_arrangement"]
    latest = case.history.first()
    assert latest.history_user == ann and latest.state == CaseState.APPROVED

    again = client.post(f"/admin/financing/financedcase/{case.pk}/resume/", follow=True)
    assert "not waiting for attention" in again.text
    assert tasks.names() == ["financing.write_arrangement"]


def test_retry_step_enqueues_the_current_step_now_and_refuses_otherwise(main, ann, tasks):
    case = make_case(main, state=CaseState.APPROVED)
    FinancedCase.objects.filter(pk=case.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=4), last_error="Dentrix timed out")
    client = console_client(ann)
    assert "Retrying: Dentrix timed out" in client.get("/admin/financing/financedcase/").text

    client.post(f"/admin/financing/financedcase/{case.pk}/retry/")
    case.refresh_from_db()
    assert case.next_attempt_at is None and case.state == CaseState.APPROVED
    assert tasks.names() == ["financing.write_arrangement"]
    assert case.history.first().history_change_reason == "Step retried from the billing console"
    assert case.history.first().history_user == ann

    # A worker holding the lease is left alone; a finished case has no step.
    FinancedCase.objects.filter(pk=case.pk).update(lease_until=timezone.now() + timedelta(seconds=60), lease_token="x")
    with pytest.raises(services.InvalidTransition, match="a worker is on this step"):
        services.retry_step(case.pk, actor=ann)
    done = make_case(main)
    with pytest.raises(services.InvalidTransition, match="there is no step to retry"):
        services.retry_step(done.pk, actor=ann)
    assert tasks.names() == ["financing.write_arrangement"]


def test_cancel_needs_a_reason_and_keeps_it(main, ann, tasks):
    case = make_case(main, state=CaseState.AWAITING_DECISION)
    client = console_client(ann)
    refused = client.post(f"/admin/financing/financedcase/{case.pk}/cancel/", {"reason": ""}, follow=True)
    assert "Give a reason to cancel the case." in refused.text
    case.refresh_from_db()
    assert case.state == CaseState.AWAITING_DECISION

    client.post(f"/admin/financing/financedcase/{case.pk}/cancel/", {"reason": "Patient chose to pay cash"})
    case.refresh_from_db()
    assert case.state == CaseState.CANCELLED and case.state_reason == "Patient chose to pay cash"
    assert case.history.first().history_user == ann


def test_bulk_cancel_asks_for_a_reason_first(main, ann, tasks):
    first, second = make_case(main, state=CaseState.CAPTURED), make_case(main, state=CaseState.AWAITING_DECISION)
    written = make_case(main)
    client = console_client(ann)
    selected = {"action": "cancel_cases", "_selected_action": [first.pk, second.pk, written.pk]}
    confirm = client.post("/admin/financing/financedcase/", selected)
    assert confirm.status_code == 200 and "Reason (kept on the case)" in confirm.text
    assert FinancedCase.objects.filter(state=CaseState.CANCELLED).count() == 0

    done = client.post("/admin/financing/financedcase/", {**selected, "reason": "Duplicate plans"}, follow=True)
    assert "Cancelled 2 case(s)." in done.text
    assert sorted(FinancedCase.objects.filter(state=CaseState.CANCELLED).values_list("pk", flat=True)) == [first.pk, second.pk]
    written.refresh_from_db()
    assert written.state == CaseState.COMPLETED


def test_resend_confirmation_queues_a_new_message_to_the_coordinator(main, ann, tasks):
    coordinator = make_user("cora", main)
    case = make_case(main, coordinator=coordinator)
    client = console_client(ann)
    client.post(f"/admin/financing/financedcase/{case.pk}/resend/")
    client.post(f"/admin/financing/financedcase/{case.pk}/resend/")
    sent = Notification.objects.filter(reference=case.reference).order_by("pk")
    assert [(n.template, n.channel) for n in sent] == [("case_approved", "email"), ("case_approved", "sms")] * 2
    assert len({n.dedupe_key for n in sent}) == 4
    # The case page names each message in words, never by its template.
    page = client.get(f"/admin/financing/financedcase/{case.pk}/change/").text
    assert page.count("Approval confirmation by Email") == 2 and page.count("Approval confirmation by SMS") == 2
    assert "case_approved" not in page

    waiting = make_case(main, state=CaseState.AWAITING_DECISION, coordinator=coordinator)
    response = client.post(f"/admin/financing/financedcase/{waiting.pk}/resend/", follow=True)
    assert "only a written or declined case has a confirmation" in response.text
    assert Notification.objects.filter(reference=waiting.reference).count() == 0


def test_record_correction_updates_the_arrangement_and_is_audited(main, ann, tasks):
    case = make_case(main, plan_total=D("2500.00"))
    client = console_client(ann)
    form = client.get(f"/admin/financing/financedcase/{case.pk}/correct/")
    assert form.status_code == 200 and "Record a correction to" in form.text

    response = client.post(
        f"/admin/financing/financedcase/{case.pk}/correct/",
        {"field": "first_payment_date", "after": "2030-01-15", "why": "Patient asked for the 15th"},
    )
    assert response.status_code == 302
    arrangement = PaymentArrangement.objects.get(case=case)
    correction = Correction.objects.get()
    before = (case.captured_at + timedelta(days=30)).date().isoformat()
    assert (correction.field, correction.before, correction.after, correction.why, correction.actor) == (
        "first_payment_date", before, "2030-01-15", "Patient asked for the 15th", ann,
    )
    assert arrangement.first_payment_date.isoformat() == "2030-01-15"
    assert arrangement.history.first().history_user == ann
    assert arrangement.history.first().history_change_reason == "Correction: Patient asked for the 15th"
    assert correction.history.get().history_user == ann

    page = client.get(f"/admin/financing/financedcase/{case.pk}/change/")
    assert "Correction of first payment date" in page.text
    # Shown the way the console shows every date (stored as ISO).
    due = (case.captured_at + timedelta(days=30)).date()
    shown_before = f"{due:%b} {due.day}, {due.year}"
    assert f"<del>{shown_before}</del> → <ins>Jan 15, 2030</ins>" in page.text


def test_corrections_that_cannot_be_recorded_say_why_and_change_nothing(main, ann, tasks):
    case = make_case(main, plan_total=D("2500.00"))
    client = console_client(ann)
    bad_money = client.post(f"/admin/financing/financedcase/{case.pk}/correct/", {"field": "recurring_amount", "after": "12.345", "why": "typo"})
    assert bad_money.status_code == 200 and "Enter recurring amount as $1,234.56." in bad_money.text
    same = client.post(f"/admin/financing/financedcase/{case.pk}/correct/", {"field": "number_of_payments", "after": "12", "why": "x"})
    assert "The arrangement already has number of payments 12." in same.text
    with pytest.raises(services.CorrectionError) as missing_why:
        services.record_correction(case.pk, field="apr", after="1.00", why=" ", actor=ann)
    assert missing_why.value.fields == {"why": "Say why the arrangement was corrected."}
    shadow = make_case(main, shadow=True)
    with pytest.raises(services.CorrectionError) as not_written:
        services.record_correction(shadow.pk, field="apr", after="1.00", why="x", actor=ann)
    assert not_written.value.fields == {"field": f"{shadow.reference} has no payment agreement written to Dentrix to correct."}
    assert Correction.objects.count() == 0
    assert PaymentArrangement.objects.get(case=case).recurring_amount == D("208.34")


def test_recording_a_correction_needs_the_permission(main, tasks):
    viewer = billing_user("vic", main, perms=["view_financedcase", "change_financedcase"])
    case = make_case(main)
    client = console_client(viewer)
    assert 'id="record-correction"' not in client.get(f"/admin/financing/financedcase/{case.pk}/change/").text
    assert client.post(f"/admin/financing/financedcase/{case.pk}/correct/", {"field": "apr", "after": "1.00", "why": "x"}).status_code == 403
    assert Correction.objects.count() == 0


def test_the_case_page_tells_the_whole_story(main, ann, tasks):
    coordinator = make_user("cora", main)
    case = make_case(main, coordinator=coordinator, plan_total=D("2500.00"))
    services.record_correction(case.pk, field="recurring_amount", after="210.00", why="Rounded up in Dentrix", actor=ann)
    page = console_client(ann).get(f"/admin/financing/financedcase/{case.pk}/change/")
    text = page.text
    for expected in (
        "D2740",  # procedures
        "Offers:</strong> 12 months deferred interest (chosen)",  # decision and offers, by their labels
        f'id="pms-agreement-id">{case.arrangement.pms_arrangement_id}<',  # what Dentrix holds
        "12 × $210.00 monthly",  # the terms, as corrected
        f"Ledger note ID {case.ledger_note.pms_note_id}",
        "Payment agreement written to Dentrix",  # the write, on the timeline
        "Correction of recurring amount",
        "Rounded up in Dentrix",
    ):
        assert expected in text, expected
    assert 'name="_save"' not in text  # nothing on this page is edited by hand
