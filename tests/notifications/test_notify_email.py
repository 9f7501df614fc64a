"""Email through Django's SMTP backend, to a real SMTP server on loopback."""

import email
from email import policy

import pytest

from notifications import services
from notifications.models import Channel, Notification
from notifications.services import Message, queue

pytestmark = pytest.mark.django_db(transaction=True)


def email_message(key="case:1:case_approved:email:1", to="coord@example.com", **overrides) -> Message:
    values = dict(
        dedupe_key=key,
        reference="CS-TEST0001",
        channel=Channel.EMAIL,
        recipient=to,
        template="case_approved",
        subject="Approved: CS-TEST0001, 12 payments of $208.34",
        body="CS-TEST0001: Ava T. is approved by CareCredit. Book the treatment now.\nMonthly payment: $208.34 x 12",
        html_body="<p><strong>CS-TEST0001</strong>: Ava T. is approved.</p>",
    )
    values.update(overrides)
    return Message(**values)


def parsed(raw: bytes):
    return email.message_from_bytes(raw, policy=policy.default)


def test_email_arrives_over_smtp_with_recipient_subject_and_both_bodies(smtp, tasks):
    notification = queue(email_message())
    assert tasks.names() == ["notifications.send"]
    assert [r for _, r in tasks.drain()] == ["sent"]

    [received] = smtp.messages
    assert received["rcpt_tos"] == ["coord@example.com"]
    assert received["mail_from"] == "chairside@clinic.example"
    message = parsed(received["content"])
    assert message["Subject"] == "Approved: CS-TEST0001, 12 payments of $208.34"
    assert message["To"] == "coord@example.com"
    assert message["From"] == "Chairside <chairside@clinic.example>"
    assert message.get_body(("plain",)).get_content().strip().endswith("Monthly payment: $208.34 x 12")
    assert message.get_body(("html",)).get_content().strip() == "<p><strong>CS-TEST0001</strong>: Ava T. is approved.</p>"

    notification.refresh_from_db()
    assert notification.status == Notification.Status.SENT
    assert notification.attempts == 1 and notification.error == ""
    assert notification.provider_id == f"<notification-{notification.pk}@clinic.example>" == message["Message-ID"]
    assert notification.sent_at is not None


def test_smtp_credentials_from_settings_are_used(smtp, settings, tasks):
    settings.EMAIL_HOST_USER = "chairside"
    settings.EMAIL_HOST_PASSWORD = "smtp-secret"
    queue(email_message())
    assert [r for _, r in tasks.drain()] == ["sent"]
    assert smtp.logins == [("chairside", True)]
    assert len(smtp.messages) == 1


def test_wrong_smtp_password_is_retried_not_sent(smtp, settings, tasks):
    settings.EMAIL_HOST_USER = "chairside"
    settings.EMAIL_HOST_PASSWORD = "wrong"
    notification = queue(email_message())
    assert tasks.run_next() == "retry"
    notification.refresh_from_db()
    assert notification.status == Notification.Status.QUEUED
    # smtplib tries the next mechanism after a refusal, which this server answers by hanging
    # up: either way the login failed before anything was handed over.
    assert notification.error.startswith("Mail server unavailable (SMTP")
    assert smtp.logins[0] == ("chairside", False)
    assert smtp.messages == []


def test_a_refused_address_fails_at_once_without_retry(smtp, tasks, failures):
    smtp.refuse["nobody@example.com"] = ["550 5.1.1 No such user here"]
    notification = queue(email_message(to="nobody@example.com"))
    assert tasks.run_next() == "failed"
    assert tasks.queue == []  # no retry
    notification.refresh_from_db()
    assert notification.status == Notification.Status.FAILED
    assert notification.error == "The mail server refused the recipient address (SMTP 550)"
    assert notification.attempts == 1 and notification.sent_at is None
    assert smtp.messages == []
    assert failures == [notification.pk]


def test_a_temporary_refusal_is_retried_with_backoff_then_delivered_once(smtp, tasks, settings, failures):
    settings.RETRY_BASE_SECONDS = 2.0
    smtp.refuse["coord@example.com"] = ["451 4.7.1 Greylisted, try again later"]
    notification = queue(email_message())
    assert tasks.run_next() == "retry"
    [retry] = tasks.queue
    assert retry.name == "notifications.send" and retry.args == [notification.pk]
    assert 1.0 <= retry.countdown <= 2.0  # first backoff: between half the base and the base
    notification.refresh_from_db()
    assert notification.status == Notification.Status.QUEUED
    assert notification.error == "The mail server refused the recipient address (SMTP 451)"
    assert notification.next_attempt_at is not None

    assert [r for _, r in tasks.drain()] == ["sent"]
    notification.refresh_from_db()
    assert notification.status == Notification.Status.SENT and notification.attempts == 2
    assert len(smtp.messages) == 1
    assert failures == []


def test_mail_server_down_is_retried_then_fails_with_a_reason(smtp, settings, tasks, failures):
    from tests.notifications.conftest import free_port

    settings.EMAIL_PORT = free_port()  # nothing listens there
    notification = queue(email_message())
    results = [r for _, r in tasks.drain()]
    assert results == ["retry"] * (services.MAX_ATTEMPTS - 1) + ["failed"]
    notification.refresh_from_db()
    assert notification.status == Notification.Status.FAILED
    assert notification.attempts == services.MAX_ATTEMPTS
    assert notification.error == f"Mail server unavailable (ConnectionRefusedError). Gave up after {services.MAX_ATTEMPTS} attempts."
    assert failures == [notification.pk]


def test_the_same_message_queued_twice_is_one_record_and_one_email(smtp, tasks):
    first = queue(email_message())
    second = queue(email_message())
    assert first.pk == second.pk
    assert tasks.names() == ["notifications.send"]
    tasks.drain()
    assert services.deliver(first.pk) == "skipped"  # a redelivered task
    assert len(smtp.messages) == 1
    assert Notification.objects.count() == 1


def test_a_configuration_error_is_retried_and_ends_as_a_failure_with_its_reason(smtp, settings, tasks, failures):
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = True  # Django refuses both
    notification = queue(email_message())
    assert [r for _, r in tasks.drain()] == ["retry"] * (services.MAX_ATTEMPTS - 1) + ["failed"]
    notification.refresh_from_db()
    assert notification.status == Notification.Status.FAILED
    assert notification.error.startswith("Not configured: EMAIL_USE_TLS/EMAIL_USE_SSL are mutually exclusive")
    assert smtp.messages == []
    assert failures == [notification.pk]
