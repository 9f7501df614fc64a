"""The Dentrix sandbox as a WSGI app: the store, the contract's routes, the control routes."""

from __future__ import annotations

import hmac
import os
from typing import Any

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.wrappers import Request

from ..kit import server
from ..kit.app import SandboxApp
from ..kit.http import SandboxError
from . import api, control, ledger, schedule
from .products import DEFAULT_PRODUCT, PRODUCTS, product as product_named
from .store import SandboxStore

DEFAULT_PORT = 8102
DEFAULT_API_KEY = "sandbox"


class DentrixSandbox(SandboxApp):
    """The WSGI application. `store` is public so tests can look inside."""

    name = "Dentrix"
    api_prefix = "/v1"
    api_paths = "connector"
    routes = api.ROUTES + ledger.ROUTES + control.ROUTES + ledger.CONTROL_ROUTES

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        state_file: str | None = None,
        product: str = DEFAULT_PRODUCT,
        time_zone: str = schedule.DEFAULT_TIME_ZONE,
    ):
        # The connector's product: what GET /v1/connector says, and whose rules judge writes.
        self.product = product_named(product)
        # The practice database's zone: its appointment book's wall clock (`schedule`).
        self.time_zone = schedule.time_zone(time_zone)
        self.name = self.product.name
        super().__init__()
        self.api_key = api_key
        self.store = SandboxStore(str(state_file) if state_file else None)

    def error_body(self, error: SandboxError) -> Any:
        body: dict[str, Any] = {"error": error.message or error.code}
        if error.fields is not None:
            body["fields"] = error.fields
        return body

    def http_error(self, request: Request, exc: HTTPException) -> SandboxError:
        error = super().http_error(request, exc)
        error.message = (
            f"No such endpoint: {request.method} {request.path}" if isinstance(exc, NotFound)
            else f"{request.method} is not allowed on {request.path}."
        )
        return error

    def before(self, request: Request, args: dict[str, Any]) -> None:
        if not self.is_api(request.path):
            return
        given = request.headers.get("X-API-Key", "")
        if not given or not hmac.compare_digest(given.encode(), self.api_key.encode()):
            raise SandboxError(401, "Missing or wrong API key: send the connector's key in the X-API-Key header.")

    def reset(self) -> None:
        self.store.reset()
        super().reset()


def serve_in_thread(
    port: int = 0,
    api_key: str = DEFAULT_API_KEY,
    state_file: str | None = None,
    host: str = server.DEFAULT_HOST,
    quiet: bool = True,
    product: str = DEFAULT_PRODUCT,
    time_zone: str = schedule.DEFAULT_TIME_ZONE,
) -> server.RunningSandbox:
    """Start a sandbox on a background thread; port=0 picks a free port."""
    app = DentrixSandbox(api_key=api_key, state_file=state_file, product=product, time_zone=time_zone)
    return server.serve_in_thread(app, port, host=host, quiet=quiet)


def main(argv: list[str] | None = None) -> int:
    def add_arguments(parser):
        parser.add_argument(
            "--state-file",
            default=os.environ.get("DENTRIX_SANDBOX_STATE_FILE") or None,
            help="append-only JSON-lines journal, replayed on start (default: memory only)",
        )
        parser.add_argument(
            "--product",
            default=os.environ.get("DENTRIX_SANDBOX_PRODUCT") or DEFAULT_PRODUCT,
            choices=sorted(PRODUCTS),
            help=f"the connector product it serves (default: {DEFAULT_PRODUCT})",
        )
        parser.add_argument(
            "--time-zone",
            default=os.environ.get("DENTRIX_SANDBOX_TIME_ZONE") or schedule.DEFAULT_TIME_ZONE,
            help=f"the practice database's time zone, its appointment book's clock (default: {schedule.DEFAULT_TIME_ZONE})",
        )

    def serve(args):
        api_key = os.environ.get("DENTRIX_SANDBOX_API_KEY", DEFAULT_API_KEY)
        return serve_in_thread(
            args.port, api_key=api_key, state_file=args.state_file, host=args.host, quiet=False, product=args.product,
            time_zone=args.time_zone,
        )

    return server.main(
        argv, title="Dentrix sandbox",
        description="Connector sandbox for Dentrix G, Enterprise, Ascend and Eaglesoft (see dentrix_bridge/CONTRACT.md).",
        env_prefix="DENTRIX_SANDBOX", default_port=DEFAULT_PORT, serve=serve, add_arguments=add_arguments,
    )
