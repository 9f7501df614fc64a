"""The Twilio sandbox as a WSGI app: its Messages route, control routes and status callbacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import queue
import threading
from typing import Any

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

import requests

from ..kit import server
from ..kit.app import SandboxApp
from ..kit.http import SandboxError, json_response
from . import api

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "sandbox-auth-token"
DEFAULT_PORT = 8103


def signature(url: str, params: dict[str, str], auth_token: str) -> str:
    """X-Twilio-Signature as Twilio documents it: base64 HMAC-SHA1, keyed by the auth
    token, of the full URL followed by each POST parameter's name and value, sorted by name."""
    payload = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def messages(app, request: Request) -> Response:
    with app.lock:
        return json_response(list(app.messages))


def callbacks(app, request: Request) -> Response:
    with app.lock:
        return json_response(list(app.callbacks))


class TwilioSandbox(SandboxApp):
    name = "Twilio"
    api_prefix = "/2010-04-01/"
    fault_modes = ("error", "latency", "timeout", "drop", "hold")
    routes = api.ROUTES + [
        Rule("/_sandbox/messages", endpoint=messages, methods=["GET"]),
        Rule("/_sandbox/callbacks", endpoint=callbacks, methods=["GET"]),
    ]

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN, callback_delay: float = 0.02):
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.callback_delay = callback_delay
        self.messages: list[dict] = []
        self.callbacks: list[dict] = []
        self.lock = threading.Lock()
        self.outbox: queue.Queue = queue.Queue()
        threading.Thread(target=self._send_callbacks, name="twilio-sandbox-callbacks", daemon=True).start()

    # --- Twilio's error shape ---------------------------------------------------------------

    def error_body(self, error: SandboxError) -> Any:
        code = int(error.code) if error.code.isdigit() else {404: 20404, 405: 20004, 429: 20429}.get(error.status, 20500)
        return {"code": code, "message": error.message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": error.status}

    def http_error(self, request: Request, exc: HTTPException) -> SandboxError:
        if isinstance(exc, MethodNotAllowed):
            return SandboxError(405, "Method not allowed", code="20004")
        return SandboxError(exc.code or 404, "The requested resource was not found", code="20404")

    def fault_response(self, fault: Any) -> Response:
        headers = fault.retry_after_header() or ({"Retry-After": "1"} if fault.status == 429 else {})
        return self.render(SandboxError(fault.status, "Sandbox fault", headers=headers))

    # --- control (Python; the notification tests call these) ------------------------------------

    def reset(self) -> None:
        with self.lock:
            self.messages.clear()
            self.callbacks.clear()
        super().reset()

    def fail_next(self, status: int, times: int = 1) -> None:
        self.add_fault({"method": "POST", "mode": "error", "status": status, "count": times})

    def delay_after_accept(self, seconds: float) -> None:
        """Store the message, then answer this late: the client times out on an accepted message."""
        self.add_fault({"method": "POST", "mode": "hold", "latency_ms": int(seconds * 1000), "count": None})

    def add_fault(self, spec: Any) -> dict[str, Any]:
        # The older shorthand: {"status": 503, "times": 2} or {"delay_after_accept": 3.0}.
        if isinstance(spec, dict) and "mode" not in spec:
            if "delay_after_accept" in spec:
                self.delay_after_accept(float(spec["delay_after_accept"]))
            if "status" in spec:
                self.fail_next(int(spec["status"]), int(spec.get("times", 1)))
            return {"status": "armed"}
        return super().add_fault(spec)

    # --- status callbacks -----------------------------------------------------------------------

    def _send_callbacks(self) -> None:
        while not self.stopping.is_set():
            try:
                url, message, status, error_code = self.outbox.get(timeout=0.1)
            except queue.Empty:
                continue
            self.stopping.wait(self.callback_delay)
            params = {
                "AccountSid": self.account_sid, "ApiVersion": "2010-04-01", "From": message["from"] or "",
                "MessageSid": message["sid"], "MessageStatus": status, "SmsSid": message["sid"],
                "SmsStatus": status, "To": message["to"],
            }
            if error_code:
                params["ErrorCode"] = error_code
            headers = {"X-Twilio-Signature": signature(url, params, self.auth_token)}
            try:
                answer = requests.post(url, data=params, headers=headers, timeout=5).status_code
            except requests.RequestException as exc:
                answer = exc.__class__.__name__
            with self.lock:
                self.callbacks.append({"sid": message["sid"], "status": status, "url": url, "answer": answer})


def serve_in_thread(port: int = 0, host: str = server.DEFAULT_HOST, **config: Any) -> server.RunningSandbox:
    return server.serve_in_thread(TwilioSandbox(**config), port, host=host)


def main(argv: list[str] | None = None) -> int:
    return server.main(
        argv, title="Twilio sandbox", description="A local Twilio Messages API (see sandboxes/twilio).",
        env_prefix="TWILIO_SANDBOX", default_port=DEFAULT_PORT,
        serve=lambda args: serve_in_thread(args.port, args.host),
    )
