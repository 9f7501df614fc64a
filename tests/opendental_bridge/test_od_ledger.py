"""Payments and adjustments through OpenDentalClient against the Open Dental sandbox over HTTP
(apipayments.html, apiadjustments.html, apidefinitions.html): types named by the office's own
names and resolved to DefNums once per client; what is posted is listed back exactly; a type
the office does not have (or has hidden) is refused with nothing stored; an answer lost after
Open Dental committed leaves the entry there once, found by its marker."""

from datetime import date
from decimal import Decimal as D

import pytest

from financing.ports import (
    AmbiguousWriteError,
    LedgerEntryKind,
    LedgerEntryRequest,
    PermanentPartnerError,
)
from opendental_bridge.client import OpenDentalClient

PAYMENT, ADJUSTMENT = LedgerEntryKind.PAYMENT, LedgerEntryKind.ADJUSTMENT
DAY = date(2025, 3, 4)  # in the past at any hour: Open Dental refuses future dates
AVA = "101"


@pytest.fixture
def client(od):
    return OpenDentalClient(od.api, "sandbox-customer", developer_key="sandbox-developer", read_timeout=1.0)


def entry(kind, amount, type_name, marker, patient_id=AVA):
    return LedgerEntryRequest(
        kind=kind, patient_id=patient_id, guarantor_id=AVA, entry_date=DAY, amount=D(amount), type_name=type_name,
        note=f"{marker} CareCredit",
    )


def test_a_payment_a_fee_and_a_refund_are_posted_with_the_offices_types_and_listed_back(client, od):
    payment = client.post_ledger_entry(entry(PAYMENT, "1137.50", "CareCredit Payment", "[chairside:CS-1:payment]"))
    fee = client.post_ledger_entry(entry(ADJUSTMENT, "-112.50", "CareCredit Merchant Fee", "[chairside:CS-1:fee]"))
    refund = client.post_ledger_entry(entry(ADJUSTMENT, "200.00", "CareCredit Refund", "[chairside:CS-1:refund-1]"))

    # Open Dental holds them with the office's DefNums, PayNote / AdjNote carrying the marker.
    assert [(p["PayNum"], p["PayType"], p["payType"], p["PayAmt"], p["PayDate"], p["PayNote"]) for p in od.get("/payments", PatNum=AVA)] == [
        (int(payment.entry_id), 480, "CareCredit Payment", 1137.5, "2025-03-04", "[chairside:CS-1:payment] CareCredit")
    ]
    assert [(a["AdjType"], a["AdjAmt"], a["AdjNote"]) for a in od.get("/adjustments", PatNum=AVA)] == [
        (470, -112.5, "[chairside:CS-1:fee] CareCredit"), (471, 200.0, "[chairside:CS-1:refund-1] CareCredit")
    ]
    listed = client.list_ledger_entries(AVA)
    assert [(e.entry_id, e.kind, e.amount, e.type_name, e.note, e.entry_date, e.patient_id) for e in listed] == [
        (payment.entry_id, PAYMENT, D("1137.50"), "CareCredit Payment", "[chairside:CS-1:payment] CareCredit", DAY, AVA),
        (fee.entry_id, ADJUSTMENT, D("-112.50"), "CareCredit Merchant Fee", "[chairside:CS-1:fee] CareCredit", DAY, AVA),
        (refund.entry_id, ADJUSTMENT, D("200.00"), "CareCredit Refund", "[chairside:CS-1:refund-1] CareCredit", DAY, AVA),
    ]
    # The types were read once per category for the three posts, not once per post.
    assert [r["status"] for r in od.requests("GET", "/definitions")] == [200, 200]


@pytest.mark.parametrize("kind, type_name, message", [
    (PAYMENT, "CareCredit Paymnt", 'Open Dental has no payment type "CareCredit Paymnt": add it in Setup > Definitions > Payment Types'),
    (PAYMENT, "Lending Club", 'The Open Dental payment type "Lending Club" is hidden'),
    (ADJUSTMENT, "CareCredit Payment", 'Open Dental has no adjustment type "CareCredit Payment": add it in Setup > Definitions > Adj Types'),
    (ADJUSTMENT, "Senior Discount", 'The Open Dental adjustment type "Senior Discount" is hidden'),
])
def test_a_type_the_office_does_not_have_is_refused_by_name_and_nothing_is_posted(client, od, kind, type_name, message):
    with pytest.raises(PermanentPartnerError, match=message):
        client.post_ledger_entry(entry(kind, "-10.00" if kind == ADJUSTMENT else "10.00", type_name, "[chairside:CS-2]"))
    assert od.requests("POST") == []
    assert client.list_ledger_entries(AVA) == []


def test_a_type_the_office_adds_later_is_found_by_reading_its_types_again(client, od):
    client.post_ledger_entry(entry(PAYMENT, "10.00", "Cash", "[chairside:CS-3:a]"))  # reads the payment types
    od.control("PUT", "/definitions", {"category": "PaymentTypes", "ItemName": "CareCredit Payment 2"})
    made = client.post_ledger_entry(entry(PAYMENT, "20.00", "CareCredit Payment 2", "[chairside:CS-3:b]"))
    assert (made.type_name, made.amount) == ("CareCredit Payment 2", D("20.00"))


@pytest.mark.parametrize("request_, message", [
    (entry(ADJUSTMENT, "112.50", "CareCredit Merchant Fee", "[m]"), "AdjAmt must be negative: CareCredit Merchant Fee is a negative adjustment type"),
    (entry(ADJUSTMENT, "-200.00", "CareCredit Refund", "[m]"), "AdjAmt must be positive: CareCredit Refund is a positive adjustment type"),
    (entry(PAYMENT, "0.00", "CareCredit Payment", "[m]"), "PayAmt cannot be zero"),
    (entry(PAYMENT, "10.005", "CareCredit Payment", "[m]"), "PayAmt is invalid"),
])
def test_open_dental_refuses_an_amount_its_type_does_not_take_and_stores_nothing(client, od, request_, message):
    with pytest.raises(PermanentPartnerError, match=f"Open Dental rejected the {request_.kind}: {message}"):
        client.post_ledger_entry(request_)
    assert client.list_ledger_entries(AVA) == []


def test_a_date_after_the_offices_today_is_refused(client, od):
    future = LedgerEntryRequest(PAYMENT, AVA, AVA, date(2999, 1, 1), D("10.00"), "CareCredit Payment", "[m]")
    with pytest.raises(PermanentPartnerError, match="PayDate cannot be in the future"):
        client.post_ledger_entry(future)
    assert client.list_ledger_entries(AVA) == []


@pytest.mark.parametrize("kind, mode", [(PAYMENT, "drop"), (ADJUSTMENT, "commit_then_error"), (PAYMENT, "hold")])
def test_an_answer_lost_after_the_commit_leaves_the_entry_there_once_found_by_its_marker(client, od, kind, mode):
    fault = {"latency_ms": 1500} if mode == "hold" else {}  # held past the client's 1 s read timeout
    od.fault(method="POST", path_prefix=f"/api/v1/{kind}s", mode=mode, count=1, **fault)
    amount, type_name = ("1137.50", "CareCredit Payment") if kind == PAYMENT else ("-112.50", "CareCredit Merchant Fee")
    marker = f"[chairside:CS-4:{kind}]"
    with pytest.raises(AmbiguousWriteError):
        client.post_ledger_entry(entry(kind, amount, type_name, marker))
    found = [e for e in client.list_ledger_entries(AVA) if marker in e.note]
    assert [(e.kind, e.amount, e.type_name) for e in found] == [(kind, D(amount), type_name)]
    assert len(od.app.store.all(f"{kind}s")) == 1


def test_posting_needs_the_payments_permission_and_nothing_is_stored_without_it(client, od):
    od.control("PUT", "/permissions", {"permissions": ["Read All", "Comm", "PayPlans"]})
    with pytest.raises(PermanentPartnerError, match="needs the Payments permission"):
        client.post_ledger_entry(entry(PAYMENT, "10.00", "CareCredit Payment", "[m]"))
    assert od.app.store.all("payments") == []


def test_the_sandboxs_practice_view_lists_a_cases_postings_by_their_marker(client, od):
    from types import SimpleNamespace

    from sandboxes.opendental.simulation import Practice

    client.post_ledger_entry(entry(PAYMENT, "1137.50", "CareCredit Payment", "[chairside:CS-7/payment]"))
    client.post_ledger_entry(entry(ADJUSTMENT, "-112.50", "CareCredit Merchant Fee", "[chairside:CS-7/merchant_fee]"))
    client.post_ledger_entry(entry(ADJUSTMENT, "-5.00", "Cash Discount", "[chairside:CS-70/merchant_fee]"))
    practice = Practice(SimpleNamespace(pms_base_url=od.api, pms_api_key="sandbox-customer", clinic_ids=(), timezone="America/Boise"))
    assert [(p["kind"], p["amount"], p["type"]) for p in practice.ledger_postings({"reference": "CS-7", "patient_id": AVA})] == [
        ("payment", D("1137.50"), "CareCredit Payment"), ("adjustment", D("-112.50"), "CareCredit Merchant Fee"),
    ]
