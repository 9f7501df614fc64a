"""Twilio Programmable Messaging over its REST API: one POST to the Messages resource.

The partner kit sends it and says what a transport failure means (nothing sent, or sent
and unanswered); Twilio's statuses are read here, because a text message differs from a
partner write in one way: it cannot be looked up before sending again. So a request that
went out without an answer is reported as an unknown outcome (the delivery record allows
one more send, never two), not as a write to look up.

429 and 5xx are transient; any other 4xx is permanent (a bad number will not get better).
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from financing.ports import PermanentPartnerError, TransientPartnerError
from notifications.sms import SmsError, describe_twilio_error
from partner_http import Partner, PartnerConnection, nothing_was_sent

TWILIO = Partner("Twilio")


class TwilioBackend:
    def __init__(self):
        self.account_sid = settings.TWILIO_ACCOUNT_SID
        self.auth_token = settings.TWILIO_AUTH_TOKEN
        self.sender = settings.TWILIO_FROM
        if not (self.account_sid and self.auth_token and self.sender):
            raise ImproperlyConfigured("TwilioBackend needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM.")
        self.connection = PartnerConnection(
            TWILIO,
            settings.TWILIO_API_URL,
            connect_timeout=settings.PARTNER_CONNECT_TIMEOUT,
            read_timeout=settings.PARTNER_READ_TIMEOUT,
        )

    def send(self, to: str, body: str, *, callback_url: str = "") -> str:
        data = {"To": to, "Body": body}
        # A Messaging Service (MG…) picks the sender number itself.
        data["MessagingServiceSid" if self.sender.startswith("MG") else "From"] = self.sender
        if callback_url:
            data["StatusCallback"] = callback_url
        path = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        try:
            # is_write=False: the kit's "look it up before writing again" does not apply.
            response = self.connection.send(
                "POST", path, what="the text message", is_write=False, data=data, auth=(self.account_sid, self.auth_token)
            )
        except PermanentPartnerError as exc:  # a base URL that can never work
            raise SmsError(f"{exc} (TWILIO_API_URL)", permanent=True) from exc
        except TransientPartnerError as exc:
            sent = exc.__cause__ is None or not nothing_was_sent(exc.__cause__)
            raise SmsError(str(exc), permanent=False, outcome_unknown=sent) from exc
        if response.status_code in (200, 201):
            try:
                return response.json()["sid"]
            except (ValueError, KeyError, TypeError) as exc:
                raise SmsError("Twilio accepted the message but its answer had no message id", permanent=False, outcome_unknown=True) from exc
        try:
            code = response.json().get("code")
        except (ValueError, AttributeError):
            code = None
        if response.status_code == 429 or response.status_code >= 500:
            raise SmsError(f"Twilio is unavailable (HTTP {response.status_code})", permanent=False)
        raise SmsError(f"Twilio refused the message ({describe_twilio_error(code)})", permanent=True)
