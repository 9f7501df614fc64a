"""The CareCredit sandbox as a WSGI app, with its Python control API (tests may call it)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from ..kit import server
from ..kit.app import SandboxApp
from ..kit.http import SandboxError
from . import api, control, transact
from .config import SandboxConfig, parse_config_changes
from .personas import money
from .store import Store
from .webhooks import WebhookDispatcher

DEFAULT_PORT = 8101


class CareCreditSandbox(SandboxApp):
    """One lock (``store.lock``) guards the store, the outbox and the configuration; it
    is never held while waiting in a fault or while posting a webhook."""

    name = "CareCredit"
    api_prefix = "/v1/"
    # Every fault of the kit: commit_then_error and hold matter on the money writes.
    fault_modes = ("error", "latency", "timeout", "drop", "commit_then_error", "hold")
    # Room for a full Quickscreen batch (100 applicants with long names and addresses).
    max_body_bytes = 256 * 1024
    routes = api.ROUTES + transact.ROUTES + control.ROUTES

    def __init__(self, **config: Any):
        super().__init__()
        self.initial_config = SandboxConfig.from_env(**config)
        self.config = replace(self.initial_config)
        self.store = Store()
        self.webhooks = WebhookDispatcher(self)
        self.clock.on_change(self.webhooks.wake.set)

    def error_body(self, error: SandboxError) -> Any:
        # A transact refusal carries its figures beside the code ("remainingAmount"...).
        return {**super().error_body(error), **getattr(error, "detail", {})}

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the webhook dispatcher (serve_in_thread does this)."""
        self.webhooks.start()

    start_dispatcher = start

    def stop(self) -> None:
        super().stop()
        self.webhooks.stop()

    def reset(self) -> None:
        """Back to the state the sandbox started in, configuration included."""
        with self.store.lock:
            self.store.clear()
            self.webhooks.clear()
            self.config = replace(self.initial_config)
        super().reset()

    # --- control API (Python) -----------------------------------------------------------------

    def applications(self) -> list[dict[str, Any]]:
        now = self.clock.now()
        with self.store.lock:
            return [
                {**application.to_json(now), "persona": application.persona, "callback_url": application.callback_url}
                for application in self.store.applications.values()
            ]

    def force_status(self, application_id: str, status: str) -> dict[str, Any]:
        """Make the application report `status` (any raw string) from now on."""
        with self.store.lock:
            application = self.store.applications.get(application_id)
            if application is None:
                raise SandboxError(404, "no application with this id", code="not_found")
            now = self.clock.now()
            application.forced.append((now, status))
            self.store.unsettled.add(application_id)
            payload = application.to_json(now)
        self.webhooks.wake.set()
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
        now = self.clock.now()
        with self.store.lock:
            application = self.store.add(
                self.config, self.config.public_url or self.server_url,
                merchant_number=merchant_number, reference=reference, requested_amount=requested_amount,
                last_name=last_name, callback_url=callback_url,
                created_at=now if created_at is None else created_at, decision_delay=decision_delay,
            )
            return application.to_json(now)

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        with self.store.lock:
            return [dict(entry) for entry in self.webhooks.deliveries]

    def dispatch_once(self) -> None:
        self.webhooks.dispatch_once()

    def settings(self) -> dict[str, Any]:
        """The run-time adjustable settings (no secrets)."""
        with self.store.lock:
            config = self.config
        return {
            "decision_delay": config.decision_delay,
            "pending_delay": config.pending_delay,
            "apr": money(config.reduced_apr),
            "webhook_duplicates": config.webhook_duplicates,
            "webhook_reorder": config.webhook_reorder,
            "webhook_concurrency": config.webhook_concurrency,
            "token_ttl": config.token_ttl,
            "prescreen_valid_days": config.prescreen_valid_days,
            "prescreen_batches_per_minute": config.prescreen_batches_per_minute,
            "cardholder_available_credit": money(config.cardholder_available_credit),
            "approval_valid_days": config.approval_valid_days,
        }

    def update_config(self, **changes: Any) -> dict[str, Any]:
        """Change run-time settings; affects applications created from now on."""
        values, errors = parse_config_changes(changes)
        if errors:
            raise SandboxError(400, "invalid settings", code="validation_failed", fields=errors)
        with self.store.lock:
            self.config = replace(self.config, **values)
        return self.settings()

    def confirmations(self) -> list[dict[str, Any]]:
        """Every cardholder confirmation, as the API answered it."""
        with self.store.lock:
            return [dict(confirmation.payload) for confirmation in self.store.confirmations.values()]

    def transactions(self) -> list[dict[str, Any]]:
        """Every purchase and refund (declines included), oldest first, as the API shows them."""
        with self.store.lock:
            ordered = sorted(self.store.transactions.values(), key=lambda t: t.created_at)
            return [{**t.to_json(), "fee": money(t.fee)} for t in ordered]

    def fee_rates(self, merchant_number: str) -> dict[str, str]:
        with self.store.lock:
            return transact.fee_rates(self, merchant_number)

    def set_fee_rates(self, merchant_number: str, rates: dict[str, Any]) -> dict[str, str]:
        """Change some of a merchant's fee rates (percent by promotion code, e.g.
        ``{"DI12": "9.90"}``); the others stay. Purchases settled before keep their fee."""
        parsed = transact.parse_fee_rates(rates)
        with self.store.lock:
            self.store.fee_rates.setdefault(merchant_number, {}).update(parsed)
            return transact.fee_rates(self, merchant_number)

    def revoke_tokens(self) -> int:
        with self.store.lock:
            count = len(self.store.tokens)
            self.store.tokens.clear()
        return count


def serve_in_thread(
    port: int = 0, *, host: str = server.DEFAULT_HOST, log_requests: bool = False, **config: Any
) -> server.RunningSandbox:
    """Start a sandbox on `host`:`port` (0 = any free port) in background threads.

    `config` takes the settings listed in `config`. The webhook dispatcher starts with
    the server and stops with `RunningSandbox.stop()`.
    """
    return server.serve_in_thread(CareCreditSandbox(**config), port, host=host, quiet=not log_requests)


def main(argv: list[str] | None = None) -> int:
    return server.main(
        argv, title="CareCredit sandbox",
        description="CareCredit sandbox: a fake CareCredit API with deterministic decisions.",
        env_prefix="CARECREDIT_SANDBOX", default_port=DEFAULT_PORT,
        serve=lambda args: serve_in_thread(args.port, host=args.host, log_requests=True),
    )
