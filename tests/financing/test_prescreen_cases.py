"""What a case takes from its patient's pre-screen, over HTTP against the sandboxes: the result
remembered at capture (and when it no longer counts), and the existing cardholder's shortcut —
no application, the lender's confirmation once per case reference, straight to APPROVED and
on to the arrangement — or the normal application when the card cannot take the amount."""

from datetime import timedelta
from decimal import Decimal as D

import pytest
import requests
from django.utils import timezone

from financing import services
from financing.models import CaseState, Decision, FinancedCase, PaymentArrangement, Prescreen, PrescreenRun
from tests.conftest import make_user
from tests.financing.prescreening import at, book, new_patient, prescreen_location, start_and_run

pytestmark = pytest.mark.django_db(transaction=True)

FRIDAY_6AM_EST = "2027-03-12T11:00:00Z"
FRIDAY_NOON_EST = "2027-03-12T17:00:00Z"


def confirmations(sandboxes):
    return requests.get(f"{sandboxes.carecredit_url}/_sandbox/cardholder-confirmations", timeout=5).json()


def screened(template, sandboxes, tasks, surname, fees, first_name="Jay"):
    """A location, its coordinator, and a patient booked Monday and screened on Friday."""
    location = prescreen_location(template, sandboxes)
    coordinator = make_user("coord", location)
    patient = new_patient(sandboxes, surname, fees=fees, first_name=first_name)
    book(sandboxes, patient, "2027-03-15T13:00:00Z")
    start_and_run(tasks)
    return location, coordinator, patient


def capture(location, coordinator, patient, down_payment=D("0.00")):
    return services.capture_case(
        location=location, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"],
        down_payment=down_payment, promotion="deferred_12", actor=coordinator,
    )


def test_an_existing_cardholder_with_the_credit_skips_the_application(template, sandboxes, tasks):
    with at(FRIDAY_6AM_EST):
        location, coordinator, patient = screened(template, sandboxes, tasks, "Cardholder-Reyes", ("1250.00", "1250.00"))
    with at(FRIDAY_NOON_EST):
        case = capture(location, coordinator, patient, down_payment=D("500.00"))
        assert (case.prescreen_outcome, case.prescreen_amount) == ("existing_cardholder", D("5000.00"))
        assert tasks.names() == ["financing.send_application"]
        assert tasks.run_next() == "approved"
        case.refresh_from_db()
        # Approved on the card for the amount financed, with the lender's decision.
        assert case.state == CaseState.APPROVED
        assert case.state_reason == "Existing CareCredit cardholder: CareCredit approved $2,000.00 on the card ending " + case.cardholder_account_last4 + ", so no application was needed."
        [confirmation] = confirmations(sandboxes)
        assert confirmation["reference"] == case.reference and confirmation["status"] == "APPROVED"
        assert confirmation["requested_amount"] == "2000.00"
        assert case.application_id == confirmation["confirmation_id"]
        assert case.cardholder_account_last4 == confirmation["account_last4"]
        assert len(case.cardholder_account_last4) == 4
        assert (case.decision.status, case.decision.approved_amount, case.decision.credit_limit) == ("approved", D("2000.00"), D("5000.00"))
        assert {o["code"] for o in case.decision.offers} >= {"deferred_12"}
        assert case.apply_url == "" and case.application_sent_at is None
        assert sandboxes.carecredit_applications() == []  # no application, no apply link
        # On to the arrangement, as for any approval.
        assert tasks.drain(include_delayed=False)[:2] == [("financing.write_arrangement", "written"), ("financing.post_ledger_note", "completed")]
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    arrangement = PaymentArrangement.objects.get(case=case)
    assert (arrangement.financed_amount, arrangement.down_payment) == (D("2000.00"), D("500.00"))
    assert len(sandboxes.agreements(patient["guarantor_id"])) == 1


def test_a_cardholder_whose_credit_does_not_cover_the_amount_applies(template, sandboxes, tasks):
    with at(FRIDAY_6AM_EST):
        location, coordinator, patient = screened(template, sandboxes, tasks, "Cardholder-Reyes", ("3000.00", "3000.01"))
    with at(FRIDAY_NOON_EST):
        case = capture(location, coordinator, patient)  # $6,000.01 > $5,000.00 available
        assert case.prescreen_outcome == "existing_cardholder"
        assert tasks.run_next() == "sent"
    case.refresh_from_db()
    assert case.state == CaseState.APPLICATION_SENT and case.cardholder_account_last4 == ""
    assert confirmations(sandboxes) == []  # never asked
    assert [a["reference"] for a in sandboxes.carecredit_applications()] == [case.reference]


def test_a_card_that_cannot_take_the_amount_after_all_falls_back_to_the_application(template, sandboxes, tasks):
    with at(FRIDAY_6AM_EST):
        location, coordinator, patient = screened(template, sandboxes, tasks, "Cardholder-Reyes", ("2500.00",))
    sandboxes.carecredit_config(cardholder_available_credit="1000.00")  # spent since Friday morning
    with at(FRIDAY_NOON_EST):
        case = capture(location, coordinator, patient)
        assert tasks.run_next() == "sent"
    case.refresh_from_db()
    assert case.state == CaseState.APPLICATION_SENT
    [confirmation] = confirmations(sandboxes)
    assert (confirmation["reference"], confirmation["status"]) == (case.reference, "INSUFFICIENT_CREDIT")
    assert [a["reference"] for a in sandboxes.carecredit_applications()] == [case.reference]
    assert not Decision.objects.filter(case=case).exists()


def test_a_lost_confirmation_answer_is_asked_again_and_the_first_one_kept(template, sandboxes, tasks):
    with at(FRIDAY_6AM_EST):
        location, coordinator, patient = screened(template, sandboxes, tasks, "Cardholder-Reyes", ("2500.00",))
    sandboxes.carecredit_fault(method="POST", path_prefix="/v1/cardholder-confirmations", mode="drop", count=1)
    with at(FRIDAY_NOON_EST):
        case = capture(location, coordinator, patient)
        assert tasks.run_next() == "retry"  # ambiguous: CareCredit may have it
        case.refresh_from_db()
        assert case.state == CaseState.CAPTURED and "cardholder confirmation" in case.last_error
        assert tasks.run_next() == "approved"
    case.refresh_from_db()
    [confirmation] = confirmations(sandboxes)  # one, sent twice
    assert case.state == CaseState.APPROVED and case.application_id == confirmation["confirmation_id"]
    assert sandboxes.carecredit_applications() == []


def test_a_card_closed_since_the_prescreen_applies_instead(template, sandboxes, tasks):
    """CareCredit finds no account any more: the patient applies (never declined for it)."""
    with at(FRIDAY_6AM_EST):
        location, coordinator, patient = screened(template, sandboxes, tasks, "Thompson", ("2500.00",), first_name="Ava")
    # The lender's answer on Friday morning was a card (its account closed since): the row as it was.
    Prescreen.objects.filter(patient_id=patient["patient_id"]).update(result="existing_cardholder", amount=D("5000.00"), expires_on=None)
    with at(FRIDAY_NOON_EST):
        case = capture(location, coordinator, patient)
        assert case.prescreen_outcome == "existing_cardholder"
        assert tasks.run_next() == "sent"
    case.refresh_from_db()
    assert case.state == CaseState.APPLICATION_SENT
    assert confirmations(sandboxes) == []  # 404: nothing recorded
    assert [a["reference"] for a in sandboxes.carecredit_applications()] == [case.reference]


def test_a_prequalified_patients_case_remembers_the_result_while_it_counts(template, sandboxes, tasks, settings):
    settings.PRESCREEN_RESULT_DAYS = 30
    with at(FRIDAY_6AM_EST):
        location, coordinator, patient = screened(template, sandboxes, tasks, "Thompson", ("1680.00",), first_name="Ava")
    row = Prescreen.objects.get()
    assert (row.result, row.amount, str(row.expires_on)) == ("prequalified", D("2000.00"), "2027-04-11")
    with at(FRIDAY_NOON_EST):
        case = capture(location, coordinator, patient)
    assert (case.prescreen_outcome, case.prescreen_amount, str(case.prescreen_expires_on)) == ("prequalified", D("2000.00"), "2027-04-11")
    assert case.prescreened_at == row.screened_at
    # The application goes out as usual: a pre-qualification is not an approval.
    with at(FRIDAY_NOON_EST):
        assert tasks.run_next() == "sent"
    FinancedCase.objects.filter(pk=case.pk).update(state=CaseState.CANCELLED)

    # Past its expiry (Apr 11 in New York), a pre-qualification is not remembered.
    with at("2027-04-12T12:00:00Z"):
        late = capture(location, coordinator, patient)
    assert (late.prescreen_outcome, late.prescreen_amount, late.prescreened_at) == ("", None, None)
    FinancedCase.objects.filter(pk=late.pk).update(state=CaseState.CANCELLED)
    # Nor a result older than PRESCREEN_RESULT_DAYS, whatever it was.
    Prescreen.objects.update(result="not_prequalified", amount=None, expires_on=None)
    settings.PRESCREEN_RESULT_DAYS = 10
    with at("2027-03-22T17:00:00Z"):  # 10 days and 6 hours after the screening
        old = capture(location, coordinator, patient)
    assert old.prescreen_outcome == ""
    # Another location's pre-screen of the same patient id is not this one's.
    assert not PrescreenRun.objects.exclude(location=location).exists()


def test_a_case_without_a_prescreen_is_unchanged(template, sandboxes, tasks):
    location = prescreen_location(template, sandboxes)
    coordinator = make_user("coord", location)
    patient = new_patient(sandboxes, "Cardholder-Reyes", fees=("2500.00",))
    case = capture(location, coordinator, patient)
    assert case.prescreen_outcome == ""
    assert tasks.run_next() == "sent"  # a cardholder never screened applies like anyone
    assert confirmations(sandboxes) == []
    assert timezone.now() - case.captured_at < timedelta(minutes=1)


def test_a_refused_confirmation_stops_the_case_for_a_person_and_sends_nothing_else(template, sandboxes, tasks):
    with at(FRIDAY_6AM_EST):
        location, coordinator, patient = screened(template, sandboxes, tasks, "Cardholder-Reyes", ("2500.00",))
    sandboxes.carecredit_fault(method="POST", path_prefix="/v1/cardholder-confirmations", mode="error", status=422, count=1)
    with at(FRIDAY_NOON_EST):
        case = capture(location, coordinator, patient)
        assert tasks.run_next() == "needs_attention"
    case.refresh_from_db()
    assert case.state == CaseState.NEEDS_ATTENTION and case.resume_state == CaseState.CAPTURED
    assert case.state_reason.startswith("The application could not be sent: CareCredit refused the cardholder confirmation: ")
    from financing import reasons

    assert reasons.kind_of(case.state_reason) == "application_refused"
    assert confirmations(sandboxes) == [] and sandboxes.carecredit_applications() == []
    assert not Decision.objects.filter(case=case).exists()
