"""SMS backends, chosen by settings.SMS_BACKEND (a dotted path).

The embedded default writes each message to a file under var/outbox/sms; tests use the
in-memory backend; production uses `twilio_bridge.client.TwilioBackend`. Every backend implements
`send(to, body, *, callback_url="") -> provider message id` and raises `SmsError`.
"""

import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.utils.module_loading import import_string


class SmsError(Exception):
    """`permanent`: retrying cannot help. `outcome_unknown`: the request went out and no
    answer came back, so the provider may have accepted the message."""

    def __init__(self, message: str, *, permanent: bool, outcome_unknown: bool = False):
        super().__init__(message)
        self.permanent = permanent
        self.outcome_unknown = outcome_unknown


class FileBackend:
    def send(self, to: str, body: str, *, callback_url: str = "") -> str:
        folder = Path(settings.SMS_FILE_PATH)
        folder.mkdir(parents=True, exist_ok=True)
        message_id = "SMfile" + uuid.uuid4().hex
        (folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{message_id}.json").write_text(
            json.dumps({"id": message_id, "to": to, "body": body})
        )
        return message_id


class ConsoleBackend:
    def send(self, to: str, body: str, *, callback_url: str = "") -> str:
        print(f"SMS to {to}: {body}", flush=True)
        return "SMconsole" + uuid.uuid4().hex


class LocmemBackend:
    """Keeps messages in `outbox` for tests."""

    outbox: list[dict] = []
    _ids = itertools.count(1)
    _lock = threading.Lock()

    def send(self, to: str, body: str, *, callback_url: str = "") -> str:
        with self._lock:
            message_id = f"SMlocmem{next(self._ids)}"
            LocmemBackend.outbox.append({"id": message_id, "to": to, "body": body, "callback_url": callback_url})
        return message_id


# Twilio error codes we expect, in words a billing clerk understands. Twilio's own
# `message` quotes the phone number, so it is never copied into a record or a log.
TWILIO_ERRORS = {
    20003: "Twilio refused the credentials (check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)",
    20404: "Twilio does not know this account or resource (check TWILIO_ACCOUNT_SID)",
    21211: "the phone number is not a valid phone number",
    21214: "the phone number cannot be reached",
    21408: "Twilio is not permitted to send to this country",
    21606: "the sender number cannot send messages (check TWILIO_FROM)",
    21610: "the recipient has replied STOP and unsubscribed",
    21612: "Twilio cannot route a message to this number",
    21614: "the phone number is not a mobile number",
    30003: "the handset is unreachable (off or out of coverage)",
    30004: "the message was blocked by the recipient or the carrier",
    30005: "the phone number is unknown to its carrier",
    30006: "the number is a landline or its carrier cannot take text messages",
    30007: "the carrier filtered the message as spam",
    30008: "the carrier reported an unknown error",
}


def describe_twilio_error(code) -> str:
    try:
        code = int(code)
    except (TypeError, ValueError):
        return "no error code given"
    return f"error {code}: {TWILIO_ERRORS.get(code, 'see twilio.com/docs/api/errors')}"


def twilio_signature(url: str, params: dict[str, list[str]], auth_token: str) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1, keyed by the auth token, of the full URL
    followed by every POST parameter as name+value, sorted by name."""
    payload = url + "".join(name + value for name in sorted(params) for value in sorted(params[name]))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def get_backend():
    return import_string(settings.SMS_BACKEND)()
