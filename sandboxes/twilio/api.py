"""Twilio's Messages API: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``.

HTTP basic auth with the account SID and auth token; form-encoded To, From or
MessagingServiceSid, Body and StatusCallback; a 201 with the message resource. Twilio's
magic test numbers decide the outcome by the To number:

- ``+15005550001``: 400, error 21211 (invalid 'To' number)
- ``+15005550009``: 400, error 21614 (not a mobile number)
- ``+15005550004``: 400, error 21610 (the recipient replied STOP)
- ``+15005550003``: accepted, then ``undelivered`` with error 30003 (unreachable handset)
- any other E.164 number: accepted, ``sent``, then ``delivered``; anything else: 21211.
"""

from __future__ import annotations

import base64
import re
import uuid

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from ..kit.http import SandboxError, json_response

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
REFUSED = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550009": (21614, "'To' number {to} is not a mobile number"),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient {to}"),
}
UNDELIVERABLE = {"+15005550003": 30003}


def _authorised(app, request: Request, account_sid: str) -> bool:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return False
    return account_sid == app.account_sid and user == app.account_sid and password == app.auth_token


def _refuse(code: int, message: str) -> SandboxError:
    return SandboxError(400, message, code=str(code))


def create_message(app, request: Request, account_sid: str) -> Response:
    if not _authorised(app, request, account_sid):
        raise SandboxError(401, "Authenticate", code="20003")
    form = request.form
    to, body = form.get("To", ""), form.get("Body", "")
    if not (form.get("From") or form.get("MessagingServiceSid")):
        raise _refuse(21603, "A 'From' or 'MessagingServiceSid' parameter is required")
    if not body:
        raise _refuse(21602, "Message body is required")
    if to in REFUSED or not E164.match(to):
        code, text = REFUSED.get(to, (21211, "The 'To' number {to} is not a valid phone number."))
        raise _refuse(code, text.format(to=to))
    sid = "SM" + uuid.uuid4().hex
    now = app.clock.utc().strftime("%a, %d %b %Y %H:%M:%S +0000")
    message = {
        "sid": sid, "account_sid": app.account_sid, "to": to, "from": form.get("From"),
        "messaging_service_sid": form.get("MessagingServiceSid"), "body": body, "status": "queued",
        "num_segments": str(max(1, -(-len(body) // 153))), "direction": "outbound-api",
        "api_version": "2010-04-01", "date_created": now, "date_updated": now, "date_sent": None,
        "error_code": None, "error_message": None, "price": None,
        "uri": f"/2010-04-01/Accounts/{app.account_sid}/Messages/{sid}.json",
    }
    with app.lock:
        app.messages.append({**message, "status_callback": form.get("StatusCallback", "")})
    callback = form.get("StatusCallback")
    if callback:
        final = ("undelivered", str(UNDELIVERABLE[to])) if to in UNDELIVERABLE else ("delivered", "")
        for status, error_code in (("sent", ""), final):
            app.outbox.put((callback, message, status, error_code))
    return json_response(message, 201)


ROUTES = [Rule("/2010-04-01/Accounts/<account_sid>/Messages.json", endpoint=create_message, methods=["POST"])]
