"""The Dentrix Ascend connector sandbox, over HTTP: plans that start on a date, pay for
posted procedures, one per guarantor, never edited (deleted and created again), and a
payment that does not fit the term stored as the payment that does."""

import calendar
from datetime import date, timedelta

import pytest

from sandboxes.dentrix import serve_in_thread
from tests.sandboxes.connector import call, create, edit, post_production, records, refused, set_status, terms, today


@pytest.fixture(scope="module")
def server():
    running = serve_in_thread(port=0, product="dentrix_ascend")
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def clean(server):
    call(server, "POST", "/_sandbox/reset", key=False).raise_for_status()


def month_after(day: date) -> date:
    """The same day a month later, or that month's last day."""
    year, month = divmod(day.month, 12)
    year, month = day.year + year, month + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


# Patient 1001's plan 5001: 9001 D2740 1250.00, 9002 D2950 310.00, 9003 D1110 120.00.
ALL_OF_1001 = [
    {"procedure_id": "9001", "applied_amount": "1250.00"},
    {"procedure_id": "9002", "applied_amount": "310.00"},
    {"procedure_id": "9003", "applied_amount": "120.00"},
]


def plan(**changes):
    start = today()
    return terms(**{
        "start_date": start.isoformat(), "first_payment_due": month_after(start).isoformat(),
        "procedures": ALL_OF_1001, **changes,
    })


def test_a_plan_over_posted_procedures_is_stored_with_its_start_and_procedures(server):
    post_production(server, "1001")
    answer = create(server, "1001", plan())
    assert answer.status_code == 201
    stored = answer.json()
    assert stored == {
        "agreement_id": "7001", "guarantor_id": "1001", "product": "dentrix_ascend", "status": "active",
        "agreement_date": today().isoformat(), "interval": "monthly", "total_agreed_amount": "1680.00",
        "down_payment": "180.00", "payment_amount": "125.00", "number_of_payments": 12,
        "first_payment_due": month_after(today()).isoformat(), "annual_finance_charge_pct": "0.00",
        "start_date": today().isoformat(), "procedures": ALL_OF_1001,
        "note": "[chairside:CS-0001] CareCredit deferred 12", "created_at": stored["created_at"],
    }
    assert records(server, "1001") == [stored]


def test_unposted_procedures_have_no_balance_to_pay(server):
    message = "Procedure 9001 has no balance on the ledger: post the completed procedure first."
    answer = create(server, "1001", plan(procedures=[{"procedure_id": "9001", "applied_amount": "1250.00"}],
                                         total_agreed_amount="1250.00", down_payment="50.00", payment_amount="100.00"))
    refused(answer, 400, message, {"procedures[0].procedure_id": message})
    assert records(server, "1001") == []


def test_a_procedure_of_the_minor_on_the_account_can_be_paid_for(server):
    post_production(server, "1007")  # Gus, on his mother's account 1001; 9026 is his 240.00 crown
    answer = create(server, "1001", plan(
        procedures=[{"procedure_id": "9026", "applied_amount": "240.00"}], total_agreed_amount="240.00",
        down_payment="0.00", payment_amount="20.00",
    ))
    assert answer.status_code == 201, answer.text


def test_a_procedure_of_another_account_is_refused(server):
    post_production(server, "1002")
    message = "Procedure 9004 is not on account 1001."
    answer = create(server, "1001", plan(procedures=[{"procedure_id": "9004", "applied_amount": "100.00"}]))
    assert answer.status_code == 400
    assert answer.json()["fields"]["procedures[0].procedure_id"] == message


def test_applied_amount_cannot_be_more_than_the_balance(server):
    post_production(server, "1001")
    message = "Applied amount for procedure 9001 cannot be more than its balance (1250.00)."
    answer = create(server, "1001", plan(procedures=[
        {"procedure_id": "9001", "applied_amount": "1250.01"}, {"procedure_id": "9002", "applied_amount": "310.00"},
        {"procedure_id": "9003", "applied_amount": "119.99"},
    ]))
    refused(answer, 400, message, {"procedures[0].applied_amount": message})


@pytest.mark.parametrize(
    "item, field, message",
    [
        ({"procedure_id": "9001", "applied_amount": "0.00"}, "applied_amount", "Applied amount must be greater than 0."),
        ({"procedure_id": "9001", "applied_amount": 1250}, "applied_amount", 'Send the amount as text, e.g. "1250.00".'),
        ({"procedure_id": "9001", "applied_amount": "1.001"}, "applied_amount", "Amounts can have at most 2 decimal places."),
        ({"procedure_id": "9001"}, "applied_amount", "This field is required."),
        ({"applied_amount": "1.00"}, "procedure_id", "This field is required."),
        ({"procedure_id": 9001, "applied_amount": "1.00"}, "procedure_id", 'Send the procedure id as text, e.g. "9001".'),
    ],
)
def test_each_applied_procedure_is_checked(server, item, field, message):
    post_production(server, "1001")
    answer = create(server, "1001", plan(procedures=[item]))
    assert answer.status_code == 400
    assert answer.json()["fields"] == {f"procedures[0].{field}": message}


def test_a_procedure_listed_twice_is_refused(server):
    post_production(server, "1001")
    answer = create(server, "1001", plan(procedures=[
        {"procedure_id": "9001", "applied_amount": "1000.00"}, {"procedure_id": "9001", "applied_amount": "680.00"},
    ]))
    assert answer.json()["fields"] == {"procedures[1].procedure_id": "Procedure 9001 is listed twice."}


@pytest.mark.parametrize(
    "procedures, message",
    [
        (None, "This field is required."),
        ([], "List the posted procedures the payment plan pays for, as [{procedure_id, applied_amount}]."),
        ("9001", "List the posted procedures the payment plan pays for, as [{procedure_id, applied_amount}]."),
    ],
)
def test_a_plan_needs_its_procedures(server, procedures, message):
    body = plan()
    if procedures is None:
        del body["procedures"]
    else:
        body["procedures"] = procedures
    assert create(server, "1001", body).json()["fields"] == {"procedures": message}


def test_the_applied_amounts_must_add_up_to_the_total(server):
    post_production(server, "1001")
    message = "The applied amounts must add up to the total amount."
    answer = create(server, "1001", plan(procedures=ALL_OF_1001[:2]))  # 1560.00 of 1680.00
    refused(answer, 400, message, {"procedures": message})


def test_the_first_payment_is_due_one_interval_after_the_start(server):
    post_production(server, "1001")
    start = today()
    expected = month_after(start).isoformat()
    message = f"The first payment is due one interval after the plan's start date (expected {expected})."
    answer = create(server, "1001", plan(first_payment_due=(start + timedelta(days=30)).isoformat()))
    if (start + timedelta(days=30)).isoformat() == expected:  # a 30-day month: one day later instead
        answer = create(server, "1001", plan(first_payment_due=(start + timedelta(days=31)).isoformat()))
    refused(answer, 400, message, {"first_payment_due": message})


@pytest.mark.parametrize(
    "start, interval, first_due",
    [
        ("2024-01-31", "monthly", "2024-02-29"),  # the month's last day when it is shorter
        ("2024-11-30", "quarterly", "2025-02-28"),
        ("2024-12-20", "biweekly", "2025-01-03"),
    ],
)
def test_one_interval_by_calendar(server, start, interval, first_due):
    post_production(server, "1001")
    # 1500.00 over 12 at 0 % fits 125.00 in every interval.
    answer = create(server, "1001", plan(agreement_date=start, start_date=start, interval=interval, first_payment_due=first_due))
    assert answer.status_code == 201, answer.text
    assert (answer.json()["start_date"], answer.json()["first_payment_due"]) == (start, first_due)


def test_start_date_is_required_and_a_date(server):
    assert create(server, "1001", plan(start_date=None)).json()["fields"]["start_date"] == "This field is required."
    assert create(server, "1001", plan(start_date="31/01/2025")).json()["fields"]["start_date"] == "Enter a date as YYYY-MM-DD."


def test_ascends_intervals(server):
    post_production(server, "1001")
    message = "Interval must be one of monthly, biweekly, quarterly."
    for interval in ("weekly", "semimonthly"):
        refused(create(server, "1001", plan(interval=interval)), 400, message, {"interval": message})


def test_one_payment_plan_per_guarantor_whatever_its_status(server):
    post_production(server, "1001")
    assert create(server, "1001", plan()).status_code == 201
    message = ("Guarantor 1001 already has a payment plan (plan 7001). "
               "Dentrix Ascend allows one payment plan per guarantor.")
    refused(create(server, "1001", plan(note="[chairside:CS-0002]")), 409, message)
    assert set_status(server, "7001", "inactive").status_code == 200
    refused(create(server, "1001", plan(note="[chairside:CS-0002]")), 409, message)
    assert [r["agreement_id"] for r in records(server, "1001")] == ["7001"]


def test_a_saved_plan_cannot_be_edited(server):
    post_production(server, "1001")
    create(server, "1001", plan())
    message = "Payment plans cannot be edited once saved. Delete the plan and create it again."
    refused(call(server, "PUT", "/v1/accounts/1001/payment-agreements/7001", plan(payment_amount="150.00")), 409, message)
    refused(edit(server, "7001", {"payment_amount": "150.00"}), 409, message)
    assert records(server, "1001")[0]["payment_amount"] == "125.00"


def test_a_clerk_deletes_the_plan_and_creates_it_again(server):
    post_production(server, "1001")
    create(server, "1001", plan())
    deleted = call(server, "DELETE", "/v1/accounts/1001/payment-agreements/7001")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert records(server, "1001") == []
    refused(call(server, "GET", "/v1/accounts/1001/payment-agreements/7001"), 404,
            "Payment plan 7001 was not found on account 1001 in Dentrix Ascend.")
    again = create(server, "1001", plan(payment_amount="140.00", down_payment="0.00"))
    assert (again.status_code, again.json()["agreement_id"]) == (201, "7002")


def test_deleting_another_accounts_plan_is_not_found(server):
    post_production(server, "1001")
    create(server, "1001", plan())
    refused(call(server, "DELETE", "/v1/accounts/1002/payment-agreements/7001"), 404,
            "Payment plan 7001 was not found on account 1002 in Dentrix Ascend.")
    assert len(records(server, "1001")) == 1


def test_a_deletion_survives_a_restart(tmp_path):
    journal = str(tmp_path / "ascend.jsonl")
    with serve_in_thread(port=0, state_file=journal, product="dentrix_ascend") as first:
        post_production(first, "1001")
        create(first, "1001", plan())
        call(first, "DELETE", "/v1/accounts/1001/payment-agreements/7001")
        create(first, "1001", plan(note="[chairside:CS-0002]"))
    with serve_in_thread(port=0, state_file=journal, product="dentrix_ascend") as second:
        assert [(r["agreement_id"], r["note"]) for r in records(second, "1001")] == [("7002", "[chairside:CS-0002]")]


@pytest.mark.parametrize(
    "changes, stored",
    [
        # 0 %: the financed amount / n rounded up to the cent, whatever was sent
        ({"payment_amount": "100.00"}, "125.00"),
        ({"down_payment": "680.00", "payment_amount": "300.00", "number_of_payments": 3}, "333.34"),
        # a payment that fits is kept as sent (the last payment is the remainder)
        ({"payment_amount": "125.10"}, "125.10"),
        # above 0 %: the amortised payment
        ({"down_payment": "680.00", "payment_amount": "40.00", "number_of_payments": 24,
          "annual_finance_charge_pct": "17.90"}, "49.88"),
        ({"down_payment": "680.00", "payment_amount": "49.89", "number_of_payments": 24,
          "annual_finance_charge_pct": "17.90"}, "49.89"),  # within a cent: as sent
    ],
)
def test_a_payment_that_does_not_fit_is_stored_as_the_payment_that_does(server, changes, stored):
    post_production(server, "1001")
    answer = create(server, "1001", plan(**changes))
    assert answer.status_code == 201, answer.text
    assert answer.json()["payment_amount"] == stored
    assert records(server, "1001")[0]["payment_amount"] == stored


def test_quarterly_amortisation_uses_four_periods_a_year(server):
    post_production(server, "1001")
    start = date(2024, 1, 15)
    answer = create(server, "1001", plan(
        agreement_date="2024-01-15", start_date=start.isoformat(), first_payment_due="2024-04-15", interval="quarterly",
        down_payment="680.00", payment_amount="250.00", number_of_payments=4, annual_finance_charge_pct="12.00",
    ))
    # 1000.00 at 3 % a quarter over 4: 1000 × 0.03 / (1 − 1.03^−4) = 269.03
    assert answer.json()["payment_amount"] == "269.03"


def test_the_products_wording_for_the_record(server):
    answer = create(server, "1001", plan(note="n" * 256))
    assert answer.json()["fields"]["note"] == "Payment plan notes are limited to 255 characters."
    assert answer.json()["error"].endswith("more problem(s) with the payment plan)")
