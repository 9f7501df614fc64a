"""A correction leaves no stale numbers: the schedule, the totals and the finance charge are
worked out again from the corrected terms by the terms code (issue 12, defect 1), in the
record, the API and the case page; terms that no longer work out are a form error and
nothing at all is recorded."""

from datetime import date
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from rest_framework.test import APIClient

from financing import services
from financing.models import Correction, PaymentArrangement
from tests.console.console_factories import console_client, make_case, with_computed_terms

pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal


def written_case(location, *, plan_total=D("2500.00"), promotion="deferred_12", apr=D("0.00"), months=12):
    """A completed case whose arrangement holds the terms the arrangement step computes for a
    decision of 2026-12-01 (first payment 2026-12-31; 12 × $208.34 by default)."""
    case = make_case(location, plan_total=plan_total)
    return with_computed_terms(case, decision_date=date(2026, 12, 1), promotion=promotion, months=months, apr=apr)


def due_dates(arrangement):
    return [row["due_date"] for row in arrangement.schedule]


def test_correcting_the_first_payment_date_moves_the_whole_schedule_in_the_record_the_api_and_the_page(main, ann, tasks):
    case = written_case(main)
    before = PaymentArrangement.objects.get(case=case)
    assert due_dates(before)[:3] == ["2026-12-31", "2027-01-31", "2027-02-28"]

    response = console_client(ann).post(
        f"/admin/financing/financedcase/{case.pk}/correct/",
        {"field": "first_payment_date", "after": "2027-01-15", "why": "Patient asked for the 15th"},
        follow=True,
    )
    assert "Correction recorded: first payment date Dec 31, 2026 → Jan 15, 2027." in response.text

    arrangement = PaymentArrangement.objects.get(case=case)
    assert arrangement.first_payment_date == date(2027, 1, 15)
    assert due_dates(arrangement) == [f"{2027 + (m // 12)}-{m % 12 + 1:02d}-15" for m in range(12)]
    assert [row["amount"] for row in arrangement.schedule] == ["208.34"] * 11 + ["208.26"]
    assert arrangement.schedule[-1]["balance_after"] == "0.00"
    # The money did not move: only the dates did.
    assert (arrangement.recurring_amount, arrangement.number_of_payments, arrangement.final_payment) == (D("208.34"), 12, D("208.26"))
    assert (arrangement.total_of_payments, arrangement.finance_charge) == (D("2500.00"), D("0.00"))

    api = APIClient()
    api.force_authenticate(ann)
    body = api.get(f"/api/v1/cases/{case.pk}/").json()["arrangement"]
    assert body["first_payment_date"] == "2027-01-15"
    assert [row["due_date"] for row in body["schedule"]][:2] == ["2027-01-15", "2027-02-15"]
    assert body["schedule"][-1]["due_date"] == "2027-12-15"

    page = console_client(ann).get(f"/admin/financing/financedcase/{case.pk}/change/").text
    assert "12 payments, first due Jan 15, 2027" in page
    assert "Dec 31, 2026" not in page.split('id="schedule"')[1].split("</details>")[0]
    assert 'id="corrected-note"' in page


def test_correcting_the_payment_works_out_the_number_of_payments_and_the_last_one(main, ann, tasks):
    case = written_case(main)
    correction = services.record_correction(case.pk, field="recurring_amount", after="250.00", why="Patient pays more each month", actor=ann)
    arrangement = PaymentArrangement.objects.get(case=case)
    # $2,500.00 at $250.00 a month: ten payments, the last a full one.
    assert (arrangement.recurring_amount, arrangement.number_of_payments, arrangement.final_payment) == (D("250.00"), 10, D("250.00"))
    assert len(arrangement.schedule) == 10 and arrangement.schedule[-1]["due_date"] == "2027-09-30"
    assert (arrangement.total_of_payments, arrangement.finance_charge) == (D("2500.00"), D("0.00"))
    # `main`'s PMS is the discard port: the record in force cannot be read back, and the
    # correction is recorded all the same, saying so.
    assert services.describe_correction(correction) == (
        "Correction recorded: recurring amount $208.34 → $250.00. "
        "Worked out again: number of payments 12 → 10; final payment $208.26 → $250.00. "
        f"Chairside could not confirm which payment agreement Dentrix holds now for guarantor account {case.guarantor_id} "
        f"(the correction was made to payment agreement {arrangement.pms_arrangement_id}): check the account in Dentrix, "
        "and record the id it shows as a correction if it changed."
    )

    # Whole dollars: $209.00 × 11 and a last payment of $201.00.
    services.record_correction(case.pk, field="recurring_amount", after="209.00", why="Rounded to whole dollars", actor=ann)
    arrangement.refresh_from_db()
    assert (arrangement.number_of_payments, arrangement.final_payment) == (12, D("201.00"))
    assert [row["amount"] for row in arrangement.schedule] == ["209.00"] * 11 + ["201.00"]


def test_correcting_the_apr_re_amortises_the_payment_and_the_finance_charge(main, ann, tasks):
    case = written_case(main, plan_total=D("1000.00"), promotion="reduced_apr_36", apr=D("17.90"), months=36)
    assert PaymentArrangement.objects.get(case=case).first_payment_date == date(2026, 12, 31)
    arrangement = PaymentArrangement.objects.get(case=case)
    # The README's check value: $1,000.00 over 36 months at 17.90% is $36.10 (the last $36.22).
    assert (arrangement.recurring_amount, arrangement.final_payment, arrangement.finance_charge) == (D("36.10"), D("36.22"), D("299.72"))

    services.record_correction(case.pk, field="apr", after="14.90", why="CareCredit's rate for this account", actor=ann)
    arrangement.refresh_from_db()
    # P·r/(1 − (1 + r)^−36), r = 14.90/1200: $34.62 (34.616… rounded); the last payment absorbs the rounding.
    assert (arrangement.apr, arrangement.recurring_amount, arrangement.number_of_payments) == (D("14.90"), D("34.62"), 36)
    assert (arrangement.final_payment, arrangement.total_of_payments, arrangement.finance_charge) == (D("34.43"), D("1246.13"), D("246.13"))
    assert arrangement.final_payment == D(arrangement.schedule[-1]["amount"])
    assert arrangement.total_of_payments == sum(D(row["amount"]) for row in arrangement.schedule)
    assert arrangement.finance_charge == arrangement.total_of_payments - D("1000.00")
    assert sum(D(row["interest"]) for row in arrangement.schedule) == arrangement.finance_charge
    assert arrangement.schedule[-1]["balance_after"] == "0.00"


def test_a_down_payment_correction_moves_the_financed_amount_and_the_payment(main, ann, tasks):
    case = written_case(main)
    services.record_correction(case.pk, field="down_payment", after="500.00", why="Patient paid $500 at the desk", actor=ann)
    arrangement = PaymentArrangement.objects.get(case=case)
    # $2,000.00 over the same 12 months: $166.67 × 11 and $166.63.
    assert (arrangement.down_payment, arrangement.financed_amount) == (D("500.00"), D("2000.00"))
    assert (arrangement.recurring_amount, arrangement.number_of_payments, arrangement.final_payment) == (D("166.67"), 12, D("166.63"))
    assert arrangement.total_of_payments == D("2000.00")


def snapshot(case):
    arrangement = PaymentArrangement.objects.get(case=case)
    return {f.name: getattr(arrangement, f.name) for f in PaymentArrangement._meta.fields}, arrangement.history.count()


@pytest.mark.parametrize(
    "field, after, message",
    [
        ("number_of_payments", "10",
         "10 payments of $208.34 pay $2,083.40 of the $2,500.00 financed. If Dentrix changed the recurring amount too, "
         "record the recurring amount instead: the number of payments follows from it."),
        ("number_of_payments", "13",
         "13 payments of $208.34 pay more than the $2,500.00 financed: 12 already cover it. If Dentrix changed the "
         "recurring amount too, record the recurring amount instead: the number of payments follows from it."),
        ("recurring_amount", "2600.00", "A payment of $2,600.00 is more than the $2,500.00 financed."),
        ("recurring_amount", "20.00", "Payments of $20.00 would take more than 120 months to pay off $2,500.00."),
        ("down_payment", "2500.00", "A down payment of $2,500.00 covers the whole plan ($2,500.00): there would be nothing to finance."),
        ("financed_amount", "2600.00", "The financed amount cannot be more than the plan total ($2,500.00)."),
        ("first_payment_date", "2020-01-15", "Dentrix would not hold these terms: First payment due date cannot be before the agreement date."),
    ],
)
def test_terms_that_no_longer_work_out_are_a_form_error_and_nothing_is_recorded(main, ann, tasks, field, after, message):
    case = written_case(main)
    before = snapshot(case)
    response = console_client(ann).post(
        f"/admin/financing/financedcase/{case.pk}/correct/", {"field": field, "after": after, "why": "Dentrix shows this"}
    )
    assert response.status_code == 200  # the form again, with the error on the value
    assert response.context["form"].errors == {"after": [message]}
    assert snapshot(case) == before
    assert Correction.objects.count() == 0 and Correction.history.count() == 0
    assert LogEntry.objects.count() == 0


def test_the_final_payment_is_worked_out_not_corrected(main, ann, tasks):
    case = written_case(main)
    form = console_client(ann).get(f"/admin/financing/financedcase/{case.pk}/correct/")
    choices = [value for value, _ in form.context["form"].fields["field"].choices]
    assert "final_payment" not in choices and "first_payment_date" in choices
    before = snapshot(case)
    with pytest.raises(services.CorrectionError) as refused:
        services.record_correction(case.pk, field="final_payment", after="200.00", why="x", actor=ann)
    assert refused.value.fields == {"field": "The final payment follows from the other terms: correct the recurring amount, "
                                             "the number of payments or the financed amount instead."}
    assert snapshot(case) == before and Correction.objects.count() == 0
