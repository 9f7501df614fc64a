"""SMS backends, chosen by settings.SMS_BACKEND (a dotted path).

The embedded default writes each message to a file under var/outbox/sms; tests use the
in-memory backend. A provider backend (Twilio) implements the same `send`.
"""

import itertools
import json
import threading
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.utils.module_loading import import_string


class SmsError(Exception):
    def __init__(self, message: str, *, permanent: bool):
        super().__init__(message)
        self.permanent = permanent


class FileBackend:
    def send(self, to: str, body: str) -> str:
        folder = Path(settings.SMS_FILE_PATH)
        folder.mkdir(parents=True, exist_ok=True)
        message_id = "SMfile" + uuid.uuid4().hex
        (folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{message_id}.json").write_text(
            json.dumps({"id": message_id, "to": to, "body": body})
        )
        return message_id


class ConsoleBackend:
    def send(self, to: str, body: str) -> str:
        print(f"SMS to {to}: {body}", flush=True)
        return "SMconsole" + uuid.uuid4().hex


class LocmemBackend:
    """Keeps messages in `outbox` for tests."""

    outbox: list[dict] = []
    _ids = itertools.count(1)
    _lock = threading.Lock()

    def send(self, to: str, body: str) -> str:
        with self._lock:
            message_id = f"SMlocmem{next(self._ids)}"
            LocmemBackend.outbox.append({"id": message_id, "to": to, "body": body})
        return message_id


def get_backend():
    return import_string(settings.SMS_BACKEND)()
