"""SMS backends, chosen by settings.SMS_BACKEND (a dotted path).

The embedded default writes each message to a file under var/outbox/sms; tests use the
in-memory backend; production uses `TwilioBackend`. Every backend implements
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

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from partner_http import BAD_ADDRESS, nothing_was_sent


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


class TwilioBackend:
    """Twilio Programmable Messaging over its REST API: one POST to the Messages resource.

    Errors are classified here: 429, 5xx and network failures are transient; any other 4xx
    is permanent (a bad number will not get better). A read timeout or a dropped
    connection after the request went out is transient *with an unknown outcome*.
    """

    def __init__(self):
        self.base_url = settings.TWILIO_API_URL.rstrip("/")
        self.account_sid = settings.TWILIO_ACCOUNT_SID
        self.auth_token = settings.TWILIO_AUTH_TOKEN
        self.sender = settings.TWILIO_FROM
        if not (self.account_sid and self.auth_token and self.sender):
            raise ImproperlyConfigured("TwilioBackend needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM.")

    def send(self, to: str, body: str, *, callback_url: str = "") -> str:
        data = {"To": to, "Body": body}
        # A Messaging Service (MG…) picks the sender number itself.
        data["MessagingServiceSid" if self.sender.startswith("MG") else "From"] = self.sender
        if callback_url:
            data["StatusCallback"] = callback_url
        url = f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        try:
            response = requests.post(
                url,
                data=data,
                auth=(self.account_sid, self.auth_token),
                timeout=(settings.PARTNER_CONNECT_TIMEOUT, settings.PARTNER_READ_TIMEOUT),
            )
        except requests.RequestException as exc:
            raise _transport_failure(exc) from exc
        if response.status_code in (200, 201):
            try:
                return response.json()["sid"]
            except (ValueError, KeyError) as exc:
                raise SmsError("Twilio accepted the message but its answer had no message id", permanent=False, outcome_unknown=True) from exc
        try:
            code = response.json().get("code")
        except ValueError:
            code = None
        if response.status_code == 429 or response.status_code >= 500:
            raise SmsError(f"Twilio is unavailable (HTTP {response.status_code})", permanent=False)
        raise SmsError(f"Twilio refused the message ({describe_twilio_error(code)})", permanent=True)


def _transport_failure(exc: requests.RequestException) -> SmsError:
    """The partner kit decides whether anything reached Twilio (as for every partner):
    only then can a retry send the message twice."""
    if isinstance(exc, BAD_ADDRESS):
        # A configuration mistake: retrying would fail the same way.
        return SmsError(f"The Twilio API URL is invalid ({type(exc).__name__}); check TWILIO_API_URL", permanent=True)
    if nothing_was_sent(exc):
        how = "connect timeout" if isinstance(exc, requests.ConnectTimeout) else "connection refused"
        return SmsError(f"Twilio could not be reached ({how})", permanent=False)
    if isinstance(exc, requests.Timeout):
        return SmsError("Twilio did not answer in time", permanent=False, outcome_unknown=True)
    if isinstance(exc, requests.ConnectionError):
        return SmsError("The connection to Twilio dropped before it answered", permanent=False, outcome_unknown=True)
    return SmsError(f"Twilio request failed ({exc.__class__.__name__})", permanent=False, outcome_unknown=True)


def twilio_signature(url: str, params: dict[str, list[str]], auth_token: str) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1, keyed by the auth token, of the full URL
    followed by every POST parameter as name+value, sorted by name."""
    payload = url + "".join(name + value for name in sorted(params) for value in sorted(params[name]))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def get_backend():
    return import_string(settings.SMS_BACKEND)()
