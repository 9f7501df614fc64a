"""CareCredit API client: `financing.ports.Lender` over HTTP, with `requests`.

This module is the only place that knows CareCredit's wire format. It turns the
partner's JSON into the normalised dataclasses of `financing.ports` and every failure
into one of the port's error classes, so `financing` can decide "retry later", "look
up before writing again" or "ask a human" without knowing anything about HTTP.

Contract (the sandbox in `sandboxes.carecredit` implements the same one):

- ``POST /v1/oauth2/token`` (form: grant_type=client_credentials, client_id,
  client_secret) -> ``{access_token, token_type, expires_in}``.
- ``POST /v1/applications`` (JSON, header ``Idempotency-Key: <reference>``) -> 201
  ``{application_id, apply_url, status, ...}``, or 200 with the same application when
  the key was seen before.
- ``GET /v1/applications/<id>`` -> the application with its decision.
- ``GET /v1/promotions?merchant_number=&amount=`` -> JSON array of promotions.
- ``GET /v1/applications?merchant_number=&updated_since=&cursor=&limit=`` ->
  ``{applications: [...], next_cursor, as_of}``: the merchant's applications whose status
  changed at or after ``updated_since``, oldest change first, a page at a time.
- ``POST /v1/quickscreens`` (a batch Quickscreen, at most 100 applicants) -> ``{results:
  [{reference, status, preapproved_amount, available_credit, expires_on}]}``, one result
  per applicant. Read-only: a soft check creates nothing at CareCredit and leaves the
  applicants' credit untouched, so a lost answer is transient, never ambiguous.
- ``POST /v1/cardholder-confirmations`` -> 201 ``{confirmation_id, reference, status,
  requested_amount, approved_amount, available_credit, account_last4, account_token,
  promotions, decided_at}`` (200 with the first one when the reference was confirmed
  before); 404 ``account_not_found``.

Error split: the shared HTTP kit (`partner_http`) maps transport failures and statuses
onto `financing.ports`' errors. What is CareCredit's own: `create_application` and
`confirm_cardholder` are the only writes (anything that may have happened after CareCredit
got them is `AmbiguousWriteError`: re-send with the same idempotency key, or the same
reference), while the Quickscreen is a POST that is a read (a lost answer is transient);
its error body's short ``error`` code and per-field messages; and the OAuth2 token,
refreshed once on a 401.

PHI: error messages and log lines are built only from fixed phrases, HTTP statuses,
application ids, elapsed times, counts and the partner's field messages. Request bodies
(which hold the applicant's name, birth date, phone, email and address; a Quickscreen
batch holds a whole day's patients) are never echoed, logged or put into an exception;
a Quickscreen entry is named in a log line by its position in the batch, not its reference.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import requests

from financing.ports import (
    Application,
    ApplicationRequest,
    CardholderConfirmation,
    CardholderRequest,
    DecisionPage,
    DecisionStatus,
    LenderDecision,
    NotFoundError,
    Offer,
    PermanentPartnerError,
    PrescreenOutcome,
    PrescreenRequest,
    PrescreenResult,
    PromotionKind,
)
from partner_http import Partner, PartnerConnection, error_detail, unreadable_answer

__all__ = [
    "PRESCREEN_MAX_BATCH",
    "PROMOTION_TYPES",
    "RAW_CONFIRMATION_TO_DECISION",
    "RAW_PRESCREEN_TO_OUTCOME",
    "RAW_STATUS_TO_DECISION",
    "TOKEN_EXPIRY_MARGIN",
    "CareCreditClient",
    "clear_token_cache",
]

logger = logging.getLogger(__name__)

# Applications per page of a changed-decisions listing (the sandbox allows up to 500).
DECISION_PAGE_SIZE = 500

TOKEN_PATH = "/v1/oauth2/token"
APPLICATIONS_PATH = "/v1/applications"
PROMOTIONS_PATH = "/v1/promotions"
QUICKSCREEN_PATH = "/v1/quickscreens"
CARDHOLDER_CONFIRMATIONS_PATH = "/v1/cardholder-confirmations"

# Applicants per Quickscreen batch, as CareCredit's contract says.
PRESCREEN_MAX_BATCH = 100
MAX_REFERENCE = 64

# A cached token is thrown away this many seconds before CareCredit says it expires, so
# a token never expires between our check and CareCredit's.
TOKEN_EXPIRY_MARGIN = 60

# The one place raw CareCredit statuses become `DecisionStatus`. Anything not listed
# (a status CareCredit adds tomorrow, a typo, a lower-case variant) is UNKNOWN, which
# never moves a case: guessing a status could write an arrangement nobody approved.
RAW_STATUS_TO_DECISION: dict[str, DecisionStatus] = {
    "APPLICATION_SENT": DecisionStatus.IN_PROGRESS,
    "PENDING": DecisionStatus.PENDING,
    "REFERRED": DecisionStatus.REFERRED,
    "APPROVED": DecisionStatus.APPROVED,
    "DECLINED": DecisionStatus.DECLINED,
    "EXPIRED": DecisionStatus.EXPIRED,
}

# Raw Quickscreen statuses. Anything else (a status added tomorrow, a typo) is NO_RESULT:
# reading an unknown answer as "pre-qualified" would tell a coordinator something
# CareCredit never said.
RAW_PRESCREEN_TO_OUTCOME: dict[str, PrescreenOutcome] = {
    "PREAPPROVED": PrescreenOutcome.PREQUALIFIED,
    "ACCOUNT_FOUND": PrescreenOutcome.EXISTING_CARDHOLDER,
    "NOT_PREAPPROVED": PrescreenOutcome.NOT_PREQUALIFIED,
    "NO_MATCH": PrescreenOutcome.NO_RESULT,  # name and address not matched
    "NOT_ELIGIBLE": PrescreenOutcome.NO_RESULT,  # under 18: screen the guarantor
    "INVALID": PrescreenOutcome.NO_RESULT,  # CareCredit could not read the entry's fields
}

# Raw cardholder confirmation statuses; anything else is UNKNOWN (never moves a case).
RAW_CONFIRMATION_TO_DECISION: dict[str, DecisionStatus] = {
    "APPROVED": DecisionStatus.APPROVED,
    "INSUFFICIENT_CREDIT": DecisionStatus.DECLINED,  # the card cannot take the amount
}

# Wire promotion type -> (normalised kind, prefix of the normalised offer code).
# Unknown types are skipped, not guessed: an offer we misread could put a patient on
# terms the lender never offered.
PROMOTION_TYPES: dict[str, tuple[PromotionKind, str]] = {
    "DEFERRED_INTEREST": (PromotionKind.DEFERRED, "deferred"),
    "REDUCED_APR": (PromotionKind.REDUCED_APR, "reduced_apr"),
}

CENT = Decimal("0.01")

# Short machine codes such as "invalid_client" may be quoted in an error message; free
# text from the partner may not (it could echo what we sent).
_ERROR_CODE_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_MAX_FIELD_MESSAGE = 200


def _error_detail(body: Any) -> tuple[str, dict[str, str]]:
    """CareCredit's error body: ``{"error": "<code>", "message": ..., "fields": {...}}``.

    The per-field messages (a validation error) are the clerk's message; otherwise the
    short code. The free-text ``message`` is never quoted.
    """
    raw_fields = body.get("fields")
    fields = {
        path: message[:_MAX_FIELD_MESSAGE]
        for path, message in (raw_fields.items() if isinstance(raw_fields, dict) else ())
        if isinstance(path, str) and isinstance(message, str)
    }
    if fields:
        return "; ".join(f"{path}: {message}" for path, message in fields.items()), fields
    code = body.get("error")
    return (code if isinstance(code, str) and _ERROR_CODE_RE.match(code) else ""), {}


CARECREDIT = Partner(name="CareCredit", error_detail=_error_detail)


# --- process-wide token cache -------------------------------------------------------------


@dataclass(frozen=True)
class _CachedToken:
    access_token: str
    expires_at: float  # time.monotonic() after which the token is not used any more


# Shared by every client in the process (Celery worker threads, web requests), keyed by
# (base_url, client_id): one token per CareCredit account, not one per client object,
# because clients are cheap and are built per task.
_token_cache: dict[tuple[str, str], _CachedToken] = {}
_token_cache_lock = threading.Lock()


def clear_token_cache() -> None:
    """Forget every cached token (tests; or after rotating a client secret)."""
    with _token_cache_lock:
        _token_cache.clear()


# --- the client ---------------------------------------------------------------------------


class CareCreditClient:
    """One CareCredit API account, implementing `financing.ports.Lender`.

    `connection`: the timeouts, session and pacing of `partner_http.PartnerConnection`;
    the pacing also applies to the token request.
    """

    def __init__(self, base_url: str, client_id: str, client_secret: str, **connection: Any):
        self._http = PartnerConnection(CARECREDIT, base_url, **connection)
        self.base_url = self._http.base_url
        self.client_id = client_id
        self._client_secret = client_secret
        self._cache_key = (self.base_url, client_id)

    def __repr__(self) -> str:
        # Never show the secret, even in a debugger or an error report.
        return f"CareCreditClient(base_url={self.base_url!r}, client_id={self.client_id!r})"

    # --- Lender ----------------------------------------------------------------------------

    def create_application(self, request: ApplicationRequest) -> Application:
        """Start a prefilled application; the patient finishes it on `apply_url`.

        Sends ``Idempotency-Key: <reference>``, so re-sending the same request after an
        `AmbiguousWriteError` returns the application created the first time instead of
        a second one.
        """
        applicant = request.applicant
        payload = {
            "merchant_number": request.merchant_number,
            "reference": request.reference,
            "requested_amount": _money_to_wire(request.requested_amount),
            "callback_url": request.callback_url,
            "applicant": {
                "first_name": applicant.first_name,
                "last_name": applicant.last_name,
                "birth_date": applicant.birth_date.isoformat(),
                "phone": applicant.phone,
                "email": applicant.email,
                "address": _address_to_wire(applicant.address),
            },
        }
        response = self._call(
            "POST",
            APPLICATIONS_PATH,
            what="the application",
            json_body=payload,
            extra_headers={"Idempotency-Key": request.reference},
            is_write=True,
        )
        data = self._http.json(response, what="the application", is_write=True)
        try:
            application = Application(
                application_id=_require_str(data, "application_id"),
                apply_url=_require_str(data, "apply_url"),
            )
        except _UnreadableAnswer as exc:
            # CareCredit said yes but we cannot tell to what: the application probably
            # exists, so this must be resolved like any other ambiguous write.
            raise unreadable_answer(
                CARECREDIT, what="the application", is_write=True, status=response.status_code, reason=str(exc)
            ) from None
        logger.info(
            "carecredit application created application_id=%s status=%s",
            application.application_id,
            response.status_code,
        )
        return application

    def get_decision(self, application_id: str) -> LenderDecision:
        """The application's current status and, once approved, amounts and offers."""
        if not application_id:
            raise ValueError("application_id is required")
        what = f"application {application_id}"
        response = self._call("GET", f"{APPLICATIONS_PATH}/{quote(application_id, safe='')}", what=what)
        data = self._http.json(response, what=what, is_write=False)
        try:
            decision = _parse_decision(data)
        except _UnreadableAnswer as exc:
            raise unreadable_answer(
                CARECREDIT, what=what, is_write=False, status=response.status_code, reason=str(exc)
            ) from None
        if decision.application_id != application_id:
            # Acting on another application's decision could approve the wrong patient's
            # case; a human has to look at this.
            raise PermanentPartnerError(
                f"CareCredit answered a lookup of application {application_id} "
                f"with application {decision.application_id}",
                status=response.status_code,
            )
        return decision

    def list_promotions(self, merchant_number: str, amount: Decimal) -> list[Offer]:
        """The promotions CareCredit offers this merchant for a purchase of `amount`."""
        response = self._call(
            "GET",
            PROMOTIONS_PATH,
            what="the promotions request",
            params={"merchant_number": merchant_number, "amount": _money_to_wire(amount)},
        )
        data = self._http.json(response, what="the promotions", is_write=False)
        if not isinstance(data, list):
            raise unreadable_answer(
                CARECREDIT, what="the promotions", is_write=False, status=response.status_code, reason="not a list"
            )
        return _parse_offers(data)

    def list_changed_decisions(
        self, merchant_number: str, since: datetime | None, cursor: str | None = None
    ) -> DecisionPage:
        """One page of the merchant's applications whose status changed at or after `since`.

        An entry that cannot be read is skipped and logged (by application id) rather than
        failing the page: one odd application must not stop polling for the whole merchant.
        """
        params = {"merchant_number": merchant_number, "limit": str(DECISION_PAGE_SIZE)}
        if since is not None:
            params["updated_since"] = since.astimezone(timezone.utc).isoformat()
        if cursor:
            params["cursor"] = cursor
        what = "the changed applications"
        response = self._call("GET", APPLICATIONS_PATH, what=what, params=params)
        data = self._http.json(response, what=what, is_write=False)
        try:
            if not isinstance(data, dict) or not isinstance(data.get("applications"), list):
                raise _UnreadableAnswer("applications")
            as_of = _parse_datetime(data.get("as_of"), "as_of")
            if as_of is None:
                raise _UnreadableAnswer("as_of")
            next_cursor = data.get("next_cursor")
            if next_cursor is not None and (not isinstance(next_cursor, str) or not next_cursor):
                raise _UnreadableAnswer("next_cursor")
        except _UnreadableAnswer as exc:
            raise unreadable_answer(
                CARECREDIT, what=what, is_write=False, status=response.status_code, reason=str(exc)
            ) from None
        decisions = []
        for item in data["applications"]:
            try:
                decisions.append(_parse_decision(item))
            except _UnreadableAnswer as exc:
                application_id = item.get("application_id") if isinstance(item, dict) else None
                logger.warning(
                    "carecredit changed application skipped: unreadable %s (application_id=%s)",
                    exc, str(application_id)[:64],
                )
        return DecisionPage(decisions=tuple(decisions), next_cursor=next_cursor, as_of=as_of)

    # --- pre-screening and existing cardholders --------------------------------------------

    @property
    def max_prescreen_batch(self) -> int:
        return PRESCREEN_MAX_BATCH

    def prescreen(self, request: PrescreenRequest) -> list[PrescreenResult]:
        """One batch Quickscreen: a result per applicant, in the order sent.

        A batch CareCredit cannot be sent (empty, too large, a reference missing, too long
        or repeated, money not in whole cents) raises ValueError before anything is sent.
        An entry CareCredit answered but we cannot read is NO_RESULT (logged by its
        position); an answer that does not account for exactly the applicants sent is
        unreadable as a whole (transient: send the batch again).
        """
        applicants = request.applicants
        if not applicants:
            raise ValueError("a prescreen batch needs at least one applicant")
        if len(applicants) > PRESCREEN_MAX_BATCH:
            raise ValueError(f"a prescreen batch takes at most {PRESCREEN_MAX_BATCH} applicants")
        references = [applicant.reference for applicant in applicants]
        if not all(reference and len(reference) <= MAX_REFERENCE for reference in references):
            raise ValueError(f"every applicant needs a reference of 1 to {MAX_REFERENCE} characters")
        if len(set(references)) != len(references):
            raise ValueError("the references of a prescreen batch must be unique")
        payload = {
            "merchant_number": request.merchant_number,
            "applicants": [
                {
                    "reference": applicant.reference,
                    "first_name": applicant.first_name,
                    "last_name": applicant.last_name,
                    "birth_date": applicant.birth_date.isoformat(),
                    "address": _address_to_wire(applicant.address),
                    "requested_amount": _money_to_wire(applicant.requested_amount),
                }
                for applicant in applicants
            ],
        }
        what = "the Quickscreen batch"
        # A POST, but a read: nothing is created, so a lost answer is only transient.
        response = self._call("POST", QUICKSCREEN_PATH, what=what, json_body=payload)
        data = self._http.json(response, what=what, is_write=False)
        try:
            entries = _prescreen_entries(data, references)
        except _UnreadableAnswer as exc:
            raise unreadable_answer(
                CARECREDIT, what=what, is_write=False, status=response.status_code, reason=str(exc)
            ) from None
        results = [
            _parse_prescreen_entry(entries[reference], position, len(references))
            for position, reference in enumerate(references, start=1)
        ]
        counts = {outcome.value: 0 for outcome in PrescreenOutcome}
        for result in results:
            counts[result.outcome.value] += 1
        logger.info(
            "carecredit quickscreen of %d applicants: %s",
            len(results), " ".join(f"{outcome}={count}" for outcome, count in counts.items()),
        )
        return results

    def confirm_cardholder(self, request: CardholderRequest) -> CardholderConfirmation:
        """CareCredit's decision on the case's amount for an existing cardholder.

        One confirmation per reference: sending the same request again (after an
        AmbiguousWriteError) returns the first one. NotFoundError when CareCredit finds no
        account for the identity.
        """
        if not request.reference or len(request.reference) > MAX_REFERENCE:
            raise ValueError(f"the reference must be 1 to {MAX_REFERENCE} characters")
        payload = {
            "merchant_number": request.merchant_number,
            "reference": request.reference,
            "requested_amount": _money_to_wire(request.requested_amount),
            "cardholder": {
                "first_name": request.first_name,
                "last_name": request.last_name,
                "birth_date": request.birth_date.isoformat(),
                "address": _address_to_wire(request.address),
            },
        }
        what = "the cardholder confirmation"
        try:
            response = self._call("POST", CARDHOLDER_CONFIRMATIONS_PATH, what=what, json_body=payload, is_write=True)
        except NotFoundError as exc:
            raise NotFoundError(
                f"CareCredit found no account for this cardholder (HTTP {exc.status}); "
                "the patient can apply instead",
                status=exc.status,
            ) from None
        data = self._http.json(response, what=what, is_write=True)
        try:
            confirmation = _parse_confirmation(data)
        except _UnreadableAnswer as exc:
            # CareCredit recorded something under the reference: re-sending finds it.
            raise unreadable_answer(
                CARECREDIT, what=what, is_write=True, status=response.status_code, reason=str(exc)
            ) from None
        if data.get("reference") != request.reference:
            raise PermanentPartnerError(
                f"CareCredit answered the cardholder confirmation of {request.reference} "
                f"with confirmation {confirmation.decision.application_id} of another reference",
                status=response.status_code,
            )
        logger.info(
            "carecredit cardholder confirmation confirmation_id=%s status=%s",
            confirmation.decision.application_id, confirmation.decision.raw_status,
        )
        return confirmation

    # --- authenticated calls --------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
        extra_headers: dict[str, str] | None = None,
        is_write: bool = False,
    ) -> requests.Response:
        """Send one API request with a bearer token; return the 2xx response or raise.

        A 401 means CareCredit no longer accepts our cached token (revoked, or expired
        early on its side): drop it, get a fresh one and retry exactly once. A second 401
        means the credentials themselves are wrong, which retrying will not fix. Retrying
        a write after a 401 is safe: a 401 means CareCredit did not process it.
        """
        headers = {"Accept": "application/json", **(extra_headers or {})}
        body: bytes | None = None
        if json_body is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(json_body).encode("utf-8")

        token = self._access_token()
        response = self._http.send(
            method, path, what=what, is_write=is_write,
            headers={**headers, "Authorization": f"Bearer {token}"}, params=params, data=body,
        )
        if response.status_code == 401:
            _forget_token(self._cache_key, token)
            token = self._access_token()
            response = self._http.send(
                method, path, what=what, is_write=is_write,
                headers={**headers, "Authorization": f"Bearer {token}"}, params=params, data=body,
            )
            if response.status_code == 401:
                raise PermanentPartnerError(
                    "CareCredit refused our API credentials even with a fresh token (HTTP 401); "
                    "check this location's CareCredit client id and secret",
                    status=401,
                )
        self._http.raise_for_status(response, what=what, is_write=is_write)
        return response

    # --- OAuth2 token ------------------------------------------------------------------------

    def _access_token(self) -> str:
        """A bearer token from the process-wide cache, fetching a new one when needed.

        The lock guards only the dictionary, not the HTTP call: holding a process-wide
        lock for up to connect+read timeout would stall every other CareCredit account in
        the process. Two threads may therefore both fetch a token at expiry; both tokens
        are valid and the last one stored wins, which is harmless.
        """
        now = time.monotonic()
        with _token_cache_lock:
            cached = _token_cache.get(self._cache_key)
            if cached is not None and cached.expires_at > now:
                return cached.access_token
        access_token, expires_in = self._fetch_token()
        with _token_cache_lock:
            # Measured from before the request: errs on the side of refreshing early.
            _token_cache[self._cache_key] = _CachedToken(access_token, now + expires_in - TOKEN_EXPIRY_MARGIN)
        return access_token

    def _fetch_token(self) -> tuple[str, float]:
        what = "the token request"
        # A POST, but it creates nothing a retry could duplicate: not a write.
        response = self._http.send(
            "POST",
            TOKEN_PATH,
            what=what,
            is_write=False,
            headers={"Accept": "application/json"},
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self._client_secret,
            },
        )
        status = response.status_code
        if status == 404:
            raise PermanentPartnerError(
                "CareCredit's token endpoint was not found (HTTP 404); check this location's CareCredit base URL",
                status=status,
            )
        if 400 <= status < 500 and status != 429:
            code, _ = error_detail(CARECREDIT, response)
            detail = f"HTTP {status}, {code}" if code else f"HTTP {status}"
            raise PermanentPartnerError(
                f"CareCredit refused our API credentials ({detail}); "
                "check this location's CareCredit client id and secret",
                status=status,
            )
        self._http.raise_for_status(response, what=what, is_write=False)
        data = self._http.json(response, what=what, is_write=False)
        try:
            access_token = _require_str(data, "access_token")
            expires_in = data.get("expires_in")
            if isinstance(expires_in, bool) or not isinstance(expires_in, (int, Decimal)) or expires_in <= 0:
                raise _UnreadableAnswer("expires_in")
        except _UnreadableAnswer as exc:
            raise unreadable_answer(CARECREDIT, what=what, is_write=False, status=status, reason=str(exc)) from None
        return access_token, float(expires_in)


# --- helpers ------------------------------------------------------------------------------


class _UnreadableAnswer(Exception):
    """A 2xx body lacked a field or had one of the wrong shape; the message is the field name."""


def _forget_token(cache_key: tuple[str, str], token: str) -> None:
    """Drop `token` from the cache, unless another thread has already replaced it."""
    with _token_cache_lock:
        cached = _token_cache.get(cache_key)
        if cached is not None and cached.access_token == token:
            del _token_cache[cache_key]


def _address_to_wire(address) -> dict[str, str]:
    return {"line1": address.line1, "city": address.city, "state": address.state, "zip": address.zip}


def _money_to_wire(amount: Decimal) -> str:
    """Decimal -> "1234.00". Refuses floats and sub-cent amounts rather than rounding them."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be a Decimal, not {type(amount).__name__}")
    if not amount.is_finite() or amount != amount.quantize(CENT):
        raise ValueError("money must be a finite amount in whole cents")
    return f"{amount.quantize(CENT):f}"


def _money_from_wire(value: Any, field_name: str) -> Decimal:
    """A money field from the wire: a decimal string (or a JSON number, read as Decimal)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise _UnreadableAnswer(field_name)
    try:
        amount = Decimal(value) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise _UnreadableAnswer(field_name) from None
    if not amount.is_finite() or amount != amount.quantize(CENT):
        raise _UnreadableAnswer(field_name)
    return amount.quantize(CENT)


def _optional_money(data: dict[str, Any], field_name: str) -> Decimal | None:
    value = data.get(field_name)
    return None if value is None else _money_from_wire(value, field_name)


def _require_str(data: Any, field_name: str) -> str:
    value = data.get(field_name) if isinstance(data, dict) else None
    if not isinstance(value, str) or not value:
        raise _UnreadableAnswer(field_name)
    return value


def _parse_datetime(value: Any, field_name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _UnreadableAnswer(field_name)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _UnreadableAnswer(field_name) from None
    # A naive time from the partner is taken as UTC, the contract's only time zone.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _parse_decision(data: Any) -> LenderDecision:
    if not isinstance(data, dict):
        raise _UnreadableAnswer("body")
    raw_status = _require_str(data, "status")
    promotions = data.get("promotions") or []
    if not isinstance(promotions, list):
        raise _UnreadableAnswer("promotions")
    return LenderDecision(
        application_id=_require_str(data, "application_id"),
        status=RAW_STATUS_TO_DECISION.get(raw_status, DecisionStatus.UNKNOWN),
        raw_status=raw_status,
        requested_amount=_money_from_wire(data.get("requested_amount"), "requested_amount"),
        approved_amount=_optional_money(data, "approved_amount"),
        credit_limit=_optional_money(data, "credit_limit"),
        offers=tuple(_parse_offers(promotions)),
        decided_at=_parse_datetime(data.get("decided_at"), "decided_at"),
    )


def _parse_offers(promotions: list[Any]) -> list[Offer]:
    """Wire promotions -> `Offer`s. Unknown types and malformed entries are skipped and logged."""
    offers: list[Offer] = []
    for item in promotions:
        promotion_type = item.get("type") if isinstance(item, dict) else None
        mapping = PROMOTION_TYPES.get(promotion_type) if isinstance(promotion_type, str) else None
        if mapping is None:
            logger.info("carecredit promotion skipped: unknown type %r", str(promotion_type)[:40])
            continue
        kind, code_prefix = mapping
        months = item.get("months")
        try:
            if isinstance(months, bool) or not isinstance(months, int) or months <= 0:
                raise _UnreadableAnswer("months")
            offer = Offer(
                code=f"{code_prefix}_{months}",
                kind=kind,
                months=months,
                apr=_apr_from_wire(item.get("apr")),
                min_amount=_money_from_wire(item.get("min_purchase"), "min_purchase"),
            )
        except _UnreadableAnswer as exc:
            logger.warning("carecredit promotion skipped: unreadable %s in %s", exc, promotion_type)
            continue
        offers.append(offer)
    return offers


def _apr_from_wire(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise _UnreadableAnswer("apr")
    try:
        apr = Decimal(value) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise _UnreadableAnswer("apr") from None
    if not apr.is_finite() or apr < 0:
        raise _UnreadableAnswer("apr")
    return apr


_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LAST4_RE = re.compile(r"^\d{4}$")
_MAX_RAW_STATUS = 64


def _parse_date(value: Any, field_name: str) -> date:
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise _UnreadableAnswer(field_name)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _UnreadableAnswer(field_name) from None


def _raw_status(data: dict[str, Any]) -> str:
    status = _require_str(data, "status")
    if len(status) > _MAX_RAW_STATUS:
        raise _UnreadableAnswer("status")
    return status


def _prescreen_entries(data: Any, references: list[str]) -> dict[str, dict[str, Any]]:
    """The answer's entries by reference: exactly one per applicant sent, no other."""
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list):
        raise _UnreadableAnswer("results")
    entries: dict[str, dict[str, Any]] = {}
    for item in results:
        reference = item.get("reference") if isinstance(item, dict) else None
        if not isinstance(reference, str) or reference in entries:
            raise _UnreadableAnswer("results: a reference missing or repeated")
        entries[reference] = item
    if set(entries) != set(references):
        raise _UnreadableAnswer("results: not one per applicant sent")
    return entries


def _parse_prescreen_entry(item: dict[str, Any], position: int, size: int) -> PrescreenResult:
    """One Quickscreen entry; one we cannot read is NO_RESULT, never a guess."""
    reference = item["reference"]
    try:
        raw_status = _raw_status(item)
    except _UnreadableAnswer:
        logger.warning("carecredit quickscreen entry %d of %d skipped: unreadable status", position, size)
        return PrescreenResult(reference, PrescreenOutcome.NO_RESULT, None, None, "")
    outcome = RAW_PRESCREEN_TO_OUTCOME.get(raw_status)
    if outcome is None:
        shown = raw_status if _ERROR_CODE_RE.match(raw_status) else "?"
        logger.warning("carecredit quickscreen entry %d of %d is no result: unknown status %s", position, size, shown)
        return PrescreenResult(reference, PrescreenOutcome.NO_RESULT, None, None, raw_status)
    try:
        if outcome == PrescreenOutcome.PREQUALIFIED:
            amount = _money_from_wire(item.get("preapproved_amount"), "preapproved_amount")
            expires_on = _parse_date(item.get("expires_on"), "expires_on")
        elif outcome == PrescreenOutcome.EXISTING_CARDHOLDER:
            amount, expires_on = _money_from_wire(item.get("available_credit"), "available_credit"), None
        else:
            amount, expires_on = None, None
    except _UnreadableAnswer as exc:
        logger.warning(
            "carecredit quickscreen entry %d of %d is no result: unreadable %s for status %s",
            position, size, exc, raw_status,
        )
        return PrescreenResult(reference, PrescreenOutcome.NO_RESULT, None, None, raw_status)
    if raw_status == "INVALID":
        fields = item.get("fields")
        names = sorted(str(name)[:64] for name in fields) if isinstance(fields, dict) else []
        # The field names only: CareCredit's messages are about the rule, but the names
        # are all an operator needs to find which demographics to fix in the PMS.
        logger.warning(
            "carecredit quickscreen entry %d of %d refused as invalid: %s", position, size, ", ".join(names) or "?"
        )
    return PrescreenResult(reference, outcome, amount, expires_on, raw_status)


def _parse_confirmation(data: Any) -> CardholderConfirmation:
    if not isinstance(data, dict):
        raise _UnreadableAnswer("body")
    _require_str(data, "reference")
    raw_status = _raw_status(data)
    status = RAW_CONFIRMATION_TO_DECISION.get(raw_status, DecisionStatus.UNKNOWN)
    approved_amount = _optional_money(data, "approved_amount")
    if status == DecisionStatus.APPROVED and approved_amount is None:
        raise _UnreadableAnswer("approved_amount")
    promotions = data.get("promotions") or []
    if not isinstance(promotions, list):
        raise _UnreadableAnswer("promotions")
    last4 = data.get("account_last4")
    # Exactly four digits: a full account number in its place is refused, never kept.
    if not isinstance(last4, str) or not _LAST4_RE.match(last4):
        raise _UnreadableAnswer("account_last4")
    decision = LenderDecision(
        application_id=_require_str(data, "confirmation_id"),
        status=status,
        raw_status=raw_status,
        requested_amount=_money_from_wire(data.get("requested_amount"), "requested_amount"),
        approved_amount=approved_amount if status == DecisionStatus.APPROVED else None,
        credit_limit=_money_from_wire(data.get("available_credit"), "available_credit"),
        offers=tuple(_parse_offers(promotions)) if status == DecisionStatus.APPROVED else (),
        decided_at=_parse_datetime(data.get("decided_at"), "decided_at"),
    )
    return CardholderConfirmation(
        decision=decision, account_last4=last4, account_token=_require_str(data, "account_token"),
    )
