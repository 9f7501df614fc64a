"""The personas of the Dentrix flows (tests/financing/test_flow.py) against the Open Dental
sandbox over HTTP, tasks run one by one: what lands in Open Dental is one Dynamic payment
plan over the plan's procedures and one commlog, each carrying the case's marker, with
exactly the computed terms; and nothing at all where a case stops."""

from datetime import date, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from financing import services
from financing.models import CaseState, FinancedCase, PaymentArrangement, WriteStatus

pytestmark = pytest.mark.django_db(transaction=True)


def local_today(location):
    return timezone.localdate(timezone.now(), ZoneInfo(location.timezone))


def capture(location, coordinator, patient, promotion="deferred_12", down_payment=D("0.00")):
    return services.capture_case(
        location=location, patient_id=str(patient["PatNum"]), treatment_plan_id=str(patient["TreatPlanNum"]),
        down_payment=down_payment, promotion=promotion, actor=coordinator,
    )


def decided(tasks, case):
    """Run the case until the lender decided (the sandbox decides at once)."""
    tasks.drain()
    return services.refresh_decision(case.pk)


def ours(plans, case):
    return [p for p in plans if case.marker in p["Note"]]


def test_approved_writes_one_dynamic_plan_over_the_procedures_and_one_commlog(sandboxes, od, od_location, od_coordinator, tasks):
    patient = od.new_patient("Thompson", fees=("1250.00", "1250.00"))
    case = capture(od_location, od_coordinator, patient)
    assert case.plan_total == D("2500.00")
    assert [p["procedure_id"] for p in case.procedures] == [str(n) for n in patient["ProcNums"]]
    assert decided(tasks, case) == "approved"
    assert [r for _, r in tasks.drain()] == ["written", "completed", "sent", "sent"]

    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    a = case.arrangement
    assert (a.recurring_amount, a.number_of_payments, a.final_payment, a.down_payment) == (D("208.34"), 12, D("208.26"), D("0.00"))
    assert a.write_status == WriteStatus.WRITTEN and a.verified_at is not None
    [plan] = od.plans(patient["Guarantor"])
    assert str(plan["PayPlanNum"]) == a.pms_arrangement_id
    assert (plan["PatNum"], plan["Guarantor"], plan["IsDynamic"], plan["ChargeFrequency"]) == (patient["PatNum"], patient["PatNum"], "true", "Monthly")
    assert (plan["PayAmt"], plan["DownPayment"], plan["APR"], plan["principalAmount"]) == (208.34, 0.0, 0.0, 2500.0)
    assert plan["DatePayPlanStart"] == a.first_payment_date.isoformat()
    assert plan["PayPlanDate"] == local_today(od_location).isoformat()
    assert (plan["IsLocked"], plan["NumberOfPayments"], plan["DynamicPayPlanTPOption"]) == ("false", 0, "AwaitComplete")
    # Open Dental wrote its terms first; the marker is in what we appended.
    assert plan["Note"] == (
        f"{od.app.clock.today():%m/%d/%Y} - Date of Agreement: {local_today(od_location):%m/%d/%Y}, Total Amount: 2500.00, "
        f"APR: 0, Total Cost of Loan: 2500.00, {a.note}"
    )
    assert sorted(link["FKey"] for link in od.links(plan["PayPlanNum"])) == patient["ProcNums"]
    [commlog] = od.commlogs(patient["PatNum"])
    assert case.marker in commlog["Note"] and "$208.34" in commlog["Note"]
    assert (commlog["Mode_"], commlog["SentOrReceived"], commlog["commType"]) == ("None", "Neither", "Misc")
    assert case.ledger_note.pms_note_id == str(commlog["CommlogNum"])
    # No charge before the procedures are done (AwaitComplete) and the first payment is due.
    assert od.charges(plan["PayPlanNum"]) == []
    # The id labels the case page shows are Open Dental's.
    from financing import partners

    assert partners.pms_id_labels(od_location) == {"patient": "PatNum", "arrangement": "PayPlanNum", "note": "CommlogNum"}


def test_down_payment_is_charged_on_the_day_against_the_first_procedure(sandboxes, od, od_location, od_coordinator, tasks):
    patient = od.new_patient("Thompson", fees=("1250.00", "1250.00"))
    case = capture(od_location, od_coordinator, patient, down_payment=D("500.00"))
    decided(tasks, case)
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    a = case.arrangement
    assert (a.down_payment, a.financed_amount, a.recurring_amount, a.number_of_payments, a.final_payment) == (
        D("500.00"), D("2000.00"), D("166.67"), 12, D("166.63"))
    [plan] = od.plans(patient["Guarantor"])
    assert (plan["DownPayment"], plan["PayAmt"], plan["principalAmount"]) == (500.0, 166.67, 2500.0)
    [charge] = od.charges(plan["PayPlanNum"])
    assert (charge["Note"], charge["Principal"], charge["Interest"], charge["FKey"]) == ("Down Payment", 500.0, 0.0, patient["ProcNums"][0])


def test_partial_approval_puts_the_rest_on_the_down_payment(sandboxes, od, od_location, od_coordinator, tasks):
    patient = od.new_patient("Partial-Nguyen", fees=("1250.00", "1250.00"))
    case = capture(od_location, od_coordinator, patient)
    decided(tasks, case)
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    assert case.decision.approved_amount == D("1500.00")
    [plan] = od.plans(patient["Guarantor"])
    assert (plan["DownPayment"], plan["principalAmount"], plan["PayAmt"]) == (1000.0, 2500.0, 125.0)
    assert sum(c["Principal"] for c in od.charges(plan["PayPlanNum"])) == 1000.0


def test_a_dependent_is_financed_on_the_guarantors_account(sandboxes, od, od_location, od_coordinator, tasks):
    parent = od.new_patient("Thompson", fees=("300.00",))
    child = od.new_patient("Thompson", first_name="Gus", fees=("705.00",), guarantor_id=parent["PatNum"])
    case = capture(od_location, od_coordinator, child)
    decided(tasks, case)
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    assert case.guarantor_id == str(parent["PatNum"])
    [plan] = od.plans(parent["PatNum"])
    assert (plan["PatNum"], plan["Guarantor"], plan["principalAmount"]) == (child["PatNum"], parent["PatNum"], 705.0)
    assert od.get("/payplans", PatNum=parent["PatNum"]) == []  # the plan is the child's
    assert len(od.commlogs(child["PatNum"])) == 1 and od.commlogs(parent["PatNum"]) == []


def test_reduced_apr_is_written_locked_with_exactly_the_computed_schedule(sandboxes, od, od_location, od_coordinator, tasks):
    patient = od.new_patient("Rivera", fees=("2500.00",))
    case = capture(od_location, od_coordinator, patient, promotion="reduced_apr_36")
    decided(tasks, case)
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    a = case.arrangement
    assert (a.recurring_amount, a.number_of_payments, a.final_payment, a.apr) == (D("90.26"), 36, D("90.04"), D("17.90"))
    [plan] = od.plans(patient["Guarantor"])
    assert (plan["APR"], plan["IsLocked"], plan["PayAmt"]) == (17.9, "true", 90.26)
    # Open Dental's schedule, once the work is done and every payment has come due.
    od.control("POST", f"/patients/{patient['PatNum']}/post-production")
    last_due = date.fromisoformat(a.schedule[-1]["due_date"])
    od.app.clock.advance(((last_due - od.app.clock.today()).days + 1) * 86400)
    charges = od.charges(plan["PayPlanNum"])
    assert len(charges) == 36
    assert [D(str(c["Principal"])) + D(str(c["Interest"])) for c in charges] == [D(i["amount"]) for i in a.schedule]
    assert [c["ChargeDate"] for c in charges] == [i["due_date"] for i in a.schedule]


def test_a_last_payment_larger_than_the_rest_is_fitted_to_a_level_payment_open_dental_holds(sandboxes, od, od_location, od_coordinator, tasks):
    """$1,000.00 at 17.90 % over 36: the standard payment rounds down to $36.10 and leaves a
    last one of $36.22. Open Dental never charges more than the payment, so it would run a
    37th payment of $0.12. At Open Dental the payment is the next cent that fits ($36.11,
    last $35.75): the arrangement records it, Open Dental holds it, 36 charges, exactly."""
    patient = od.new_patient("Rivera", fees=("1000.00",))
    case = capture(od_location, od_coordinator, patient, promotion="reduced_apr_36")
    decided(tasks, case)
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    a = case.arrangement
    assert (a.recurring_amount, a.number_of_payments, a.final_payment) == (D("36.11"), 36, D("35.75"))
    assert (a.total_of_payments, a.finance_charge) == (D("1299.60"), D("299.60"))
    [plan] = od.plans(patient["Guarantor"])
    assert (plan["PayAmt"], plan["principalAmount"]) == (36.11, 1000.0)
    od.control("POST", f"/patients/{patient['PatNum']}/post-production")
    last_due = date.fromisoformat(a.schedule[-1]["due_date"])
    od.app.clock.advance(((last_due - od.app.clock.today()).days + 1) * 86400)
    charges = od.charges(plan["PayPlanNum"])
    assert [D(str(c["Principal"])) + D(str(c["Interest"])) for c in charges] == [D(i["amount"]) for i in a.schedule]
    assert len(charges) == 36


def test_a_procedure_already_on_a_plan_needs_attention_and_says_what_to_do(sandboxes, od, od_location, od_coordinator, tasks):
    patient = od.new_patient("Thompson", fees=("1250.00", "1250.00"))
    case = capture(od_location, od_coordinator, patient)
    # The front desk put the crown on a plan of its own in Open Dental meanwhile.
    from opendental_bridge.client import OpenDentalClient
    from financing.ports import AgreementRequest, AppliedProcedure, Interval

    today = local_today(od_location)
    OpenDentalClient(od.api, "sandbox-customer").create_payment_agreement(AgreementRequest(
        guarantor_id=str(patient["Guarantor"]), patient_id=str(patient["PatNum"]), agreement_date=today,
        interval=Interval.MONTHLY, total_agreed_amount=D("1250.00"), down_payment=D("0.00"), payment_amount=D("125.00"),
        number_of_payments=10, first_payment_due=today + timedelta(days=30), annual_finance_charge_pct=D("0.00"),
        note="Entered at the front desk", procedures=(AppliedProcedure(str(patient["ProcNums"][1]), D("1250.00")),),
    ))
    decided(tasks, case)
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.NEEDS_ATTENTION
    assert case.state_reason == (
        "Open Dental refused the payment plan: Open Dental rejected the payment plan: This procedure is already "
        "linked to a payment plan. Find the plan the procedure is on in the patient's Account module, take the procedure "
        "off it (or close that plan) in Open Dental, then resume this case."
    )
    assert [p["Note"] for p in od.plans(patient["Guarantor"]) if case.marker in p["Note"]] == []
    assert len(od.plans(patient["Guarantor"])) == 1 and od.commlogs(patient["PatNum"]) == []
    assert PaymentArrangement.objects.get(case=case).write_status == WriteStatus.FAILED


def test_another_plan_on_the_account_does_not_stop_the_case(sandboxes, od, od_location, od_coordinator, tasks):
    """Open Dental keeps several plans per account: one the front desk made over other
    production is no conflict (Dentrix G's one-agreement rule does not apply)."""
    patient = od.new_patient("Thompson", fees=("1250.00", "1250.00"))
    done = od.control("POST", f"/patients/{patient['PatNum']}/procedures", {"code": "D1110", "fee": "600.00", "ProcStatus": "C"})
    from opendental_bridge.client import OpenDentalClient
    from financing.ports import AgreementRequest, AppliedProcedure, Interval

    today = local_today(od_location)
    OpenDentalClient(od.api, "sandbox-customer").create_payment_agreement(AgreementRequest(
        guarantor_id=str(patient["Guarantor"]), patient_id=str(patient["PatNum"]), agreement_date=today - timedelta(days=1),
        interval=Interval.MONTHLY, total_agreed_amount=D("600.00"), down_payment=D("0.00"), payment_amount=D("50.00"),
        number_of_payments=12, first_payment_due=today + timedelta(days=29), annual_finance_charge_pct=D("0.00"),
        note="Entered at the front desk", procedures=(AppliedProcedure(str(done["ProcNum"]), D("600.00")),),
    ))
    case = capture(od_location, od_coordinator, patient)
    decided(tasks, case)
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    plans = od.plans(patient["Guarantor"])
    assert len(plans) == 2 and len(ours(plans, case)) == 1


def test_declined_writes_nothing(sandboxes, od, od_location, od_coordinator, tasks):
    patient = od.new_patient("Decline-Parker")
    case = capture(od_location, od_coordinator, patient)
    assert decided(tasks, case) == "declined"
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.DECLINED
    assert not PaymentArrangement.objects.filter(case=case).exists()
    assert od.requests("POST") == [] and od.plans(patient["Guarantor"]) == [] and od.commlogs(patient["PatNum"]) == []


@pytest.mark.parametrize("fault", [{"mode": "drop"}, {"mode": "commit_then_error", "status": 504}])
def test_a_plan_committed_without_an_answer_is_found_by_its_marker_not_written_again(fault, sandboxes, od, od_location, od_coordinator, tasks, settings):
    patient = od.new_patient("Thompson")
    case = capture(od_location, od_coordinator, patient)
    decided(tasks, case)
    # Open Dental commits the plan, then the answer is lost (or comes as a 504 after its 60 s).
    od.fault(method="POST", path_prefix="/api/v1/payplans", count=1, **fault)
    od.fault(method="POST", path_prefix="/api/v1/commlogs", count=1, **fault)
    assert tasks.run_next() == "retry"
    arrangement = PaymentArrangement.objects.get(case=case)
    assert arrangement.write_status == WriteStatus.UNKNOWN and arrangement.pms_arrangement_id == ""
    assert "may or may not have been saved: look it up before writing again" in FinancedCase.objects.get(pk=case.pk).last_error
    assert tasks.queue[0].countdown == settings.AMBIGUOUS_WRITE_SETTLE_SECONDS
    assert tasks.run_next() == "written", FinancedCase.objects.get(pk=case.pk).state_reason  # found by the marker inside Open Dental's Note: adopted
    assert tasks.run_next() == "retry"  # the commlog: committed, answer lost
    assert tasks.run_next() == "completed"  # found by its marker
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.COMPLETED
    [plan] = ours(od.plans(patient["Guarantor"]), case)
    assert case.arrangement.pms_arrangement_id == str(plan["PayPlanNum"])
    assert len(od.plans(patient["Guarantor"])) == 1
    [commlog] = od.commlogs(patient["PatNum"])
    assert case.ledger_note.pms_note_id == str(commlog["CommlogNum"])
    assert len(od.requests("POST", "/payplans")) == 1 and len(od.requests("POST", "/commlogs")) == 1


def test_a_customer_key_without_the_payplans_permission_is_named_in_the_reason(sandboxes, od, od_location, od_coordinator, tasks):
    od.permissions("Read All", "Comm")
    patient = od.new_patient("Thompson")
    case = capture(od_location, od_coordinator, patient)
    decided(tasks, case)
    tasks.drain()
    case.refresh_from_db()
    assert case.state == CaseState.NEEDS_ATTENTION
    assert case.state_reason == (
        "Open Dental refused the payment plan: Open Dental refused the payment plan (HTTP 401: This API key does "
        "not have the PayPlans permission): this location's customer key needs the PayPlans permission in Open Dental's "
        "API setup, or the developer or customer key is wrong or disabled; check this location's Open Dental connection"
    )
    assert od.plans(patient["Guarantor"]) == []
