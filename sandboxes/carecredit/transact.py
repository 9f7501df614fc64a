"""The CareCredit sandbox's money: purchases, voids, refunds and the daily settlement report.

Modelled on Synchrony's transact API (one endpoint, an ``action``, the caller's
``clientTransId``), with camelCase fields as Synchrony spells them. ``Authorization: Bearer``
on every route, like the rest of /v1/.

- ``POST /v1/credit/transact`` ``{"action": "AUTH_SETTLE", "clientTransId", "merchantNumber",
  "applicationId", "reference", "amount": "1234.56", "promotionCode": "DI12"}``: authorise and
  settle in one call. ``applicationId`` is an approved application or a cardholder
  confirmation of the merchant; ``promotionCode`` one of the approval's ``promotions[].code``.
  -> 201 the transaction, ``"status": "SETTLED"`` or ``"DECLINED"`` (a decline is a
  transaction too, kept under its key).
- ``{"action": "VOID", "merchantNumber", "transactionId"}``: cancel a settled purchase on its
  own business day -> 200 the purchase, ``"VOIDED"`` (voiding it again answers the same).
  Needs no clientTransId: a void is safe to repeat by itself.
- ``{"action": "REFUND", "clientTransId", "merchantNumber", "transactionId", "amount"}``: give
  back all or part of a settled purchase -> 201 the refund, ``"SETTLED"``.
- ``GET /v1/credit/transactions?merchantNumber=&clientTransId=`` -> ``{"transactions": [...]}``,
  the one transaction made with the key, or none: the lookup before any retry.
- ``GET /v1/settlement/reports/{merchantNumber}/{YYYY-MM-DD}`` -> ``{"merchantNumber",
  "settlementDate", "closed", "transactions": [{"transactionId", "type", "reference", "amount",
  "fee", "net", "promotionCode", "purchaseTransactionId"}], "totals": {"purchases", "refunds",
  "fees", "net"}}``: the purchases settled that day and not voided, and the refunds made that
  day, oldest first. A purchase's fee is its amount times the merchant's rate for its
  promotion, half-up to the cent, and its net amount − fee; a refund returns no fee (fee 0,
  net −amount). ``closed`` is false for the lender's today (a void may still take a purchase
  off it).

The transaction (every answer above)::

    {"transactionId": "txn_…", "type": "PURCHASE" | "REFUND",
     "status": "SETTLED" | "VOIDED" | "DECLINED", "clientTransId", "merchantNumber",
     "applicationId", "reference", "amount", "promotionCode", "authorizationCode" ("" unless a
     settled purchase), "createdAt", "businessDate", "purchaseTransactionId" (a refund's
     purchase, else null), "declineCode" (null unless declined), and on a decline
     "availableAmount" (OVER_APPROVED_AMOUNT) or "expiresOn" (APPROVAL_EXPIRED)}

Rules (all dates are the lender's business day, America/New_York, on the sandbox clock):

- One transaction per merchant and ``clientTransId``: the same request again answers the
  first transaction (200), never a second charge; the same key with a different request is
  a 409 ``client_trans_id_reused``.
- Declines (a transaction, ``declineCode``): ``NOT_APPROVED`` (the application is not
  approved), ``APPROVAL_EXPIRED`` (after its ``expires_on``, or forced EXPIRED),
  ``OVER_APPROVED_AMOUNT`` (more than the approved amount less what its purchases took, net
  of their refunds).
- Refusals (422, nothing recorded, the key stays free): ``application_not_found`` (no such
  application or confirmation for this merchant), ``promotion_not_offered`` (with
  ``promotionCode``), ``below_promotion_minimum`` (with ``minimumAmount``), ``not_voidable``
  (not a settled purchase, or one with refunds), ``void_window_closed`` (after its business
  day, with ``businessDate``: refund it instead), ``not_refundable`` (not a settled purchase),
  ``refund_exceeds_remaining`` (with ``remainingAmount``). An unknown ``transactionId`` is a
  404 ``transaction_not_found``; unreadable fields a 400 ``validation_failed``.
- Fees: each merchant's rates by promotion code, the default merchant agreement's
  (`DEFAULT_FEE_RATES`, the example rates of Chairside's spec) until the control API sets
  others (``PUT /_sandbox/merchants/<merchant>/fee-rates``); a purchase keeps the rate of the
  moment it settled.

The sandbox's faults (drop, commit_then_error, timeout, hold) apply here like everywhere on
/v1/: a drop after AUTH_SETTLE has committed the purchase, which the lookup then finds.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from ..kit.http import SandboxError, field_errors, json_response, read_json
from .api import authenticate
from .personas import AMOUNT_RE, APPROVED, CENT, money, non_empty_str, promotions_for
from .quickscreen import CONFIRMED
from .store import approval_expires_on, iso, lender_day

PURCHASE, REFUND = "PURCHASE", "REFUND"
SETTLED, VOIDED, DECLINED = "SETTLED", "VOIDED", "DECLINED"
ACTIONS = ("AUTH_SETTLE", "VOID", "REFUND")
MAX_KEY = 64

# The default merchant agreement: percent of the purchase, by promotion code.
DEFAULT_FEE_RATES: dict[str, Decimal] = {
    "DI6": Decimal("5.90"), "DI12": Decimal("9.90"), "DI18": Decimal("12.90"), "DI24": Decimal("14.90"),
    "RA24": Decimal("6.90"), "RA36": Decimal("7.90"), "RA48": Decimal("8.90"), "RA60": Decimal("9.90"),
}
ZERO = Decimal("0.00")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class StoredTransaction:
    transaction_id: str
    type: str
    status: str
    client_trans_id: str
    merchant_number: str
    application_id: str
    reference: str
    amount: Decimal
    promotion_code: str
    authorization_code: str
    created_at: float
    fee: Decimal  # kept at the rate of the moment it settled; 0 for refunds and declines
    fingerprint: str = ""
    purchase_id: str = ""
    decline_code: str = ""
    decline_detail: dict[str, str] | None = None

    @property
    def business_day(self) -> date:
        return lender_day(self.created_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "transactionId": self.transaction_id,
            "type": self.type,
            "status": self.status,
            "clientTransId": self.client_trans_id,
            "merchantNumber": self.merchant_number,
            "applicationId": self.application_id,
            "reference": self.reference,
            "amount": money(self.amount),
            "promotionCode": self.promotion_code,
            "authorizationCode": self.authorization_code,
            "createdAt": iso(self.created_at),
            "businessDate": self.business_day.isoformat(),
            "purchaseTransactionId": self.purchase_id or None,
            "declineCode": self.decline_code or None,
            **(self.decline_detail or {}),
        }


def fee_for(amount: Decimal, rate: Decimal) -> Decimal:
    return (amount * rate / 100).quantize(CENT, rounding=ROUND_HALF_UP)


def _refused(code: str, message: str, **detail: str) -> SandboxError:
    error = SandboxError(422, message, code=code)
    error.detail = detail  # rendered by `CareCreditSandbox.error_body`
    return error


def _fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _body_errors(body: dict[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
    action = body.get("action")
    if action not in ACTIONS:
        return {"action": "must be AUTH_SETTLE, VOID or REFUND"}
    if not non_empty_str(body.get("merchantNumber")):
        errors["merchantNumber"] = "is required"
    if action != "VOID":
        key = body.get("clientTransId")
        if not (non_empty_str(key) and len(key) <= MAX_KEY):
            errors["clientTransId"] = f"is required, at most {MAX_KEY} characters"
        amount = body.get("amount")
        if not isinstance(amount, str) or not AMOUNT_RE.match(amount):
            errors["amount"] = 'must be a decimal string with at most 2 decimal places, e.g. "1234.00"'
        elif Decimal(amount) <= 0:
            errors["amount"] = "must be greater than 0.00"
    if action == "AUTH_SETTLE":
        for name in ("applicationId", "reference", "promotionCode"):
            if not non_empty_str(body.get(name)):
                errors[name] = "is required"
        if isinstance(body.get("reference"), str) and len(body["reference"]) > MAX_KEY:
            errors["reference"] = f"must be at most {MAX_KEY} characters"
    else:
        if not non_empty_str(body.get("transactionId")):
            errors["transactionId"] = "is required"
    return errors


# --- routes -------------------------------------------------------------------------------


def transact(app, request: Request) -> Response:
    authenticate(app, request)
    body = read_json(request)
    errors = _body_errors(body)
    if errors:
        raise field_errors(errors, "transaction")
    action = body["action"]
    with app.store.lock:
        if action == "VOID":
            return json_response(_void(app, body).to_json(), 200)
        key = (body["merchantNumber"].strip(), body["clientTransId"])
        fingerprint = _fingerprint(body)
        existing_id = app.store.transaction_keys.get(key)
        if existing_id is not None:
            existing = app.store.transactions[existing_id]
            if existing.fingerprint != fingerprint:
                raise SandboxError(
                    409, "this clientTransId was already used with a different request", code="client_trans_id_reused"
                )
            return json_response(existing.to_json(), 200)
        transaction = _purchase(app, body) if action == "AUTH_SETTLE" else _refund(app, body)
        transaction.fingerprint = fingerprint
        app.store.transactions[transaction.transaction_id] = transaction
        app.store.transaction_keys[key] = transaction.transaction_id
        return json_response(transaction.to_json(), 201)


def find_transactions(app, request: Request) -> Response:
    authenticate(app, request)
    merchant_number = (request.args.get("merchantNumber") or "").strip()
    key = request.args.get("clientTransId") or ""
    errors = {}
    if not merchant_number:
        errors["merchantNumber"] = "is required"
    if not key:
        errors["clientTransId"] = "is required"
    if errors:
        raise field_errors(errors, "lookup")
    with app.store.lock:
        transaction_id = app.store.transaction_keys.get((merchant_number, key))
        found = [app.store.transactions[transaction_id].to_json()] if transaction_id else []
    return json_response({"transactions": found}, 200)


def settlement_report(app, request: Request, merchant_number: str, day: str) -> Response:
    authenticate(app, request)
    try:
        settlement_date = date.fromisoformat(day) if _DATE_RE.match(day) else None
    except ValueError:
        settlement_date = None
    if settlement_date is None:
        raise field_errors({"date": "must be a date, YYYY-MM-DD"}, "report request")
    with app.store.lock:
        report = report_for(app, merchant_number, settlement_date)
    return json_response(report, 200)


ROUTES = [
    Rule("/v1/credit/transact", endpoint=transact, methods=["POST"]),
    Rule("/v1/credit/transactions", endpoint=find_transactions, methods=["GET"]),
    Rule("/v1/settlement/reports/<merchant_number>/<day>", endpoint=settlement_report, methods=["GET"]),
]


# --- the rules (store lock held) ----------------------------------------------------------


def _approval(app, merchant_number: str, application_id: str, now: float) -> tuple[str, Decimal | None, list, float | None]:
    """(raw status, approved amount, promotions, decided at) of an application or a
    cardholder confirmation of the merchant; a 422 when there is none."""
    application = app.store.applications.get(application_id)
    if application is not None and application.merchant_number == merchant_number:
        status, approved, since = application.approval_at(now)
        promotions = promotions_for(approved, application.reduced_apr) if approved is not None else []
        valid_days = application.approval_valid_days
        return status, approved, promotions, approval_expires_on(since, valid_days) if approved is not None else None
    for confirmation in app.store.confirmations.values():
        payload = confirmation.payload
        if payload["confirmation_id"] == application_id and payload["merchant_number"] == merchant_number:
            approved = Decimal(payload["approved_amount"]) if payload["status"] == CONFIRMED else None
            expires_on = date.fromisoformat(payload["expires_on"]) if payload.get("expires_on") else None
            status = APPROVED if approved is not None else payload["status"]
            return status, approved, payload["promotions"], expires_on
    raise _refused(
        "application_not_found", "no application or cardholder confirmation with this id for this merchant",
        applicationId=application_id,
    )


def _purchase(app, body: dict[str, Any]) -> StoredTransaction:
    now = app.clock.now()
    merchant_number = body["merchantNumber"].strip()
    amount = Decimal(body["amount"])
    code = body["promotionCode"]
    status, approved, promotions, expires_on = _approval(app, merchant_number, body["applicationId"], now)
    transaction = StoredTransaction(
        transaction_id="txn_" + secrets.token_hex(8), type=PURCHASE, status=SETTLED,
        client_trans_id=body["clientTransId"], merchant_number=merchant_number,
        application_id=body["applicationId"], reference=body["reference"], amount=amount,
        promotion_code=code, authorization_code="", created_at=now, fee=ZERO,
    )

    def decline(decline_code: str, **detail: str) -> StoredTransaction:
        transaction.status, transaction.decline_code, transaction.decline_detail = DECLINED, decline_code, detail
        return transaction

    if status == "EXPIRED":
        return decline("APPROVAL_EXPIRED", expiresOn=expires_on.isoformat() if expires_on else None)
    if approved is None:
        return decline("NOT_APPROVED")
    promotion = next((p for p in promotions if p["code"] == code), None)
    if promotion is None:
        raise _refused("promotion_not_offered", "this promotion is not offered on this approval", promotionCode=code)
    if amount < Decimal(promotion["min_purchase"]):
        raise _refused(
            "below_promotion_minimum", "the amount is below the promotion's minimum purchase",
            minimumAmount=promotion["min_purchase"],
        )
    if expires_on is not None and lender_day(now) > expires_on:
        return decline("APPROVAL_EXPIRED", expiresOn=expires_on.isoformat())
    available = approved - _drawn(app, merchant_number, body["applicationId"])
    if amount > available:
        return decline("OVER_APPROVED_AMOUNT", availableAmount=money(max(available, ZERO)))
    rate = app.store.fee_rates.get(merchant_number, {}).get(code, DEFAULT_FEE_RATES.get(code, ZERO))
    transaction.fee = fee_for(amount, rate)
    transaction.authorization_code = f"{secrets.randbelow(1_000_000):06d}"
    return transaction


def _refunded(app, purchase_id: str) -> Decimal:
    return sum(
        (t.amount for t in app.store.transactions.values() if t.type == REFUND and t.purchase_id == purchase_id),
        ZERO,
    )


def _drawn(app, merchant_number: str, application_id: str) -> Decimal:
    """What the application's settled purchases still hold of its approval, net of refunds."""
    return sum(
        (
            t.amount - _refunded(app, t.transaction_id)
            for t in app.store.transactions.values()
            if t.type == PURCHASE and t.status == SETTLED
            and t.merchant_number == merchant_number and t.application_id == application_id
        ),
        ZERO,
    )


def _transaction(app, body: dict[str, Any]) -> StoredTransaction:
    transaction = app.store.transactions.get(body["transactionId"])
    if transaction is None or transaction.merchant_number != body["merchantNumber"].strip():
        raise SandboxError(404, "no transaction with this id for this merchant", code="transaction_not_found")
    return transaction


def _void(app, body: dict[str, Any]) -> StoredTransaction:
    purchase = _transaction(app, body)
    if purchase.type == PURCHASE and purchase.status == VOIDED:
        return purchase
    if purchase.type != PURCHASE or purchase.status != SETTLED or _refunded(app, purchase.transaction_id) > 0:
        raise _refused("not_voidable", "only a settled purchase without refunds can be voided")
    if lender_day(app.clock.now()) != purchase.business_day:
        raise _refused(
            "void_window_closed", "the purchase's business day has closed: refund it instead",
            businessDate=purchase.business_day.isoformat(),
        )
    purchase.status = VOIDED
    return purchase


def _refund(app, body: dict[str, Any]) -> StoredTransaction:
    purchase = _transaction(app, body)
    if purchase.type != PURCHASE or purchase.status != SETTLED:
        raise _refused("not_refundable", "only a settled purchase can be refunded")
    amount = Decimal(body["amount"])
    remaining = purchase.amount - _refunded(app, purchase.transaction_id)
    if amount > remaining:
        raise _refused(
            "refund_exceeds_remaining", "the refund is more than what is left of the purchase",
            remainingAmount=money(remaining),
        )
    return StoredTransaction(
        transaction_id="txn_" + secrets.token_hex(8), type=REFUND, status=SETTLED,
        client_trans_id=body["clientTransId"], merchant_number=purchase.merchant_number,
        application_id=purchase.application_id, reference=purchase.reference, amount=amount,
        promotion_code=purchase.promotion_code, authorization_code="", created_at=app.clock.now(),
        fee=ZERO, purchase_id=purchase.transaction_id,
    )


def report_for(app, merchant_number: str, day: date) -> dict[str, Any]:
    lines = []
    for t in sorted(app.store.transactions.values(), key=lambda t: t.created_at):
        if t.merchant_number != merchant_number or t.status != SETTLED or t.business_day != day:
            continue
        net = t.amount - t.fee if t.type == PURCHASE else -t.amount
        lines.append({
            "transactionId": t.transaction_id,
            "type": t.type,
            "reference": t.reference,
            "amount": money(t.amount),
            "fee": money(t.fee),
            "net": money(net),
            "promotionCode": t.promotion_code,
            "purchaseTransactionId": t.purchase_id or None,
        })

    def total(kind: str | None, name: str) -> str:
        return money(sum((Decimal(line[name]) for line in lines if kind in (None, line["type"])), ZERO))

    return {
        "merchantNumber": merchant_number,
        "settlementDate": day.isoformat(),
        "closed": day < lender_day(app.clock.now()),
        "transactions": lines,
        "totals": {
            "purchases": total(PURCHASE, "amount"),
            "refunds": total(REFUND, "amount"),
            "fees": total(None, "fee"),
            "net": total(None, "net"),
        },
    }


def fee_rates(app, merchant_number: str) -> dict[str, str]:
    """The merchant's rates (lock held): the default agreement with its own over it."""
    rates = {**DEFAULT_FEE_RATES, **app.store.fee_rates.get(merchant_number, {})}
    return {code: money(rate) for code, rate in rates.items()}


def parse_fee_rates(body: Any) -> dict[str, Decimal]:
    """``{"DI12": "9.90", ...}`` -> rates; a 400 naming each bad entry."""
    if not isinstance(body, dict) or not body:
        raise field_errors({"body": 'must be an object of promotion code to percent, e.g. {"DI12": "9.90"}'}, "fee rates")
    rates, errors = {}, {}
    for code, value in body.items():
        if code not in DEFAULT_FEE_RATES:
            errors[code] = "is not a promotion code (DI6, DI12, DI18, DI24, RA24, RA36, RA48, RA60)"
        elif not isinstance(value, str) or not AMOUNT_RE.match(value) or Decimal(value) > 100:
            errors[code] = 'must be a percentage as a string, 0.00 to 100.00, e.g. "9.90"'
        else:
            rates[code] = Decimal(value).quantize(CENT)
    if errors:
        raise field_errors(errors, "fee rates")
    return rates
