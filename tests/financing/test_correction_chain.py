"""A correction adopts the record the PMS holds in force after the clerk's edit, against each
connector product's sandbox over HTTP: Dentrix Enterprise makes a new version of an edited
plan, Dentrix Ascend's plan is deleted and created again (without Chairside's marker), the
G-series and Eaglesoft edit in place. A read-back that fails loses no correction."""

from datetime import date

import pytest
import requests
from dateutil.relativedelta import relativedelta

from carecredit_bridge.client import clear_token_cache
from financing import display, services
from financing.models import Correction, FinancedCase, PaymentArrangement
from financing.services.corrections import in_force
from financing.ports import Agreement, AppliedProcedure, Interval
from tests.conftest import Sandboxes, make_location, make_user
from tests.console.console_factories import billing_user, console_client

pytestmark = pytest.mark.django_db(transaction=True)

PRODUCTS = ("dentrix", "dentrix_enterprise", "dentrix_ascend", "eaglesoft")
KEY_HEADER = {"X-API-Key": "sandbox"}


@pytest.fixture(scope="module")
def connectors():
    """One connector sandbox per product (the location's kind → its sandbox)."""
    from sandboxes.dentrix import serve_in_thread

    running = {kind: serve_in_thread(port=0, product="dentrix_g" if kind == "dentrix" else kind) for kind in PRODUCTS}
    yield running
    for server in running.values():
        server.stop()


@pytest.fixture
def written(connectors, carecredit_sandbox, template, tasks):
    """written(kind) → (case, sandboxes, billing user): a completed case at a location on that
    product, its record written by Chairside."""

    def make(kind):
        for server in (connectors[kind], carecredit_sandbox):
            requests.post(f"{server.base_url}/_sandbox/reset", timeout=5).raise_for_status()
        requests.put(f"{carecredit_sandbox.base_url}/_sandbox/config", json={"decision_delay": 0.0}, timeout=5).raise_for_status()
        clear_token_cache()
        sandboxes = Sandboxes(connectors[kind], carecredit_sandbox)
        location = make_location(template, sandboxes, code=kind.replace("_", "-"), pms_kind=kind)
        coordinator, billing = make_user(f"coord-{kind}", location), billing_user(f"billing-{kind}", location)
        patient = sandboxes.new_patient("Thompson")
        case = services.capture_case(location=location, patient_id=patient["patient_id"],
                                     treatment_plan_id=patient["treatment_plan_id"], actor=coordinator)
        tasks.drain()
        services.refresh_decision(case.pk)
        requests.post(f"{sandboxes.dentrix_url}/_sandbox/patients/{patient['patient_id']}/post-production", json={}, timeout=5)
        tasks.drain()
        case = FinancedCase.objects.get(pk=case.pk)
        assert case.state == "completed", case.state_reason
        return case, sandboxes, billing

    return make


def clerk_edits(sandboxes, agreement_id, **changes):
    """The clerk changes the record's terms in the product (the sandbox's control call)."""
    return requests.post(f"{sandboxes.dentrix_url}/_sandbox/payment-agreements/{agreement_id}/edit", json=changes, timeout=5)


def a_month_later(day: str) -> str:
    return (date.fromisoformat(day) + relativedelta(months=1)).isoformat()


def case_page(case, user) -> str:
    return console_client(user).get(f"/admin/financing/financedcase/{case.pk}/change/").text


def test_enterprise_a_correction_follows_the_new_version_of_the_plan(written):
    case, sandboxes, billing = written("dentrix_enterprise")
    first = case.arrangement.pms_arrangement_id
    [record] = sandboxes.agreements(case.guarantor_id)
    moved = a_month_later(record["first_payment_due"])
    edited = clerk_edits(sandboxes, first, first_payment_due=moved)
    assert edited.status_code == 201, edited.text
    second = edited.json()["agreement_id"]
    assert second != first

    correction = services.record_correction(case.pk, field="first_payment_date", after=moved, why="Patient asked", actor=billing)
    assert (correction.pms_record_before, correction.pms_record_after) == (first, second)
    assert PaymentArrangement.objects.get(case=case).pms_arrangement_id == second
    assert services.describe_correction(correction).endswith(
        f"Dentrix Enterprise now holds payment plan {second} (new version of {first})."
    )

    # A second edit makes a third version; the chain shows both.
    later = a_month_later(moved)
    third = clerk_edits(sandboxes, second, first_payment_due=later).json()["agreement_id"]
    services.record_correction(case.pk, field="first_payment_date", after=later, why="Again", actor=billing)
    assert PaymentArrangement.objects.get(case=case).pms_arrangement_id == third
    day = display.day(Correction.objects.filter(case=case).latest("pk").created_at, case.location)
    chain = f"Payment plan {first} → {second} (new version, {day}) → {third} (new version, {day})"
    page = case_page(case, billing)
    assert f'<p id="record-chain">{chain}</p>' in page
    assert f'Payment plan ID <strong id="pms-agreement-id">{third}</strong>' in page  # as Enterprise names it


def test_ascend_a_plan_deleted_and_created_again_without_the_marker_is_adopted(written):
    case, sandboxes, billing = written("dentrix_ascend")
    first = case.arrangement.pms_arrangement_id
    [record] = sandboxes.agreements(case.guarantor_id)
    assert clerk_edits(sandboxes, first, first_payment_due=a_month_later(record["first_payment_due"])).status_code == 409
    # The clerk deletes the plan and types it again, a month later, with a note of their own.
    deleted = requests.delete(f"{sandboxes.dentrix_url}/v1/accounts/{case.guarantor_id}/payment-agreements/{first}",
                              headers=KEY_HEADER, timeout=5)
    assert deleted.status_code == 204
    body = {name: record[name] for name in (
        "agreement_date", "interval", "total_agreed_amount", "down_payment", "payment_amount", "number_of_payments",
        "annual_finance_charge_pct", "start_date", "procedures")}
    body.update(start_date=a_month_later(record["start_date"]), first_payment_due=a_month_later(record["first_payment_due"]),
                note="Re-entered: patient moved the first payment")
    created = requests.post(f"{sandboxes.dentrix_url}/v1/accounts/{case.guarantor_id}/payment-agreements", json=body,
                            headers=KEY_HEADER, timeout=5)
    assert created.status_code == 201, created.text
    second = created.json()["agreement_id"]

    correction = services.record_correction(case.pk, field="first_payment_date", after=body["first_payment_due"],
                                            why="Patient asked", actor=billing)
    assert (correction.pms_record_before, correction.pms_record_after) == (first, second)
    assert PaymentArrangement.objects.get(case=case).pms_arrangement_id == second
    day = display.day(correction.created_at, case.location)
    assert f'<p id="record-chain">Payment plan {first} → {second} (created again, {day})</p>' in case_page(case, billing)


@pytest.mark.parametrize("kind", ["dentrix", "eaglesoft"])
def test_an_edit_in_place_keeps_the_id_and_shows_no_chain(written, kind):
    case, sandboxes, billing = written(kind)
    first = case.arrangement.pms_arrangement_id
    [record] = sandboxes.agreements(case.guarantor_id)
    moved = a_month_later(record["first_payment_due"])
    edited = clerk_edits(sandboxes, first, first_payment_due=moved)
    assert edited.status_code == 200 and edited.json()["agreement_id"] == first
    correction = services.record_correction(case.pk, field="first_payment_date", after=moved, why="Patient asked", actor=billing)
    assert (correction.pms_record_before, correction.pms_record_after) == ("", "")
    assert PaymentArrangement.objects.get(case=case).pms_arrangement_id == first
    assert services.describe_correction(correction).startswith("Correction recorded: first payment date ")
    assert "record-chain" not in case_page(case, billing)


def test_a_g_series_agreement_inactivated_and_typed_again_is_adopted(written):
    """The G-series cannot edit a record into a new one; a clerk who inactivates it and types
    a new agreement leaves the account one active record: that is the one in force."""
    case, sandboxes, billing = written("dentrix")
    first = case.arrangement.pms_arrangement_id
    [record] = sandboxes.agreements(case.guarantor_id)
    requests.put(f"{sandboxes.dentrix_url}/_sandbox/payment-agreements/{first}", json={"status": "inactive"}, timeout=5).raise_for_status()
    body = {name: record[name] for name in (
        "agreement_date", "interval", "total_agreed_amount", "down_payment", "payment_amount", "number_of_payments",
        "annual_finance_charge_pct")}
    body.update(first_payment_due=a_month_later(record["first_payment_due"]), note="Typed again by billing")
    created = requests.post(f"{sandboxes.dentrix_url}/v1/accounts/{case.guarantor_id}/payment-agreements", json=body,
                            headers=KEY_HEADER, timeout=5)
    assert created.status_code == 201, created.text
    second = created.json()["agreement_id"]
    correction = services.record_correction(case.pk, field="first_payment_date", after=body["first_payment_due"],
                                            why="Patient asked", actor=billing)
    assert (correction.pms_record_before, correction.pms_record_after) == (first, second)
    assert PaymentArrangement.objects.get(case=case).pms_arrangement_id == second


def test_a_failed_read_back_records_the_correction_and_says_the_chain_is_not_confirmed(written):
    case, sandboxes, billing = written("dentrix_enterprise")
    first = case.arrangement.pms_arrangement_id
    [record] = sandboxes.agreements(case.guarantor_id)
    moved = a_month_later(record["first_payment_due"])
    assert clerk_edits(sandboxes, first, first_payment_due=moved).status_code == 201
    sandboxes.dentrix_fault(method="GET", path_prefix="/v1/accounts", mode="error", status=503, count=None)

    correction = services.record_correction(case.pk, field="first_payment_date", after=moved, why="Patient asked", actor=billing)
    assert Correction.objects.filter(case=case).count() == 1
    assert (correction.pms_record_before, correction.pms_record_after) == (first, "")
    arrangement = PaymentArrangement.objects.get(case=case)
    assert arrangement.pms_arrangement_id == first and arrangement.first_payment_date.isoformat() == moved
    sandboxes.clear_faults()
    day = display.day(correction.created_at, case.location)
    page = case_page(case, billing)
    assert f'<p id="record-chain">Payment plan {first} → ? (not confirmed, {day})</p>' in page
    assert (f"Chairside could not confirm which payment plan Dentrix Enterprise holds now for guarantor account "
            f"{case.guarantor_id} (the correction was made to payment plan {first})") in page


# --- which record is in force, from the records alone ------------------------------------------


def record(agreement_id, *, status="active", note="", supersedes="", superseded_by="", procedures=()):
    return Agreement(
        agreement_id=agreement_id, guarantor_id="1001", status=status, agreement_date=date(2026, 12, 1),
        interval=Interval.MONTHLY, total_agreed_amount=1, down_payment=0, payment_amount=1, number_of_payments=1,
        first_payment_due=date(2026, 12, 31), annual_finance_charge_pct=0, note=note, supersedes=supersedes,
        superseded_by=superseded_by, procedures=tuple(AppliedProcedure(p, 1) for p in procedures),
    )


MARKER = "[chairside:CS-TEST0001]"


@pytest.mark.parametrize(
    "records, one_per_account, expected",
    [
        # The same record, edited in place.
        ([record("7001", note=MARKER)], True, "7001"),
        # Enterprise: versions 7001 → 7005 → 7009, beside another plan of the account.
        ([record("7001", status="inactive", superseded_by="7005"), record("7005", status="inactive", supersedes="7001", superseded_by="7009"),
          record("7009", supersedes="7005"), record("7002")], False, "7009"),
        # A version chain that loops (a broken connector) ends where it started to repeat.
        ([record("7001", status="inactive", superseded_by="7005"), record("7005", superseded_by="7001")], False, "7005"),
        # Inactivated, nothing after it, several plans allowed: the clerk closed it.
        ([record("7001", status="inactive"), record("7002")], False, None),
        # Inactivated where one is allowed: the account's one active record.
        ([record("7001", status="inactive"), record("7003")], True, "7003"),
        ([record("7001", status="inactive")], True, None),
        # Gone (deleted): the one carrying the marker, else the guarantor's one plan, else the
        # one over the case's procedures.
        ([record("7002", note=f"again {MARKER}"), record("7003")], False, "7002"),
        ([record("7004")], True, "7004"),
        ([record("7004", procedures=("9001", "9002")), record("7005", procedures=("9003",))], False, "7004"),
        ([record("7004"), record("7005")], False, None),
        ([], True, None),
    ],
)
def test_the_record_in_force(records, one_per_account, expected):
    assert in_force(records, "7001", marker=MARKER, procedure_ids={"9001", "9002"}, one_per_account=one_per_account) == expected
