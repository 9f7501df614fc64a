"""The CareCredit sandbox: a real HTTP server that behaves like the CareCredit API.

It is a first-class implementation of the contract `carecredit_bridge.client` speaks,
not a mock: a Werkzeug WSGI app with its own in-memory store, served by the kit's
threaded server, with OAuth2 tokens, validation errors, deterministic decisions, signed
webhooks and a control API to inject faults and move time. The demo setup and the
integration tests talk to it over HTTP exactly as production talks to CareCredit. It
imports nothing of Chairside's: its rules and its webhook signing are its own.

Run it::

    python -m sandboxes.carecredit --host 127.0.0.1 --port 8101

It prints one line with its URL and serves until SIGINT or SIGTERM. From tests::

    sandbox = serve_in_thread(port=0, decision_delay=0.2, pending_delay=0.4)
    ...  # sandbox.base_url, sandbox.app (state and control methods)
    sandbox.stop()

Where to read on:

- `config`: the settings and their CARECREDIT_SANDBOX_* variables;
- `personas`: the scripted decisions (by surname prefix), promotions, validation;
- `quickscreen`: the batch Quickscreen's results (by surname prefix too: pre-approved,
  partial, ``Cardholder…`` with available credit, not pre-approved, no match; minors not
  eligible) and the cardholder confirmation's rules;
- `store`: the applications and their timelines (status computed lazily from the
  kit's injectable clock: ``POST /_sandbox/clock {"advance_seconds": 60}`` decides a
  pending application without waiting), the cardholder confirmations, and each
  merchant's recent Quickscreen batches (for its rate limit);
- `api`: the /v1 routes; `control`: the /_sandbox routes of its own;
- `transact`: the money: purchases, voids and refunds by ``clientTransId``, the lookup,
  the daily settlement report, approval expiry and each merchant's fee rates;
- `webhooks`: signed, at-least-once delivery, duplicates and reordering on request;
- `sandboxes.kit`: faults (modes error, latency, timeout, drop on /v1/ paths),
  the request log, health, reset, clock.
"""

from .app import CareCreditSandbox, main, serve_in_thread
from .config import SandboxConfig
from .personas import credit_limit_for, persona_for, promotions_for, validate_application

__all__ = [
    "CareCreditSandbox",
    "SandboxConfig",
    "credit_limit_for",
    "main",
    "persona_for",
    "promotions_for",
    "serve_in_thread",
    "validate_application",
]
