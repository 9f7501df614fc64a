"""The Open Dental sandbox as a WSGI app: keys, permissions, the throttle, plain-text errors."""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import threading
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.wrappers import Request, Response

from ..kit import server
from ..kit.app import SandboxApp
from ..kit.http import SandboxError, json_response
from . import api, control, ledger, schedule
from .store import OfficeStore

DEFAULT_PORT = 8104
DEFAULT_DEVELOPER_KEY = "sandbox-developer"
DEFAULT_CUSTOMER_KEY = "sandbox-customer"
# Open Dental: one request per second per customer key; one per 5 s for a key that has
# the Read All permission only (https://www.opendental.com/site/apiimplementation.html).
DEFAULT_RATE = 1.0
READ_ALL_ONLY_RATE = 0.2
ALL_PERMISSIONS = {"Read All", "Comm", "PayPlans", "Payments"}


def key_id(key: str) -> str:
    """What the request log shows of a customer key: never the key."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]


class OpenDentalSandbox(SandboxApp):
    name = "Open Dental"
    api_prefix = "/api/v1"
    api_paths = "API"
    routes = api.ROUTES + ledger.ROUTES + control.ROUTES + ledger.CONTROL_ROUTES

    def __init__(self, developer_key: str = DEFAULT_DEVELOPER_KEY, customer_key: str = DEFAULT_CUSTOMER_KEY,
                 state_file: str | None = None, requests_per_second: float = DEFAULT_RATE,
                 time_zone: str = schedule.DEFAULT_TIME_ZONE):
        super().__init__()
        # The office's zone: the wall clock of its appointment book, and what its today is.
        self.time_zone = schedule.time_zone(time_zone)
        self.developer_key = developer_key
        self.customer_key = customer_key
        self.store = OfficeStore(str(state_file) if state_file else None)
        self.initial_rate = requests_per_second
        self.rate = requests_per_second
        self.permissions = set(ALL_PERMISSIONS)
        self.refusals: dict[int, str] = {}  # PatNum → the one refusal of its next plan
        self._throttle_lock = threading.Lock()
        self._last_accepted: dict[str, float] = {}

    # --- Open Dental's answers ---------------------------------------------------------------

    def render(self, error: SandboxError) -> Response:
        """Open Dental explains an error in plain text. Field-by-field errors come from the
        sandbox's own control routes only, as JSON."""
        if error.fields is not None:
            return json_response({"error": error.message, "fields": error.fields}, error.status, headers=error.headers)
        return Response(error.message or error.code, status=error.status, headers=error.headers,
                        content_type="text/plain; charset=utf-8")

    def http_error(self, request: Request, exc: HTTPException) -> SandboxError:
        error = super().http_error(request, exc)
        if isinstance(exc, NotFound):
            error.message = f"Not found: {request.method} {request.path}"
        elif isinstance(exc, MethodNotAllowed):
            error.message = f"{request.method} is not allowed on {request.path}."
        return error

    def before(self, request: Request, args: dict[str, Any]) -> None:
        if not self.is_api(request.path):
            return
        given = request.headers.get("Authorization", "")
        scheme, _, keys = given.partition(" ")
        developer, _, customer = keys.partition("/")
        if scheme != "ODFHIR" or not developer or not customer:
            raise SandboxError(401, 'Authorization header is missing or invalid. Send "ODFHIR {DeveloperKey}/{CustomerKey}".')
        if not (hmac.compare_digest(developer.encode(), self.developer_key.encode())
                and hmac.compare_digest(customer.encode(), self.customer_key.encode())):
            raise SandboxError(401, "Invalid developer key or customer key, or the key is disabled.")
        needed = "Read All" if request.method == "GET" else (
            api.WRITE_PERMISSIONS | ledger.WRITE_PERMISSIONS
        ).get((request.method, request.path))
        if needed and needed not in self.permissions:
            raise SandboxError(401, f"This API key does not have the {needed} permission.")
        if request.method in ("POST", "PUT") and request.mimetype != "application/json":
            raise SandboxError(400, "Content-Type must be application/json.")
        self._throttle(customer)

    def _throttle(self, customer: str) -> None:
        """At most one request per 1/rate seconds per customer key, by the sandbox clock.
        Open Dental documents the limit but no status for it; the sandbox refuses the
        excess with 429 and a Retry-After (nothing done), so a client that does not pace
        itself finds out at once (see README, "Throttle")."""
        rate = self.rate_for_key()
        if not rate:
            return
        interval = 1.0 / rate
        with self._throttle_lock:
            now = self.clock.now()
            last = self._last_accepted.get(customer)
            if last is not None and now - last < interval:
                wait = interval - (now - last)
                raise SandboxError(
                    429, f"Too many requests: this customer key is limited to {rate:g} request(s) per second.",
                    headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )
            self._last_accepted[customer] = now

    def rate_for_key(self) -> float:
        if self.rate and self.permissions == {"Read All"}:
            return min(self.rate, READ_ALL_ONLY_RATE)
        return self.rate

    def set_rate(self, rate: float) -> None:
        with self._throttle_lock:
            self.rate = rate
            self._last_accepted.clear()

    def _record(self, request: Request, status: int | None, fault_mode: str | None) -> None:
        """The request log also keeps when (sandbox clock) and for which key (its id)."""
        customer = request.headers.get("Authorization", "").partition("/")[2]
        with self._log_lock:
            self._log.append({
                "method": request.method, "path": request.path, "status": status, "fault": fault_mode,
                "at": round(self.clock.now(), 4), "key": key_id(customer) if customer else "",
            })

    def reset(self) -> None:
        self.store.reset()
        self.permissions = set(ALL_PERMISSIONS)
        self.refusals.clear()
        self.set_rate(self.initial_rate)
        super().reset()


def serve_in_thread(port: int = 0, developer_key: str = DEFAULT_DEVELOPER_KEY, customer_key: str = DEFAULT_CUSTOMER_KEY,
                    state_file: str | None = None, requests_per_second: float = DEFAULT_RATE,
                    host: str = server.DEFAULT_HOST, quiet: bool = True,
                    time_zone: str = schedule.DEFAULT_TIME_ZONE) -> server.RunningSandbox:
    """Start a sandbox on a background thread; port=0 picks a free port. Its API is at
    `running.base_url + "/api/v1"`."""
    app = OpenDentalSandbox(developer_key, customer_key, state_file, requests_per_second, time_zone)
    return server.serve_in_thread(app, port, host=host, quiet=quiet)


def main(argv: list[str] | None = None) -> int:
    def add_arguments(parser):
        parser.add_argument("--state-file", default=os.environ.get("OPENDENTAL_SANDBOX_STATE_FILE") or None,
                            help="append-only JSON-lines journal, replayed on start (default: memory only)")
        parser.add_argument("--requests-per-second", type=float,
                            default=float(os.environ.get("OPENDENTAL_SANDBOX_RATE") or DEFAULT_RATE),
                            help="the customer key's throttle; 0 for none, as the Local API (default 1)")
        parser.add_argument("--time-zone", default=os.environ.get("OPENDENTAL_SANDBOX_TIME_ZONE") or schedule.DEFAULT_TIME_ZONE,
                            help=f"the office's time zone, its appointment book's clock (default {schedule.DEFAULT_TIME_ZONE})")

    def serve(args):
        return serve_in_thread(
            args.port,
            developer_key=os.environ.get("OPENDENTAL_SANDBOX_DEVELOPER_KEY", DEFAULT_DEVELOPER_KEY),
            customer_key=os.environ.get("OPENDENTAL_SANDBOX_CUSTOMER_KEY", DEFAULT_CUSTOMER_KEY),
            state_file=args.state_file, requests_per_second=args.requests_per_second, host=args.host, quiet=False,
            time_zone=args.time_zone,
        )

    return server.main(
        argv, title="Open Dental sandbox", description="Open Dental API sandbox (see sandboxes/opendental/README.md).",
        env_prefix="OPENDENTAL_SANDBOX", default_port=DEFAULT_PORT, serve=serve, add_arguments=add_arguments,
    )
