"""Chairside's client for a Dentrix connector (the HTTP contract in CONTRACT.md).

Implements `financing.ports.PracticeManagementSystem`. What matters most here is the
error split, because the callers' reliability promises depend on it:

- Nothing was sent (connection refused, DNS failure, connect timeout): the partner
  cannot have acted, so it is a plain `TransientPartnerError`, safe to retry.
- A *create* was sent and then the answer was lost or was a 5xx (read timeout, dropped
  connection, 5xx): the write may have been committed. That is `AmbiguousWriteError`,
  and the caller must look the record up (by its reference marker) before writing again.
- Reads that fail the same way are simply transient: reading twice is harmless.
- 429 is transient (the connector did not do the work); Retry-After is passed on.
- 404 is `NotFoundError`; 401/403, 409 and other 4xx are `PermanentPartnerError`,
  carrying the connector's one-line message and its per-field messages.

Error messages are written for a billing clerk and never carry patient data: they hold
ids, HTTP statuses, timeouts and the connector's own error message (which the contract
forbids from holding PHI) and nothing else from a request or response body. Log lines
name the method, the path (ids only), the status and the elapsed milliseconds.

The client does not validate an agreement before sending it: the connector is the
authority, and Chairside calls `rules.validate_agreement` itself when it builds one.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from datetime import datetime, timezone
from typing import Any, Callable, TypeVar
from urllib.parse import quote

import requests
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from financing.http import session_for
from financing.ports import (
    Agreement,
    AgreementRequest,
    AmbiguousWriteError,
    LedgerNoteRecord,
    LedgerNoteType,
    NotFoundError,
    Patient,
    PermanentPartnerError,
    TransientPartnerError,
    TreatmentPlan,
)

from . import wire

log = logging.getLogger(__name__)

T = TypeVar("T")

# The connector's own message is shown to clerks; cap it so a misbehaving connector
# cannot put a whole page (or a body) into an error.
MAX_SERVER_MESSAGE = 300
USER_AGENT = "chairside-dentrix-client/1"


class DentrixConnectorClient:
    """One practice's Dentrix connector, reached over HTTP with an API key."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        session: requests.Session | None = None,
        before_request: Callable[[], object] | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.session = session or session_for(self.base_url)
        # Called before every request (Chairside's per-connection rate limit). It may
        # sleep, or raise a TransientPartnerError, in which case nothing is sent.
        self.before_request = before_request

    def __repr__(self) -> str:  # never the key
        return f"DentrixConnectorClient({self.base_url!r})"

    # --- reads --------------------------------------------------------------------------

    def get_patient(self, patient_id: str) -> Patient:
        data = self._call("GET", f"/v1/patients/{_seg(patient_id)}", what="patient")
        return self._parse("patient", lambda: wire.patient_from_json(data))

    def get_treatment_plans(self, patient_id: str) -> list[TreatmentPlan]:
        data = self._call("GET", f"/v1/patients/{_seg(patient_id)}/treatment-plans", what="treatment plans")
        return self._parse("treatment plans", lambda: [wire.treatment_plan_from_json(p) for p in _array(data)])

    def list_payment_agreements(self, guarantor_id: str) -> list[Agreement]:
        data = self._call(
            "GET", f"/v1/accounts/{_seg(guarantor_id)}/payment-agreements", what="payment agreements"
        )
        return self._parse("payment agreements", lambda: [wire.agreement_from_json(a) for a in _array(data)])

    def list_ledger_notes(self, patient_id: str) -> list[LedgerNoteRecord]:
        data = self._call("GET", f"/v1/patients/{_seg(patient_id)}/ledger-notes", what="ledger notes")
        return self._parse("ledger notes", lambda: [wire.ledger_note_from_json(n) for n in _array(data)])

    # --- writes -------------------------------------------------------------------------

    def create_payment_agreement(self, request: AgreementRequest) -> Agreement:
        """Raises AmbiguousWriteError when the agreement may exist despite the error."""
        data = self._call(
            "POST",
            f"/v1/accounts/{_seg(request.guarantor_id)}/payment-agreements",
            what="payment agreement",
            body=wire.agreement_request_to_json(request),
        )
        return self._parse("payment agreement", lambda: wire.agreement_from_json(data), write=True)

    def create_ledger_note(self, patient_id: str, type: LedgerNoteType, text: str) -> LedgerNoteRecord:
        """Raises AmbiguousWriteError when the note may exist despite the error."""
        data = self._call(
            "POST",
            f"/v1/patients/{_seg(patient_id)}/ledger-notes",
            what="ledger note",
            body={"type": str(type), "text": text},
        )
        return self._parse("ledger note", lambda: wire.ledger_note_from_json(data), write=True)

    # --- the one place that talks HTTP --------------------------------------------------

    def _call(self, method: str, path: str, *, what: str, body: dict | None = None) -> Any:
        """Send one request; return the decoded JSON of a 2xx or raise a partner error."""
        is_write = method != "GET"
        if self.before_request is not None:
            self.before_request()
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                self.base_url + path,
                json=body,
                headers={"X-API-Key": self.api_key, "Accept": "application/json", "User-Agent": USER_AGENT},
                timeout=(self.connect_timeout, self.read_timeout),
                # A redirect is not part of the contract; following one would turn a
                # POST into a GET behind our back.
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            elapsed_ms = _ms_since(started)
            log.warning("dentrix %s %s failed: %s after %d ms", method, path, type(exc).__name__, elapsed_ms)
            raise self._transport_error(exc, what=what, is_write=is_write) from exc

        elapsed_ms = _ms_since(started)
        status = response.status_code
        log.info("dentrix %s %s -> %d in %d ms", method, path, status, elapsed_ms)
        if 200 <= status < 300:
            try:
                return response.json()
            except ValueError:
                return _UNREADABLE
        raise self._status_error(response, what=what, is_write=is_write)

    def _transport_error(self, exc: requests.RequestException, *, what: str, is_write: bool) -> Exception:
        if _nothing_was_sent(exc):
            if isinstance(exc, requests.exceptions.ConnectTimeout):
                return TransientPartnerError(
                    f"Could not connect to the Dentrix connector within {self.connect_timeout:g} s."
                )
            return TransientPartnerError(
                "Could not connect to the Dentrix connector (connection refused or host unreachable)."
            )
        if isinstance(exc, requests.exceptions.Timeout):
            problem = f"Dentrix connector did not answer within {self.read_timeout:g} s"
        elif isinstance(exc, requests.exceptions.ConnectionError):
            problem = "Dentrix connector closed the connection without answering"
        else:
            problem = f"Dentrix connector call failed ({type(exc).__name__})"
        if is_write:
            return AmbiguousWriteError(f"{problem} after the {what} was sent. {_LOOK_UP_FIRST}")
        return TransientPartnerError(f"{problem}.")

    def _status_error(self, response: requests.Response, *, what: str, is_write: bool) -> Exception:
        status = response.status_code
        message, fields = _server_message(response)
        detail = f": {message}" if message else "."

        if status == 429:
            return TransientPartnerError(
                f"Dentrix connector is limiting requests (HTTP 429){detail}",
                status=status,
                retry_after=_retry_after(response),
            )
        if status >= 500:
            retry_after = _retry_after(response)
            if is_write:
                return AmbiguousWriteError(
                    f"Dentrix connector failed (HTTP {status}) after the {what} was sent. {_LOOK_UP_FIRST}",
                    status=status,
                    retry_after=retry_after,
                )
            return TransientPartnerError(
                f"Dentrix connector failed (HTTP {status}){detail}", status=status, retry_after=retry_after
            )
        if status in (401, 403):
            return PermanentPartnerError(
                f"Dentrix connector refused Chairside's API key (HTTP {status}). "
                "Check this location's Dentrix connection settings.",
                status=status,
            )
        if status == 404:
            return NotFoundError(message or f"The {what} was not found in Dentrix (HTTP 404).", status=status)
        if is_write and 400 <= status < 500:
            return PermanentPartnerError(
                f"Dentrix rejected the {what}{detail}", status=status, fields=fields
            )
        return PermanentPartnerError(
            f"Dentrix connector refused the request for {what} (HTTP {status}){detail}",
            status=status,
            fields=fields,
        )

    def _parse(self, what: str, build: Callable[[], T], *, write: bool = False) -> T:
        """Turn a 2xx body into dataclasses; a body that does not fit the contract is
        reported without being echoed. After a write the record probably exists, so it
        is ambiguous rather than permanent."""
        try:
            return build()
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            log.warning("dentrix response for %s does not match the contract: %s", what, type(exc).__name__)
            if write:
                raise AmbiguousWriteError(
                    f"Dentrix connector accepted the {what} but its answer could not be read. {_LOOK_UP_FIRST}"
                ) from None
            raise PermanentPartnerError(
                f"Dentrix connector sent {what} in a form Chairside cannot read (contract mismatch)."
            ) from None


_LOOK_UP_FIRST = "It may or may not have been saved: look it up before writing again."

# Sentinel for a 2xx whose body is not JSON; the parsers fail on it like on any bad shape.
_UNREADABLE = object()


def _seg(value: str) -> str:
    """One URL path segment: an id can never add a slash or a query to the path."""
    return quote(str(value), safe="")


def _array(data: Any) -> list:
    if not isinstance(data, list):
        raise TypeError("expected a JSON array")
    return data


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _nothing_was_sent(exc: requests.RequestException) -> bool:
    """True only when the request provably never reached the connector.

    requests reports a refused connection and a connection dropped mid-answer with the
    same ConnectionError; the urllib3 cause tells them apart. Anything not provably
    unsent counts as sent, because guessing "unsent" wrongly would allow a blind retry
    of a write that happened.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(exc, requests.exceptions.SSLError):
        cause = exc.args[0] if exc.args else None
        if isinstance(cause, MaxRetryError):
            cause = cause.reason
        # NewConnectionError covers refused, unreachable and DNS failures.
        return isinstance(cause, (NewConnectionError, ConnectTimeoutError))
    return False


def _server_message(response: requests.Response) -> tuple[str, dict[str, str]]:
    """The connector's {"error", "fields"} and nothing else from the body."""
    try:
        body = response.json()
    except ValueError:
        return "", {}
    if not isinstance(body, dict):
        return "", {}
    message = body.get("error")
    message = _clean(message) if isinstance(message, str) else ""
    fields_raw = body.get("fields")
    fields = {}
    if isinstance(fields_raw, dict):
        fields = {_clean(str(k)): _clean(str(v)) for k, v in list(fields_raw.items())[:50]}
    return message, fields


def _clean(text: str) -> str:
    one_line = " ".join(text.split())
    if len(one_line) > MAX_SERVER_MESSAGE:
        one_line = one_line[: MAX_SERVER_MESSAGE - 1] + "…"
    return one_line


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
