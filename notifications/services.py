"""Queue a message once; deliver it once."""

import logging
import smtplib
from dataclasses import dataclass

from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import Channel, Notification
from .sms import SmsError, get_backend

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Message:
    dedupe_key: str  # the same key is never delivered twice
    reference: str
    channel: Channel
    recipient: str
    template: str
    subject: str
    body: str
    html_body: str = ""


def queue(message: Message) -> Notification:
    """Record the message and send it after the surrounding transaction commits.

    Queuing the same dedupe key again returns the existing record and sends nothing.
    """
    from .tasks import send_notification

    try:
        with transaction.atomic():
            notification = Notification.objects.create(
                dedupe_key=message.dedupe_key,
                reference=message.reference,
                channel=message.channel,
                recipient=message.recipient,
                template=message.template,
                subject=message.subject,
                body=message.body,
                html_body=message.html_body,
            )
    except IntegrityError:
        return Notification.objects.get(dedupe_key=message.dedupe_key)
    send_notification.delay_on_commit(notification.pk)
    return notification


class TransientDeliveryError(Exception):
    pass


def deliver(notification_id: int) -> str:
    """Hand one queued notification to its provider. Returns what happened."""
    with transaction.atomic():
        notification = Notification.objects.select_for_update().filter(pk=notification_id).first()
        if notification is None or notification.status != Notification.Status.QUEUED:
            return "skipped"
        notification.attempts += 1
        notification.save(update_fields=["attempts"])
    try:
        provider_id = _send(notification)
    except SmsError as exc:
        if not exc.permanent and notification.attempts < MAX_ATTEMPTS:
            raise TransientDeliveryError(str(exc)) from exc
        return _fail(notification, str(exc))
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
        return _fail(notification, f"The mail server refused the message: {exc.__class__.__name__}")
    except (OSError, smtplib.SMTPException) as exc:
        if notification.attempts < MAX_ATTEMPTS:
            raise TransientDeliveryError(f"Mail server unavailable: {exc.__class__.__name__}") from exc
        return _fail(notification, f"Mail server unavailable after {notification.attempts} attempts")
    Notification.objects.filter(pk=notification.pk).update(
        status=Notification.Status.SENT, provider_id=provider_id, sent_at=timezone.now(), error=""
    )
    log.info("notification %s sent by %s (%s)", notification.pk, notification.channel, notification.template)
    return "sent"


def _send(notification: Notification) -> str:
    if notification.channel == Channel.EMAIL:
        email = EmailMultiAlternatives(notification.subject, notification.body, to=[notification.recipient])
        if notification.html_body:
            email.attach_alternative(notification.html_body, "text/html")
        email.send()
        return email.extra_headers.get("Message-ID", "") or f"email-{notification.pk}"
    return get_backend().send(notification.recipient, notification.body)


def _fail(notification: Notification, error: str) -> str:
    Notification.objects.filter(pk=notification.pk).update(status=Notification.Status.FAILED, error=error)
    log.warning("notification %s failed: %s", notification.pk, error)
    return "failed"
