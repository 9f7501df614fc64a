"""The WSGI base every sandbox extends: routing, errors, faults, the request log, control.

A sandbox subclasses `SandboxApp`, names its API prefix, lists its routes (Werkzeug
rules whose endpoint is a function ``endpoint(app, request, **args)``), and renders
errors in its partner's shape (`error_body`). The base class gives it:

- fault injection on API paths (see `faults`), each fault applied around the route;
- the request log: ``{method, path, status, fault}`` per API request, never a body;
  ``status`` is null for a dropped connection, because the client never received one;
- the shared control routes (no auth; never expose a sandbox beyond a test machine):
  ``GET /_sandbox/health``, ``POST /_sandbox/reset``, ``GET /_sandbox/requests``,
  ``GET|POST|DELETE /_sandbox/faults``, ``GET|POST /_sandbox/clock``;
- a last-resort JSON 500: a request thread never dies without an answer.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from .clock import Clock
from .faults import MODES, FaultBook, drop_connection
from .http import SandboxError, field_errors, json_response, read_json

log = logging.getLogger(__name__)


def health(app: SandboxApp, request: Request) -> Response:
    return json_response({"ok": True})


def reset(app: SandboxApp, request: Request) -> Response:
    app.reset()
    return json_response({"ok": True, "reset": True})


def requests_log(app: SandboxApp, request: Request) -> Response:
    return json_response(app.request_log())


def faults(app: SandboxApp, request: Request) -> Response:
    if request.method == "POST":
        return json_response(app.add_fault(read_json(request)), 201)
    if request.method == "DELETE":
        return json_response({"cleared": app.faults.clear()})
    return json_response(app.faults.to_json())


def clock(app: SandboxApp, request: Request) -> Response:
    if request.method == "POST":
        errors = app.clock.apply(read_json(request))
        if errors:
            raise field_errors(errors, "clock")
    return json_response(app.clock.to_json())


CONTROL_ROUTES = [
    Rule("/_sandbox/health", endpoint=health, methods=["GET"]),
    Rule("/_sandbox/reset", endpoint=reset, methods=["POST"]),
    Rule("/_sandbox/requests", endpoint=requests_log, methods=["GET"]),
    Rule("/_sandbox/faults", endpoint=faults, methods=["GET", "POST", "DELETE"]),
    Rule("/_sandbox/clock", endpoint=clock, methods=["GET", "POST"]),
]


class SandboxApp:
    """One sandbox as a WSGI app. Subclasses set the class attributes and `routes`."""

    name = "sandbox"
    api_prefix = "/v1"
    fault_modes: tuple[str, ...] = MODES
    api_paths = "API"  # what the messages call the API paths (Dentrix: "connector")
    max_body_bytes = 1024 * 1024
    routes: list[Rule] = []

    def __init__(self) -> None:
        self.clock = Clock()
        self.faults = FaultBook(self.api_prefix, self.fault_modes, self.api_paths)
        # Set on shutdown: wakes requests waiting in a latency, timeout or hold fault.
        self.stopping = threading.Event()
        # The base URL the server listens on; set by serve_in_thread once bound.
        self.server_url = ""
        self._log: list[dict[str, Any]] = []
        self._log_lock = threading.Lock()
        self.url_map = Map(
            [rule.empty() for rule in self.routes] + [rule.empty() for rule in CONTROL_ROUTES],
            strict_slashes=False,
        )

    # --- what a sandbox provides ------------------------------------------------------------

    def error_body(self, error: SandboxError) -> Any:
        """The JSON body of an error answer, in the partner's shape."""
        body: dict[str, Any] = {"error": error.code, "message": error.message}
        if error.fields is not None:
            body["fields"] = error.fields
        return body

    def http_error(self, request: Request, exc: HTTPException) -> SandboxError:
        """No such route, wrong method, body too large: as a `SandboxError`."""
        headers = {}
        if isinstance(exc, MethodNotAllowed):
            headers["Allow"] = ", ".join(exc.valid_methods or [])
        code = (exc.name or "error").lower().replace(" ", "_")
        return SandboxError(exc.code or 500, exc.description or "", code=code, headers=headers)

    def fault_response(self, fault: Any) -> Response:
        """The answer of an ``error`` or ``commit_then_error`` fault."""
        if fault.mode == "commit_then_error":
            message = f"The {self.name} sandbox saved the change but then failed (sandbox fault)."
        elif 400 <= fault.status < 500 and fault.status != 429:
            # A refusal, not an outage: a 4xx says nothing about being unavailable.
            message = f"The {self.name} sandbox refused the request (sandbox fault: HTTP {fault.status})."
        else:
            message = f"The {self.name} sandbox is temporarily unavailable (sandbox fault: HTTP {fault.status})."
        error = SandboxError(fault.status, message, code="injected_fault", headers=fault.retry_after_header())
        return self.render(error)

    def before(self, request: Request, args: dict[str, Any]) -> None:
        """Runs before every matched route (e.g. an API-key check); raise SandboxError to refuse."""

    def start(self) -> None:
        """Start background threads (serve_in_thread calls it once the server is bound)."""

    def stop(self) -> None:
        self.stopping.set()

    def reset(self) -> None:
        """Back to the starting state: subclasses clear their store, then call this."""
        with self._log_lock:
            self._log.clear()
        self.faults.clear()
        self.clock.reset()

    # --- Python control API (tests may call these directly) --------------------------------

    def add_fault(self, spec: Any) -> dict[str, Any]:
        return self.faults.add(spec).to_json()

    def request_log(self) -> list[dict[str, Any]]:
        with self._log_lock:
            return [dict(entry) for entry in self._log]

    # --- WSGI ----------------------------------------------------------------------------------

    def is_api(self, path: str) -> bool:
        return path == self.api_prefix.rstrip("/") or path.startswith(self.api_prefix.rstrip("/") + "/")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        request.max_content_length = self.max_body_bytes  # a 413 before anything reads it
        is_api = self.is_api(request.path)
        fault = self.faults.take(request.method, request.path) if is_api else None
        mode = fault.mode if fault else None
        try:
            if mode == "error":
                response = self.fault_response(fault)  # nothing reaches the partner
            else:
                if mode in ("latency", "timeout"):
                    self._pause(fault.seconds)
                response = self._dispatch(request)
                if mode == "hold":
                    self._pause(fault.seconds)
                elif mode == "drop":
                    self._record(request, None, mode)
                    drop_connection(environ)
                elif mode == "commit_then_error":
                    response = self.fault_response(fault)
        except ConnectionAbortedError:
            raise  # Werkzeug's server treats this as a dropped connection, quietly
        except Exception:
            log.exception("%s sandbox failed on %s %s", self.name, request.method, request.path)
            response = self._internal_error()
        if is_api:
            self._record(request, response.status_code, mode)
        return response(environ, start_response)

    def render(self, error: SandboxError) -> Response:
        return json_response(self.error_body(error), error.status, headers=error.headers)

    def _dispatch(self, request: Request) -> Response:
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
            self.before(request, args)
            return endpoint(self, request, **args)
        except SandboxError as exc:
            return self.render(exc)
        except (NotFound, MethodNotAllowed) as exc:
            return self.render(self.http_error(request, exc))
        except HTTPException as exc:  # e.g. 413 from max_content_length, a slash redirect
            return self.render(SandboxError(exc.code or 400, exc.description or exc.name,
                                            code=(exc.name or "error").lower().replace(" ", "_")))
        except Exception:
            log.exception("%s sandbox failed on %s %s", self.name, request.method, request.path)
            return self._internal_error()

    def _internal_error(self) -> Response:
        return self.render(SandboxError(
            500, f"The {self.name} sandbox failed while handling this request (see its log).", code="internal_error",
        ))

    def _pause(self, seconds: float) -> None:
        # An Event wait, not time.sleep, so stop() does not hang on a 30 s fault.
        if self.stopping.wait(seconds):
            raise ConnectionAbortedError("sandbox is stopping")

    def _record(self, request: Request, status: int | None, fault_mode: str | None) -> None:
        with self._log_lock:
            self._log.append({"method": request.method, "path": request.path, "status": status, "fault": fault_mode})
