"""Each persona through every step, against the sandboxes over HTTP, tasks run one by one."""

from datetime import timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.utils import timezone

from core.faults import InjectedFault
from financing import partners, services
from financing.models import CaseState, FinancedCase, PaymentArrangement, WriteStatus
from financing.ports import RateLimited
from notifications.models import Notification
from notifications.sms import LocmemBackend

pytestmark = pytest.mark.django_db(transaction=True)


def capture(location, coordinator, patient, promotion="deferred_12", down_payment=D("0.00")):
    return services.capture_case(
        location=location,
        patient_id=patient["patient_id"],
        treatment_plan_id=patient["treatment_plan_id"],
        down_payment=down_payment,
        promotion=promotion,
        actor=coordinator,
    )


def local_today(location):
    return timezone.localdate(timezone.now(), ZoneInfo(location.timezone))


def test_approved_case_writes_one_agreement_one_note_and_confirms(sandboxes, location, coordinator, tasks):
    patient = sandboxes.new_patient("Thompson", fees=("1250.00", "1250.00"))
    case = capture(location, coordinator, patient)
    assert case.state == CaseState.CAPTURED
    assert case.plan_total == D("2500.00")
    assert tasks.names() == ["financing.send_application"]

    tasks.drain()  # send_application: application out, decision not asked yet
    case.refresh_from_db()
    assert case.state == CaseState.APPLICATION_SENT
    assert case.application_id.startswith("app_")

    assert services.refresh_decision(case.pk) == "approved"
    assert tasks.names() == ["financing.write_arrangement"]
    assert [r for _, r in tasks.drain()] == ["written", "completed", "sent", "sent"]

    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    a = case.arrangement
    assert (a.down_payment, a.financed_amount, a.recurring_amount) == (D("0.00"), D("2500.00"), D("208.34"))
    assert (a.number_of_payments, a.final_payment, a.apr, a.finance_charge) == (12, D("208.26"), D("0.00"), D("0.00"))
    assert a.total_of_payments == D("2500.00")
    assert a.first_payment_date == local_today(location) + timedelta(days=30)
    assert a.write_status == WriteStatus.WRITTEN and a.verified_at is not None

    agreements = sandboxes.agreements(case.guarantor_id)
    assert len(agreements) == 1
    stored = agreements[0]
    assert stored["agreement_id"] == a.pms_arrangement_id
    assert stored["payment_amount"] == "208.34"
    assert stored["number_of_payments"] == 12
    assert stored["total_agreed_amount"] == "2500.00"
    assert stored["down_payment"] == "0.00"
    assert stored["annual_finance_charge_pct"] == "0.00"
    assert stored["interval"] == "monthly"
    assert stored["first_payment_due"] == a.first_payment_date.isoformat()
    assert case.marker in stored["note"]

    notes = sandboxes.ledger_notes(case.patient_id)
    assert len(notes) == 1
    assert case.marker in notes[0]["text"] and "$208.34" in notes[0]["text"]
    assert case.ledger_note.pms_note_id == notes[0]["note_id"]

    # One email and one SMS to the coordinator, with the terms and no PHI beyond "Ava T.".
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["coord@example.com"]
    assert "208.34" in mail.outbox[0].body and case.reference in mail.outbox[0].subject
    assert len(LocmemBackend.outbox) == 1 and LocmemBackend.outbox[0]["to"] == "+15555550100"
    sms = LocmemBackend.outbox[0]["body"]
    assert "Ava T." in sms and "$208.34/mo x 12" in sms
    for body in (sms, mail.outbox[0].body):
        assert "Thompson" not in body and "1980" not in body and "Elm St" not in body and "canary" not in body
    assert sorted(Notification.objects.values_list("channel", "status")) == [("email", "sent"), ("sms", "sent")]

    states = [row.state for row in case.history.order_by("history_date", "history_id")]
    collapsed = [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]
    assert collapsed == ["captured", "application_sent", "approved", "arrangement_written", "completed"]


def test_reduced_apr_terms_reach_dentrix_exactly(sandboxes, location, coordinator, tasks):
    patient = sandboxes.new_patient("Rivera", fees=("1000.00",))
    case = capture(location, coordinator, patient, promotion="reduced_apr_36")
    tasks.drain()
    services.refresh_decision(case.pk)
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    a = case.arrangement
    assert (a.recurring_amount, a.number_of_payments, a.apr) == (D("36.10"), 36, D("17.90"))
    assert a.total_of_payments == sum(D(i["amount"]) for i in a.schedule)
    assert a.finance_charge == a.total_of_payments - D("1000.00")
    [stored] = sandboxes.agreements(case.guarantor_id)
    assert (stored["payment_amount"], stored["number_of_payments"], stored["annual_finance_charge_pct"]) == ("36.10", 36, "17.90")


def test_partial_approval_puts_the_rest_on_the_down_payment(sandboxes, location, coordinator, tasks):
    patient = sandboxes.new_patient("Partial-Nguyen", fees=("1250.00", "1250.00"))
    case = capture(location, coordinator, patient)
    tasks.drain()
    services.refresh_decision(case.pk)
    tasks.drain()
    case.refresh_from_db()
    assert case.decision.approved_amount == D("1500.00")
    a = case.arrangement
    assert (a.down_payment, a.financed_amount, a.recurring_amount, a.number_of_payments) == (
        D("1000.00"), D("1500.00"), D("125.00"), 12
    )
    [stored] = sandboxes.agreements(case.guarantor_id)
    assert (stored["down_payment"], stored["total_agreed_amount"]) == ("1000.00", "2500.00")


def test_declined_writes_nothing_and_tells_the_coordinator_at_once(sandboxes, location, coordinator, tasks):
    patient = sandboxes.new_patient("Decline-Parker")
    case = capture(location, coordinator, patient)
    tasks.drain()
    assert services.refresh_decision(case.pk) == "declined"
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.DECLINED
    assert not PaymentArrangement.objects.filter(case=case).exists()
    assert sandboxes.agreements(case.guarantor_id) == []
    assert sandboxes.ledger_notes(case.patient_id) == []
    assert sandboxes.dentrix_requests("POST") == []
    assert len(mail.outbox) == 1 and mail.outbox[0].subject == f"Declined: {case.reference}, talk alternatives"
    assert "co-applicant" in LocmemBackend.outbox[0]["body"]


def test_pending_waits_then_completes(sandboxes, location, coordinator, tasks, advance_clock):
    patient = sandboxes.new_patient("Pending-Lee")
    case = capture(location, coordinator, patient)
    tasks.drain()
    assert services.refresh_decision(case.pk) == "pending"
    case.refresh_from_db()
    assert case.state == CaseState.AWAITING_DECISION
    assert tasks.queue == []
    advance_clock(sandboxes.carecredit, 0.6)  # past the sandbox's pending delay
    assert services.refresh_decision(case.pk) == "approved"
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    assert len(sandboxes.agreements(case.guarantor_id)) == 1


def test_referred_waits_with_a_reason(sandboxes, location, coordinator, tasks):
    case = capture(location, coordinator, sandboxes.new_patient("Refer-Garcia"))
    tasks.drain()
    assert services.refresh_decision(case.pk) == "referred"
    case.refresh_from_db()
    assert case.state == CaseState.AWAITING_DECISION
    assert "referred" in case.state_reason
    assert case.decision.raw_status == "REFERRED"


def test_no_decision_expires_after_the_configured_days(sandboxes, location, coordinator, tasks, settings):
    settings.CASE_EXPIRY_DAYS = 30
    case = capture(location, coordinator, sandboxes.new_patient("Expire-Brown"))
    tasks.drain()
    assert services.refresh_decision(case.pk) == "waiting"
    assert services.expire_stale(now=timezone.now() + timedelta(days=29)) == 0
    assert services.expire_stale(now=timezone.now() + timedelta(days=31)) == 1
    case.refresh_from_db()
    assert case.state == CaseState.EXPIRED
    assert case.state_reason == "No decision from CareCredit within 30 days."


def test_a_promotion_not_offered_needs_attention_and_writes_nothing(sandboxes, location, coordinator, billing, tasks):
    patient = sandboxes.new_patient("Thompson", fees=("600.00",))  # reduced APR needs $1,000
    case = capture(location, coordinator, patient, promotion="reduced_apr_24")
    tasks.drain()
    services.refresh_decision(case.pk)
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.NEEDS_ATTENTION
    assert case.state_reason.startswith("CareCredit did not offer 24 months reduced APR, fixed payments for this approval")
    # What was offered, by the promotions' labels (never their codes).
    assert "(offered: 6 months deferred interest, 12 months deferred interest, 18 months deferred interest, " in case.state_reason
    assert "deferred_12" not in case.state_reason
    assert sandboxes.dentrix_requests("POST") == []
    assert case.resume_state == CaseState.APPROVED
    # The billing member is told; the body names the case, not the patient.
    assert [m.to for m in mail.outbox] == [["biller@example.com"]]
    assert case.reference in mail.outbox[0].body and "Thompson" not in mail.outbox[0].body

    # Billing fixes the promotion and resumes: the terms are recomputed and written once.
    FinancedCase.objects.filter(pk=case.pk).update(promotion="deferred_6")
    services.resume_case(case.pk, actor=billing)
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    assert case.arrangement.recurring_amount == D("100.00")
    assert len(sandboxes.agreements(case.guarantor_id)) == 1


def test_an_account_with_another_active_agreement_needs_attention(sandboxes, location, coordinator, tasks):
    patient = sandboxes.new_patient("Thompson")
    from dentrix_bridge.client import DentrixConnectorClient
    from financing.ports import AgreementRequest, Interval

    DentrixConnectorClient(sandboxes.dentrix_url, "sandbox").create_payment_agreement(
        AgreementRequest(
            guarantor_id=patient["guarantor_id"], agreement_date=local_today(location), interval=Interval.MONTHLY,
            total_agreed_amount=D("300.00"), down_payment=D("0.00"), payment_amount=D("100.00"), number_of_payments=3,
            first_payment_due=local_today(location) + timedelta(days=30), annual_finance_charge_pct=D("0.00"),
            note="entered by hand",
        )
    )
    case = capture(location, coordinator, patient)
    tasks.drain()
    services.refresh_decision(case.pk)
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.NEEDS_ATTENTION
    assert "already has an active payment agreement" in case.state_reason
    assert len(sandboxes.agreements(case.guarantor_id)) == 1
    assert len(sandboxes.dentrix_requests("POST", "/v1/accounts")) == 1  # only the hand-entered one


def test_an_agreement_written_by_an_earlier_attempt_is_adopted_not_written_again(sandboxes, location, coordinator, tasks, settings):
    case = capture(location, coordinator, sandboxes.new_patient("Thompson"))
    tasks.drain()
    services.refresh_decision(case.pk)
    # The PMS commits the agreement, then the connection drops before we hear back.
    sandboxes.dentrix_fault(method="POST", path_prefix="/v1/accounts", mode="drop", count=1)
    assert tasks.run_next() == "retry"
    arrangement = PaymentArrangement.objects.get(case=case)
    assert arrangement.write_status == WriteStatus.UNKNOWN and arrangement.pms_arrangement_id == ""
    assert len(sandboxes.agreements(case.guarantor_id)) == 1
    [retry] = tasks.queue
    # Not before the partner had time to finish what it may still be committing.
    assert retry.name == "financing.write_arrangement" and retry.countdown == settings.AMBIGUOUS_WRITE_SETTLE_SECONDS

    assert tasks.run_next() == "written"  # the lookup finds the marker: adopted, no POST
    arrangement.refresh_from_db()
    assert arrangement.write_status == WriteStatus.WRITTEN
    assert arrangement.pms_arrangement_id == sandboxes.agreements(case.guarantor_id)[0]["agreement_id"]
    assert len(sandboxes.dentrix_requests("POST", "/v1/accounts")) == 1
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    assert len(sandboxes.agreements(case.guarantor_id)) == 1 and len(sandboxes.ledger_notes(case.patient_id)) == 1


def test_outage_backs_off_then_gives_the_case_to_a_human(sandboxes, location, coordinator, billing, tasks, settings):
    settings.STEP_MAX_ATTEMPTS = 3
    case = capture(location, coordinator, sandboxes.new_patient("Thompson"))
    tasks.drain()
    services.refresh_decision(case.pk)
    sandboxes.dentrix_fault(method="*", path_prefix="/v1/accounts", mode="error", status=503, retry_after=7, count=10)
    assert tasks.run_next() == "retry"
    assert tasks.queue[0].countdown == 7  # Retry-After wins over a shorter backoff
    assert tasks.run_next() == "retry"
    assert tasks.run_next() == "needs_attention"
    case.refresh_from_db()
    assert case.state == CaseState.NEEDS_ATTENTION
    assert case.state_reason.startswith("Writing the payment agreement to Dentrix failed 3 times")
    # Every attempt stopped at the lookup: nothing was posted.
    assert [r["status"] for r in sandboxes.dentrix_requests(prefix="/v1/accounts")] == [503, 503, 503]
    assert sandboxes.dentrix_requests("POST") == []

    sandboxes.clear_faults()
    assert sandboxes.agreements(case.guarantor_id) == []
    services.resume_case(case.pk, actor=billing)
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    assert len(sandboxes.agreements(case.guarantor_id)) == 1


def test_a_redelivered_step_does_nothing(sandboxes, location, coordinator, tasks):
    case = capture(location, coordinator, sandboxes.new_patient("Thompson"))
    tasks.drain()
    services.refresh_decision(case.pk)
    assert services.write_arrangement(case.pk) == "written"
    assert services.write_arrangement(case.pk) == "skipped"
    assert services.send_application(case.pk) == "skipped"
    assert services.refresh_decision(case.pk) == "skipped"
    tasks.drain()
    assert services.post_ledger_note(case.pk) == "skipped"
    assert len(sandboxes.agreements(case.guarantor_id)) == 1
    assert len(sandboxes.ledger_notes(case.patient_id)) == 1


def test_a_live_lease_keeps_a_second_worker_out(sandboxes, location, coordinator, tasks):
    case = capture(location, coordinator, sandboxes.new_patient("Thompson"))
    claimed = services.claim(case.pk, CaseState.CAPTURED)
    assert claimed is not None
    assert services.send_application(case.pk) == "skipped"
    FinancedCase.objects.filter(pk=case.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert services.send_application(case.pk) == "sent"  # the first claimant died; its lease ran out


def test_a_step_that_keeps_dying_ends_in_needs_attention(sandboxes, location, coordinator, tasks, settings):
    settings.STEP_MAX_ATTEMPTS = 2
    case = capture(location, coordinator, sandboxes.new_patient("Thompson"))
    for _ in range(2):  # two claims whose workers died (lease expired, never finished)
        assert services.claim(case.pk, CaseState.CAPTURED) is not None
        FinancedCase.objects.filter(pk=case.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert services.send_application(case.pk) == "skipped"
    case.refresh_from_db()
    assert case.state == CaseState.NEEDS_ATTENTION
    assert case.state_reason == "Sending the CareCredit application was interrupted 2 times without finishing. Chairside stopped retrying."
    assert sandboxes.carecredit_applications() == []


def approved(sandboxes, location, coordinator, tasks):
    """A case the lender approved, its write_arrangement step not run yet."""
    case = capture(location, coordinator, sandboxes.new_patient("Thompson"))
    tasks.drain()
    services.refresh_decision(case.pk)
    tasks.queue.clear()
    return case


def test_a_case_whose_worker_died_mid_write_is_looked_up_only_after_the_settle_time(sandboxes, location, coordinator, tasks, settings):
    case = approved(sandboxes, location, coordinator, tasks)
    settings.CHAIRSIDE_FAULT_POINTS = ["before_pms_agreement_write"]
    with pytest.raises(InjectedFault):  # the worker dies as it sends the agreement
        services.write_arrangement(case.pk)
    settings.CHAIRSIDE_FAULT_POINTS = []
    # Its lease is gone (however soon: a short lease, its holder known dead)...
    FinancedCase.objects.filter(pk=case.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    lookups = len(sandboxes.dentrix_requests("GET", "/v1/accounts"))
    # ... but Dentrix may still be committing what it was sent: no lookup, no second write yet.
    assert services.write_arrangement(case.pk) == "skipped"
    assert len(sandboxes.dentrix_requests("GET", "/v1/accounts")) == lookups
    case.refresh_from_db()
    settle = timedelta(seconds=settings.AMBIGUOUS_WRITE_SETTLE_SECONDS)
    assert timezone.now() + settle - timedelta(seconds=5) < case.next_attempt_at <= timezone.now() + settle

    FinancedCase.objects.filter(pk=case.pk).update(next_attempt_at=timezone.now())  # the settle time passed
    assert services.write_arrangement(case.pk) == "written"
    assert len(sandboxes.dentrix_requests("POST", "/v1/accounts")) == 1


def held_back_by_the_limiter(request):
    raise RateLimited("Chairside is pacing requests to this partner connection", retry_after=5.0)


def test_a_write_the_limiter_held_back_is_no_attempt(sandboxes, location, coordinator, tasks, monkeypatch):
    case = approved(sandboxes, location, coordinator, tasks)
    monkeypatch.setattr(partners.pms_for(location), "create_payment_agreement", held_back_by_the_limiter)
    assert services.write_arrangement(case.pk) == "rate_limited"
    arrangement = PaymentArrangement.objects.get(case=case)
    # Nothing was sent: still unsent (the next attempt needs no settle time), no attempt spent.
    assert (arrangement.write_status, arrangement.write_attempts) == (WriteStatus.PENDING, 0)
    assert FinancedCase.objects.get(pk=case.pk).state == CaseState.APPROVED
    assert sandboxes.dentrix_requests("POST", "/v1/accounts") == []

    monkeypatch.undo()
    FinancedCase.objects.filter(pk=case.pk).update(next_attempt_at=None)
    assert services.write_arrangement(case.pk) == "written"
    arrangement.refresh_from_db()
    assert (arrangement.write_status, arrangement.write_attempts) == (WriteStatus.WRITTEN, 1)
    assert len(sandboxes.dentrix_requests("POST", "/v1/accounts")) == 1


def test_a_held_back_retry_of_an_ambiguous_write_stays_unknown(sandboxes, location, coordinator, tasks, monkeypatch):
    case = approved(sandboxes, location, coordinator, tasks)
    sandboxes.dentrix_fault(method="POST", path_prefix="/v1/accounts", mode="error", count=1)
    settle = services.write_arrangement(case.pk)
    arrangement = PaymentArrangement.objects.get(case=case)
    assert (settle, arrangement.write_status, arrangement.write_attempts) == ("retry", WriteStatus.UNKNOWN, 1)
    monkeypatch.setattr(partners.pms_for(location), "create_payment_agreement", held_back_by_the_limiter)
    FinancedCase.objects.filter(pk=case.pk).update(next_attempt_at=None)
    assert services.write_arrangement(case.pk) == "rate_limited"
    arrangement.refresh_from_db()
    # The first POST may still have landed: the next attempt must still look it up first.
    assert (arrangement.write_status, arrangement.write_attempts) == (WriteStatus.UNKNOWN, 1)
    assert len(sandboxes.dentrix_requests("POST", "/v1/accounts")) == 1


def test_a_step_whose_case_was_taken_over_sends_no_write(sandboxes, location, coordinator, tasks):
    case = approved(sandboxes, location, coordinator, tasks)
    claimed, token = services.claim(case.pk, CaseState.APPROVED)
    FinancedCase.objects.filter(pk=case.pk).update(lease_token="someone-else")  # its lease ran out, and was taken
    with pytest.raises(services.LeaseLost):
        services.leases.before_write(claimed, token)
    assert FinancedCase.objects.get(pk=case.pk).next_attempt_at is None


def test_unknown_lender_status_never_moves_a_case(sandboxes, location, coordinator, tasks):
    from financing.ports import DecisionStatus, LenderDecision

    case = capture(location, coordinator, sandboxes.new_patient("Thompson"))
    tasks.drain()
    odd = LenderDecision(application_id=case.application_id, status=DecisionStatus.UNKNOWN, raw_status="UNDER_MANUAL_REVIEW", requested_amount=D("2500.00"))
    assert services.apply_decision(case.pk, odd) == "waiting"
    case.refresh_from_db()
    assert case.state == CaseState.APPLICATION_SENT
    assert case.decision.raw_status == "UNDER_MANUAL_REVIEW" and case.decision.status == "unknown"
    assert tasks.queue == []


def test_the_sweeper_redrives_a_case_whose_message_was_lost(sandboxes, location, coordinator, tasks, empty_queues):
    case = capture(location, coordinator, sandboxes.new_patient("Thompson"))
    tasks.queue.clear()  # the broker lost the message
    assert services.stuck_cases() == []  # too fresh: its message may still be on its way
    FinancedCase.objects.filter(pk=case.pk).update(state_changed_at=timezone.now() - timedelta(minutes=5))
    assert services.stuck_cases() == [case.pk]
    services.redrive(case.pk)
    assert tasks.names() == ["financing.send_application"]
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.APPLICATION_SENT


def test_a_paused_location_holds_its_cases(sandboxes, location, coordinator, tasks, empty_queues):
    case = capture(location, coordinator, sandboxes.new_patient("Thompson"))
    location.mode = "paused"
    location.save()
    assert tasks.drain() == [("financing.send_application", "skipped")]
    assert services.stuck_cases(now=timezone.now() + timedelta(hours=1)) == []
    case.refresh_from_db()
    assert case.state == CaseState.CAPTURED


def test_shadow_mode_computes_but_never_writes(sandboxes, location, coordinator, tasks):
    location.mode = "shadow"
    location.save()
    case = capture(location, coordinator, sandboxes.new_patient("Thompson"))
    tasks.drain()
    services.refresh_decision(case.pk)
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    assert case.arrangement.write_status == WriteStatus.SHADOW
    assert case.arrangement.recurring_amount == D("208.34")
    assert sandboxes.dentrix_requests("POST") == []
