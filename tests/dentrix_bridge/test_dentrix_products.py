"""Each connector product's own rules, create body and read-back (dentrix_bridge/products/),
without a server: one test per rule, the G-series core staying as it was."""

from dataclasses import replace
from datetime import date
from decimal import Decimal as D

import pytest

from dentrix_bridge import rules
from dentrix_bridge.products import PRODUCTS, ascend, eaglesoft, enterprise, g, product
from financing.ports import Agreement, AgreementRequest, AppliedProcedure, Interval, Procedure

TODAY = date(2027, 1, 10)


def request(**changes) -> AgreementRequest:
    """$2,500.00 over 12 monthly payments at 0 %, first due one month after the 15th,
    built over two procedures at their fees, for patient 1007 on account 1001."""
    base = AgreementRequest(
        guarantor_id="1001",
        agreement_date=TODAY,
        interval=Interval.MONTHLY,
        total_agreed_amount=D("2500.00"),
        down_payment=D("0.00"),
        payment_amount=D("208.34"),
        number_of_payments=12,
        first_payment_due=date(2027, 2, 15),
        annual_finance_charge_pct=D("0.00"),
        note="[chairside:CS-1] CareCredit deferred_12",
        patient_id="1007",
        treatment_plan_id="5007",
        procedures=(AppliedProcedure("9001", D("1250.00")), AppliedProcedure("9002", D("1250.00"))),
        name="CareCredit CS-2027-000001",
    )
    return replace(base, **changes)


def held(pid="9001", fee="1250.00", posted=True, balance=None) -> Procedure:
    """A procedure as the PMS holds it: posted with its fee as the balance, unless said."""
    balance = D(fee) if balance is None and posted else D(balance or "0.00")
    return Procedure(code="D2740", tooth="3", surface="", fee=D(fee), procedure_id=pid, posted=posted, balance=balance)


POSTED = (held("9001"), held("9002"))


def test_every_product_names_itself_as_the_connector_reports_it():
    assert {key: (m.NAME, m.RECORD) for key, m in PRODUCTS.items()} == {
        "dentrix_g": ("Dentrix", "payment agreement"),
        "dentrix_enterprise": ("Dentrix Enterprise", "payment plan"),
        "dentrix_ascend": ("Dentrix Ascend", "payment plan"),
        "eaglesoft": ("Eaglesoft", "payment plan contract"),
    }
    assert product("dentrix_ascend") is ascend
    with pytest.raises(ValueError, match="unknown connector product 'dentrix_voyager'"):
        product("dentrix_voyager")


@pytest.mark.parametrize("module", [g, enterprise, ascend, eaglesoft])
def test_the_standard_case_passes_every_products_rules(module):
    extra = {"procedures": POSTED} if module in (ascend, eaglesoft) else {}
    assert module.validate_agreement(request(), today=TODAY, **extra) == {}


# --- G-series: v1 as it was ------------------------------------------------------------------


def test_g_series_refuses_a_quarterly_interval_it_does_not_offer():
    assert g.validate_agreement(request(interval=Interval.QUARTERLY), today=TODAY) == {"interval": rules.MSG_INTERVAL}


def test_g_series_still_refuses_payments_that_do_not_add_up():
    assert g.validate_agreement(request(payment_amount=D("250.00")), today=TODAY) == {"payment_amount": rules.MSG_DOES_NOT_ADD_UP}


# --- Dentrix Enterprise ------------------------------------------------------------------------


@pytest.mark.parametrize("name, message", [
    ("", enterprise.MSG_NAME_REQUIRED),
    ("   ", enterprise.MSG_NAME_REQUIRED),
    ("x" * 31, "Dentrix Enterprise payment plan names are limited to 30 characters."),
])
def test_enterprise_needs_a_plan_name_of_1_to_30_characters(name, message):
    assert enterprise.validate_agreement(request(name=name), today=TODAY) == {"name": message}


def test_enterprise_takes_a_30_character_name():
    assert enterprise.validate_agreement(request(name="x" * 30), today=TODAY) == {}


def test_enterprise_needs_the_patient_the_plan_covers():
    assert enterprise.validate_agreement(request(patient_id=""), today=TODAY) == {
        "patient_id": "Dentrix Enterprise needs the patient the payment plan covers."
    }


@pytest.mark.parametrize("interval", [Interval.WEEKLY, Interval.BIWEEKLY, Interval.SEMIMONTHLY, Interval.MONTHLY])
def test_enterprise_keeps_the_g_series_intervals(interval):
    assert enterprise.validate_agreement(request(interval=interval), today=TODAY) == {}


def test_enterprise_refuses_the_intervals_the_g_series_does_not_offer():
    assert enterprise.validate_agreement(request(interval=Interval.QUARTERLY), today=TODAY) == {"interval": rules.MSG_INTERVAL}


def test_enterprise_sends_the_name_and_the_patient_and_reads_them_back():
    assert enterprise.request_fields(request()) == {"name": "CareCredit CS-2027-000001", "patient_ids": ["1007"]}
    stored = stored_as(request(), name="CareCredit CS-2027-000001", patient_ids=("1007",))
    assert enterprise.stored_differences(request(), stored) == []
    wrong = replace(stored, name="Ortho plan", patient_ids=("1001", "1007"))
    assert enterprise.stored_differences(request(), wrong) == [
        ("Plan name", "CareCredit CS-2027-000001", "Ortho plan"),
        ("Patients covered", "1007", "1001, 1007"),
    ]


# --- Dentrix Ascend ----------------------------------------------------------------------------


@pytest.mark.parametrize("interval", [Interval.WEEKLY, Interval.SEMIMONTHLY])
def test_ascend_pays_monthly_biweekly_or_quarterly_only(interval):
    problems = ascend.validate_agreement(request(interval=interval), today=TODAY)
    assert problems == {"interval": "Dentrix Ascend payment plans are paid monthly, biweekly or quarterly."}


def test_ascend_takes_quarterly_and_biweekly_plans():
    quarterly = request(interval=Interval.QUARTERLY, number_of_payments=4, payment_amount=D("625.00"))
    assert ascend.validate_agreement(quarterly, today=TODAY) == {}
    biweekly = request(interval=Interval.BIWEEKLY, first_payment_due=date(2027, 1, 31))  # any day works in weeks
    assert ascend.validate_agreement(biweekly, today=TODAY) == {}


@pytest.mark.parametrize("first, interval, start", [
    (date(2027, 2, 15), Interval.MONTHLY, date(2027, 1, 15)),
    (date(2027, 3, 28), Interval.MONTHLY, date(2027, 2, 28)),
    (date(2027, 5, 15), Interval.QUARTERLY, date(2027, 2, 15)),
    (date(2027, 2, 12), Interval.BIWEEKLY, date(2027, 1, 29)),
])
def test_ascend_starts_a_plan_one_interval_before_its_first_payment(first, interval, start):
    assert ascend.start_date(first, interval) == start
    fields = ascend.request_fields(request(first_payment_due=first, interval=interval))
    assert fields["start_date"] == start.isoformat()


@pytest.mark.parametrize("first, interval", [
    (date(2027, 3, 31), Interval.MONTHLY),
    (date(2027, 3, 29), Interval.MONTHLY),  # 2027 is not a leap year: February ends on the 28th
    (date(2027, 5, 31), Interval.QUARTERLY),
])
def test_ascend_cannot_start_a_plan_whose_first_monthly_payment_no_start_date_reaches(first, interval):
    problems = ascend.validate_agreement(request(first_payment_due=first, interval=interval), today=TODAY)
    assert set(problems) == {"first_payment_due"}
    assert f"no start date puts a first payment on {first:%b} {first.day}, 2027" in problems["first_payment_due"]
    assert problems["first_payment_due"].endswith("set the location's first payment day of the month to 28 or earlier.")


def test_ascend_takes_the_29th_in_a_leap_year():
    assert ascend.validate_agreement(request(first_payment_due=date(2028, 3, 29)), today=TODAY) == {}


def test_a_payment_ascend_would_round_to_fit_is_flagged_before_writing():
    # The deferred-interest minimum: $30.00 a month on $300.00 over 12 does not fit; Ascend
    # would store $25.00 (the amount financed over 12, rounded up to the cent).
    small = request(
        total_agreed_amount=D("300.00"), payment_amount=D("30.00"),
        procedures=(AppliedProcedure("9001", D("300.00")),),
    )
    assert ascend.validate_agreement(small, today=TODAY) == {"payment_amount": (
        "Dentrix Ascend would store a payment of $25.00, not $30.00: it replaces a payment that does not fit "
        "12 payments of the $300.00 financed. Choose another promotion on the case, then resume it."
    )}


def test_an_amortised_payment_off_by_more_than_a_cent_is_flagged_with_what_ascend_would_store():
    apr = dict(
        total_agreed_amount=D("1000.00"), annual_finance_charge_pct=D("17.90"), number_of_payments=24,
        procedures=(AppliedProcedure("9001", D("1000.00")),),
    )
    assert ascend.validate_agreement(request(payment_amount=D("49.89"), **apr), today=TODAY) == {}
    problems = ascend.validate_agreement(request(payment_amount=D("49.90"), **apr), today=TODAY)
    assert problems["payment_amount"].startswith("Dentrix Ascend would store a payment of $49.88, not $49.90:")


def test_ascend_builds_a_plan_over_procedures():
    assert ascend.validate_agreement(request(procedures=()), today=TODAY) == {"procedures": ascend.MSG_NO_PROCEDURES}


def test_ascends_applied_amounts_add_up_to_the_total_and_are_each_above_zero():
    uneven = request(procedures=(AppliedProcedure("9001", D("1250.00")), AppliedProcedure("9002", D("0.00"))))
    assert ascend.validate_agreement(uneven, today=TODAY) == {"procedures": (
        "Applied amount for procedure 9002 must be more than $0.00. "
        "The applied amounts ($1,250.00) must add up to the total amount ($2,500.00)."
    )}


def test_without_the_ledger_ascend_checks_only_what_the_request_says():
    assert ascend.validate_agreement(request(), today=TODAY, procedures=None) == {}


@pytest.mark.parametrize("ledger, message", [
    ((held("9001"), held("9002", posted=False)),
     "Procedure 9002 has no balance on the ledger: post the completed procedure in Dentrix Ascend first."),
    ((held("9001"), held("9002", balance="1000.00")),
     "Applied amount for procedure 9002 ($1,250.00) cannot be more than its balance ($1,000.00)."),
    ((held("9001"), held("9002", balance="0.00")),
     "Procedure 9002 has no balance on the ledger: post the completed procedure in Dentrix Ascend first."),
    ((held("9001"),), "Procedure 9002 is not on the patient's treatment plan in Dentrix Ascend."),
])
def test_each_procedure_is_posted_with_a_balance_that_covers_its_applied_amount(ledger, message):
    assert ascend.validate_agreement(request(), today=TODAY, procedures=ledger) == {"procedures": message}


def test_ascend_sends_the_start_and_the_applied_procedures():
    assert ascend.request_fields(request()) == {
        "start_date": "2027-01-15",
        "procedures": [
            {"procedure_id": "9001", "applied_amount": "1250.00"},
            {"procedure_id": "9002", "applied_amount": "1250.00"},
        ],
    }
    # An interval it does not offer has no start: the connector refuses it (the rules said so first).
    assert "start_date" not in ascend.request_fields(request(interval=Interval.SEMIMONTHLY))


def test_ascends_read_back_compares_the_start_and_the_procedures():
    stored = stored_as(request(), start_date=date(2027, 1, 15), procedures=request().procedures)
    assert ascend.stored_differences(request(), stored) == []
    moved = replace(stored, start_date=date(2027, 1, 14), procedures=(AppliedProcedure("9001", D("2500.00")),))
    assert ascend.stored_differences(request(), moved) == [
        ("Start date", "Jan 15, 2027", "Jan 14, 2027"),
        ("Procedures applied", "9001 $1,250.00, 9002 $1,250.00", "9001 $2,500.00"),
    ]
    assert ascend.stored_differences(request(), replace(stored, start_date=None, procedures=()))[1][2] == "none"


# --- Eaglesoft ---------------------------------------------------------------------------------


@pytest.mark.parametrize("interval", [Interval.WEEKLY, Interval.BIWEEKLY, Interval.SEMIMONTHLY, Interval.QUARTERLY])
def test_eaglesoft_contracts_are_monthly(interval):
    assert eaglesoft.validate_agreement(request(interval=interval), today=TODAY) == {
        "interval": "Eaglesoft payment plan contracts are monthly."
    }


def test_eaglesoft_keeps_the_g_series_payment_rule():
    assert eaglesoft.validate_agreement(request(payment_amount=D("250.00")), today=TODAY) == {
        "payment_amount": rules.MSG_DOES_NOT_ADD_UP
    }


@pytest.mark.parametrize("ledger, message", [
    ((held("9001"), held("9002", posted=False)), "Procedure 9002 is not posted"),
    ((held("9001", posted=False), held("9002", posted=False)), "Procedures 9001, 9002 are not posted"),
    ((), "Procedures 9001, 9002 are not posted"),
])
def test_eaglesoft_writes_a_contract_only_once_the_cases_procedures_are_posted(ledger, message):
    problems = eaglesoft.validate_agreement(request(), today=TODAY, procedures=ledger)
    assert problems == {"procedures": (
        f"{message} to the Eaglesoft ledger yet: Eaglesoft writes a payment plan contract only over the "
        "past-service balance, so post the completed procedures first."
    )}


def test_eaglesoft_sends_the_v1_body_and_reads_back_its_contract_amount():
    assert eaglesoft.request_fields(request()) == {}
    down = request(down_payment=D("500.00"), payment_amount=D("166.67"))
    assert eaglesoft.stored_differences(down, stored_as(down, contract_amount=D("2000.00"))) == []
    assert eaglesoft.stored_differences(down, stored_as(down, contract_amount=D("2500.00"))) == [
        ("Contract amount", "$2,000.00", "$2,500.00")
    ]
    assert eaglesoft.stored_differences(down, stored_as(down)) == [("Contract amount", "$2,000.00", "none")]


def stored_as(sent: AgreementRequest, **fields) -> Agreement:
    """The record a connector would answer for `sent`, with the product's own fields."""
    return Agreement(
        agreement_id="7001", guarantor_id=sent.guarantor_id, status="active", agreement_date=sent.agreement_date,
        interval=sent.interval, total_agreed_amount=sent.total_agreed_amount, down_payment=sent.down_payment,
        payment_amount=sent.payment_amount, number_of_payments=sent.number_of_payments,
        first_payment_due=sent.first_payment_due, annual_finance_charge_pct=sent.annual_finance_charge_pct,
        note=sent.note, **fields,
    )
