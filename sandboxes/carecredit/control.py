"""The CareCredit sandbox's own control routes (no auth; never expose it beyond a test machine).

The kit adds the shared ones: health, reset (applications, tokens, faults, logs, pending
webhooks, the clock, and the configuration the sandbox started with), requests, faults
and clock.

- ``GET /_sandbox/applications``: JSON array of every application with its current
  status, persona and callback_url.
- ``POST /_sandbox/applications/<id>/status`` ``{"status": "ON_HOLD"}``: force a raw
  status from now on (for unknown-status and EXPIRED tests).
- ``GET /_sandbox/webhooks``: JSON array of every webhook delivery attempt:
  ``{event_id, application_id, status, copy, attempt, status_code, error, at}``
  (``status_code`` null and ``error`` the exception name when the POST failed).
- ``GET /_sandbox/cardholder-confirmations``: JSON array of every cardholder confirmation,
  as the API answered it.
- ``GET|PUT /_sandbox/config``: decision_delay, pending_delay, apr,
  webhook_duplicates, webhook_reorder, webhook_concurrency, token_ttl,
  prescreen_valid_days, prescreen_batches_per_minute, cardholder_available_credit.
- ``POST /_sandbox/revoke-tokens``: invalidate every issued token.
- ``GET /_sandbox/transactions``: JSON array of every purchase and refund (declines and
  voids included), oldest first, as the API shows them plus the ``fee`` kept.
- ``GET|PUT /_sandbox/merchants/<merchant>/fee-rates``: the merchant's fee rates, percent by
  promotion code (``{"DI6": "5.90", ..., "RA60": "9.90"}``, the default merchant agreement
  until changed); PUT changes the codes it names, e.g. ``{"DI12": "10.50"}``, and answers
  the whole table. A reset puts every merchant back on the default agreement.
"""

from __future__ import annotations

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from ..kit.http import SandboxError, json_response, read_json
from .personas import non_empty_str


def applications(app, request: Request) -> Response:
    return json_response(app.applications())


def force_status(app, request: Request, application_id: str) -> Response:
    status = read_json(request).get("status")
    if not non_empty_str(status):
        raise SandboxError(400, "status is required", code="validation_failed", fields={"status": "is required"})
    return json_response(app.force_status(application_id, status))


def confirmations(app, request: Request) -> Response:
    return json_response(app.confirmations())


def webhooks(app, request: Request) -> Response:
    return json_response(app.webhook_deliveries())


def config(app, request: Request) -> Response:
    if request.method == "PUT":
        return json_response(app.update_config(**read_json(request)))
    return json_response(app.settings())


def revoke_tokens(app, request: Request) -> Response:
    return json_response({"revoked": app.revoke_tokens()})


def transactions(app, request: Request) -> Response:
    return json_response(app.transactions())


def fee_rates(app, request: Request, merchant_number: str) -> Response:
    if request.method == "PUT":
        return json_response(app.set_fee_rates(merchant_number, read_json(request)))
    return json_response(app.fee_rates(merchant_number))


ROUTES = [
    Rule("/_sandbox/transactions", endpoint=transactions, methods=["GET"]),
    Rule("/_sandbox/merchants/<merchant_number>/fee-rates", endpoint=fee_rates, methods=["GET", "PUT"]),
    Rule("/_sandbox/applications", endpoint=applications, methods=["GET"]),
    Rule("/_sandbox/applications/<application_id>/status", endpoint=force_status, methods=["POST"]),
    Rule("/_sandbox/cardholder-confirmations", endpoint=confirmations, methods=["GET"]),
    Rule("/_sandbox/webhooks", endpoint=webhooks, methods=["GET"]),
    Rule("/_sandbox/config", endpoint=config, methods=["GET", "PUT"]),
    Rule("/_sandbox/revoke-tokens", endpoint=revoke_tokens, methods=["POST"]),
]
