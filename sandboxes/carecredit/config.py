"""The CareCredit sandbox's configuration: keyword arguments, then environment, then defaults.

Keyword arguments of `serve_in_thread` / `CareCreditSandbox` win over the environment
variable in parentheses, which wins over the default:

- ``host`` (CARECREDIT_SANDBOX_HOST, "127.0.0.1") and ``port``
  (CARECREDIT_SANDBOX_PORT, 8101): where ``python -m sandboxes.carecredit`` listens.
- ``client_id`` (CARECREDIT_SANDBOX_CLIENT_ID, "chairside-sandbox") and
  ``client_secret`` (CARECREDIT_SANDBOX_CLIENT_SECRET, "sandbox-secret"): the only
  OAuth2 client the token endpoint accepts.
- ``webhook_secret`` (CARECREDIT_SANDBOX_WEBHOOK_SECRET, "whsec_sandbox"): signs
  webhooks (see `signing`).
- ``decision_delay`` (CARECREDIT_SANDBOX_DECISION_DELAY, 2.0 s): how long the simulated
  patient takes to complete the hosted application after it is created.
- ``pending_delay`` (CARECREDIT_SANDBOX_PENDING_DELAY, 5.0 s): how long a PENDING
  persona stays pending before it is approved.
- ``reduced_apr`` (CARECREDIT_SANDBOX_APR, "17.90"): APR of the reduced-APR promotions.
- ``token_ttl`` (CARECREDIT_SANDBOX_TOKEN_TTL, 3600 s): lifetime of an access token.
- ``public_url`` (CARECREDIT_SANDBOX_PUBLIC_URL, the server's own base URL): used to
  build ``apply_url`` when the sandbox sits behind another host name.
- ``webhook_duplicates`` (0) and ``webhook_reorder`` (False): see `webhooks`; set at
  run time through ``PUT /_sandbox/config``.
- ``webhook_concurrency`` (CARECREDIT_SANDBOX_WEBHOOK_CONCURRENCY, 1): how many webhook
  POSTs are in flight at once (more than one, like the real service under load; order
  between applications is then not kept).
- ``prescreen_valid_days`` (CARECREDIT_SANDBOX_PRESCREEN_VALID_DAYS, 30): how long a
  Quickscreen pre-approval lasts (CareCredit's run 30 to 60 days).
- ``prescreen_batches_per_minute`` (CARECREDIT_SANDBOX_PRESCREEN_RATE, 6): Quickscreen
  batches a merchant may send in any 60 s of sandbox time; one more is a 429.
- ``cardholder_available_credit`` (CARECREDIT_SANDBOX_CARDHOLDER_CREDIT, "5000.00"): the
  available credit of every ``Cardholder…`` account.
- ``approval_valid_days`` (CARECREDIT_SANDBOX_APPROVAL_VALID_DAYS, 30): an approval (or a
  cardholder confirmation) can be charged until ``expires_on``, this many lender days after
  its decision; captured when the application is created.

All but the credentials, host, port and public_url can also be changed at run time through
``PUT /_sandbox/config`` (``reduced_apr`` as ``apr``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Mapping

from .personas import CENT

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
    prescreen_valid_days: int = 30
    prescreen_batches_per_minute: int = 6
    cardholder_available_credit: Decimal = Decimal("5000.00")
    approval_valid_days: int = 30

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
        for name in ("reduced_apr", "cardholder_available_credit"):
            if name in values:
                values[name] = Decimal(str(values[name])).quantize(CENT)
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
    "prescreen_valid_days": ("CARECREDIT_SANDBOX_PRESCREEN_VALID_DAYS", int),
    "prescreen_batches_per_minute": ("CARECREDIT_SANDBOX_PRESCREEN_RATE", int),
    "cardholder_available_credit": ("CARECREDIT_SANDBOX_CARDHOLDER_CREDIT", Decimal),
    "approval_valid_days": ("CARECREDIT_SANDBOX_APPROVAL_VALID_DAYS", int),
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def parse_config_changes(changes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
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
        elif name in ("prescreen_valid_days", "prescreen_batches_per_minute", "approval_valid_days"):
            if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 1000:
                values[name] = value
            else:
                errors[name] = "must be a whole number between 1 and 1000"
        elif name == "cardholder_available_credit":
            try:
                credit = Decimal(value) if isinstance(value, str) else None
            except InvalidOperation:
                credit = None
            if credit is not None and credit.is_finite() and 0 <= credit <= 1_000_000 and credit == credit.quantize(CENT):
                values[name] = credit.quantize(CENT)
            else:
                errors[name] = 'must be an amount as a string, 0.00 to 1000000.00, e.g. "5000.00"'
        elif name == "token_ttl":
            if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
                values[name] = value
            else:
                errors[name] = "must be a whole number of seconds, at least 1"
        else:
            errors[name] = "is not a run-time setting"
    return values, errors
