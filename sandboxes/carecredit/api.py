"""The CareCredit API routes (``/v1/...`` and the hosted apply page).

``Authorization: Bearer <token>`` on every /v1/ endpoint except the token one:

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
- ``POST /v1/quickscreens`` (a batch Quickscreen: a soft check, read-only) ``{"merchant_number",
  "applicants": [{"reference", "first_name", "last_name", "birth_date", "address": {"line1",
  "city", "state", "zip"}, "requested_amount"}]}`` (1 to 100 applicants, references unique,
  at most 64 characters) -> 200 ``{"merchant_number", "screened_on", "results": [{"reference",
  "status", "preapproved_amount", "available_credit", "expires_on"}]}``, one result per
  applicant in the order sent; an entry with invalid fields is ``"status": "INVALID"`` with
  its ``"fields"``, the others are still screened. Statuses and amounts: `quickscreen`. A
  batch that cannot be read (no merchant, no or too many applicants, a missing or repeated
  reference) is a 400 ``validation_failed``. A merchant sends at most
  ``prescreen_batches_per_minute`` (6) batches in any 60 s: one more is a 429
  ``rate_limited`` with ``Retry-After`` (seconds), nothing screened.
- ``POST /v1/cardholder-confirmations`` ``{"merchant_number", "reference", "requested_amount",
  "cardholder": {"first_name", "last_name", "birth_date", "address": {...}}}`` -> 201
  ``{"confirmation_id", "reference", "merchant_number", "status": "APPROVED" |
  "INSUFFICIENT_CREDIT", "requested_amount", "approved_amount", "available_credit",
  "account_last4", "account_token", "promotions", "decided_at"}``; 404 ``account_not_found``
  when no account matches the identity; 400 ``validation_failed``. One confirmation per
  merchant and reference: the same request again answers the first confirmation (200), the
  same reference with a different body is a 409 ``reference_reused``.
- ``GET /apply/<id>``: the hosted apply page (says the patient is simulated; status only).

Every error is JSON; the sandbox never logs request bodies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import math
import secrets
from datetime import datetime, timezone
from decimal import Decimal

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from ..kit.http import SandboxError, field_errors, json_response, read_json
from . import quickscreen as quickscreen_rules
from .personas import AMOUNT_RE, money, non_empty_str, promotions_for, validate_application
from .store import StoredConfirmation, approval_expires_on, iso, iso_precise

LIST_DEFAULT_LIMIT = 100
LIST_MAX_LIMIT = 500


def _unauthorized(message: str, *, error: str = "unauthorized") -> SandboxError:
    # RFC 6750: a 401 for a bearer-token API names the scheme (and the error, if any).
    challenge = "Bearer" if error == "unauthorized" else f'Bearer error="{error}"'
    return SandboxError(401, message, code=error, headers={"WWW-Authenticate": challenge})


def authenticate(app, request: Request) -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("missing bearer token")
    with app.store.lock:
        expires_at = app.store.tokens.get(token.strip())
    if expires_at is None or expires_at <= app.clock.now():
        raise _unauthorized("unknown, revoked or expired token", error="invalid_token")


def token(app, request: Request) -> Response:
    form = request.form
    if form.get("grant_type") != "client_credentials":
        raise SandboxError(400, "grant_type must be client_credentials", code="unsupported_grant_type")
    with app.store.lock:
        config = app.config
    id_ok = hmac.compare_digest(form.get("client_id", "").encode(), config.client_id.encode())
    secret_ok = hmac.compare_digest(form.get("client_secret", "").encode(), config.client_secret.encode())
    if not (id_ok and secret_ok):
        raise SandboxError(401, "unknown client or wrong secret", code="invalid_client")
    token = "tok_" + secrets.token_hex(16)
    with app.store.lock:
        ttl = app.config.token_ttl
        app.store.tokens[token] = app.clock.now() + ttl
    return json_response({"access_token": token, "token_type": "Bearer", "expires_in": ttl}, 200)


def create_application(app, request: Request) -> Response:
    authenticate(app, request)
    body = read_json(request, object_only=False)
    errors = validate_application(body, app.clock.today())
    if errors:
        raise SandboxError(400, "the application has invalid fields", code="validation_failed", fields=errors)
    merchant_number = body["merchant_number"].strip()
    key = request.headers.get("Idempotency-Key", "").strip() or None
    fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    now = app.clock.now()
    with app.store.lock:
        if key is not None:
            existing_id = app.store.idempotency.get((merchant_number, key))
            if existing_id is not None:
                existing = app.store.applications[existing_id]
                if existing.fingerprint != fingerprint:
                    raise SandboxError(
                        409, "this Idempotency-Key was already used with a different request", code="idempotency_key_reused",
                    )
                return json_response(existing.to_json(now), 200)
        application = app.store.add(
            app.config,
            app.config.public_url or app.server_url,
            merchant_number=merchant_number,
            reference=body["reference"],
            requested_amount=Decimal(body["requested_amount"]),
            last_name=body["applicant"]["last_name"],
            callback_url=body.get("callback_url") or "",
            created_at=now,
            idempotency_key=key,
            fingerprint=fingerprint,
        )
        payload = application.to_json(now)
    app.webhooks.wake.set()
    return json_response(payload, 201)


def list_applications(app, request: Request) -> Response:
    authenticate(app, request)
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
    as_of, after = app.clock.now(), None
    if request.args.get("cursor"):
        try:
            as_of, after_at, after_id = json.loads(base64.urlsafe_b64decode(request.args["cursor"].encode()))
            as_of, after = float(as_of), (float(after_at), str(after_id))
        except (ValueError, TypeError):
            errors["cursor"] = "is not a cursor from this listing"
    if errors:
        raise SandboxError(400, "the listing request has invalid fields", code="validation_failed", fields=errors)
    with app.store.lock:
        changed = []
        for application_id in app.store.by_merchant.get(merchant_number, ()):
            application = app.store.applications[application_id]
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
    return json_response(
        {"applications": payload, "next_cursor": next_cursor, "as_of": iso_precise(as_of)}, 200
    )


def get_application(app, request: Request, application_id: str) -> Response:
    authenticate(app, request)
    with app.store.lock:
        application = app.store.applications.get(application_id)
        payload = application.to_json(app.clock.now()) if application is not None else None
    if payload is None:
        raise SandboxError(404, "no application with this id", code="not_found")
    return json_response(payload, 200)


def promotions(app, request: Request) -> Response:
    authenticate(app, request)
    errors: dict[str, str] = {}
    if not non_empty_str(request.args.get("merchant_number")):
        errors["merchant_number"] = "is required"
    amount = request.args.get("amount", "")
    if not AMOUNT_RE.match(amount):
        errors["amount"] = 'must be a decimal string with at most 2 decimal places, e.g. "1234.00"'
    if errors:
        raise SandboxError(400, "the promotions request has invalid fields", code="validation_failed", fields=errors)
    with app.store.lock:
        apr = app.config.reduced_apr
    return json_response(promotions_for(Decimal(amount), apr), 200)


def quickscreen(app, request: Request) -> Response:
    authenticate(app, request)
    body = read_json(request)
    merchant_number = body.get("merchant_number")
    if non_empty_str(merchant_number):
        # Counted before the applicants are read, as a gateway counts requests.
        with app.store.lock:
            wait = app.store.take_prescreen_slot(
                merchant_number.strip(), app.clock.now(), app.config.prescreen_batches_per_minute
            )
        if wait is not None:
            raise SandboxError(
                429,
                "Too many Quickscreen batches for this merchant: at most "
                f"{app.config.prescreen_batches_per_minute} a minute.",
                code="rate_limited",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
    errors = quickscreen_rules.batch_errors(body)
    if errors:
        raise field_errors(errors, "Quickscreen batch")
    today = app.clock.utc().date()
    with app.store.lock:
        valid_days, credit = app.config.prescreen_valid_days, app.config.cardholder_available_credit
    results = [
        quickscreen_rules.screen(entry, today, valid_days=valid_days, available_credit=credit)
        for entry in body["applicants"]
    ]
    return json_response(
        {"merchant_number": merchant_number.strip(), "screened_on": today.isoformat(), "results": results}, 200
    )


def confirm_cardholder(app, request: Request) -> Response:
    authenticate(app, request)
    body = read_json(request)
    today = app.clock.utc().date()
    errors = quickscreen_rules.confirmation_errors(body, today)
    if errors:
        raise field_errors(errors, "cardholder confirmation")
    if not quickscreen_rules.holds_account(body["cardholder"], today):
        raise SandboxError(404, "no CareCredit account matches this cardholder", code="account_not_found")
    key = (body["merchant_number"].strip(), body["reference"])
    fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    now = app.clock.now()
    with app.store.lock:
        existing = app.store.confirmations.get(key)
        if existing is not None:
            if existing.fingerprint != fingerprint:
                raise SandboxError(
                    409, "this reference was already confirmed with a different request", code="reference_reused",
                )
            return json_response(existing.payload, 200)
        available = app.config.cardholder_available_credit
        reduced_apr = app.config.reduced_apr
        last4, account_token = quickscreen_rules.account_for(app.store.account_key, body["cardholder"])
        requested = Decimal(body["requested_amount"])
        covered = requested <= available
        payload = {
            "confirmation_id": "cnf_" + secrets.token_hex(8),
            "reference": body["reference"],
            "merchant_number": key[0],
            "status": quickscreen_rules.CONFIRMED if covered else quickscreen_rules.INSUFFICIENT_CREDIT,
            "requested_amount": money(requested),
            "approved_amount": money(requested) if covered else None,
            "available_credit": money(available),
            "account_last4": last4,
            "account_token": account_token,
            "promotions": promotions_for(requested, reduced_apr) if covered else [],
            "decided_at": iso(now),
            # Charged like an approval (see `transact`): until this lender day.
            "expires_on": approval_expires_on(now, app.config.approval_valid_days).isoformat() if covered else None,
        }
        app.store.confirmations[key] = StoredConfirmation(payload=payload, fingerprint=fingerprint)
    return json_response(payload, 201)


def apply_page(app, request: Request, application_id: str) -> Response:
    with app.store.lock:
        application = app.store.applications.get(application_id)
        status = application.status_at(app.clock.now())[0] if application is not None else None
    if status is None:
        raise SandboxError(404, "no application with this id", code="not_found")
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


ROUTES = [
    Rule("/v1/oauth2/token", endpoint=token, methods=["POST"]),
    Rule("/v1/applications", endpoint=create_application, methods=["POST"]),
    Rule("/v1/applications", endpoint=list_applications, methods=["GET"]),
    Rule("/v1/applications/<application_id>", endpoint=get_application, methods=["GET"]),
    Rule("/v1/promotions", endpoint=promotions, methods=["GET"]),
    Rule("/v1/quickscreens", endpoint=quickscreen, methods=["POST"]),
    Rule("/v1/cardholder-confirmations", endpoint=confirm_cardholder, methods=["POST"]),
    Rule("/apply/<application_id>", endpoint=apply_page, methods=["GET"]),
]
