"""Ledger payments and adjustments (connector contract v2.2) in every connector product, through
Chairside's client against the product's sandbox over HTTP: what is posted is listed back with
exactly its amount, type and note; a type the practice does not have is refused with nothing
stored; an answer lost after the connector committed leaves the entry there exactly once,
found by its marker."""

from datetime import date
from decimal import Decimal as D

import pytest
import requests

from dentrix_bridge.client import DentrixConnectorClient
from financing.ports import (
    AmbiguousWriteError,
    LedgerEntryKind,
    LedgerEntryRequest,
    PermanentPartnerError,
)
from tests.products.connector_products import NAMES

PAYMENT, ADJUSTMENT = LedgerEntryKind.PAYMENT, LedgerEntryKind.ADJUSTMENT
DAY = date(2025, 3, 4)  # in the past at any hour: the connector refuses future dates


@pytest.fixture
def connector(connector_sandbox):
    requests.post(f"{connector_sandbox.base_url}/_sandbox/reset", timeout=5).raise_for_status()
    return connector_sandbox


@pytest.fixture
def client(connector):
    return DentrixConnectorClient(connector.base_url, "sandbox", product=connector.product, read_timeout=1.0)


def entry(kind, amount, type_name, marker, patient_id="1001"):
    return LedgerEntryRequest(
        kind=kind, patient_id=patient_id, guarantor_id="1001", entry_date=DAY, amount=D(amount),
        type_name=type_name, note=f"{marker} CareCredit",
    )


def test_a_payment_a_fee_and_a_refund_are_listed_back_exactly(client, connector):
    payment = client.post_ledger_entry(entry(PAYMENT, "1137.50", "CareCredit Payment", "[chairside:CS-1:payment]"))
    fee = client.post_ledger_entry(entry(ADJUSTMENT, "-112.50", "CareCredit Merchant Fee", "[chairside:CS-1:fee]"))
    refund = client.post_ledger_entry(
        entry(ADJUSTMENT, "200.00", "CareCredit Refund", "[chairside:CS-1:refund-1]", patient_id="1007")
    )
    assert (payment.kind, payment.amount, payment.type_name, payment.entry_date, payment.patient_id) == (
        PAYMENT, D("1137.50"), "CareCredit Payment", DAY, "1001"
    )
    assert (fee.kind, fee.amount, fee.type_name) == (ADJUSTMENT, D("-112.50"), "CareCredit Merchant Fee")

    listed = client.list_ledger_entries("1001")
    assert [(e.entry_id, e.kind, e.amount, e.type_name, e.note, e.entry_date) for e in listed] == [
        (payment.entry_id, PAYMENT, D("1137.50"), "CareCredit Payment", "[chairside:CS-1:payment] CareCredit", DAY),
        (fee.entry_id, ADJUSTMENT, D("-112.50"), "CareCredit Merchant Fee", "[chairside:CS-1:fee] CareCredit", DAY),
    ]
    # The minor's refund is on his own ledger (his mother's account).
    assert [(e.entry_id, e.amount, e.type_name, e.patient_id) for e in client.list_ledger_entries("1007")] == [
        (refund.entry_id, D("200.00"), "CareCredit Refund", "1007")
    ]
    assert client.list_ledger_entries("1002") == []


@pytest.mark.parametrize("kind, type_name, why", [
    (PAYMENT, "CareCredit Paymnt", "is not one of the practice's payment types"),
    (PAYMENT, "Lending Club Payment", "is inactive"),
    (ADJUSTMENT, "CareCredit Payment", "is not one of the practice's adjustment types"),  # a payment type
    (ADJUSTMENT, "Senior Discount", "is inactive"),
])
def test_a_type_the_practice_does_not_have_is_refused_by_name_and_nothing_is_stored(client, connector, kind, type_name, why):
    with pytest.raises(PermanentPartnerError) as caught:
        client.post_ledger_entry(entry(kind, "-10.00" if kind == ADJUSTMENT else "10.00", type_name, "[chairside:CS-2]"))
    assert caught.value.status == 422
    name = NAMES[connector.product]
    assert f'{name} rejected the {kind}: {kind.capitalize()} type "{type_name}" {why}' in str(caught.value)
    assert client.list_ledger_entries("1001") == []


@pytest.mark.parametrize("kind, amount, message", [
    (PAYMENT, "-10.00", "Payment amount must be greater than 0."),
    (PAYMENT, "0.00", "Payment amount must be greater than 0."),
    (ADJUSTMENT, "0.00", "Adjustment amount cannot be 0."),
    (ADJUSTMENT, "-10.005", "Amounts can have at most 2 decimal places."),
])
def test_amounts_the_product_does_not_take_are_refused(client, kind, amount, message):
    type_name = "CareCredit Payment" if kind == PAYMENT else "CareCredit Merchant Fee"
    with pytest.raises(PermanentPartnerError) as caught:
        client.post_ledger_entry(entry(kind, amount, type_name, "[chairside:CS-3]"))
    assert (caught.value.status, caught.value.fields) == (400, {"amount": message})
    assert client.list_ledger_entries("1001") == []


@pytest.mark.parametrize("kind, mode", [(PAYMENT, "drop"), (ADJUSTMENT, "commit_then_error"), (ADJUSTMENT, "hold")])
def test_an_answer_lost_after_the_commit_leaves_the_entry_there_once_found_by_its_marker(client, connector, kind, mode):
    fault = {"method": "POST", "path_prefix": f"/v1/patients/1001/{kind}s", "mode": mode, "count": 1}
    if mode == "hold":
        fault["latency_ms"] = 1500  # committed, then the answer held past the client's 1 s read timeout
    requests.post(f"{connector.base_url}/_sandbox/faults", json=fault, timeout=5).raise_for_status()
    amount, type_name = ("1137.50", "CareCredit Payment") if kind == PAYMENT else ("-112.50", "CareCredit Merchant Fee")
    marker = f"[chairside:CS-4:{kind}]"
    with pytest.raises(AmbiguousWriteError):
        client.post_ledger_entry(entry(kind, amount, type_name, marker))
    # The lookup before any retry: there it is, once, exactly as sent (so no second POST).
    found = [e for e in client.list_ledger_entries("1001") if marker in e.note]
    assert [(e.kind, e.amount, e.type_name) for e in found] == [(kind, D(amount), type_name)]
    assert len(connector.app.store.tables[f"{kind}s"]) == 1


def test_an_unknown_patient_is_not_found_and_nothing_is_stored(client, connector):
    from financing.ports import NotFoundError

    with pytest.raises(NotFoundError):
        client.post_ledger_entry(entry(PAYMENT, "10.00", "CareCredit Payment", "[chairside:CS-5]", patient_id="999"))
    with pytest.raises(NotFoundError):
        client.list_ledger_entries("999")
    store = connector.app.store
    assert (len(store.tables["payments"]), len(store.tables["adjustments"])) == (0, 0)


def test_the_sandboxs_practice_view_lists_a_cases_postings_by_their_marker(client, connector):
    from types import SimpleNamespace

    from sandboxes.dentrix.simulation import Practice

    client.post_ledger_entry(entry(PAYMENT, "1137.50", "CareCredit Payment", "[chairside:CS-7/payment]"))
    client.post_ledger_entry(entry(ADJUSTMENT, "-112.50", "CareCredit Merchant Fee", "[chairside:CS-7/merchant_fee]"))
    client.post_ledger_entry(entry(ADJUSTMENT, "-5.00", "Professional Courtesy", "[chairside:CS-70/merchant_fee]"))
    practice = Practice(SimpleNamespace(pms_base_url=connector.base_url, pms_api_key="sandbox", clinic_ids=()))
    assert [(p["kind"], p["amount"], p["type"]) for p in practice.ledger_postings({"reference": "CS-7", "patient_id": "1001"})] == [
        ("payment", D("1137.50"), "CareCredit Payment"), ("adjustment", D("-112.50"), "CareCredit Merchant Fee"),
    ]
