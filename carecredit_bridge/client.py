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

The money (modelled on Synchrony's transact API; camelCase as Synchrony spells it):

- ``POST /v1/credit/transact`` ``{"action": "AUTH_SETTLE", "clientTransId", "merchantNumber",
  "applicationId", "reference", "amount", "promotionCode"}`` -> 201 the transaction (200 with
  the first one when the clientTransId was used before; 409 ``client_trans_id_reused`` when
  it was used with a different request). ``"status": "DECLINED"`` with a ``declineCode``
  (NOT_APPROVED, APPROVAL_EXPIRED + ``expiresOn``, OVER_APPROVED_AMOUNT + ``availableAmount``)
  is an answer, not an error. ``{"action": "VOID", "merchantNumber", "transactionId"}`` -> 200
  the purchase, VOIDED. ``{"action": "REFUND", "clientTransId", "merchantNumber",
  "transactionId", "amount"}`` -> 201 the refund. A rule that refuses the request is a 422
  with a short ``error`` code and its figures (``remainingAmount``, ``businessDate``,
  ``minimumAmount``...): nothing was recorded. The promotion travels as CareCredit's code
  (``DI12``, ``RA36``), the port's normalised code (``deferred_12``) on our side.
- ``GET /v1/credit/transactions?merchantNumber=&clientTransId=`` -> ``{"transactions": [...]}``,
  zero or one: the lookup before any retry of a purchase or a refund.
- ``GET /v1/settlement/reports/{merchantNumber}/{YYYY-MM-DD}`` -> ``{"merchantNumber",
  "settlementDate", "closed", "transactions": [{"transactionId", "type", "reference",
  "amount", "fee", "net", "promotionCode", "purchaseTransactionId"}], "totals": {"purchases",
  "refunds", "fees", "net"}}``. The totals are checked against the lines (to the cent).
- An approved application and a cardholder confirmation carry ``expires_on`` (YYYY-MM-DD,
  the lender's date): the last day the approval can be charged.

Error split: the shared HTTP kit (`partner_http`) maps transport failures and statuses
onto `financing.ports`' errors. What is CareCredit's own: `create_application` and
`confirm_cardholder`, and the purchase, void and refund are the writes (anything that may have happened after CareCredit
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
from typing import Any, Callable
from urllib.parse import quote

import requests

from financing.ports import (
    Application,
    ApplicationRequest,
    CardholderConfirmation,
    CardholderRequest,
    DecisionPage,
    DecisionStatus,
    DeclineCode,
    LenderDecision,
    LenderTransaction,
    NotFoundError,
    Offer,
    PermanentPartnerError,
    PrescreenOutcome,
    PrescreenRequest,
    PrescreenResult,
    PromotionKind,
    PurchaseRequest,
    RefundRequest,
    SettlementLine,
    SettlementReport,
    TransactionKind,
    TransactionStatus,
)
from core.inbound import parse_json
from partner_http import Partner, PartnerConnection, error_detail, unreadable_answer

__all__ = [
    "PRESCREEN_MAX_BATCH",
    "PROMOTION_CODE_PREFIXES",
    "PROMOTION_TYPES",
    "RAW_CONFIRMATION_TO_DECISION",
    "RAW_PRESCREEN_TO_OUTCOME",
    "RAW_STATUS_TO_DECISION",
    "RAW_TRANSACTION_KIND",
    "RAW_TRANSACTION_STATUS",
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
TRANSACT_PATH = "/v1/credit/transact"
TRANSACTIONS_PATH = "/v1/credit/transactions"
SETTLEMENT_REPORTS_PATH = "/v1/settlement/reports"
MAX_TRANSACTION_KEY = 64

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

# Normalised promotion prefix <-> CareCredit's promotion code prefix ("deferred_12" <-> "DI12").
PROMOTION_CODE_PREFIXES: dict[str, str] = {"deferred": "DI", "reduced_apr": "RA"}

# Raw transaction statuses and types. Anything else makes the answer unreadable: guessing
# whether money moved would put a wrong amount on a patient's ledger.
RAW_TRANSACTION_STATUS: dict[str, TransactionStatus] = {
    "SETTLED": TransactionStatus.SETTLED,
    "VOIDED": TransactionStatus.VOIDED,
    "DECLINED": TransactionStatus.DECLINED,
}
RAW_TRANSACTION_KIND: dict[str, TransactionKind] = {
    "PURCHASE": TransactionKind.PURCHASE,
    "REFUND": TransactionKind.REFUND,
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

    # --- the money: purchase, void, refund, lookup, settlement report -----------------------

    def purchase(self, request: PurchaseRequest) -> LenderTransaction:
        """Authorise and settle (AUTH_SETTLE) under the caller's idempotency key.

        The same key again returns the first transaction, never a second charge. A decline
        is returned (status DECLINED, `decline_reason` in plain words); a refusal of the
        request itself (a promotion not offered, an unknown application) raises
        PermanentPartnerError with nothing charged; a lost answer raises AmbiguousWriteError.
        """
        _check_key(request.idempotency_key)
        if not request.reference or len(request.reference) > MAX_REFERENCE:
            raise ValueError(f"the reference must be 1 to {MAX_REFERENCE} characters")
        payload = {
            "action": "AUTH_SETTLE",
            "clientTransId": request.idempotency_key,
            "merchantNumber": request.merchant_number,
            "applicationId": request.application_id,
            "reference": request.reference,
            "amount": _positive_money_to_wire(request.amount),
            "promotionCode": _promotion_to_wire(request.promotion),
        }
        transaction = self._transact(payload, what="the purchase", key=request.idempotency_key)
        if transaction.kind != TransactionKind.PURCHASE:
            raise PermanentPartnerError(
                f"CareCredit answered the purchase {request.idempotency_key} with a refund", status=None
            )
        return transaction

    def find_transaction(self, merchant_number: str, idempotency_key: str) -> LenderTransaction | None:
        """The purchase or refund made with this key, or None: the lookup before any retry."""
        _check_key(idempotency_key)
        what = "the transaction lookup"
        response = self._call(
            "GET", TRANSACTIONS_PATH, what=what,
            params={"merchantNumber": merchant_number, "clientTransId": idempotency_key},
        )
        data = self._http.json(response, what=what, is_write=False)
        try:
            items = data.get("transactions") if isinstance(data, dict) else None
            if not isinstance(items, list) or len(items) > 1:
                raise _UnreadableAnswer("transactions")
            transaction = _parse_transaction(items[0]) if items else None
        except _UnreadableAnswer as exc:
            raise unreadable_answer(
                CARECREDIT, what=what, is_write=False, status=response.status_code, reason=str(exc)
            ) from None
        if transaction is not None and transaction.idempotency_key != idempotency_key:
            raise PermanentPartnerError(
                f"CareCredit answered the lookup of {idempotency_key} with a transaction of another key",
                status=response.status_code,
            )
        return transaction

    def void(self, merchant_number: str, purchase_id: str) -> LenderTransaction:
        """Cancel a purchase on its own business day; safe to repeat (a voided purchase is
        returned as it is). PermanentPartnerError once its day has closed: refund it."""
        if not purchase_id:
            raise ValueError("purchase_id is required")
        payload = {"action": "VOID", "merchantNumber": merchant_number, "transactionId": purchase_id}
        transaction = self._transact(payload, what=f"the void of purchase {purchase_id}", key=None)
        if transaction.transaction_id != purchase_id or transaction.status != TransactionStatus.VOIDED:
            raise PermanentPartnerError(
                f"CareCredit answered the void of purchase {purchase_id} with another transaction or status",
            )
        return transaction

    def refund(self, request: RefundRequest) -> LenderTransaction:
        """Give back all or part of a settled purchase, once per idempotency key."""
        _check_key(request.idempotency_key)
        if not request.purchase_id:
            raise ValueError("purchase_id is required")
        payload = {
            "action": "REFUND",
            "clientTransId": request.idempotency_key,
            "merchantNumber": request.merchant_number,
            "transactionId": request.purchase_id,
            "amount": _positive_money_to_wire(request.amount),
        }
        transaction = self._transact(payload, what="the refund", key=request.idempotency_key)
        if transaction.kind != TransactionKind.REFUND or transaction.purchase_id != request.purchase_id:
            raise PermanentPartnerError(
                f"CareCredit answered the refund {request.idempotency_key} with another purchase's transaction",
            )
        return transaction

    def settlement_report(self, merchant_number: str, day: date) -> SettlementReport:
        """The merchant's purchases (not voided) and refunds of the lender's day `day`."""
        what = f"the settlement report of {day.isoformat()}"
        path = f"{SETTLEMENT_REPORTS_PATH}/{quote(merchant_number, safe='')}/{day.isoformat()}"
        response = self._call("GET", path, what=what)
        data = self._http.json(response, what=what, is_write=False)
        try:
            report = _parse_report(data, merchant_number, day)
        except _UnreadableAnswer as exc:
            raise unreadable_answer(
                CARECREDIT, what=what, is_write=False, status=response.status_code, reason=str(exc)
            ) from None
        logger.info("carecredit settlement report day=%s lines=%d", day.isoformat(), len(report.lines))
        return report

    def _transact(self, payload: dict[str, Any], *, what: str, key: str | None) -> LenderTransaction:
        response = self._call(
            "POST", TRANSACT_PATH, what=what, json_body=payload, is_write=True, refusal=_transact_refusal,
        )
        data = self._http.json(response, what=what, is_write=True)
        try:
            transaction = _parse_transaction(data)
        except _UnreadableAnswer as exc:
            # CareCredit said yes to something: the lookup by key (or a repeat) resolves it.
            raise unreadable_answer(
                CARECREDIT, what=what, is_write=True, status=response.status_code, reason=str(exc)
            ) from None
        if key is not None and transaction.idempotency_key != key:
            raise PermanentPartnerError(
                f"CareCredit answered {what} ({key}) with a transaction of another key", status=response.status_code
            )
        logger.info(
            "carecredit %s transaction_id=%s status=%s http=%s",
            payload["action"], transaction.transaction_id, transaction.status, response.status_code,
        )
        return transaction

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
        refusal: Callable[[int, dict[str, Any]], str | None] | None = None,
    ) -> requests.Response:
        """Send one API request with a bearer token; return the 2xx response or raise.

        A 401 means CareCredit no longer accepts our cached token (revoked, or expired
        early on its side): drop it, get a fresh one and retry exactly once. A second 401
        means the credentials themselves are wrong, which retrying will not fix. Retrying
        a write after a 401 is safe: a 401 means CareCredit did not process it.

        `refusal` turns a 409 or 422 error body into the clerk's message (None: the kit's).
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
        if refusal is not None and response.status_code in (409, 422):
            try:
                body = parse_json(response.content, parse_float=Decimal)
            except ValueError:
                body = None
            message = refusal(response.status_code, body) if isinstance(body, dict) else None
            if message:
                raise PermanentPartnerError(message, status=response.status_code)
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
        expires_on=_optional_date(data, "expires_on"),
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
        expires_on=_optional_date(data, "expires_on") if status == DecisionStatus.APPROVED else None,
    )
    return CardholderConfirmation(
        decision=decision, account_last4=last4, account_token=_require_str(data, "account_token"),
    )


# --- the money: wire helpers --------------------------------------------------------------


def _optional_date(data: dict[str, Any], field_name: str) -> date | None:
    value = data.get(field_name)
    return None if value is None else _parse_date(value, field_name)


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key or len(key) > MAX_TRANSACTION_KEY:
        raise ValueError(f"an idempotency key must be 1 to {MAX_TRANSACTION_KEY} characters")


def _positive_money_to_wire(amount: Decimal) -> str:
    wire = _money_to_wire(amount)
    if amount <= 0:
        raise ValueError("the amount must be more than $0.00")
    return wire


def _promotion_to_wire(promotion: str) -> str:
    """"deferred_12" -> "DI12"; ValueError for a code that is not the port's."""
    prefix, _, months = promotion.rpartition("_")
    wire_prefix = PROMOTION_CODE_PREFIXES.get(prefix)
    if wire_prefix is None or not months.isdigit():
        raise ValueError("the promotion must be a normalised code such as deferred_12 or reduced_apr_36")
    return f"{wire_prefix}{int(months)}"


_WIRE_PROMOTION_RE = re.compile(r"^([A-Z]{2})(\d{1,3})$")


def _promotion_from_wire(value: Any, field_name: str = "promotionCode") -> str:
    """"DI12" -> "deferred_12"; an unknown code is unreadable (never guessed)."""
    match = _WIRE_PROMOTION_RE.match(value) if isinstance(value, str) else None
    normalised = {wire: ours for ours, wire in PROMOTION_CODE_PREFIXES.items()}.get(match.group(1)) if match else None
    if normalised is None:
        raise _UnreadableAnswer(field_name)
    return f"{normalised}_{int(match.group(2))}"


def _promotion_words(promotion: str) -> str:
    """"deferred_12" -> "deferred interest for 12 months" (for a clerk's message)."""
    prefix, _, months = promotion.rpartition("_")
    kind = {"deferred": "deferred interest", "reduced_apr": "a reduced APR"}.get(prefix, "the promotion")
    return f"{kind} for {months} months" if months.isdigit() else kind


def format_money(amount: Decimal) -> str:
    """Decimal("1234.5") -> "$1,234.50": how a clerk reads an amount."""
    return f"${amount.quantize(CENT):,.2f}"


def format_day(day: date) -> str:
    return f"{day:%b} {day.day}, {day.year}"


_DECLINE_CODES = {
    "NOT_APPROVED": DeclineCode.NOT_APPROVED,
    "APPROVAL_EXPIRED": DeclineCode.APPROVAL_EXPIRED,
    "OVER_APPROVED_AMOUNT": DeclineCode.OVER_APPROVED_AMOUNT,
}


def _decline_reason(data: dict[str, Any], amount: Decimal) -> str:
    """A decline in plain words, from CareCredit's code and figures (never its free text)."""
    code = data.get("declineCode")
    if code == "OVER_APPROVED_AMOUNT":
        try:
            available = _money_from_wire(data.get("availableAmount"), "availableAmount")
        except _UnreadableAnswer:
            return f"The purchase of {format_money(amount)} is more than is left on the CareCredit approval"
        return (
            f"The purchase of {format_money(amount)} is more than the {format_money(available)} "
            "left on the CareCredit approval"
        )
    if code == "APPROVAL_EXPIRED":
        try:
            expires_on = _optional_date(data, "expiresOn")
        except _UnreadableAnswer:
            expires_on = None
        return f"The CareCredit approval expired on {format_day(expires_on)}" if expires_on else (
            "The CareCredit approval expired"
        )
    if code == "NOT_APPROVED":
        return "The CareCredit application is not approved"
    shown = f" ({code})" if isinstance(code, str) and _ERROR_CODE_RE.match(code) else ""
    return f"CareCredit declined the purchase{shown}"


def _transact_refusal(status: int, body: dict[str, Any]) -> str | None:
    """A refused transact request (409/422) in a clerk's words, from the code and figures."""
    code = body.get("error")

    def figure(name: str) -> Decimal | None:
        try:
            return _money_from_wire(body.get(name), name)
        except _UnreadableAnswer:
            return None

    if code == "client_trans_id_reused":
        return ("CareCredit already has a different transaction under this key; "
                "nothing was charged again (a changed amount or promotion needs a new key)")
    if code == "application_not_found":
        return "CareCredit has no application or cardholder confirmation with this id for the merchant number"
    if code == "promotion_not_offered":
        try:
            promotion = _promotion_words(_promotion_from_wire(body.get("promotionCode")))
        except _UnreadableAnswer:
            promotion = "this promotion"
        return f"CareCredit does not offer {promotion} on this approval; nothing was charged"
    if code == "below_promotion_minimum":
        minimum = figure("minimumAmount")
        at_least = f" of {format_money(minimum)}" if minimum is not None else ""
        return f"The purchase is below the promotion's minimum{at_least}; nothing was charged"
    if code == "void_window_closed":
        try:
            day = _optional_date(body, "businessDate")
        except _UnreadableAnswer:
            day = None
        when = f" ({format_day(day)})" if day else ""
        return f"CareCredit can no longer void this purchase: its business day{when} has closed; refund it instead"
    if code == "not_voidable":
        return "CareCredit cannot void this purchase: it is not settled, or part of it was already refunded"
    if code == "not_refundable":
        return "CareCredit cannot refund this purchase: it was voided or declined"
    if code == "refund_exceeds_remaining":
        remaining = figure("remainingAmount")
        left = f"only {format_money(remaining)}" if remaining is not None else "less"
        return f"CareCredit refused the refund: {left} of the purchase is left to refund"
    return None


def _parse_transaction(data: Any) -> LenderTransaction:
    if not isinstance(data, dict):
        raise _UnreadableAnswer("body")
    raw_status = data.get("status")
    status = RAW_TRANSACTION_STATUS.get(raw_status) if isinstance(raw_status, str) else None
    if status is None:
        raise _UnreadableAnswer("status")
    raw_type = data.get("type")
    kind = RAW_TRANSACTION_KIND.get(raw_type) if isinstance(raw_type, str) else None
    if kind is None:
        raise _UnreadableAnswer("type")
    amount = _money_from_wire(data.get("amount"), "amount")
    if amount <= 0:
        raise _UnreadableAnswer("amount")
    created_at = _parse_datetime(data.get("createdAt"), "createdAt")
    if created_at is None:
        raise _UnreadableAnswer("createdAt")
    purchase_id = data.get("purchaseTransactionId") or ""
    if not isinstance(purchase_id, str) or (kind == TransactionKind.REFUND and not purchase_id):
        raise _UnreadableAnswer("purchaseTransactionId")
    authorization_code = data.get("authorizationCode") or ""
    if not isinstance(authorization_code, str):
        raise _UnreadableAnswer("authorizationCode")
    settled_purchase = kind == TransactionKind.PURCHASE and status != TransactionStatus.DECLINED
    return LenderTransaction(
        transaction_id=_require_str(data, "transactionId"),
        kind=kind,
        status=status,
        amount=amount,
        reference=_require_str(data, "reference"),
        idempotency_key=_require_str(data, "clientTransId"),
        promotion=_promotion_from_wire(data.get("promotionCode")),
        authorization_code=authorization_code if settled_purchase else "",
        created_at=created_at,
        business_day=_parse_date(data.get("businessDate"), "businessDate"),
        purchase_id=purchase_id if kind == TransactionKind.REFUND else "",
        decline_reason=_decline_reason(data, amount) if status == TransactionStatus.DECLINED else "",
        decline_code=_DECLINE_CODES.get(data.get("declineCode"), DeclineCode.OTHER) if status == TransactionStatus.DECLINED else None,
    )


def _parse_report(data: Any, merchant_number: str, day: date) -> SettlementReport:
    if not isinstance(data, dict):
        raise _UnreadableAnswer("body")
    if data.get("merchantNumber") != merchant_number:
        raise _UnreadableAnswer("merchantNumber")
    if _parse_date(data.get("settlementDate"), "settlementDate") != day:
        raise _UnreadableAnswer("settlementDate")
    items = data.get("transactions")
    if not isinstance(items, list):
        raise _UnreadableAnswer("transactions")
    lines = []
    for item in items:
        if not isinstance(item, dict):
            raise _UnreadableAnswer("transactions")
        raw_type = item.get("type")
        kind = RAW_TRANSACTION_KIND.get(raw_type) if isinstance(raw_type, str) else None
        if kind is None:
            raise _UnreadableAnswer("transactions.type")
        amount = _money_from_wire(item.get("amount"), "transactions.amount")
        fee = _money_from_wire(item.get("fee"), "transactions.fee")
        net = _money_from_wire(item.get("net"), "transactions.net")
        # A line whose figures do not add up is not a report we can reconcile against.
        if net != (amount - fee if kind == TransactionKind.PURCHASE else -amount):
            raise _UnreadableAnswer("transactions.net")
        purchase_id = item.get("purchaseTransactionId") or ""
        if not isinstance(purchase_id, str):
            raise _UnreadableAnswer("transactions.purchaseTransactionId")
        lines.append(SettlementLine(
            transaction_id=_require_str(item, "transactionId"),
            kind=kind,
            reference=_require_str(item, "reference"),
            amount=amount,
            fee=fee,
            net=net,
            promotion=_promotion_from_wire(item.get("promotionCode"), "transactions.promotionCode"),
            purchase_id=purchase_id,
        ))
    report = SettlementReport(merchant_number=merchant_number, day=day, lines=tuple(lines))
    totals = data.get("totals")
    if not isinstance(totals, dict):
        raise _UnreadableAnswer("totals")
    for name in ("purchases", "refunds", "fees", "net"):
        if _money_from_wire(totals.get(name), f"totals.{name}") != getattr(report, name):
            raise _UnreadableAnswer(f"totals.{name}")
    return report
