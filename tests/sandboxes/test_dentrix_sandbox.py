"""The Dentrix sandbox and Chairside's client, over real HTTP.

One sandbox per module (starting servers is the slow part); every test starts from
POST /_sandbox/reset, which restores the demo data and clears the request log and the
faults.
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from dentrix_bridge.client import DentrixConnectorClient
from dentrix_bridge.rules import amortised_payment
from sandboxes.dentrix import serve_in_thread
from financing.ports import (
    AgreementRequest,
    AmbiguousWriteError,
    Interval,
    LedgerNoteType,
    NotFoundError,
    PermanentPartnerError,
    TransientPartnerError,
)

def today() -> date:
    # Read at each call, not once at import: a run that crosses midnight (CI pins the clock
    # to 23:30) must compare with the sandbox's today, not with yesterday's.
    return date.today()


DEMO_TOTALS = {
    "1001": ("5001", Decimal("1680.00")),
    "1002": ("5002", Decimal("4150.00")),
    "1003": ("5003", Decimal("2710.00")),
    "1004": ("5004", Decimal("2685.00")),
    "1005": ("5005", Decimal("1365.00")),
    "1006": ("5006", Decimal("680.00")),
    "1007": ("5007", Decimal("705.00")),
    "1008": ("5008", Decimal("1290.00")),
    "1009": ("5009", Decimal("1780.00")),
}
# Every piece of demographic data of every demo patient: none may ever reach an error
# message or a log line.
DEMO_PHI = [
    "Ava", "Thompson", "Decline-Parker", "Pending-Lee", "Partial-Nguyen", "Refer-Garcia",
    "Expire-Brown", "1984-03-14", "555-01", "example.com", "Maple", "Springfield",
]
NEW_PATIENT = {
    "first_name": "Hana",
    "last_name": "Okafor",
    "birth_date": "1990-02-11",
    "phone": "312-555-0142",
    "email": "hana.okafor@example.com",
    "address": {"line1": "42 Lake Shore Drive", "city": "Springfield", "state": "IL", "zip": "62708"},
}


@pytest.fixture(scope="module")
def sandbox():
    running = serve_in_thread(port=0)
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def clean(sandbox):
    requests.post(f"{sandbox.base_url}/_sandbox/reset", timeout=5).raise_for_status()
    yield


@pytest.fixture
def client(sandbox):
    return DentrixConnectorClient(sandbox.base_url, "sandbox", connect_timeout=1, read_timeout=5)


def zero_pct(**changes) -> AgreementRequest:
    """3000.00 with 500.00 down: 2500.00 financed over 12 at 0 % → 208.34 × 12."""
    base = AgreementRequest(
        guarantor_id="1001",
        agreement_date=today(),
        interval=Interval.MONTHLY,
        total_agreed_amount=Decimal("3000.00"),
        down_payment=Decimal("500.00"),
        payment_amount=Decimal("208.34"),
        number_of_payments=12,
        first_payment_due=today() + timedelta(days=30),
        annual_finance_charge_pct=Decimal("0.00"),
        note="[chairside:CS-0001] CareCredit deferred 12",
    )
    return replace(base, **changes)


def reduced_apr(**changes) -> AgreementRequest:
    """1000.00 financed over 24 at 17.90 % → 49.88."""
    terms = {
        "total_agreed_amount": Decimal("1000.00"),
        "down_payment": Decimal("0.00"),
        "payment_amount": Decimal("49.88"),
        "number_of_payments": 24,
        "annual_finance_charge_pct": Decimal("17.90"),
    }
    return zero_pct(**{**terms, **changes})


def rejected(client, request) -> PermanentPartnerError:
    with pytest.raises(PermanentPartnerError) as caught:
        client.create_payment_agreement(request)
    assert caught.value.status == 400
    return caught.value


def add_fault(sandbox, **fault):
    requests.post(f"{sandbox.base_url}/_sandbox/faults", json=fault, timeout=5).raise_for_status()


def request_log(sandbox) -> list[dict]:
    return requests.get(f"{sandbox.base_url}/_sandbox/requests", timeout=5).json()


def wait_for_log_entry(sandbox, method: str, status: int, timeout: float = 5.0) -> None:
    """Wait until a slow (faulted) request has finished on the server side, so it cannot
    write into the next test's freshly reset store."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e["method"] == method and e["status"] == status for e in request_log(sandbox)):
            return
        time.sleep(0.05)
    raise AssertionError(f"no {method} → {status} in the sandbox request log")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- demo data ---------------------------------------------------------------------------


def test_demo_patients_one_per_lender_persona(client):
    surnames = {pid: client.get_patient(pid).last_name for pid in ("1001", "1002", "1003", "1004", "1005", "1006")}
    assert surnames == {
        "1001": "Thompson",
        "1002": "Decline-Parker",
        "1003": "Pending-Lee",
        "1004": "Partial-Nguyen",
        "1005": "Refer-Garcia",
        "1006": "Expire-Brown",
    }
    ava = client.get_patient("1001")
    assert ava.guarantor_id == "1001"
    assert ava.birth_date == date(1984, 3, 14)
    assert ava.address.zip == "62701"
    assert ava.email.endswith("@example.com")


def test_demo_plans_are_accepted_with_exact_totals(client):
    for patient_id, (plan_id, total) in DEMO_TOTALS.items():
        plans = client.get_treatment_plans(patient_id)
        assert [(p.plan_id, p.status, p.total) for p in plans] == [(plan_id, "accepted", total)]
    crown, buildup, prophy = client.get_treatment_plans("1001")[0].procedures
    assert (crown.code, crown.tooth, crown.surface, crown.fee) == ("D2740", "14", "", Decimal("1250.00"))
    assert (buildup.code, buildup.fee) == ("D2950", Decimal("310.00"))
    assert (prophy.code, prophy.tooth) == ("D1110", "")


def test_demo_patients_belong_to_the_clinics_of_one_database(client):
    clinics = {pid: client.get_patient(pid).clinic_id for pid in DEMO_TOTALS}
    assert clinics == {
        "1001": "1", "1002": "1", "1003": "1", "1004": "1", "1005": "1", "1006": "1", "1007": "1",
        "1008": "2", "1009": "3",
    }


def test_the_wire_names_the_patients_clinic(sandbox):
    body = requests.get(f"{sandbox.base_url}/v1/patients/1008", headers={"X-API-Key": "sandbox"}, timeout=5).json()
    assert body["clinic_id"] == "2"


def test_wire_total_equals_sum_of_fees(sandbox):
    plans = requests.get(
        f"{sandbox.base_url}/v1/patients/1004/treatment-plans", headers={"X-API-Key": "sandbox"}, timeout=5
    ).json()
    assert plans[0]["total"] == "2685.00"
    assert plans[0]["name"] == "Treatment Plan"


def test_minor_is_on_his_guarantors_account(client):
    gus = client.get_patient("1007")
    assert gus.guarantor_id == "1001"
    with pytest.raises(NotFoundError) as caught:
        client.list_payment_agreements("1007")
    assert str(caught.value) == (
        "Dentrix could not find the payment agreements (HTTP 404): "
        "Account 1007 was not found in Dentrix: patient 1007 is on account 1001."
    )
    # The agreement for his plan goes on his mother's account.
    agreement = client.create_payment_agreement(zero_pct(guarantor_id=gus.guarantor_id))
    assert agreement.guarantor_id == "1001"


def test_unknown_patient_is_not_found(client):
    with pytest.raises(NotFoundError) as caught:
        client.get_patient("999")
    assert str(caught.value) == "Dentrix could not find the patient (HTTP 404): Patient 999 was not found in Dentrix."
    assert caught.value.status == 404
    with pytest.raises(NotFoundError):
        client.get_treatment_plans("999")
    with pytest.raises(NotFoundError):
        client.list_ledger_notes("999")


def test_unknown_account_is_not_found(client):
    with pytest.raises(NotFoundError) as caught:
        client.create_payment_agreement(zero_pct(guarantor_id="999"))
    assert str(caught.value) == (
        "Dentrix could not find the payment agreement (HTTP 404): Account 999 was not found in Dentrix."
    )


# --- sandbox patients --------------------------------------------------------------------


def test_create_patient_with_an_accepted_plan(sandbox, client):
    body = {
        **NEW_PATIENT,
        "procedures": [
            {"code": "D2740", "tooth": "3", "surface": "", "fee": "1250.00"},
            {"code": "D2392", "tooth": "19", "surface": "MO", "fee": "240.00"},
        ],
    }
    response = requests.post(f"{sandbox.base_url}/_sandbox/patients", json=body, timeout=5)
    assert response.status_code == 201
    assert response.json() == {"patient_id": "2001", "guarantor_id": "2001", "treatment_plan_id": "6001"}

    patient = client.get_patient("2001")
    assert (patient.first_name, patient.last_name, patient.guarantor_id) == ("Hana", "Okafor", "2001")
    [plan] = client.get_treatment_plans("2001")
    assert (plan.plan_id, plan.status, plan.total) == ("6001", "accepted", Decimal("1490.00"))
    assert [(p.code, p.tooth, p.surface) for p in plan.procedures] == [("D2740", "3", ""), ("D2392", "19", "MO")]


def test_create_patient_in_a_clinic(sandbox, client):
    post = lambda body: requests.post(f"{sandbox.base_url}/_sandbox/patients", json=body, timeout=5)  # noqa: E731
    assert post({**NEW_PATIENT, "clinic_id": "3"}).status_code == 201
    assert post(NEW_PATIENT).status_code == 201
    assert post({**NEW_PATIENT, "clinic_id": ""}).status_code == 201
    assert [client.get_patient(pid).clinic_id for pid in ("2001", "2002", "2003")] == ["3", "1", ""]
    for bad in (3, "north/3", "x" * 21):
        refused = post({**NEW_PATIENT, "clinic_id": bad})
        assert refused.status_code == 400
        assert list(refused.json()["fields"]) == ["clinic_id"]


def test_create_patient_without_procedures_has_no_plan(sandbox, client):
    response = requests.post(f"{sandbox.base_url}/_sandbox/patients", json=NEW_PATIENT, timeout=5)
    assert response.json() == {"patient_id": "2001", "guarantor_id": "2001", "treatment_plan_id": None}
    assert client.get_treatment_plans("2001") == []


def test_create_patient_with_a_guarantor(sandbox, client):
    requests.post(f"{sandbox.base_url}/_sandbox/patients", json=NEW_PATIENT, timeout=5)
    child = {**NEW_PATIENT, "first_name": "Ike", "birth_date": "2016-09-01", "guarantor_id": "2001"}
    response = requests.post(f"{sandbox.base_url}/_sandbox/patients", json=child, timeout=5)
    assert response.json() == {"patient_id": "2002", "guarantor_id": "2001", "treatment_plan_id": None}
    assert client.get_patient("2002").guarantor_id == "2001"
    with pytest.raises(NotFoundError):
        client.list_payment_agreements("2002")
    assert client.list_payment_agreements("2001") == []


def test_create_patient_guarantor_must_hold_an_account(sandbox):
    for guarantor_id, message in (
        ("1007", "Patient 1007 cannot be a guarantor: they are on account 1001."),
        ("999", "Patient 999 was not found in Dentrix."),
    ):
        body = {**NEW_PATIENT, "guarantor_id": guarantor_id}
        response = requests.post(f"{sandbox.base_url}/_sandbox/patients", json=body, timeout=5)
        assert response.status_code == 400
        assert response.json() == {"error": message, "fields": {"guarantor_id": message}}


def test_create_patient_validation_errors(sandbox):
    body = {
        **NEW_PATIENT,
        "first_name": "",
        "email": "not-an-email",
        "birth_date": "11/02/1990",
        "address": {"line1": "42 Lake Shore Drive", "city": "Springfield", "state": "IL"},
        "procedures": [
            {"code": "2740", "tooth": "3", "surface": "", "fee": "1250.00"},
            {"code": "D2391", "tooth": "33", "surface": "OO", "fee": "0.00"},
            {"code": "D1110", "fee": 120.0},
        ],
    }
    response = requests.post(f"{sandbox.base_url}/_sandbox/patients", json=body, timeout=5)
    assert response.status_code == 400
    assert response.json()["fields"] == {
        "first_name": "This field is required.",
        "email": "Enter an email address.",
        "birth_date": "Enter a date as YYYY-MM-DD.",
        "address.zip": "This field is required.",
        "procedures[0].code": "Procedure code must be a CDT code: D followed by 4 digits, e.g. D2740.",
        "procedures[1].tooth": "Tooth must be empty, 1–32 (permanent) or A–T (primary).",
        "procedures[1].surface": "Surface letters cannot repeat.",
        "procedures[1].fee": "Amount must be greater than 0.",
        "procedures[2].fee": 'Send the amount as text, e.g. "1250.00".',
    }
    assert response.json()["error"] == "This field is required. (and 8 more problem(s) with the patient)"
    # Nothing was created, and the bad values are not echoed back.
    assert "not-an-email" not in response.text
    assert requests.post(f"{sandbox.base_url}/_sandbox/patients", json=NEW_PATIENT, timeout=5).json()[
        "patient_id"
    ] == "2001"


def test_change_plan_status(sandbox, client):
    response = requests.put(
        f"{sandbox.base_url}/_sandbox/treatment-plans/5002", json={"status": "rejected"}, timeout=5
    )
    assert response.status_code == 200
    assert [p.status for p in client.get_treatment_plans("1002")] == ["rejected"]
    bad = requests.put(f"{sandbox.base_url}/_sandbox/treatment-plans/5002", json={"status": "maybe"}, timeout=5)
    assert bad.status_code == 400
    missing = requests.put(f"{sandbox.base_url}/_sandbox/treatment-plans/9", json={"status": "rejected"}, timeout=5)
    assert missing.status_code == 404


# --- payment agreements: valid ----------------------------------------------------------


def test_valid_zero_percent_agreement_is_stored_as_sent(client):
    agreement = client.create_payment_agreement(zero_pct())
    assert agreement.agreement_id == "7001"
    assert agreement.status == "active"
    assert (agreement.total_agreed_amount, agreement.down_payment) == (Decimal("3000.00"), Decimal("500.00"))
    assert (agreement.payment_amount, agreement.number_of_payments) == (Decimal("208.34"), 12)
    assert agreement.interval is Interval.MONTHLY
    assert agreement.annual_finance_charge_pct == Decimal("0.00")
    assert agreement.first_payment_due == today() + timedelta(days=30)
    assert agreement.note == "[chairside:CS-0001] CareCredit deferred 12"
    assert client.list_payment_agreements("1001") == [agreement]


def test_valid_reduced_apr_agreements(client):
    assert client.create_payment_agreement(reduced_apr()).payment_amount == Decimal("49.88")
    big = reduced_apr(
        guarantor_id="1002",
        total_agreed_amount=Decimal("5000.00"),
        payment_amount=Decimal("126.70"),
        number_of_payments=60,
    )
    assert client.create_payment_agreement(big).payment_amount == Decimal("126.70")


def test_valid_biweekly_agreement_uses_26_periods_a_year(client):
    expected = amortised_payment(Decimal("1000.00"), Decimal("17.90"), 52, Interval.BIWEEKLY)
    request = reduced_apr(interval=Interval.BIWEEKLY, number_of_payments=52, payment_amount=expected)
    assert client.create_payment_agreement(request).interval is Interval.BIWEEKLY


def test_agreement_dated_tomorrow_is_allowed(client):
    request = zero_pct(agreement_date=today() + timedelta(days=1), first_payment_due=today() + timedelta(days=31))
    assert client.create_payment_agreement(request).agreement_date == today() + timedelta(days=1)


# --- payment agreements: one rule each --------------------------------------------------


def test_rule_required_field(sandbox):
    body = {
        "agreement_date": today().isoformat(),
        "interval": "monthly",
        "total_agreed_amount": "3000.00",
        "down_payment": "500.00",
        "number_of_payments": 12,
        "first_payment_due": (today() + timedelta(days=30)).isoformat(),
        "annual_finance_charge_pct": "0.00",
        "note": "",
    }
    response = requests.post(
        f"{sandbox.base_url}/v1/accounts/1001/payment-agreements",
        json=body,
        headers={"X-API-Key": "sandbox"},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "This field is required.",
        "fields": {"payment_amount": "This field is required."},
    }


def test_rule_money_must_be_a_string(sandbox):
    body = {"total_agreed_amount": 3000.0}
    response = requests.post(
        f"{sandbox.base_url}/v1/accounts/1001/payment-agreements",
        json=body,
        headers={"X-API-Key": "sandbox"},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json()["fields"]["total_agreed_amount"] == 'Send the amount as text, e.g. "1250.00".'
    assert len(response.json()["fields"]) == 9


def test_rule_interval(client):
    error = rejected(client, zero_pct(interval="quarterly"))
    assert error.fields == {"interval": "Interval must be one of weekly, biweekly, semimonthly, monthly."}
    assert str(error) == (
        "Dentrix rejected the payment agreement: Interval must be one of weekly, biweekly, semimonthly, monthly."
    )


def test_rule_amounts_have_at_most_two_decimals(client):
    error = rejected(client, zero_pct(total_agreed_amount=Decimal("3000.005")))
    assert error.fields == {"total_agreed_amount": "Amounts can have at most 2 decimal places."}


def test_rule_amounts_are_positive(client):
    assert rejected(client, zero_pct(total_agreed_amount=Decimal("0.00"))).fields == {
        "total_agreed_amount": "Amount must be greater than 0."
    }
    assert rejected(client, zero_pct(down_payment=Decimal("-1.00"))).fields == {
        "down_payment": "Down payment cannot be negative."
    }
    assert rejected(client, zero_pct(payment_amount=Decimal("-208.34"))).fields == {
        "payment_amount": "Amount cannot be negative."
    }


def test_rule_down_payment_not_above_total(client):
    error = rejected(client, zero_pct(down_payment=Decimal("3000.01")))
    assert error.fields == {"down_payment": "Down payment must be less than or equal to total amount."}


def test_rule_something_must_be_financed(client):
    error = rejected(client, zero_pct(down_payment=Decimal("3000.00")))
    assert error.fields == {
        "total_agreed_amount": "Nothing is left to finance: the down payment covers the total amount."
    }


def test_rule_term_at_least_one(client):
    error = rejected(client, zero_pct(number_of_payments=0))
    assert error.fields == {"number_of_payments": "Term cannot be less than 1."}


def test_rule_payment_cannot_be_zero(client):
    error = rejected(client, zero_pct(payment_amount=Decimal("0.00")))
    assert error.fields == {"payment_amount": "Payment cannot be 0."}


def test_rule_first_payment_not_before_agreement_date(client):
    error = rejected(client, zero_pct(first_payment_due=today() - timedelta(days=1)))
    assert error.fields == {"first_payment_due": "First payment due date cannot be before the agreement date."}


def test_rule_agreement_date_not_in_the_future(client):
    error = rejected(
        client, zero_pct(agreement_date=today() + timedelta(days=2), first_payment_due=today() + timedelta(days=32))
    )
    assert error.fields == {"agreement_date": "Payment agreement date cannot be set for the future."}


def test_rule_finance_charge_range(client):
    for pct in ("100.00", "-0.01"):
        error = rejected(client, reduced_apr(annual_finance_charge_pct=Decimal(pct)))
        assert error.fields == {"annual_finance_charge_pct": "Annual finance charge % must be between 0 and 99.99."}


def test_rule_note_length(client):
    error = rejected(client, zero_pct(note="x" * 256))
    assert error.fields == {"note": "Payment agreement notes are limited to 255 characters."}
    assert client.create_payment_agreement(zero_pct(note="x" * 255)).note == "x" * 255


def test_rule_zero_percent_payments_must_add_up(client):
    message = "Payment amount × number of payments does not add up to the amount financed."
    # 12 × 208.33 = 2499.96 falls short of 2500.00.
    assert rejected(client, zero_pct(payment_amount=Decimal("208.33"))).fields == {"payment_amount": message}
    # 11 × 230.00 = 2530.00 already covers it: the 12th payment would be nothing.
    assert rejected(client, zero_pct(payment_amount=Decimal("230.00"))).fields == {"payment_amount": message}


def test_rule_amortised_payment_must_match(client):
    error = rejected(client, reduced_apr(payment_amount=Decimal("50.00")))
    assert error.fields == {
        "payment_amount": "Payment amount does not match the finance charge and number of payments (expected 49.88)."
    }


def test_rule_weekly_amortisation_expects_52_periods(client):
    expected = amortised_payment(Decimal("1000.00"), Decimal("17.90"), 104, Interval.WEEKLY)
    assert expected == Decimal("11.46")
    error = rejected(client, reduced_apr(interval=Interval.WEEKLY, number_of_payments=104, payment_amount=Decimal("11.03")))
    assert error.fields == {
        "payment_amount": "Payment amount does not match the finance charge and number of payments (expected 11.46)."
    }


def test_rule_never_paid_off(client):
    error = rejected(client, reduced_apr(payment_amount=Decimal("14.00"), number_of_payments=600))
    assert error.fields == {
        "payment_amount": (
            "This payment plan will never be paid off. "
            "The interest being charged on each payment is greater than the payment amount."
        )
    }


def test_several_problems_are_reported_at_once(client):
    error = rejected(client, zero_pct(number_of_payments=0, note="x" * 256))
    assert error.fields == {
        "number_of_payments": "Term cannot be less than 1.",
        "note": "Payment agreement notes are limited to 255 characters.",
    }
    assert str(error) == (
        "Dentrix rejected the payment agreement: Term cannot be less than 1. "
        "(and 1 more problem(s) with the payment agreement)"
    )


def test_rejected_agreement_is_not_stored(client):
    rejected(client, zero_pct(payment_amount=Decimal("0.00")))
    assert client.list_payment_agreements("1001") == []


# --- one active agreement per account ---------------------------------------------------


def test_second_active_agreement_is_a_conflict(sandbox, client):
    first = client.create_payment_agreement(zero_pct())
    with pytest.raises(PermanentPartnerError) as caught:
        client.create_payment_agreement(zero_pct(note="[chairside:CS-0002]"))
    error = caught.value
    assert not isinstance(error, NotFoundError)
    assert error.status == 409
    assert str(error) == (
        "Dentrix rejected the payment agreement: Account 1001 already has an active payment agreement "
        "(agreement 7001). Dentrix allows one active agreement per account."
    )
    assert client.list_payment_agreements("1001") == [first]
    assert len(sandbox.app.store.agreements_for("1001")) == 1


def test_after_inactivating_the_agreement_a_new_one_is_allowed(sandbox, client):
    first = client.create_payment_agreement(zero_pct())
    response = requests.put(
        f"{sandbox.base_url}/_sandbox/payment-agreements/{first.agreement_id}", json={"status": "inactive"}, timeout=5
    )
    assert response.status_code == 200
    second = client.create_payment_agreement(zero_pct(note="[chairside:CS-0002]"))
    assert [(a.agreement_id, a.status) for a in client.list_payment_agreements("1001")] == [
        ("7001", "inactive"),
        (second.agreement_id, "active"),
    ]


def test_concurrent_creates_store_exactly_one_agreement(sandbox):
    results = []

    def create(index):
        own_client = DentrixConnectorClient(sandbox.base_url, "sandbox", read_timeout=5)
        try:
            own_client.create_payment_agreement(zero_pct(note=f"[chairside:CS-{index}]"))
            results.append("created")
        except PermanentPartnerError as exc:
            results.append(exc.status)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(results, key=str) == [409, 409, 409, 409, 409, "created"]
    assert len(sandbox.app.store.agreements_for("1001")) == 1


# --- ledger notes ----------------------------------------------------------------------


def test_ledger_notes_round_trip(client):
    note = client.create_ledger_note("1001", LedgerNoteType.ACCOUNT, "[chairside:CS-0001] Agreement 7001 written.")
    billing = client.create_ledger_note("1001", LedgerNoteType.BILLING_STATEMENT, "b" * 82)
    assert (note.note_id, note.patient_id, note.type) == ("8001", "1001", LedgerNoteType.ACCOUNT)
    assert billing.type is LedgerNoteType.BILLING_STATEMENT
    assert client.list_ledger_notes("1001") == [note, billing]
    assert client.list_ledger_notes("1002") == []


def test_billing_statement_note_limited_to_82_characters(client):
    with pytest.raises(PermanentPartnerError) as caught:
        client.create_ledger_note("1001", LedgerNoteType.BILLING_STATEMENT, "b" * 83)
    assert caught.value.status == 400
    assert caught.value.fields == {"text": "Billing statement notes are limited to 82 characters."}
    assert str(caught.value) == "Dentrix rejected the ledger note: Billing statement notes are limited to 82 characters."
    assert client.list_ledger_notes("1001") == []


def test_account_note_limits(client):
    assert client.create_ledger_note("1001", LedgerNoteType.ACCOUNT, "a" * 2000).text == "a" * 2000
    with pytest.raises(PermanentPartnerError) as too_long:
        client.create_ledger_note("1001", LedgerNoteType.ACCOUNT, "a" * 2001)
    assert too_long.value.fields == {"text": "Account notes are limited to 2000 characters."}
    with pytest.raises(PermanentPartnerError) as empty:
        client.create_ledger_note("1001", LedgerNoteType.ACCOUNT, "")
    assert empty.value.fields == {"text": "Note text cannot be empty."}
    assert len(client.list_ledger_notes("1001")) == 1


def test_note_for_unknown_patient_is_not_found(client):
    with pytest.raises(NotFoundError) as caught:
        client.create_ledger_note("999", LedgerNoteType.ACCOUNT, "hello")
    assert str(caught.value) == "Dentrix could not find the ledger note (HTTP 404): Patient 999 was not found in Dentrix."


# --- faults and the error split --------------------------------------------------------


def test_503_on_a_read_is_transient_with_retry_after(sandbox, client):
    add_fault(sandbox, method="GET", path_prefix="/v1/patients", mode="error", status=503, retry_after=2)
    with pytest.raises(TransientPartnerError) as caught:
        client.get_patient("1001")
    assert type(caught.value) is TransientPartnerError
    assert (caught.value.status, caught.value.retry_after) == (503, 2.0)
    assert client.get_patient("1001").patient_id == "1001"  # count 1: used up


def test_503_on_a_create_carries_retry_after_and_writes_nothing(sandbox, client):
    add_fault(sandbox, method="POST", path_prefix="/v1/accounts", mode="error", status=503, retry_after=2)
    with pytest.raises(TransientPartnerError) as caught:
        client.create_payment_agreement(zero_pct())
    # Any 5xx after a create was sent is ambiguous to the client, which then looks up.
    assert isinstance(caught.value, AmbiguousWriteError)
    assert caught.value.retry_after == 2.0
    assert caught.value.status == 503
    assert client.list_payment_agreements("1001") == []


def test_429_is_transient_not_ambiguous(sandbox, client):
    add_fault(sandbox, method="POST", mode="error", status=429, retry_after=7)
    with pytest.raises(TransientPartnerError) as caught:
        client.create_ledger_note("1001", LedgerNoteType.ACCOUNT, "hello")
    assert type(caught.value) is TransientPartnerError
    assert caught.value.retry_after == 7.0
    assert client.list_ledger_notes("1001") == []


def test_read_timeout_on_create_is_ambiguous(sandbox):
    impatient = DentrixConnectorClient(sandbox.base_url, "sandbox", read_timeout=0.3)
    add_fault(sandbox, method="POST", mode="timeout", latency_ms=800)
    with pytest.raises(AmbiguousWriteError) as caught:
        impatient.create_payment_agreement(zero_pct())
    assert str(caught.value) == (
        "Dentrix did not answer within 0.3 s (read timeout); "
        "the payment agreement may or may not have been saved: look it up before writing again"
    )
    # ...and indeed the slow connector committed it after the client gave up.
    wait_for_log_entry(sandbox, "POST", 201)
    assert len(sandbox.app.store.agreements_for("1001")) == 1


def test_read_timeout_on_a_read_is_plain_transient(sandbox):
    impatient = DentrixConnectorClient(sandbox.base_url, "sandbox", read_timeout=0.3)
    add_fault(sandbox, method="GET", mode="timeout", latency_ms=600)
    with pytest.raises(TransientPartnerError) as caught:
        impatient.get_patient("1001")
    assert type(caught.value) is TransientPartnerError
    assert str(caught.value) == "Dentrix did not answer within 0.3 s (read timeout)"
    wait_for_log_entry(sandbox, "GET", 200)


def test_latency_fault_slows_but_serves(sandbox, client):
    add_fault(sandbox, method="GET", mode="latency", latency_ms=200)
    started = time.monotonic()
    assert client.get_patient("1001").patient_id == "1001"
    assert time.monotonic() - started >= 0.2


def test_dropped_connection_after_commit_is_ambiguous_and_stored(sandbox, client):
    add_fault(sandbox, method="POST", path_prefix="/v1/accounts", mode="drop")
    with pytest.raises(AmbiguousWriteError) as caught:
        client.create_payment_agreement(zero_pct())
    assert str(caught.value) == (
        "Dentrix closed the connection without answering; "
        "the payment agreement may or may not have been saved: look it up before writing again"
    )
    [stored] = client.list_payment_agreements("1001")
    assert stored.note == "[chairside:CS-0001] CareCredit deferred 12"
    posts = [e for e in request_log(sandbox) if e["method"] == "POST"]
    assert posts == [
        {"method": "POST", "path": "/v1/accounts/1001/payment-agreements", "status": None, "fault": "drop"}
    ]


def test_dropped_ledger_note_is_ambiguous_and_stored(sandbox, client):
    add_fault(sandbox, method="POST", path_prefix="/v1/patients", mode="drop")
    with pytest.raises(AmbiguousWriteError):
        client.create_ledger_note("1001", LedgerNoteType.ACCOUNT, "[chairside:CS-0001] written")
    assert [n.text for n in client.list_ledger_notes("1001")] == ["[chairside:CS-0001] written"]


def test_commit_then_error_is_ambiguous_and_stored(sandbox, client):
    add_fault(sandbox, method="POST", mode="commit_then_error")
    with pytest.raises(AmbiguousWriteError) as caught:
        client.create_payment_agreement(zero_pct())
    assert caught.value.status == 500
    assert len(client.list_payment_agreements("1001")) == 1


def test_hold_commits_first_then_keeps_the_answer_back(sandbox, client):
    add_fault(sandbox, method="POST", path_prefix="/v1/accounts", mode="hold", latency_ms=400)
    worker = threading.Thread(target=client.create_payment_agreement, args=(zero_pct(),))
    started = time.monotonic()
    worker.start()
    # The agreement is stored while the answer is still held back.
    deadline = time.monotonic() + 2
    while not sandbox.app.store.agreements_for("1001"):
        assert time.monotonic() < deadline, "the held POST never committed"
        time.sleep(0.01)
    assert [e for e in request_log(sandbox) if e["method"] == "POST"] == []
    worker.join(timeout=5)
    assert time.monotonic() - started >= 0.4
    assert [e for e in request_log(sandbox) if e["method"] == "POST"] == [
        {"method": "POST", "path": "/v1/accounts/1001/payment-agreements", "status": 201, "fault": "hold"}
    ]


def test_fault_count_and_clearing(sandbox, client):
    add_fault(sandbox, method="GET", mode="error", status=502, count=2)
    for _ in range(2):
        with pytest.raises(TransientPartnerError):
            client.get_patient("1001")
    assert client.get_patient("1001").patient_id == "1001"
    add_fault(sandbox, method="*", mode="error", count=5)
    requests.delete(f"{sandbox.base_url}/_sandbox/faults", timeout=5).raise_for_status()
    assert client.get_patient("1001").patient_id == "1001"


def test_faults_never_touch_the_control_api(sandbox):
    add_fault(sandbox, method="*", mode="error", count=3)
    assert requests.get(f"{sandbox.base_url}/_sandbox/health", timeout=5).json() == {"ok": True}
    bad = requests.post(f"{sandbox.base_url}/_sandbox/faults", json={"mode": "error", "path_prefix": "/_sandbox"}, timeout=5)
    assert bad.status_code == 400
    assert bad.json()["fields"] == {"path_prefix": "Faults apply to connector paths only: the prefix must start with /v1."}


def test_connection_refused_is_transient_not_ambiguous():
    nowhere = DentrixConnectorClient(f"http://127.0.0.1:{closed_port()}", "sandbox", connect_timeout=1)
    with pytest.raises(TransientPartnerError) as caught:
        nowhere.create_payment_agreement(zero_pct())
    assert type(caught.value) is TransientPartnerError
    assert str(caught.value) == "Dentrix could not be reached (connection refused or unknown host)"


def test_wrong_api_key_is_permanent(sandbox):
    wrong = DentrixConnectorClient(sandbox.base_url, "not-the-key")
    with pytest.raises(PermanentPartnerError) as caught:
        wrong.get_patient("1001")
    assert type(caught.value) is PermanentPartnerError
    assert caught.value.status == 401
    assert str(caught.value) == (
        "Dentrix refused Chairside's credentials (HTTP 401); check this location's Dentrix connection settings"
    )
    missing = requests.get(f"{sandbox.base_url}/v1/patients/1001", timeout=5)
    assert missing.status_code == 401
    assert "first_name" not in missing.text


def test_sandbox_bug_is_a_json_500(sandbox, client, monkeypatch):
    class Broken(dict):
        def get(self, *args):
            raise RuntimeError("boom")

    monkeypatch.setitem(sandbox.app.store.tables, "patients", Broken())
    with pytest.raises(TransientPartnerError) as caught:
        client.get_patient("1001")
    assert caught.value.status == 500
    assert str(caught.value) == (
        "Dentrix is unavailable (HTTP 500): The Dentrix sandbox failed while handling this request (see its log)"
    )


# --- request log and journal ------------------------------------------------------------


def test_request_log_records_every_v1_call(sandbox, client):
    client.get_patient("1001")
    client.get_treatment_plans("1001")
    client.create_payment_agreement(zero_pct())
    with pytest.raises(PermanentPartnerError):
        client.create_payment_agreement(zero_pct())
    with pytest.raises(PermanentPartnerError):
        DentrixConnectorClient(sandbox.base_url, "wrong").list_ledger_notes("1001")
    requests.get(f"{sandbox.base_url}/_sandbox/health", timeout=5)  # not logged
    assert request_log(sandbox) == [
        {"method": "GET", "path": "/v1/patients/1001", "status": 200, "fault": None},
        {"method": "GET", "path": "/v1/patients/1001/treatment-plans", "status": 200, "fault": None},
        {"method": "POST", "path": "/v1/accounts/1001/payment-agreements", "status": 201, "fault": None},
        {"method": "POST", "path": "/v1/accounts/1001/payment-agreements", "status": 409, "fault": None},
        {"method": "GET", "path": "/v1/patients/1001/ledger-notes", "status": 401, "fault": None},
    ]


def test_journal_replays_after_restart(tmp_path: Path):
    journal = tmp_path / "dentrix.jsonl"
    first = serve_in_thread(port=0, state_file=journal)
    try:
        created = requests.post(f"{first.base_url}/_sandbox/patients", json=NEW_PATIENT, timeout=5).json()
        requests.put(f"{first.base_url}/_sandbox/treatment-plans/5003", json={"status": "completed"}, timeout=5)
        client = DentrixConnectorClient(first.base_url, "sandbox")
        agreement = client.create_payment_agreement(zero_pct(guarantor_id=created["patient_id"]))
        note = client.create_ledger_note("1001", LedgerNoteType.ACCOUNT, "[chairside:CS-0001] kept")
    finally:
        first.stop()

    second = serve_in_thread(port=0, state_file=journal)
    try:
        client = DentrixConnectorClient(second.base_url, "sandbox")
        assert client.get_patient("2001").last_name == "Okafor"
        assert client.list_payment_agreements("2001") == [agreement]
        assert client.list_ledger_notes("1001") == [note]
        assert [p.status for p in client.get_treatment_plans("1003")] == ["completed"]
        # New ids continue after the replayed ones.
        again = requests.post(f"{second.base_url}/_sandbox/patients", json=NEW_PATIENT, timeout=5).json()
        assert again["patient_id"] == "2002"
        # Reset empties the journal too.
        requests.post(f"{second.base_url}/_sandbox/reset", timeout=5).raise_for_status()
    finally:
        second.stop()
    assert journal.read_text() == ""


def test_journal_ignores_a_torn_last_line(tmp_path: Path):
    journal = tmp_path / "dentrix.jsonl"
    journal.write_text('{"table": "notes", "record": {"note_id": "8001", "patient_id": "1001", "type": "acc')
    running = serve_in_thread(port=0, state_file=journal)
    try:
        assert running.app.store.notes == {}
    finally:
        running.stop()


# --- PHI, logs and the command line -----------------------------------------------------


def test_errors_and_logs_carry_no_patient_data(sandbox, client, caplog):
    caplog.set_level(logging.DEBUG)
    messages = []
    for action in (
        lambda: client.create_payment_agreement(zero_pct(payment_amount=Decimal("0.00"))),
        lambda: (client.create_payment_agreement(zero_pct()), client.create_payment_agreement(zero_pct())),
        lambda: client.list_payment_agreements("1007"),
        lambda: client.get_patient("999"),
        lambda: client.create_ledger_note("1001", LedgerNoteType.BILLING_STATEMENT, "Ava Thompson " * 10),
    ):
        with pytest.raises(PermanentPartnerError) as caught:
            action()
        messages.append(str(caught.value))
        messages.extend(caught.value.fields.values())
    client.get_patient("1001")
    client.get_patient("1007")
    text = "\n".join(messages + [record.getMessage() for record in caplog.records])
    for phi in DEMO_PHI:
        assert phi not in text


def test_command_line_prints_its_url_and_stops_on_sigterm():
    env = {**os.environ, "DENTRIX_SANDBOX_API_KEY": "cli-key"}
    process = subprocess.Popen(
        [sys.executable, "-m", "sandboxes.dentrix", "--host", "127.0.0.1", "--port", "0"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("Dentrix sandbox listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert requests.get(f"{url}/v1/patients/1001", headers={"X-API-Key": "cli-key"}, timeout=5).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
