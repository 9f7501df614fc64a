"""The CareCredit sandbox: a real HTTP server that behaves like the CareCredit API.

It is a first-class implementation of the contract `carecredit_bridge.client` speaks,
not a mock: a Werkzeug WSGI app with its own in-memory store, served by Werkzeug's
threaded server, with OAuth2 tokens, validation errors, deterministic decisions, signed
webhooks and a control API to inject faults. The demo setup and the integration tests
talk to it over HTTP exactly as production talks to CareCredit.

Run it::

    python -m carecredit_bridge.sandbox --host 127.0.0.1 --port 8101

It prints one line with its URL and serves until SIGINT or SIGTERM. From tests::

    sandbox = serve_in_thread(port=0, decision_delay=0.2, pending_delay=0.4)
    ...  # sandbox.base_url, sandbox.app (state and control methods)
    sandbox.stop()

Configuration (keyword arguments of `serve_in_thread` / `SandboxApp`, which win over the
environment variable in parentheses, which wins over the default):

- ``host`` (CARECREDIT_SANDBOX_HOST, "127.0.0.1") and ``port``
  (CARECREDIT_SANDBOX_PORT, 8101): where ``python -m`` listens.
- ``client_id`` (CARECREDIT_SANDBOX_CLIENT_ID, "chairside-sandbox") and
  ``client_secret`` (CARECREDIT_SANDBOX_CLIENT_SECRET, "sandbox-secret"): the only
  OAuth2 client the token endpoint accepts.
- ``webhook_secret`` (CARECREDIT_SANDBOX_WEBHOOK_SECRET, "whsec_sandbox"): signs
  webhooks (see `carecredit_bridge.signing`).
- ``decision_delay`` (CARECREDIT_SANDBOX_DECISION_DELAY, 2.0 s): how long the simulated
  patient takes to complete the hosted application after it is created.
- ``pending_delay`` (CARECREDIT_SANDBOX_PENDING_DELAY, 5.0 s): how long a PENDING
  persona stays pending before it is approved.
- ``reduced_apr`` (CARECREDIT_SANDBOX_APR, "17.90"): APR of the reduced-APR promotions.
- ``token_ttl`` (CARECREDIT_SANDBOX_TOKEN_TTL, 3600 s): lifetime of an access token.
- ``public_url`` (CARECREDIT_SANDBOX_PUBLIC_URL, the server's own base URL): used to
  build ``apply_url`` when the sandbox sits behind another host name.
- ``webhook_duplicates`` (0) and ``webhook_reorder`` (False): see Webhooks; set at run
  time through ``PUT /_sandbox/config``.
- ``webhook_concurrency`` (CARECREDIT_SANDBOX_WEBHOOK_CONCURRENCY, 1): how many webhook
  POSTs are in flight at once (more than one, like the real service under load; order
  between applications is then not kept).

Decisions are deterministic, from the applicant's surname (case-insensitive prefix):

- ``DECLINE…`` -> DECLINED
- ``PENDING…`` -> PENDING, then APPROVED for the requested amount after pending_delay
- ``PARTIAL…`` -> APPROVED for 60% of the requested amount (rounded half-up to the cent)
- ``REFER…``   -> REFERRED, and stays referred
- ``EXPIRE…``  -> never decided: stays APPLICATION_SENT forever
- anyone else  -> APPROVED for the requested amount

The patient "completes" the application decision_delay seconds after it was created.
Status is computed lazily from timestamps (no timer per application); the delays and
the APR are captured when the application is created, so changing the configuration
later never moves an existing application backwards. credit_limit is the approved
amount rounded up to a multiple of $500. An approved application offers the
promotions its approved amount qualifies for: deferred interest 6/12/18/24 months from
$200 (APR 0.00) and reduced APR 24/36/48/60 months from $1,000.

API (``Authorization: Bearer <token>`` on every /v1/ endpoint except the token one):

- ``POST /v1/oauth2/token`` (form: grant_type=client_credentials, client_id,
  client_secret) -> ``{access_token, token_type, expires_in}``; 401 invalid_client.
- ``POST /v1/applications`` -> 201 application; 400 ``{"error": "validation_failed",
  "fields": {"applicant.address.zip": "must be 5 digits", ...}}``. With an
  ``Idempotency-Key`` header, the same key and merchant return the first application
  (200); the same key with a different body is a 409.
- ``GET /v1/applications/<id>`` -> the application and its decision; 404 not_found.
- ``GET /v1/applications?merchant_number=&updated_since=&limit=&cursor=`` -> ``{"applications":
  [...], "next_cursor", "as_of"}``: the merchant's applications whose status changed at or
  after ``updated_since`` (ISO 8601; all of them without it), oldest change first, ``limit``
  per page (default 100, at most 500). The listing is a snapshot at ``as_of``: later pages
  (``cursor`` = the previous page's ``next_cursor``, null on the last page) show the same
  moment, and a change after ``as_of`` is left for the next listing.
- ``GET /v1/promotions?merchant_number=&amount=`` -> JSON array of promotions.
- ``GET /apply/<id>``: the hosted apply page (says the patient is simulated; status only).

Webhooks: one dispatcher thread looks every 100 ms (and at once when an application is
created or forced) for applications whose status moved
(every step: the intermediate PENDING as well as the final decision) and POSTs
``{"event_id", "type": "application.status_changed", "application_id", "status",
"created"}`` to the application's callback_url, signed in the ``CareCredit-Signature``
header. Delivery is at least once: a non-2xx answer or a connection error is retried
after 0.5 s, 1 s, 2 s, 4 s, 8 s (6 attempts in all) with the same event id and body,
re-signed with a fresh timestamp. ``webhook_duplicates = N`` sends every event N extra
times; ``webhook_reorder = true`` holds an application's events until it reaches its
last status and releases each dispatch batch in reverse order (so a PENDING persona's
APPROVED arrives before its PENDING). Every attempt is recorded.

Control API (no auth; never expose the sandbox beyond a test machine):

- ``GET /_sandbox/health``: ``{"ok": true}``.
- ``POST /_sandbox/reset``: clear applications, tokens, faults, logs, pending webhooks,
  and restore the configuration the sandbox started with.
- ``GET /_sandbox/applications``: JSON array of every application with its current
  status, persona and callback_url.
- ``POST /_sandbox/applications/<id>/status`` ``{"status": "ON_HOLD"}``: force a raw
  status from now on (for unknown-status and EXPIRED tests).
- ``GET /_sandbox/requests``: JSON array of ``{method, path, status, fault}``, one per
  /v1/ request (the token endpoint included); ``status`` is null for a dropped
  connection, because the client never received one.
- ``GET /_sandbox/webhooks``: JSON array of every webhook delivery attempt:
  ``{event_id, application_id, status, copy, attempt, status_code, error, at}``
  (``status_code`` null and ``error`` the exception name when the POST failed).
- ``GET|PUT /_sandbox/config``: decision_delay, pending_delay, apr,
  webhook_duplicates, webhook_reorder, token_ttl.
- ``POST /_sandbox/revoke-tokens``: invalidate every issued token.
- ``GET|POST|DELETE /_sandbox/faults``: list, add or clear faults. A fault is
  ``{"method": "GET"|"POST"|"*", "path_prefix": "/v1/applications", "mode":
  "error"|"latency"|"timeout"|"drop", "status": 503, "retry_after": 2,
  "latency_ms": 500, "count": 1}`` and applies to /v1/ paths only, to the next
  ``count`` matching requests (``"count": null`` = until cleared). Modes: ``error``
  answers ``status`` (default 503, with Retry-After if given) without doing the work;
  ``latency`` sleeps latency_ms (default 500) then serves; ``timeout`` sleeps
  latency_ms (default 30000) then serves; ``drop`` does the work (commits) and then
  closes the connection without answering.

Every error is JSON; an unexpected exception is logged and answered with a JSON 500.
The sandbox keeps only what it needs to decide (the persona, not the applicant's
demographics) and never logs request bodies.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import html
import json
import logging
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import requests
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from carecredit_bridge import signing

__all__ = [
    "RunningSandbox",
    "SandboxApp",
    "SandboxConfig",
    "main",
    "persona_for",
    "promotions_for",
    "serve_in_thread",
    "validate_application",
]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8101

# Raw statuses, upper case as CareCredit sends them.
APPLICATION_SENT = "APPLICATION_SENT"
PENDING = "PENDING"
REFERRED = "REFERRED"
APPROVED = "APPROVED"
DECLINED = "DECLINED"

CENT = Decimal("0.01")
DEFERRED_MONTHS = (6, 12, 18, 24)
DEFERRED_MIN_PURCHASE = Decimal("200.00")
REDUCED_APR_MONTHS = (24, 36, 48, 60)
REDUCED_APR_MIN_PURCHASE = Decimal("1000.00")
PARTIAL_SHARE = Decimal("0.60")
CREDIT_LIMIT_STEP = Decimal("500")

WEBHOOK_POLL_INTERVAL = 0.1  # seconds between dispatcher passes
WEBHOOK_MAX_ATTEMPTS = 6
WEBHOOK_FIRST_BACKOFF = 0.5  # seconds; doubles after every failed attempt
# Short, so that one hanging receiver delays the single dispatcher thread only briefly.
WEBHOOK_TIMEOUT = (1.0, 3.0)
WEBHOOK_EVENT_TYPE = "application.status_changed"

MAX_BODY_BYTES = 64 * 1024
LIST_DEFAULT_LIMIT = 100
LIST_MAX_LIMIT = 500
FAULT_MODES = ("error", "latency", "timeout", "drop")
DEFAULT_LATENCY_MS = {"latency": 500, "timeout": 30000}

_AMOUNT_RE = re.compile(r"^\d{1,9}(\.\d{1,2})?$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_STATE_RE = re.compile(r"^[A-Za-z]{2}$")
_ZIP_RE = re.compile(r"^\d{5}$")


# --- configuration ------------------------------------------------------------------------


@dataclass
class SandboxConfig:
    """Everything that makes one sandbox differ from another. See the module docstring."""

    client_id: str = "chairside-sandbox"
    client_secret: str = "sandbox-secret"
    webhook_secret: str = "whsec_sandbox"
    decision_delay: float = 2.0
    pending_delay: float = 5.0
    reduced_apr: Decimal = Decimal("17.90")
    token_ttl: int = 3600
    public_url: str | None = None
    webhook_duplicates: int = 0
    webhook_reorder: bool = False
    webhook_concurrency: int = 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> SandboxConfig:
        """Defaults, then CARECREDIT_SANDBOX_* variables, then `overrides` (None = not given)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, (env_name, parse) in _ENV_SETTINGS.items():
            raw = environ.get(env_name)
            if raw not in (None, ""):
                try:
                    values[name] = parse(raw)
                except (ValueError, InvalidOperation):
                    raise ValueError(f"{env_name} has an invalid value") from None
        unknown = set(overrides) - set(cls.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown sandbox settings: {', '.join(sorted(unknown))}")
        values.update({name: value for name, value in overrides.items() if value is not None})
        if "reduced_apr" in values:
            values["reduced_apr"] = Decimal(str(values["reduced_apr"])).quantize(CENT)
        return cls(**values)


_ENV_SETTINGS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "client_id": ("CARECREDIT_SANDBOX_CLIENT_ID", str),
    "client_secret": ("CARECREDIT_SANDBOX_CLIENT_SECRET", str),
    "webhook_secret": ("CARECREDIT_SANDBOX_WEBHOOK_SECRET", str),
    "decision_delay": ("CARECREDIT_SANDBOX_DECISION_DELAY", float),
    "pending_delay": ("CARECREDIT_SANDBOX_PENDING_DELAY", float),
    "reduced_apr": ("CARECREDIT_SANDBOX_APR", Decimal),
    "token_ttl": ("CARECREDIT_SANDBOX_TOKEN_TTL", int),
    "public_url": ("CARECREDIT_SANDBOX_PUBLIC_URL", str),
    "webhook_concurrency": ("CARECREDIT_SANDBOX_WEBHOOK_CONCURRENCY", int),
}


# --- decisions (pure) ---------------------------------------------------------------------


def persona_for(surname: str) -> str:
    """The scripted outcome for an applicant's surname: decline, pending, partial, refer, expire or approve."""
    upper = surname.strip().upper()
    for prefix in ("DECLINE", "PENDING", "PARTIAL", "REFER", "EXPIRE"):
        if upper.startswith(prefix):
            return prefix.lower()
    return "approve"


def approved_amount_for(persona: str, requested: Decimal) -> Decimal:
    if persona == "partial":
        return (requested * PARTIAL_SHARE).quantize(CENT, rounding=ROUND_HALF_UP)
    return requested


def credit_limit_for(approved: Decimal) -> Decimal:
    """The approved amount rounded up to the next multiple of $500 (an exact multiple stays)."""
    steps = (approved / CREDIT_LIMIT_STEP).to_integral_value(rounding=ROUND_CEILING)
    return (steps * CREDIT_LIMIT_STEP).quantize(CENT)


def promotions_for(amount: Decimal, reduced_apr: Decimal) -> list[dict[str, Any]]:
    """The promotions (wire format) a purchase of `amount` qualifies for."""
    promotions: list[dict[str, Any]] = []
    if amount >= DEFERRED_MIN_PURCHASE:
        for months in DEFERRED_MONTHS:
            promotions.append({
                "code": f"DI{months}",
                "type": "DEFERRED_INTEREST",
                "months": months,
                "apr": "0.00",
                "min_purchase": _money(DEFERRED_MIN_PURCHASE),
            })
    if amount >= REDUCED_APR_MIN_PURCHASE:
        for months in REDUCED_APR_MONTHS:
            promotions.append({
                "code": f"RA{months}",
                "type": "REDUCED_APR",
                "months": months,
                "apr": _money(reduced_apr),
                "min_purchase": _money(REDUCED_APR_MIN_PURCHASE),
            })
    return promotions


def validate_application(body: Any) -> dict[str, str]:
    """Field errors of a create-application body, ``{"field.path": "message"}``; empty if valid.

    Messages describe the rule, never the value: they travel back to the client and may
    end up in an error a billing clerk reads, so they must not echo PHI.
    """
    errors: dict[str, str] = {}
    if not isinstance(body, dict):
        return {"body": "must be a JSON object"}

    for name in ("merchant_number", "reference"):
        if not _non_empty_str(body.get(name)):
            errors[name] = "is required"

    amount = body.get("requested_amount")
    if not isinstance(amount, str) or not _AMOUNT_RE.match(amount):
        errors["requested_amount"] = 'must be a decimal string with at most 2 decimal places, e.g. "1234.00"'
    elif Decimal(amount) <= 0:
        errors["requested_amount"] = "must be greater than 0.00"

    callback_url = body.get("callback_url")
    if callback_url not in (None, ""):
        parts = urlsplit(callback_url) if isinstance(callback_url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            errors["callback_url"] = "must be an http or https URL"

    applicant = body.get("applicant")
    if not isinstance(applicant, dict):
        errors["applicant"] = "is required"
        return errors
    for name in ("first_name", "last_name"):
        if not _non_empty_str(applicant.get(name)):
            errors[f"applicant.{name}"] = "is required"
    if not _is_past_iso_date(applicant.get("birth_date")):
        errors["applicant.birth_date"] = "must be a date in the past, YYYY-MM-DD"
    for name in ("phone", "email"):
        if applicant.get(name) is not None and not isinstance(applicant.get(name), str):
            errors[f"applicant.{name}"] = "must be a string"
    email = applicant.get("email")
    if isinstance(email, str) and email and "@" not in email:
        errors["applicant.email"] = "must be an email address"

    address = applicant.get("address")
    if not isinstance(address, dict):
        errors["applicant.address"] = "is required"
        return errors
    for name in ("line1", "city"):
        if not _non_empty_str(address.get(name)):
            errors[f"applicant.address.{name}"] = "is required"
    if not (isinstance(address.get("state"), str) and _STATE_RE.match(address["state"])):
        errors["applicant.address.state"] = "must be a 2-letter state code"
    if not (isinstance(address.get("zip"), str) and _ZIP_RE.match(address["zip"])):
        errors["applicant.address.zip"] = "must be 5 digits"
    return errors


def _non_empty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_past_iso_date(value: Any) -> bool:
    # The regex first: date.fromisoformat also accepts "20200101" and week dates.
    if not isinstance(value, str) or not _DATE_RE.match(value):
        return False
    try:
        return date.fromisoformat(value) < date.today()
    except ValueError:
        return False


def _money(amount: Decimal) -> str:
    return f"{amount.quantize(CENT):f}"


def _iso(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _iso_precise(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="microseconds")


# --- store records ------------------------------------------------------------------------


@dataclass
class StoredApplication:
    """One application. Only what the sandbox needs to decide: no demographics."""

    application_id: str
    merchant_number: str
    reference: str
    requested_amount: Decimal
    persona: str
    callback_url: str
    apply_url: str
    idempotency_key: str | None
    fingerprint: str  # sha256 of the request body, to spot a reused idempotency key
    created_at: float
    # Captured at creation so later config changes cannot rewrite this application's past.
    decision_delay: float
    pending_delay: float
    reduced_apr: Decimal
    # Statuses forced through the control API, (unix time, raw status), in time order.
    forced: list[tuple[float, str]] = field(default_factory=list)
    # Webhook bookkeeping: how many timeline steps became events, and events held back
    # by webhook_reorder.
    steps_notified: int = 0
    held_events: list[WebhookEvent] = field(default_factory=list)
    seq: int = 0  # creation order, which the dispatcher keeps when it sends events

    def timeline(self) -> list[tuple[float, str]]:
        """Every status change after creation, as (unix time, raw status), oldest first.

        Append-only as time passes, which is what lets the dispatcher remember how far
        it has notified with a single counter.
        """
        completed_at = self.created_at + self.decision_delay
        scripted = {
            "expire": [],
            "decline": [(completed_at, DECLINED)],
            "refer": [(completed_at, REFERRED)],
            "pending": [(completed_at, PENDING), (completed_at + self.pending_delay, APPROVED)],
            "partial": [(completed_at, APPROVED)],
            "approve": [(completed_at, APPROVED)],
        }[self.persona]
        if not self.forced:
            return scripted
        first_forced_at = self.forced[0][0]
        return [step for step in scripted if step[0] < first_forced_at] + list(self.forced)

    def status_at(self, now: float) -> tuple[str, float]:
        """(raw status, unix time it was reached) at `now`."""
        status, since = APPLICATION_SENT, self.created_at
        for at, step_status in self.timeline():
            if at <= now:
                status, since = step_status, at
        return status, since

    def to_json(self, now: float) -> dict[str, Any]:
        """The API view of the application at `now`."""
        status, since = self.status_at(now)
        approved = None
        if status == APPROVED:
            approved = approved_amount_for(self.persona, self.requested_amount)
        return {
            "application_id": self.application_id,
            "reference": self.reference,
            "merchant_number": self.merchant_number,
            "status": status,
            "requested_amount": _money(self.requested_amount),
            "approved_amount": _money(approved) if approved is not None else None,
            "credit_limit": _money(credit_limit_for(approved)) if approved is not None else None,
            "promotions": promotions_for(approved, self.reduced_apr) if approved is not None else [],
            "decided_at": _iso(since) if status in (APPROVED, DECLINED) else None,
            "created": _iso(self.created_at),
            "apply_url": self.apply_url,
        }


@dataclass
class WebhookEvent:
    event_id: str
    application_id: str
    status: str
    created: int
    callback_url: str

    def body(self) -> bytes:
        return json.dumps({
            "event_id": self.event_id,
            "type": WEBHOOK_EVENT_TYPE,
            "application_id": self.application_id,
            "status": self.status,
            "created": self.created,
        }).encode("utf-8")


@dataclass
class PendingDelivery:
    event: WebhookEvent
    body: bytes  # fixed per event: every attempt and every duplicate sends the same bytes
    copy: int  # 0 for the original, 1..N for webhook_duplicates
    attempt: int
    next_attempt_at: float


@dataclass
class Fault:
    fault_id: str
    method: str
    path_prefix: str
    mode: str
    status: int
    retry_after: float | None
    latency_ms: int
    remaining: int | None  # None: until cleared

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and path.startswith(self.path_prefix)

    def to_json(self) -> dict[str, Any]:
        return {
            "fault_id": self.fault_id,
            "method": self.method,
            "path_prefix": self.path_prefix,
            "mode": self.mode,
            "status": self.status,
            "retry_after": self.retry_after,
            "latency_ms": self.latency_ms,
            "count": self.remaining,
        }


class SandboxError(Exception):
    """A control-API or request problem answered as a JSON 4xx."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str = "",
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message or error)
        self.status = status
        self.error = error
        self.message = message
        self.fields = fields
        self.headers = headers or {}


# --- the WSGI app -------------------------------------------------------------------------


class _Request(Request):
    # Bigger bodies are answered 413 before anything reads them into memory.
    max_content_length = MAX_BODY_BYTES


class SandboxApp:
    """The sandbox as a WSGI app with its store, its control methods and its dispatcher.

    One lock guards all mutable state (store, tokens, faults, logs, outbox, config). It
    is never held while sleeping for a fault or while posting a webhook.
    """

    def __init__(self, **config: Any):
        self.initial_config = SandboxConfig.from_env(**config)
        self.config = replace(self.initial_config)
        # The base URL the server listens on; set by serve_in_thread once bound.
        self.server_url = ""
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._dispatcher: threading.Thread | None = None
        self._applications: dict[str, StoredApplication] = {}
        self._idempotency: dict[tuple[str, str], str] = {}  # (merchant, key) -> application id
        self._tokens: dict[str, float] = {}  # token -> unix expiry
        self._faults: list[Fault] = []
        self._requests: list[dict[str, Any]] = []
        self._deliveries: list[dict[str, Any]] = []
        self._outbox: list[PendingDelivery] = []
        # Applications whose timeline may still produce events: the dispatcher looks only at
        # these, so a pass costs what is moving, not every application ever created.
        self._unsettled: set[str] = set()
        self._by_merchant: dict[str, list[str]] = {}
        self._wake = threading.Event()
        self._webhook_pool = None
        # Bumped by reset(), so a webhook in flight during a reset is not recorded after it.
        self._generation = 0
        self.url_map = Map([
            Rule("/v1/oauth2/token", endpoint="token", methods=["POST"]),
            Rule("/v1/applications", endpoint="create_application", methods=["POST"]),
            Rule("/v1/applications", endpoint="list_applications", methods=["GET"]),
            Rule("/v1/applications/<application_id>", endpoint="get_application", methods=["GET"]),
            Rule("/v1/promotions", endpoint="promotions", methods=["GET"]),
            Rule("/apply/<application_id>", endpoint="apply_page", methods=["GET"]),
            Rule("/_sandbox/health", endpoint="control_health", methods=["GET"]),
            Rule("/_sandbox/reset", endpoint="control_reset", methods=["POST"]),
            Rule("/_sandbox/applications", endpoint="control_applications", methods=["GET"]),
            Rule(
                "/_sandbox/applications/<application_id>/status",
                endpoint="control_force_status",
                methods=["POST"],
            ),
            Rule("/_sandbox/requests", endpoint="control_requests", methods=["GET"]),
            Rule("/_sandbox/webhooks", endpoint="control_webhooks", methods=["GET"]),
            Rule("/_sandbox/config", endpoint="control_config", methods=["GET", "PUT"]),
            Rule("/_sandbox/revoke-tokens", endpoint="control_revoke_tokens", methods=["POST"]),
            Rule("/_sandbox/faults", endpoint="control_faults", methods=["GET", "POST", "DELETE"]),
        ])

    # --- WSGI ------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = _Request(environ)
        try:
            response = self._handle(request)
        except Exception:
            # Last resort: a request thread must never die without an answer.
            logger.exception("sandbox failed on %s %s", request.method, request.path)
            response = _json_response({"error": "internal_error", "message": "the sandbox failed"}, 500)
        return response(environ, start_response)

    def _handle(self, request: Request) -> Response:
        is_api = request.path.startswith("/v1/")
        fault = self._take_fault(request.method, request.path) if is_api else None

        if fault is not None and fault.mode == "error":
            # The partner failed before doing any work.
            response = _json_response(
                {"error": "injected_fault", "message": f"sandbox fault: HTTP {fault.status}"}, fault.status
            )
            if fault.retry_after is not None:
                response.headers["Retry-After"] = f"{fault.retry_after:g}"
            self._log_request(request, response.status_code, fault.mode)
            return response
        if fault is not None and fault.mode in ("latency", "timeout"):
            # Event.wait rather than time.sleep, so stop() does not wait 30 s for it.
            self._stopping.wait(fault.latency_ms / 1000)

        response = self._dispatch(request)
        if fault is not None and fault.mode == "drop":
            # The work is committed; now the answer is lost, like a proxy or network
            # failure after the partner processed the request. The log says status None
            # because the client never received one (same as the Dentrix sandbox).
            self._log_request(request, None, fault.mode)
            _drop_connection(request.environ)
        elif is_api:
            self._log_request(request, response.status_code, fault.mode if fault else None)
        return response

    def _dispatch(self, request: Request) -> Response:
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
            return getattr(self, f"_on_{endpoint}")(request, **args)
        except SandboxError as exc:
            body: dict[str, Any] = {"error": exc.error}
            if exc.message:
                body["message"] = exc.message
            if exc.fields is not None:
                body["fields"] = exc.fields
            response = _json_response(body, exc.status)
            response.headers.update(exc.headers)
            return response
        except HTTPException as exc:
            error = (exc.name or "error").lower().replace(" ", "_")
            return _json_response({"error": error, "message": exc.description}, exc.code or 500)
        except Exception:
            logger.exception("sandbox failed on %s %s", request.method, request.path)
            return _json_response({"error": "internal_error", "message": "the sandbox failed"}, 500)

    # --- API endpoints ---------------------------------------------------------------------

    def _on_token(self, request: Request) -> Response:
        form = request.form
        if form.get("grant_type") != "client_credentials":
            raise SandboxError(400, "unsupported_grant_type", "grant_type must be client_credentials")
        with self._lock:
            config = self.config
        id_ok = hmac.compare_digest(form.get("client_id", "").encode(), config.client_id.encode())
        secret_ok = hmac.compare_digest(form.get("client_secret", "").encode(), config.client_secret.encode())
        if not (id_ok and secret_ok):
            raise SandboxError(401, "invalid_client", "unknown client or wrong secret")
        token = "tok_" + secrets.token_hex(16)
        with self._lock:
            ttl = self.config.token_ttl
            self._tokens[token] = time.time() + ttl
        return _json_response({"access_token": token, "token_type": "Bearer", "expires_in": ttl}, 200)

    def _on_create_application(self, request: Request) -> Response:
        self._authenticate(request)
        body = _read_json(request)
        errors = validate_application(body)
        if errors:
            raise SandboxError(400, "validation_failed", "the application has invalid fields", fields=errors)
        merchant_number = body["merchant_number"].strip()
        key = request.headers.get("Idempotency-Key", "").strip() or None
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
        now = time.time()
        with self._lock:
            if key is not None:
                existing_id = self._idempotency.get((merchant_number, key))
                if existing_id is not None:
                    existing = self._applications[existing_id]
                    if existing.fingerprint != fingerprint:
                        raise SandboxError(
                            409, "idempotency_key_reused",
                            "this Idempotency-Key was already used with a different request",
                        )
                    return _json_response(existing.to_json(now), 200)
            application_id = "app_" + secrets.token_hex(8)
            config = self.config
            public_url = (config.public_url or self.server_url).rstrip("/")
            application = StoredApplication(
                application_id=application_id,
                merchant_number=merchant_number,
                reference=body["reference"],
                requested_amount=Decimal(body["requested_amount"]),
                persona=persona_for(body["applicant"]["last_name"]),
                callback_url=body.get("callback_url") or "",
                apply_url=f"{public_url}/apply/{application_id}",
                idempotency_key=key,
                fingerprint=fingerprint,
                created_at=now,
                decision_delay=config.decision_delay,
                pending_delay=config.pending_delay,
                reduced_apr=config.reduced_apr,
                seq=len(self._applications),
            )
            self._applications[application_id] = application
            self._unsettled.add(application_id)
            self._by_merchant.setdefault(merchant_number, []).append(application_id)
            if key is not None:
                self._idempotency[(merchant_number, key)] = application_id
            payload = application.to_json(now)
        self._wake.set()
        return _json_response(payload, 201)

    def _on_list_applications(self, request: Request) -> Response:
        self._authenticate(request)
        errors: dict[str, str] = {}
        merchant_number = (request.args.get("merchant_number") or "").strip()
        if not merchant_number:
            errors["merchant_number"] = "is required"
        since = None
        if request.args.get("updated_since"):
            try:
                moment = datetime.fromisoformat(request.args["updated_since"])
                since = (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
            except ValueError:
                errors["updated_since"] = "must be an ISO 8601 date and time"
        limit = request.args.get("limit", str(LIST_DEFAULT_LIMIT))
        if not limit.isdigit() or not 1 <= int(limit) <= LIST_MAX_LIMIT:
            errors["limit"] = f"must be a whole number from 1 to {LIST_MAX_LIMIT}"
        as_of, after = time.time(), None
        if request.args.get("cursor"):
            try:
                as_of, after_at, after_id = json.loads(base64.urlsafe_b64decode(request.args["cursor"].encode()))
                as_of, after = float(as_of), (float(after_at), str(after_id))
            except (ValueError, TypeError):
                errors["cursor"] = "is not a cursor from this listing"
        if errors:
            raise SandboxError(400, "validation_failed", "the listing request has invalid fields", fields=errors)
        with self._lock:
            changed = []
            for application_id in self._by_merchant.get(merchant_number, ()):
                application = self._applications[application_id]
                changed_at = application.status_at(as_of)[1]
                if since is not None and changed_at < since:
                    continue
                if after is not None and (changed_at, application_id) <= after:
                    continue
                changed.append((changed_at, application_id, application))
            changed.sort(key=lambda item: item[:2])
            page = changed[: int(limit)]
            payload = [application.to_json(as_of) for _, _, application in page]
        next_cursor = None
        if len(changed) > len(page):
            last_at, last_id, _ = page[-1]
            next_cursor = base64.urlsafe_b64encode(json.dumps([as_of, last_at, last_id]).encode()).decode()
        return _json_response(
            {"applications": payload, "next_cursor": next_cursor, "as_of": _iso_precise(as_of)}, 200
        )

    def _on_get_application(self, request: Request, application_id: str) -> Response:
        self._authenticate(request)
        with self._lock:
            application = self._applications.get(application_id)
            payload = application.to_json(time.time()) if application is not None else None
        if payload is None:
            raise SandboxError(404, "not_found", "no application with this id")
        return _json_response(payload, 200)

    def _on_promotions(self, request: Request) -> Response:
        self._authenticate(request)
        errors: dict[str, str] = {}
        if not _non_empty_str(request.args.get("merchant_number")):
            errors["merchant_number"] = "is required"
        amount = request.args.get("amount", "")
        if not _AMOUNT_RE.match(amount):
            errors["amount"] = 'must be a decimal string with at most 2 decimal places, e.g. "1234.00"'
        if errors:
            raise SandboxError(400, "validation_failed", "the promotions request has invalid fields", fields=errors)
        with self._lock:
            apr = self.config.reduced_apr
        return _json_response(promotions_for(Decimal(amount), apr), 200)

    def _on_apply_page(self, request: Request, application_id: str) -> Response:
        with self._lock:
            application = self._applications.get(application_id)
            status = application.status_at(time.time())[0] if application is not None else None
        if status is None:
            raise SandboxError(404, "not_found", "no application with this id")
        page = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            "<title>CareCredit sandbox application</title></head><body>"
            "<h1>CareCredit sandbox</h1>"
            "<p>This is the sandbox's hosted application page. No patient enters anything here: "
            "the sandbox simulates the patient completing the application.</p>"
            f"<p>Application <code>{html.escape(application_id)}</code>: "
            f"<strong>{html.escape(status)}</strong></p>"
            "</body></html>"
        )
        return Response(page, status=200, content_type="text/html; charset=utf-8")

    def _authenticate(self, request: Request) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("missing bearer token")
        with self._lock:
            expires_at = self._tokens.get(token.strip())
        if expires_at is None or expires_at <= time.time():
            raise _unauthorized("unknown, revoked or expired token", error="invalid_token")

    # --- control API (HTTP) ------------------------------------------------------------------

    def _on_control_health(self, request: Request) -> Response:
        return _json_response({"ok": True}, 200)

    def _on_control_reset(self, request: Request) -> Response:
        self.reset()
        return _json_response({"reset": True}, 200)

    def _on_control_applications(self, request: Request) -> Response:
        return _json_response(self.applications(), 200)

    def _on_control_force_status(self, request: Request, application_id: str) -> Response:
        body = _read_json(request)
        status = body.get("status") if isinstance(body, dict) else None
        if not _non_empty_str(status):
            raise SandboxError(400, "validation_failed", fields={"status": "is required"})
        return _json_response(self.force_status(application_id, status), 200)

    def _on_control_requests(self, request: Request) -> Response:
        return _json_response(self.request_log(), 200)

    def _on_control_webhooks(self, request: Request) -> Response:
        return _json_response(self.webhook_deliveries(), 200)

    def _on_control_config(self, request: Request) -> Response:
        if request.method == "PUT":
            body = _read_json(request)
            if not isinstance(body, dict):
                raise SandboxError(400, "validation_failed", fields={"body": "must be a JSON object"})
            return _json_response(self.update_config(**body), 200)
        return _json_response(self.settings(), 200)

    def _on_control_revoke_tokens(self, request: Request) -> Response:
        return _json_response({"revoked": self.revoke_tokens()}, 200)

    def _on_control_faults(self, request: Request) -> Response:
        if request.method == "POST":
            body = _read_json(request)
            if not isinstance(body, dict):
                raise SandboxError(400, "validation_failed", fields={"body": "must be a JSON object"})
            return _json_response(self.add_fault(**body), 201)
        if request.method == "DELETE":
            return _json_response({"cleared": self.clear_faults()}, 200)
        with self._lock:
            faults = [fault.to_json() for fault in self._faults]
        return _json_response(faults, 200)

    # --- control API (Python; tests may call these directly) ------------------------------

    def reset(self) -> None:
        """Back to the state the sandbox started in, configuration included."""
        with self._lock:
            self._applications.clear()
            self._idempotency.clear()
            self._tokens.clear()
            self._faults.clear()
            self._requests.clear()
            self._deliveries.clear()
            self._outbox.clear()
            self._unsettled.clear()
            self._by_merchant.clear()
            self.config = replace(self.initial_config)
            self._generation += 1

    def applications(self) -> list[dict[str, Any]]:
        now = time.time()
        with self._lock:
            return [
                {**application.to_json(now), "persona": application.persona,
                 "callback_url": application.callback_url}
                for application in self._applications.values()
            ]

    def force_status(self, application_id: str, status: str) -> dict[str, Any]:
        """Make the application report `status` (any raw string) from now on."""
        with self._lock:
            application = self._applications.get(application_id)
            if application is None:
                raise SandboxError(404, "not_found", "no application with this id")
            now = time.time()
            application.forced.append((now, status))
            self._unsettled.add(application_id)
            payload = application.to_json(now)
        self._wake.set()
        return payload

    def seed_application(
        self,
        *,
        merchant_number: str,
        reference: str,
        requested_amount: Decimal,
        last_name: str,
        callback_url: str = "",
        created_at: float | None = None,
        decision_delay: float | None = None,
    ) -> dict[str, Any]:
        """Add an application as POST /v1/applications would, without HTTP (benchmarks
        that need thousands). No idempotency key; `created_at` may lie in the past."""
        with self._lock:
            config = self.config
            application_id = "app_" + secrets.token_hex(8)
            application = StoredApplication(
                application_id=application_id,
                merchant_number=merchant_number,
                reference=reference,
                requested_amount=requested_amount,
                persona=persona_for(last_name),
                callback_url=callback_url,
                apply_url=f"{(config.public_url or self.server_url).rstrip('/')}/apply/{application_id}",
                idempotency_key=None,
                fingerprint="",
                created_at=time.time() if created_at is None else created_at,
                decision_delay=config.decision_delay if decision_delay is None else decision_delay,
                pending_delay=config.pending_delay,
                reduced_apr=config.reduced_apr,
                seq=len(self._applications),
            )
            self._applications[application_id] = application
            self._unsettled.add(application_id)
            self._by_merchant.setdefault(merchant_number, []).append(application_id)
            return application.to_json(time.time())

    def request_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self._requests]

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self._deliveries]

    def settings(self) -> dict[str, Any]:
        """The run-time adjustable settings (no secrets)."""
        with self._lock:
            config = self.config
        return {
            "decision_delay": config.decision_delay,
            "pending_delay": config.pending_delay,
            "apr": _money(config.reduced_apr),
            "webhook_duplicates": config.webhook_duplicates,
            "webhook_reorder": config.webhook_reorder,
            "webhook_concurrency": config.webhook_concurrency,
            "token_ttl": config.token_ttl,
        }

    def update_config(self, **changes: Any) -> dict[str, Any]:
        """Change run-time settings; affects applications created from now on."""
        values, errors = _parse_config_changes(changes)
        if errors:
            raise SandboxError(400, "validation_failed", "invalid settings", fields=errors)
        with self._lock:
            self.config = replace(self.config, **values)
        return self.settings()

    def revoke_tokens(self) -> int:
        with self._lock:
            count = len(self._tokens)
            self._tokens.clear()
        return count

    def add_fault(self, **spec: Any) -> dict[str, Any]:
        fault = _parse_fault(spec)
        with self._lock:
            self._faults.append(fault)
        return fault.to_json()

    def clear_faults(self) -> int:
        with self._lock:
            count = len(self._faults)
            self._faults.clear()
        return count

    # --- internals ---------------------------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> Fault | None:
        """The first armed fault matching this request, spending one of its uses."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self._faults.remove(fault)
                    return replace(fault)
        return None

    def _log_request(self, request: Request, status: int | None, fault_mode: str | None) -> None:
        with self._lock:
            self._requests.append(
                {"method": request.method, "path": request.path, "status": status, "fault": fault_mode}
            )

    # --- webhooks ------------------------------------------------------------------------------

    def start_dispatcher(self) -> None:
        """Start the single webhook dispatcher thread (serve_in_thread does this)."""
        if self._dispatcher is not None:
            return
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name="carecredit-sandbox-webhooks", daemon=True
        )
        self._dispatcher.start()

    def stop_dispatcher(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._dispatcher is not None:
            self._dispatcher.join(timeout=sum(WEBHOOK_TIMEOUT) + 2)
            self._dispatcher = None
        if self._webhook_pool is not None:
            self._webhook_pool.shutdown(wait=False)
            self._webhook_pool = None

    def _dispatch_loop(self) -> None:
        while not self._stopping.is_set():
            # Woken early by a new or forced application, so an immediate decision's
            # webhook leaves at once instead of up to one interval later.
            self._wake.wait(WEBHOOK_POLL_INTERVAL)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.dispatch_once()
            except Exception:
                # Keep dispatching: one bad pass must not end webhooks for the whole run.
                logger.exception("sandbox webhook dispatch failed")

    def dispatch_once(self) -> None:
        """One dispatcher pass: turn new status changes into events, then send what is due."""
        now = time.time()
        with self._lock:
            self._collect_events(now)
            due = [delivery for delivery in self._outbox if delivery.next_attempt_at <= now]
            self._outbox = [delivery for delivery in self._outbox if delivery.next_attempt_at > now]
            generation = self._generation
            secret = self.config.webhook_secret
            concurrency = self.config.webhook_concurrency

        if concurrency > 1 and len(due) > 1:
            if self._webhook_pool is None:
                self._webhook_pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="carecredit-sandbox-webhook")
            for start in range(0, len(due), concurrency):
                batch = due[start:start + concurrency]
                list(self._webhook_pool.map(lambda delivery: self._deliver(delivery, secret, generation), batch))
            return
        for delivery in due:
            if not self._deliver(delivery, secret, generation):
                return

    def _deliver(self, delivery: PendingDelivery, secret: str, generation: int) -> bool:
        """POST one attempt and record it; False when the dispatcher should stop this pass."""
        if self._stopping.is_set():
            return False
        status_code, error = _post_webhook(delivery, secret)
        delivered = status_code is not None and 200 <= status_code < 300
        with self._lock:
            if self._generation != generation:
                return False  # reset() happened meanwhile: forget this pass
            self._deliveries.append({
                "event_id": delivery.event.event_id,
                "application_id": delivery.event.application_id,
                "status": delivery.event.status,
                "copy": delivery.copy,
                "attempt": delivery.attempt,
                "status_code": status_code,
                "error": error,
                "at": time.time(),
            })
            if not delivered and delivery.attempt < WEBHOOK_MAX_ATTEMPTS:
                backoff = WEBHOOK_FIRST_BACKOFF * 2 ** (delivery.attempt - 1)
                self._outbox.append(
                    replace(delivery, attempt=delivery.attempt + 1, next_attempt_at=time.time() + backoff)
                )
        return True

    def _collect_events(self, now: float) -> None:
        """Queue one event per status step reached since the last pass (lock held)."""
        config = self.config
        batch: list[WebhookEvent] = []
        moving = sorted((self._applications[i] for i in self._unsettled), key=lambda a: a.seq)
        for application in moving:
            timeline = application.timeline()
            for at, status in timeline[application.steps_notified:]:
                if at > now:
                    break
                application.steps_notified += 1
                if application.callback_url:
                    application.held_events.append(WebhookEvent(
                        event_id="evt_" + secrets.token_hex(12),
                        application_id=application.application_id,
                        status=status,
                        created=int(at),
                        callback_url=application.callback_url,
                    ))
            finished = application.steps_notified >= len(timeline)
            if application.held_events and (not config.webhook_reorder or finished):
                batch.extend(application.held_events)
                application.held_events = []
            if finished and not application.held_events:
                # Nothing more will happen to it unless a status is forced (which re-adds it).
                self._unsettled.discard(application.application_id)
        if config.webhook_reorder:
            batch.reverse()
        for event in batch:
            body = event.body()
            for copy in range(1 + config.webhook_duplicates):
                self._outbox.append(PendingDelivery(event, body, copy, attempt=1, next_attempt_at=now))


def _post_webhook(delivery: PendingDelivery, secret: str) -> tuple[int | None, str | None]:
    """POST one attempt; (HTTP status, None) or (None, exception class name)."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "carecredit-sandbox-webhooks",
        # Re-signed on every attempt: a retry hours later must still pass the ±300 s window.
        signing.SIGNATURE_HEADER: signing.sign(secret, delivery.body, int(time.time())),
    }
    try:
        response = requests.post(
            delivery.event.callback_url,
            data=delivery.body,
            headers=headers,
            timeout=WEBHOOK_TIMEOUT,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        return None, type(exc).__name__
    return response.status_code, None


# --- request/response helpers -------------------------------------------------------------


def _json_response(payload: Any, status: int) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json")


def _unauthorized(message: str, *, error: str = "unauthorized") -> SandboxError:
    # RFC 6750: a 401 for a bearer-token API names the scheme (and the error, if any).
    challenge = "Bearer" if error == "unauthorized" else f'Bearer error="{error}"'
    return SandboxError(401, error, message, headers={"WWW-Authenticate": challenge})


def _read_json(request: Request) -> Any:
    """The request body as JSON (numbers as Decimal); a JSON 400 if it is not JSON."""
    try:
        return json.loads(request.get_data(cache=True) or b"null", parse_float=Decimal)
    except ValueError:
        raise SandboxError(400, "invalid_json", "the request body is not valid JSON") from None


def _drop_connection(environ: dict[str, Any]) -> None:
    """Close the client connection without an answer.

    Werkzeug's dev server hands the socket to the app as ``werkzeug.socket``. Shutting
    it down sends FIN, so the client sees "remote end closed connection without
    response"; Werkzeug's attempt to write our Response then fails with BrokenPipe,
    which it treats as a dropped connection and ignores.
    """
    sock = environ.get("werkzeug.socket")
    if sock is None:
        raise RuntimeError("the drop fault needs Werkzeug's server (environ['werkzeug.socket'])")
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # the client already went away


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _parse_config_changes(changes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, value in changes.items():
        if name in ("decision_delay", "pending_delay"):
            if _is_number(value) and 0 <= value <= 86400:
                values[name] = float(value)
            else:
                errors[name] = "must be a number of seconds between 0 and 86400"
        elif name == "apr":
            try:
                apr = Decimal(str(value)) if isinstance(value, (str, int, Decimal)) else None
            except InvalidOperation:
                apr = None
            if apr is not None and not isinstance(value, bool) and apr.is_finite() and 0 <= apr <= 100:
                values["reduced_apr"] = apr.quantize(CENT)
            else:
                errors[name] = 'must be a percentage between 0 and 100, e.g. "17.90"'
        elif name == "webhook_duplicates":
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10:
                values[name] = value
            else:
                errors[name] = "must be a whole number between 0 and 10"
        elif name == "webhook_reorder":
            if isinstance(value, bool):
                values[name] = value
            else:
                errors[name] = "must be true or false"
        elif name == "webhook_concurrency":
            if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 32:
                values[name] = value
            else:
                errors[name] = "must be a whole number between 1 and 32"
        elif name == "token_ttl":
            if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
                values[name] = value
            else:
                errors[name] = "must be a whole number of seconds, at least 1"
        else:
            errors[name] = "is not a run-time setting"
    return values, errors


def _parse_fault(spec: dict[str, Any]) -> Fault:
    errors: dict[str, str] = {}
    allowed = {"method", "path_prefix", "mode", "status", "retry_after", "latency_ms", "count"}
    for name in set(spec) - allowed:
        errors[name] = "is not a fault setting"

    method = spec.get("method", "*")
    if method not in ("GET", "POST", "PUT", "DELETE", "*"):
        errors["method"] = 'must be "GET", "POST", "PUT", "DELETE" or "*"'
    path_prefix = spec.get("path_prefix", "/v1/")
    if not isinstance(path_prefix, str) or not path_prefix.startswith("/v1/"):
        errors["path_prefix"] = 'must start with "/v1/" (faults apply to API paths only)'
    mode = spec.get("mode")
    if mode not in FAULT_MODES:
        errors["mode"] = 'must be "error", "latency", "timeout" or "drop"'
    status = spec.get("status", 503)
    if not (isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599):
        errors["status"] = "must be an HTTP error status between 400 and 599"
    retry_after = spec.get("retry_after")
    if retry_after is not None and not (_is_number(retry_after) and retry_after >= 0):
        errors["retry_after"] = "must be a number of seconds, at least 0"
    default_latency_ms = DEFAULT_LATENCY_MS.get(mode, 0) if isinstance(mode, str) else 0
    latency_ms = spec.get("latency_ms", default_latency_ms)
    if not (isinstance(latency_ms, int) and not isinstance(latency_ms, bool) and 0 <= latency_ms <= 600_000):
        errors["latency_ms"] = "must be a whole number of milliseconds between 0 and 600000"
    count = spec.get("count", 1)
    if count is not None and not (isinstance(count, int) and not isinstance(count, bool) and count >= 1):
        errors["count"] = "must be a whole number, at least 1, or null for until cleared"
    if errors:
        raise SandboxError(400, "validation_failed", "invalid fault", fields=errors)
    return Fault(
        fault_id="flt_" + secrets.token_hex(6),
        method=method,
        path_prefix=path_prefix,
        mode=mode,
        status=status,
        retry_after=float(retry_after) if retry_after is not None else None,
        latency_ms=latency_ms,
        remaining=count,
    )


# --- serving ------------------------------------------------------------------------------


class _QuietRequestHandler(WSGIRequestHandler):
    """No access log line per request (tests make hundreds)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@dataclass
class RunningSandbox:
    """A sandbox serving in a background thread. Call `stop()` when done."""

    app: SandboxApp
    base_url: str
    server: BaseWSGIServer
    thread: threading.Thread

    def stop(self) -> None:
        self.app.stop_dispatcher()
        self.server.shutdown()  # returns once serve_forever has exited (it closes the socket)
        self.thread.join(timeout=5)


def serve_in_thread(
    port: int = 0, *, host: str = DEFAULT_HOST, log_requests: bool = False, **config: Any
) -> RunningSandbox:
    """Start a sandbox on `host`:`port` (0 = any free port) in background threads.

    `config` takes the settings listed in the module docstring. The webhook dispatcher
    starts with the server and stops with `RunningSandbox.stop()`.
    """
    app = SandboxApp(**config)
    server = make_server(
        host, port, app, threaded=True,
        request_handler=WSGIRequestHandler if log_requests else _QuietRequestHandler,
    )
    url_host = "127.0.0.1" if host in ("", "0.0.0.0") else host
    if ":" in url_host:
        url_host = f"[{url_host}]"  # IPv6 literal
    base_url = f"http://{url_host}:{server.server_port}"
    app.server_url = base_url
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="carecredit-sandbox-http", daemon=True
    )
    thread.start()
    app.start_dispatcher()
    return RunningSandbox(app=app, base_url=base_url, server=server, thread=thread)


def main(argv: list[str] | None = None) -> int:
    """``python -m carecredit_bridge.sandbox``: serve until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m carecredit_bridge.sandbox",
        description="CareCredit sandbox: a fake CareCredit API with deterministic decisions.",
    )
    # String defaults go through type=int too, so a bad env value gets argparse's message.
    parser.add_argument("--host", default=os.environ.get("CARECREDIT_SANDBOX_HOST") or DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=os.environ.get("CARECREDIT_SANDBOX_PORT") or str(DEFAULT_PORT))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    try:
        sandbox = serve_in_thread(args.port, host=args.host, log_requests=True)
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))
    except OSError as exc:
        parser.error(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")

    stop = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print(f"CareCredit sandbox listening on {sandbox.base_url}", flush=True)
    # A timed wait, so the main thread wakes up to notice the flag set by the handler.
    while not stop.wait(0.5):
        pass
    sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
