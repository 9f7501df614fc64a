"""The partner kit's one classification, row by row: what every partner client raises for
each transport failure and each HTTP status, on a read and on a write."""

import json
from datetime import datetime, timezone

import pytest
import requests
from http.client import RemoteDisconnected
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from financing.ports import (
    AmbiguousWriteError,
    NotFoundError,
    PermanentPartnerError,
    TransientPartnerError,
)
from partner_http import Partner, PartnerConnection, retry_after_seconds, status_error, transport_error

ACME = Partner(name="Acme", error_detail=lambda body: (body.get("error", ""), body.get("fields", {})))
WHAT = "the widget"
LOOK_UP = "; the widget may or may not have been saved: look it up before writing again"
READ, WRITE = False, True


def refused():
    return requests.exceptions.ConnectionError(MaxRetryError(None, "/", NewConnectionError(None, "refused")))


def dropped():
    return requests.exceptions.ConnectionError(ProtocolError("Connection aborted.", RemoteDisconnected("closed")))


INVALID = "The Acme connection settings are invalid ({}); check the base URL"

TRANSPORT = [
    # (exception, is_write, error type, message)
    (requests.exceptions.ConnectTimeout(), READ, TransientPartnerError,
     "Acme could not be reached within 3 s (connect timeout)"),
    (requests.exceptions.ConnectTimeout(), WRITE, TransientPartnerError,
     "Acme could not be reached within 3 s (connect timeout)"),
    (refused(), READ, TransientPartnerError, "Acme could not be reached (connection refused or unknown host)"),
    (refused(), WRITE, TransientPartnerError, "Acme could not be reached (connection refused or unknown host)"),
    (requests.exceptions.ReadTimeout(), READ, TransientPartnerError, "Acme did not answer within 10 s (read timeout)"),
    (requests.exceptions.ReadTimeout(), WRITE, AmbiguousWriteError,
     "Acme did not answer within 10 s (read timeout)" + LOOK_UP),
    (dropped(), READ, TransientPartnerError, "Acme closed the connection without answering"),
    (dropped(), WRITE, AmbiguousWriteError, "Acme closed the connection without answering" + LOOK_UP),
    (requests.exceptions.ChunkedEncodingError(), READ, TransientPartnerError, "Acme sent an incomplete answer"),
    (requests.exceptions.ChunkedEncodingError(), WRITE, AmbiguousWriteError, "Acme sent an incomplete answer" + LOOK_UP),
    # A TLS failure is not provably before sending: treated as sent, never as safe to repeat.
    (requests.exceptions.SSLError(), READ, TransientPartnerError, "Acme closed the connection without answering"),
    (requests.exceptions.SSLError(), WRITE, AmbiguousWriteError, "Acme closed the connection without answering" + LOOK_UP),
    (requests.exceptions.TooManyRedirects(), WRITE, AmbiguousWriteError,
     "The call to Acme failed (TooManyRedirects)" + LOOK_UP),
    (requests.exceptions.InvalidURL(), READ, PermanentPartnerError, INVALID.format("InvalidURL")),
    (requests.exceptions.InvalidURL(), WRITE, PermanentPartnerError, INVALID.format("InvalidURL")),
    (requests.exceptions.MissingSchema(), READ, PermanentPartnerError, INVALID.format("MissingSchema")),
    (requests.exceptions.MissingSchema(), WRITE, PermanentPartnerError, INVALID.format("MissingSchema")),
    (requests.exceptions.InvalidSchema(), READ, PermanentPartnerError, INVALID.format("InvalidSchema")),
    (requests.exceptions.InvalidSchema(), WRITE, PermanentPartnerError, INVALID.format("InvalidSchema")),
]


@pytest.mark.parametrize("exc, is_write, error_type, message", TRANSPORT)
def test_transport_failures(exc, is_write, error_type, message):
    error = transport_error(ACME, exc, what=WHAT, is_write=is_write, connect_timeout=3, read_timeout=10)
    assert type(error) is error_type
    assert str(error) == message
    assert error.status is None


def answer(status, body=b"", headers=None):
    response = requests.Response()
    response.status_code = status
    response._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response.headers.update(headers or {})
    return response


PAST = "Wed, 21 Oct 2015 07:28:00 GMT"
DOWN = {"error": "Down for maintenance."}
BAD = {"error": "Size must be  S, M or L.", "fields": {"size": "Must be S, M or L.", "note": "x" * 400}}

STATUSES = [
    # (status, Retry-After, body, is_write, error type, retry_after, message)
    (200, None, b"{}", READ, None, None, None),
    (201, None, b"{}", WRITE, None, None, None),
    (429, "7", b"", READ, TransientPartnerError, 7.0, "Acme is limiting our request rate (HTTP 429); it asked us to retry in 7 s"),
    # Refused before any work: not ambiguous even for a write.
    (429, "7", b"", WRITE, TransientPartnerError, 7.0, "Acme is limiting our request rate (HTTP 429); it asked us to retry in 7 s"),
    (429, "soon", b"", READ, TransientPartnerError, None, "Acme is limiting our request rate (HTTP 429)"),
    (429, PAST, b"", READ, TransientPartnerError, 0.0, "Acme is limiting our request rate (HTTP 429); it asked us to retry in 0 s"),
    (503, "2.5", DOWN, READ, TransientPartnerError, 2.5,
     "Acme is unavailable (HTTP 503): Down for maintenance; it asked us to retry in 2.5 s"),
    (503, "2", DOWN, WRITE, AmbiguousWriteError, 2.0,
     "Acme is unavailable (HTTP 503): Down for maintenance; it asked us to retry in 2 s" + LOOK_UP),
    (503, "-5", b"", READ, TransientPartnerError, 0.0, "Acme is unavailable (HTTP 503); it asked us to retry in 0 s"),
    (500, None, b"<html>stack trace</html>", READ, TransientPartnerError, None, "Acme is unavailable (HTTP 500)"),
    (500, None, b"<html>stack trace</html>", WRITE, AmbiguousWriteError, None, "Acme is unavailable (HTTP 500)" + LOOK_UP),
    (502, None, b"", WRITE, AmbiguousWriteError, None, "Acme is unavailable (HTTP 502)" + LOOK_UP),
    (401, None, {"error": "bad key"}, READ, PermanentPartnerError, None,
     "Acme refused Chairside's credentials (HTTP 401); check this location's Acme connection settings"),
    (403, None, b"", WRITE, PermanentPartnerError, None,
     "Acme refused Chairside's credentials (HTTP 403); check this location's Acme connection settings"),
    (404, None, b"", READ, NotFoundError, None, "Acme could not find the widget (HTTP 404)"),
    (404, None, {"error": "No widget 7."}, WRITE, NotFoundError, None, "Acme could not find the widget (HTTP 404): No widget 7."),
    (400, None, BAD, WRITE, PermanentPartnerError, None, "Acme rejected the widget: Size must be S, M or L."),
    (409, None, b"", READ, PermanentPartnerError, None, "Acme rejected the widget (HTTP 409)"),
    (422, None, [1, 2], WRITE, PermanentPartnerError, None, "Acme rejected the widget (HTTP 422)"),
    # An error page nested past any parser's recursion: no detail, and no RecursionError.
    (400, None, b"[" * 100_000 + b"]" * 100_000, WRITE, PermanentPartnerError, None, "Acme rejected the widget (HTTP 400)"),
    # Redirects are never followed: a read gets the same again, a write may have been done.
    (302, None, b"", READ, PermanentPartnerError, None, "Acme sent an unexpected answer (HTTP 302); check the base URL"),
    (303, None, b"", WRITE, AmbiguousWriteError, None,
     "Acme sent an unexpected answer (HTTP 303); check the base URL" + LOOK_UP),
]


@pytest.mark.parametrize("status, retry_after_header, body, is_write, error_type, retry_after, message", STATUSES)
def test_statuses(status, retry_after_header, body, is_write, error_type, retry_after, message):
    headers = {"Retry-After": retry_after_header} if retry_after_header else {}
    error = status_error(ACME, answer(status, body, headers), what=WHAT, is_write=is_write)
    if error_type is None:
        assert error is None
        return
    assert type(error) is error_type
    assert str(error) == message
    assert error.status == status
    assert getattr(error, "retry_after", None) == retry_after


def test_a_rejection_carries_the_partners_field_messages_trimmed():
    error = status_error(ACME, answer(400, BAD), what=WHAT, is_write=True)
    assert error.fields == {"size": "Must be S, M or L.", "note": "x" * 299 + "…"}


@pytest.mark.parametrize("value, seconds", [
    ("120", 120.0),
    (" 2.5 ", 2.5),
    ("Wed, 21 Oct 2026 07:30:00 GMT", 120.0),
    (PAST, 0.0),
    ("-3", 0.0),
    ("soon", None),
    ("nan", None),
    ("", None),
    (None, None),
])
def test_retry_after_in_seconds_or_as_an_http_date(value, seconds):
    now = datetime(2026, 10, 21, 7, 28, tzinfo=timezone.utc)
    assert retry_after_seconds(value, now=now) == seconds


class NoNetwork:
    def request(self, *args, **kwargs):
        raise AssertionError("nothing may be sent")


@pytest.mark.parametrize("base_url, error_name", [
    ("acme.test", "MissingSchema"),
    ("http://", "InvalidURL"),
    ("ftp://acme.test", "InvalidSchema"),
])
def test_a_malformed_base_url_fails_at_once_and_is_never_retried(base_url, error_name):
    connection = PartnerConnection(ACME, base_url, connect_timeout=3, read_timeout=10)
    with pytest.raises(PermanentPartnerError) as caught:
        connection.send("POST", "/v1/widgets", what=WHAT, is_write=True, json={})
    assert type(caught.value) is PermanentPartnerError
    assert str(caught.value) == INVALID.format(error_name)


@pytest.mark.parametrize("body, is_write, error_type, message", [
    (b'{"amount": 12.30}', READ, None, None),
    (b"<html>proxy</html>", READ, TransientPartnerError, "Acme sent an answer that is not JSON (HTTP 200)"),
    (b"<html>proxy</html>", WRITE, AmbiguousWriteError,
     "Acme accepted the widget but its answer could not be read (not JSON)" + LOOK_UP),
    # Nested past any parser's recursion (core.inbound's limit): not JSON we read, and no
    # RecursionError escaping into the worker.
    (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, READ, TransientPartnerError, "Acme sent an answer that is not JSON (HTTP 200)"),
    (b"[" * 100_000 + b"]" * 100_000, WRITE, AmbiguousWriteError,
     "Acme accepted the widget but its answer could not be read (not JSON)" + LOOK_UP),
])
def test_a_2xx_body_that_cannot_be_read(body, is_write, error_type, message):
    connection = PartnerConnection(ACME, "http://acme.test", connect_timeout=3, read_timeout=10, session=NoNetwork())
    if error_type is None:
        assert str(connection.json(answer(200, body), what=WHAT, is_write=is_write)["amount"]) == "12.30"
        return
    with pytest.raises(error_type) as caught:
        connection.json(answer(200, body), what=WHAT, is_write=is_write)
    assert type(caught.value) is error_type
    assert str(caught.value) == message
