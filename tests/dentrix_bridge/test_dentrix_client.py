"""DentrixConnectorClient's error split for failures a real server cannot stage reliably
(a connect timeout, a malformed body), using a stub session in place of requests'."""

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from email.utils import format_datetime

import pytest
import requests

from dentrix_bridge.client import DentrixConnectorClient
from financing.ports import (
    AgreementRequest,
    AmbiguousWriteError,
    Interval,
    LedgerNoteType,
    PermanentPartnerError,
    TransientPartnerError,
)

REQUEST = AgreementRequest(
    guarantor_id="1001",
    agreement_date=date(2025, 3, 1),
    interval=Interval.MONTHLY,
    total_agreed_amount=Decimal("3000.00"),
    down_payment=Decimal("500.00"),
    payment_amount=Decimal("208.34"),
    number_of_payments=12,
    first_payment_due=date(2025, 4, 1),
    annual_finance_charge_pct=Decimal("0"),
    note="[chairside:CS-1]",
)


class StubSession:
    """Records each call and answers with a canned response or exception."""

    def __init__(self, outcome):
        self.outcome = outcome
        self.calls = []

    def request(self, method, url, **kwargs):
        self.calls.append((method, url, kwargs))
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def response(status: int, body: bytes, headers: dict | None = None) -> requests.Response:
    result = requests.Response()
    result.status_code = status
    result._content = body
    result.headers.update(headers or {})
    return result


def client_for(outcome) -> tuple[DentrixConnectorClient, StubSession]:
    session = StubSession(outcome)
    return DentrixConnectorClient("http://connector.test/", "secret-key", session=session), session


def test_every_call_sends_the_key_and_explicit_timeouts():
    client, session = client_for(response(200, b"[]"))
    assert client.list_payment_agreements("10/01") == []
    method, url, kwargs = session.calls[0]
    assert (method, url) == ("GET", "http://connector.test/v1/accounts/10%2F01/payment-agreements")
    assert kwargs["timeout"] == (3.05, 10.0)
    assert kwargs["headers"]["X-API-Key"] == "secret-key"
    assert kwargs["allow_redirects"] is False
    assert "secret-key" not in repr(client)


def test_agreement_body_is_sent_in_wire_format():
    client, session = client_for(requests.exceptions.ConnectTimeout("connect timed out"))
    with pytest.raises(TransientPartnerError):
        client.create_payment_agreement(REQUEST)
    assert session.calls[0][2]["json"] == {
        "agreement_date": "2025-03-01",
        "interval": "monthly",
        "total_agreed_amount": "3000.00",
        "down_payment": "500.00",
        "payment_amount": "208.34",
        "number_of_payments": 12,
        "first_payment_due": "2025-04-01",
        "annual_finance_charge_pct": "0.00",
        "note": "[chairside:CS-1]",
    }


def test_connect_timeout_on_a_create_is_not_ambiguous():
    client, _ = client_for(requests.exceptions.ConnectTimeout("connect timed out"))
    with pytest.raises(TransientPartnerError) as caught:
        client.create_payment_agreement(REQUEST)
    assert type(caught.value) is TransientPartnerError
    assert str(caught.value) == "Dentrix could not be reached within 3.05 s (connect timeout)"


def test_read_timeout_on_a_create_is_ambiguous():
    client, _ = client_for(requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(AmbiguousWriteError) as caught:
        client.create_ledger_note("1001", LedgerNoteType.ACCOUNT, "note")
    assert str(caught.value) == (
        "Dentrix did not answer within 10 s (read timeout); "
        "the ledger note may or may not have been saved: look it up before writing again"
    )


def test_read_timeout_on_a_read_is_transient():
    client, _ = client_for(requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(TransientPartnerError) as caught:
        client.get_patient("1001")
    assert type(caught.value) is TransientPartnerError
    assert str(caught.value) == "Dentrix did not answer within 10 s (read timeout)"


@pytest.mark.parametrize("body, message", [
    (b"<html>Patient Ava Thompson</html>", "Dentrix sent an answer that is not JSON (HTTP 200)"),
    (b'{"patient_id": "1001", "first_name": "Ava"}', "Dentrix's answer for the patient could not be read (contract mismatch)"),
])
def test_unreadable_success_body_on_a_read_is_transient_and_not_echoed(body, message):
    # The kit's rule for every partner (CareCredit's too): a read is retried, then a human looks.
    client, _ = client_for(response(200, body))
    with pytest.raises(TransientPartnerError) as caught:
        client.get_patient("1001")
    assert type(caught.value) is TransientPartnerError
    assert str(caught.value) == message


PATIENT = {
    "patient_id": "1001", "guarantor_id": "1001", "first_name": "Ava", "last_name": "Thompson",
    "birth_date": "1984-03-14", "phone": "312-555-0101", "email": "ava.thompson@example.com",
    "address": {"line1": "101 Maple Avenue", "city": "Springfield", "state": "IL", "zip": "62701"},
}


@pytest.mark.parametrize("clinic_id, expected", [("2", "2"), ("", ""), (None, "")])
def test_the_patients_clinic_is_read_from_the_answer(clinic_id, expected):
    client, _ = client_for(response(200, json.dumps({**PATIENT, "clinic_id": clinic_id}).encode()))
    assert client.get_patient("1001").clinic_id == expected


@pytest.mark.parametrize("extra", [{}, {"clinic_id": 2}, {"clinic_id": ["2"]}])
def test_a_missing_or_non_string_clinic_is_a_contract_mismatch_never_some_clinic(extra):
    client, _ = client_for(response(200, json.dumps({**PATIENT, **extra}).encode()))
    with pytest.raises(TransientPartnerError) as caught:
        client.get_patient("1001")
    assert str(caught.value) == "Dentrix's answer for the patient could not be read (contract mismatch)"


@pytest.mark.parametrize("base_url", ["connector.test", "http://", "ftp://connector.test"])
def test_a_malformed_base_url_fails_at_once_as_permanent(base_url):
    # It used to be retried to the attempt cap as if the connector were down.
    client = DentrixConnectorClient(base_url, "secret-key")
    with pytest.raises(PermanentPartnerError) as caught:
        client.create_payment_agreement(REQUEST)
    assert type(caught.value) is PermanentPartnerError
    assert str(caught.value).startswith("The Dentrix connection settings are invalid (")


def test_unreadable_success_body_on_a_create_is_ambiguous():
    client, _ = client_for(response(201, b'{"agreement_id": "7001"}'))
    with pytest.raises(AmbiguousWriteError) as caught:
        client.create_payment_agreement(REQUEST)
    assert "could not be read" in str(caught.value)


def test_error_body_is_not_echoed_beyond_its_error_message():
    body = b'{"error": "Term cannot be less than 1.", "fields": {"number_of_payments": "Term cannot be less than 1."}, "patient": {"first_name": "Ava"}}'
    client, _ = client_for(response(400, body))
    with pytest.raises(PermanentPartnerError) as caught:
        client.create_payment_agreement(REQUEST)
    assert str(caught.value) == "Dentrix rejected the payment agreement: Term cannot be less than 1."
    assert caught.value.fields == {"number_of_payments": "Term cannot be less than 1."}


def test_non_json_error_body_is_not_echoed():
    client, _ = client_for(response(502, b"<html>Bad gateway for Ava Thompson</html>"))
    with pytest.raises(TransientPartnerError) as caught:
        client.get_patient("1001")
    assert str(caught.value) == "Dentrix is unavailable (HTTP 502)"


def test_retry_after_as_an_http_date():
    when = datetime.now(timezone.utc) + timedelta(seconds=120)
    client, _ = client_for(response(503, b"{}", {"Retry-After": format_datetime(when, usegmt=True)}))
    with pytest.raises(TransientPartnerError) as caught:
        client.get_patient("1001")
    assert 115 <= caught.value.retry_after <= 120


def test_unparsable_retry_after_is_ignored():
    client, _ = client_for(response(429, b"{}", {"Retry-After": "soon"}))
    with pytest.raises(TransientPartnerError) as caught:
        client.get_patient("1001")
    assert caught.value.retry_after is None
    assert caught.value.status == 429


def test_a_redirect_is_permanent():
    client, _ = client_for(response(302, b"", {"Location": "http://elsewhere.test/"}))
    with pytest.raises(PermanentPartnerError) as caught:
        client.get_patient("1001")
    assert caught.value.status == 302
