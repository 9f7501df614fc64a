"""SMS through twilio_bridge.client.TwilioBackend against a local Twilio-compatible server,
and Twilio's signed delivery status callbacks."""

import time

import pytest
from django.test import Client

from notifications import services
from notifications.models import Channel, Notification
from notifications.services import Message, queue
from notifications.sms import twilio_signature
from sandboxes.twilio import ACCOUNT_SID, AUTH_TOKEN

pytestmark = pytest.mark.django_db(transaction=True)

CALLBACK_PATH = "/api/v1/webhooks/twilio/status/"


def sms_message(key="case:1:case_approved:sms:1", to="+15555550100", **overrides) -> Message:
    values = dict(
        dedupe_key=key,
        reference="CS-TEST0001",
        channel=Channel.SMS,
        recipient=to,
        template="case_approved",
        subject="",
        body="Chairside CS-TEST0001: Ava T. APPROVED. Down $0.00, $208.34/mo x 12. Book now.",
    )
    values.update(overrides)
    return Message(**values)


def wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_sms_goes_through_the_twilio_messages_api(twilio, tasks):
    notification = queue(sms_message())
    assert [r for _, r in tasks.drain()] == ["sent"]

    [stored] = twilio.messages
    assert stored["to"] == "+15555550100"
    assert stored["from"] == "+15005550006"
    assert stored["body"] == "Chairside CS-TEST0001: Ava T. APPROVED. Down $0.00, $208.34/mo x 12. Book now."
    assert stored["status_callback"] == f"http://127.0.0.1:9{CALLBACK_PATH}?n={notification.pk}"
    notification.refresh_from_db()
    assert notification.status == Notification.Status.SENT
    assert notification.provider_id == stored["sid"] and notification.provider_id.startswith("SM")
    assert notification.attempts == 1


def test_a_messaging_service_sender_is_sent_as_such(twilio, settings, tasks):
    settings.TWILIO_FROM = "MG" + "0" * 32
    queue(sms_message())
    tasks.drain()
    [stored] = twilio.messages
    assert stored["messaging_service_sid"] == "MG" + "0" * 32 and stored["from"] is None


@pytest.mark.parametrize(
    "number, error",
    [
        ("+15005550001", "Twilio refused the message (error 21211: the phone number is not a valid phone number)"),
        ("+15005550009", "Twilio refused the message (error 21614: the phone number is not a mobile number)"),
        ("+15005550004", "Twilio refused the message (error 21610: the recipient has replied STOP and unsubscribed)"),
    ],
)
def test_a_bad_number_fails_at_once_and_the_error_does_not_quote_it(twilio, tasks, failures, number, error):
    notification = queue(sms_message(to=number))
    assert tasks.run_next() == "failed"
    assert tasks.queue == []
    notification.refresh_from_db()
    assert notification.status == Notification.Status.FAILED
    assert notification.error == error
    assert number not in notification.error and "5005550" not in notification.error
    assert twilio.messages == []
    assert failures == [notification.pk]


def test_wrong_credentials_are_a_permanent_failure(twilio, settings, tasks):
    settings.TWILIO_AUTH_TOKEN = "not-the-token"
    notification = queue(sms_message())
    assert tasks.run_next() == "failed"
    notification.refresh_from_db()
    assert notification.error == (
        "Twilio refused the message (error 20003: Twilio refused the credentials "
        "(check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN))"
    )
    assert twilio.messages == []


def test_twilio_5xx_and_429_are_retried_then_sent_once(twilio, tasks, failures):
    twilio.fail_next(503)
    twilio.fail_next(429)
    notification = queue(sms_message())
    assert tasks.run_next() == "retry"
    notification.refresh_from_db()
    assert notification.error == "Twilio is unavailable (HTTP 503)"
    assert tasks.run_next() == "retry"
    notification.refresh_from_db()
    assert notification.error == "Twilio is unavailable (HTTP 429)"
    assert [r for _, r in tasks.drain()] == ["sent"]
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.error) == (Notification.Status.SENT, 3, "")
    assert len(twilio.messages) == 1
    assert failures == []


def test_twilio_unreachable_is_transient(twilio, settings, tasks):
    from tests.notifications.conftest import free_port

    settings.TWILIO_API_URL = f"http://127.0.0.1:{free_port()}"
    notification = queue(sms_message())
    assert tasks.run_next() == "retry"
    notification.refresh_from_db()
    assert notification.error == "Twilio could not be reached (connection refused or unknown host)"
    assert notification.unknown_outcomes == 0  # nothing went out


def test_a_timeout_after_twilio_accepted_sends_at_most_one_duplicate(twilio, settings, tasks, failures):
    settings.PARTNER_READ_TIMEOUT = 0.3
    twilio.delay_after_accept(1.0)
    notification = queue(sms_message())
    assert tasks.run_next() == "retry"
    notification.refresh_from_db()
    assert (notification.status, notification.unknown_outcomes) == (Notification.Status.QUEUED, 1)
    assert notification.error == "Twilio did not answer within 0.3 s (read timeout)"
    assert len(twilio.messages) == 1  # Twilio has it, we could not know

    # The one allowed resend also times out: no third message, a failure with its reason.
    assert tasks.run_next() == "failed"
    notification.refresh_from_db()
    assert notification.status == Notification.Status.FAILED and notification.unknown_outcomes == 2
    assert notification.error.startswith("Twilio did not answer within 0.3 s (read timeout). Not sent again:")
    assert len(twilio.messages) == 2
    assert tasks.queue == []
    assert failures == [notification.pk]


def signed_post(client, url, params, token=AUTH_TOKEN):
    signature = twilio_signature(url, {k: [v] for k, v in params.items()}, token)
    path = url.removeprefix("http://testserver")
    return client.post(path, params, HTTP_X_TWILIO_SIGNATURE=signature)


def callback_params(notification, status, **extra):
    return {
        "AccountSid": ACCOUNT_SID,
        "MessageSid": notification.provider_id or "SMunrecorded",
        "MessageStatus": status,
        "To": "+15555550100",
        "From": "+15005550006",
        "ApiVersion": "2010-04-01",
        **extra,
    }


def test_status_callbacks_from_twilio_mark_the_record_delivered(twilio, live_server, settings, tasks):
    settings.CHAIRSIDE_PUBLIC_URL = live_server.url
    notification = queue(sms_message())
    tasks.drain()
    assert wait_for(lambda: len(twilio.callbacks) == 2)
    assert [(c["status"], c["answer"]) for c in twilio.callbacks] == [("sent", 204), ("delivered", 204)]
    notification.refresh_from_db()
    assert notification.status == Notification.Status.DELIVERED
    assert notification.provider_status == "delivered"
    assert notification.delivered_at is not None and notification.delivered_at >= notification.sent_at


def test_an_undelivered_callback_fails_the_record_and_is_announced_once(twilio, live_server, settings, tasks, failures):
    settings.CHAIRSIDE_PUBLIC_URL = live_server.url
    notification = queue(sms_message(to="+15005550003"))
    tasks.drain()
    assert wait_for(lambda: len(twilio.callbacks) == 2)
    notification.refresh_from_db()
    assert notification.status == Notification.Status.UNDELIVERED
    assert notification.error == "Twilio reports the message undelivered (error 30003: the handset is unreachable (off or out of coverage))"
    assert failures == [notification.pk]

    # Twilio repeats itself: nothing moves, nobody is told twice.
    url = f"http://testserver{CALLBACK_PATH}?n={notification.pk}"
    response = signed_post(Client(), url, callback_params(notification, "undelivered", ErrorCode="30003"))
    assert response.status_code == 204
    assert failures == [notification.pk]


def test_callbacks_never_move_a_record_back(twilio, settings, tasks):
    settings.CHAIRSIDE_PUBLIC_URL = "http://testserver"
    notification = queue(sms_message())
    tasks.drain()
    notification.refresh_from_db()
    url = f"http://testserver{CALLBACK_PATH}?n={notification.pk}"
    client = Client()
    assert signed_post(client, url, callback_params(notification, "delivered")).status_code == 204
    assert signed_post(client, url, callback_params(notification, "sent")).status_code == 204
    notification.refresh_from_db()
    assert notification.status == Notification.Status.DELIVERED
    assert notification.provider_status == "sent"  # the provider's last word is kept verbatim


def test_a_callback_that_beats_the_record_still_lands(settings, tasks):
    """Twilio can call back before deliver() has recorded the message id."""
    settings.CHAIRSIDE_PUBLIC_URL = "http://testserver"
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    notification = queue(sms_message())
    Notification.objects.filter(pk=notification.pk).update(status=Notification.Status.SENDING)
    url = f"http://testserver{CALLBACK_PATH}?n={notification.pk}"
    response = signed_post(Client(), url, callback_params(notification, "sent", MessageSid="SMearly"))
    assert response.status_code == 204
    notification.refresh_from_db()
    assert (notification.status, notification.provider_id) == (Notification.Status.SENT, "SMearly")
    assert notification.sent_at is not None


@pytest.mark.parametrize("signature", ["", "bm90IGEgc2lnbmF0dXJl"])
def test_a_callback_without_a_valid_signature_is_refused_and_changes_nothing(settings, tasks, signature):
    settings.CHAIRSIDE_PUBLIC_URL = "http://testserver"
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    notification = queue(sms_message())
    response = Client().post(
        f"{CALLBACK_PATH}?n={notification.pk}",
        callback_params(notification, "delivered"),
        HTTP_X_TWILIO_SIGNATURE=signature,
    )
    assert response.status_code == 403
    assert "+1555" not in response.content.decode()
    notification.refresh_from_db()
    assert notification.status == Notification.Status.QUEUED and notification.provider_status == ""


def test_a_callback_signed_with_another_token_or_for_another_url_is_refused(settings, tasks):
    settings.CHAIRSIDE_PUBLIC_URL = "http://testserver"
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    notification = queue(sms_message())
    client = Client()
    url = f"http://testserver{CALLBACK_PATH}?n={notification.pk}"
    assert signed_post(client, url, callback_params(notification, "delivered"), token="other-token").status_code == 403
    # A signature for another record's URL does not cover this one.
    params = callback_params(notification, "delivered")
    forged = twilio_signature(f"http://testserver{CALLBACK_PATH}?n=999", {k: [v] for k, v in params.items()}, AUTH_TOKEN)
    response = client.post(f"{CALLBACK_PATH}?n={notification.pk}", params, HTTP_X_TWILIO_SIGNATURE=forged)
    assert response.status_code == 403
    notification.refresh_from_db()
    assert notification.status == Notification.Status.QUEUED


def test_the_signature_matches_twilios_documented_example():
    # Twilio's published vector (its helper libraries' RequestValidator tests): token 12345.
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": ["CA1234567890ABCDE"],
        "Caller": ["+14158675309"],
        "Digits": ["1234"],
        "From": ["+14158675309"],
        "To": ["+18005551212"],
    }
    assert twilio_signature(url, params, "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert twilio_signature(url + "&x=1", params, "12345") != "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_status_callback_url_can_be_configured_or_turned_off(settings, tasks):
    notification = queue(sms_message())
    settings.TWILIO_STATUS_CALLBACK_URL = "https://chairside.example.com/api/v1/webhooks/twilio/status/"
    assert services.status_callback_url(notification) == f"https://chairside.example.com/api/v1/webhooks/twilio/status/?n={notification.pk}"
    settings.TWILIO_STATUS_CALLBACK_URL = ""
    assert services.status_callback_url(notification) == ""
