"""A local Twilio: a real HTTP server that speaks Twilio's Messages API.

It exists so `notifications.sms.TwilioBackend` runs unchanged against it in tests and
demos (point TWILIO_API_URL here): HTTP basic auth with the account SID and auth token,
form-encoded `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with To, From or
MessagingServiceSid, Body and StatusCallback, a 201 with the message resource, and
Twilio-shaped errors (`{"code", "message", "more_info", "status"}`). Accepted messages get
status callbacks signed with X-Twilio-Signature, like Twilio's: `sent`, then `delivered`
(or `undelivered` with an ErrorCode).

Twilio's magic test numbers decide the outcome by the To number:

- ``+15005550001``: 400, error 21211 (invalid 'To' number)
- ``+15005550009``: 400, error 21614 (not a mobile number)
- ``+15005550004``: 400, error 21610 (the recipient replied STOP)
- ``+15005550003``: accepted, then ``undelivered`` with error 30003 (unreachable handset)
- any other E.164 number: accepted, ``sent``, then ``delivered``; anything else: 21211.

Run it: ``python -m notifications.twilio_sandbox --port 8103``. From tests::

    twilio = serve_in_thread(port=0)      # twilio.base_url, twilio.app
    twilio.app.fail_next(503, times=2)    # or 429; or delay_after_accept(seconds)
    twilio.app.messages                   # every accepted message

Control API: ``GET /_sandbox/messages``, ``GET /_sandbox/callbacks``,
``POST /_sandbox/reset``, ``POST /_sandbox/faults`` ({"status": 503, "times": 2} or
{"delay_after_accept": 3.0}), ``DELETE /_sandbox/faults``.
"""

import argparse
import base64
import json
import queue
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import requests
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from .sms import twilio_signature

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "sandbox-auth-token"
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
REFUSED = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550009": (21614, "'To' number {to} is not a mobile number"),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient {to}"),
}
UNDELIVERABLE = {"+15005550003": 30003}


class TwilioSandbox:
    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN, callback_delay: float = 0.02):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.callback_delay = callback_delay
        self.messages: list[dict] = []
        self.callbacks: list[dict] = []
        self._faults: list[int] = []  # HTTP statuses for the next requests
        self._delay_after_accept = 0.0
        self._lock = threading.Lock()
        self._outbox: queue.Queue = queue.Queue()
        self._stopping = threading.Event()
        threading.Thread(target=self._dispatch, name="twilio-sandbox-callbacks", daemon=True).start()

    # --- control ------------------------------------------------------------------------------

    def reset(self):
        with self._lock:
            self.messages.clear()
            self.callbacks.clear()
            self._faults.clear()
            self._delay_after_accept = 0.0

    def fail_next(self, status: int, times: int = 1):
        with self._lock:
            self._faults.extend([status] * times)

    def delay_after_accept(self, seconds: float):
        """Store the message, then answer this late: the client times out on an accepted message."""
        with self._lock:
            self._delay_after_accept = seconds

    def stop(self):
        self._stopping.set()

    # --- HTTP ---------------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        request = Request(environ)
        return self.handle(request)(environ, start_response)

    def handle(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/_sandbox/"):
            return self._control(request, path)
        match = re.fullmatch(r"/2010-04-01/Accounts/([^/]+)/Messages\.json", path)
        if not match:
            return _error(404, 20404, "The requested resource was not found")
        if request.method != "POST":
            return _error(405, 20004, "Method not allowed")
        if not self._authorised(request, match.group(1)):
            return _error(401, 20003, "Authenticate")
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
            delay = self._delay_after_accept
        if fault:
            headers = {"Retry-After": "1"} if fault == 429 else {}
            return _error(fault, 20429 if fault == 429 else 20500, "Sandbox fault", headers=headers)
        form = request.form
        to, body = form.get("To", ""), form.get("Body", "")
        sender = form.get("From") or form.get("MessagingServiceSid")
        if not sender:
            return _error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required")
        if not body:
            return _error(400, 21602, "Message body is required")
        if to in REFUSED or not E164.match(to):
            code, text = REFUSED.get(to, (21211, "The 'To' number {to} is not a valid phone number."))
            return _error(400, code, text.format(to=to))
        sid = "SM" + uuid.uuid4().hex
        now = datetime.now(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000")
        message = {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": to,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "body": body,
            "status": "queued",
            "num_segments": str(max(1, -(-len(body) // 153))),
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "error_code": None,
            "error_message": None,
            "price": None,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        with self._lock:
            self.messages.append({**message, "status_callback": form.get("StatusCallback", "")})
        callback = form.get("StatusCallback")
        if callback:
            outcome = [("sent", "")]
            outcome.append(("undelivered", str(UNDELIVERABLE[to])) if to in UNDELIVERABLE else ("delivered", ""))
            for status, error_code in outcome:
                self._outbox.put((callback, message, status, error_code))
        if delay:
            time.sleep(delay)
        return Response(json.dumps(message), status=201, content_type="application/json")

    def _authorised(self, request: Request, account_sid: str) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return account_sid == self.account_sid and user == self.account_sid and password == self.auth_token

    def _control(self, request: Request, path: str) -> Response:
        if path == "/_sandbox/messages" and request.method == "GET":
            with self._lock:
                return _json(list(self.messages))
        if path == "/_sandbox/callbacks" and request.method == "GET":
            with self._lock:
                return _json(list(self.callbacks))
        if path == "/_sandbox/reset" and request.method == "POST":
            self.reset()
            return _json({"status": "reset"})
        if path == "/_sandbox/faults" and request.method == "POST":
            fault = request.get_json(force=True)
            if "status" in fault:
                self.fail_next(int(fault["status"]), int(fault.get("times", 1)))
            if "delay_after_accept" in fault:
                self.delay_after_accept(float(fault["delay_after_accept"]))
            return _json({"status": "armed"})
        if path == "/_sandbox/faults" and request.method == "DELETE":
            with self._lock:
                self._faults.clear()
                self._delay_after_accept = 0.0
            return _json({"status": "cleared"})
        return _error(404, 20404, "Unknown sandbox control")

    # --- status callbacks -----------------------------------------------------------------------

    def _dispatch(self):
        while not self._stopping.is_set():
            try:
                url, message, status, error_code = self._outbox.get(timeout=0.1)
            except queue.Empty:
                continue
            time.sleep(self.callback_delay)
            params = {
                "AccountSid": self.account_sid,
                "ApiVersion": "2010-04-01",
                "From": message["from"] or "",
                "MessageSid": message["sid"],
                "MessageStatus": status,
                "SmsSid": message["sid"],
                "SmsStatus": status,
                "To": message["to"],
            }
            if error_code:
                params["ErrorCode"] = error_code
            signature = twilio_signature(url, {k: [v] for k, v in params.items()}, self.auth_token)
            try:
                answer = requests.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=5).status_code
            except requests.RequestException as exc:
                answer = exc.__class__.__name__
            with self._lock:
                self.callbacks.append({"sid": message["sid"], "status": status, "url": url, "answer": answer})


def _json(data, status=200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")


def _error(status: int, code: int, message: str, headers=None) -> Response:
    body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}
    return Response(json.dumps(body), status=status, content_type="application/json", headers=headers or {})


class _QuietRequestHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


@dataclass
class RunningTwilioSandbox:
    app: TwilioSandbox
    base_url: str
    server: object
    thread: threading.Thread

    def stop(self):
        self.app.stop()
        self.server.shutdown()
        self.server.server_close()


def serve_in_thread(port: int = 0, host: str = "127.0.0.1", **config) -> RunningTwilioSandbox:
    app = TwilioSandbox(**config)
    server = make_server(host, port, app, threaded=True, request_handler=_QuietRequestHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="twilio-sandbox-http", daemon=True)
    thread.start()
    return RunningTwilioSandbox(app=app, base_url=f"http://{host}:{server.server_port}", server=server, thread=thread)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m notifications.twilio_sandbox", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8103)
    args = parser.parse_args(argv)
    running = serve_in_thread(port=args.port, host=args.host)
    print(f"Twilio sandbox on {running.base_url} (account {ACCOUNT_SID}, token {AUTH_TOKEN})", flush=True)
    try:
        running.thread.join()
    except KeyboardInterrupt:
        running.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
