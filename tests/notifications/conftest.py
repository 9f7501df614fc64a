"""Real providers on loopback: an SMTP server (aiosmtpd) and a Twilio-compatible HTTP server
(sandboxes.twilio), so the production email and SMS code paths run unchanged."""

import socket
import threading
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from notifications.signals import delivery_failed
from sandboxes.twilio import ACCOUNT_SID, AUTH_TOKEN, serve_in_thread

SMTP_USER, SMTP_PASSWORD = "chairside", "smtp-secret"


@dataclass
class SmtpRecorder:
    """aiosmtpd handler: records each accepted message; `refuse[address]` holds the replies
    to give (one per attempt) before the address is accepted."""

    messages: list = field(default_factory=list)
    refuse: dict = field(default_factory=dict)
    logins: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self):
        with self.lock:
            self.messages.clear()
            self.refuse.clear()
            self.logins.clear()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            replies = self.refuse.get(address)
            if replies:
                return replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append(
                {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos), "content": envelope.original_content}
            )
        return "250 Message accepted for delivery"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
        with self.lock:
            self.logins.append((auth_data.login.decode(), ok))
        return AuthResult(success=ok)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def smtp_server():
    recorder = SmtpRecorder()
    controller = Controller(
        recorder, hostname="127.0.0.1", port=free_port(), authenticator=recorder.authenticate, auth_require_tls=False
    )
    controller.start()
    recorder.port = controller.port
    yield recorder
    controller.stop()


@pytest.fixture
def smtp(smtp_server, settings):
    """Django's SMTP backend pointed at the loopback server."""
    smtp_server.reset()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_server.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = "Chairside <chairside@clinic.example>"
    return smtp_server


@pytest.fixture(scope="session")
def twilio_server():
    running = serve_in_thread(port=0)
    yield running
    running.stop()


@pytest.fixture
def twilio(twilio_server, settings):
    """twilio_bridge.client.TwilioBackend pointed at the local Twilio."""
    twilio_server.app.reset()
    settings.SMS_BACKEND = "twilio_bridge.client.TwilioBackend"
    settings.TWILIO_API_URL = twilio_server.base_url
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    settings.TWILIO_FROM = "+15005550006"
    settings.TWILIO_STATUS_CALLBACK_URL = None  # derived from CHAIRSIDE_PUBLIC_URL
    return twilio_server.app


@pytest.fixture
def failures():
    """Notification ids announced as failed (signals.delivery_failed), in order."""
    announced = []

    def receiver(sender, notification_id, **kwargs):
        announced.append(notification_id)

    delivery_failed.connect(receiver, dispatch_uid="tests.failures")
    yield announced
    delivery_failed.disconnect(dispatch_uid="tests.failures")
