"""Queue a message once; hand it to its provider once.

A delivery record moves  queued → sending → sent → delivered | undelivered, or → failed.

Exactly once, and the one window where it is "at most twice": `deliver` commits
`sending` (with a lease) *before* it calls the provider and records `sent` after. A crash
between the provider accepting the message and that record leaves the row `sending`; once
the lease is handed back (the holder is gone: core.heartbeat), the next delivery cannot
know whether the provider has it, so it sends once more and counts an unknown outcome. A second unknown outcome is not followed by
a third send: the record fails with a reason, and that failure is escalated like any other.
So a crash costs at most one duplicate, never a lost message without a trace.

Provider errors are classified by the channel: permanent (bad number, refused address)
fails at once; transient (429, 5xx, connection refused, 4xx from a mail server) is
retried with exponential backoff and jitter up to MAX_ATTEMPTS, then fails.
"""

import logging
import smtplib
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parseaddr

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from config.broker import sweep_cutoffs
from core import heartbeat, holders, leases, sweeps
from core.backoff import backoff_seconds
from core.faults import fault_point
from core.queueing import enqueue_on_commit

from .models import Channel, Notification
from .signals import delivery_failed
from .sms import SmsError, describe_twilio_error, get_backend

log = logging.getLogger(__name__)

SEND_TASK = "notifications.send"  # queued by name: this module never imports its tasks
SEND_LEASE = "notification"  # the heartbeat's name for a hand-off's lease (apps.py)
MAX_ATTEMPTS = 6  # about a minute and a half of backoff with the default 2 s base
Status = Notification.Status
# How far each status is along the way: a late or repeated callback never moves a record back.
RANK = {
    Status.QUEUED: 0,
    Status.SENDING: 1,
    Status.SENT: 2,
    Status.DELIVERED: 3,
    Status.UNDELIVERED: 3,
    Status.FAILED: 3,
}
# Twilio's MessageStatus values → ours. Anything Twilio holds counts as handed over.
PROVIDER_STATUSES = {
    "accepted": Status.SENT,
    "scheduled": Status.SENT,
    "queued": Status.SENT,
    "sending": Status.SENT,
    "sent": Status.SENT,
    "delivered": Status.DELIVERED,
    "read": Status.DELIVERED,
    "undelivered": Status.UNDELIVERED,
    "failed": Status.FAILED,
    "canceled": Status.FAILED,
}


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
    escalate: bool = True  # announce a permanent failure (False for alerts about failures)


def queue(message: Message) -> Notification:
    """Record the message and send it after the surrounding transaction commits.

    Queuing the same dedupe key again returns the existing record and sends nothing. A
    broker that is down never fails the caller (a webhook, an API request): the record is
    committed as queued and the sweeper (`stuck`) sends it later.
    """
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
                escalate=message.escalate,
            )
    except IntegrityError:
        return Notification.objects.get(dedupe_key=message.dedupe_key)
    _enqueue(notification.pk)
    return notification


def resend(notification_id: int) -> Notification | None:
    """A fresh copy of a finished notification (same recipient and body), queued now.

    None while the original is still on its way: resending then would be a duplicate.
    """
    original = Notification.objects.get(pk=notification_id)
    if original.status in (Status.QUEUED, Status.SENDING):
        return None
    base_key = original.dedupe_key.split(":resend:")[0]
    copies = Notification.objects.filter(dedupe_key__startswith=base_key + ":resend:").count()
    return queue(
        Message(
            dedupe_key=f"{base_key}:resend:{copies + 1}",
            reference=original.reference,
            channel=original.channel,
            recipient=original.recipient,
            template=original.template,
            subject=original.subject,
            body=original.body,
            html_body=original.html_body,
            escalate=original.escalate,
        )
    )


class DeliveryError(Exception):
    def __init__(self, message: str, *, permanent: bool = False, outcome_unknown: bool = False):
        super().__init__(message)
        self.permanent = permanent
        self.outcome_unknown = outcome_unknown


def deliver(notification_id: int) -> str:
    """Hand one notification to its provider. Safe to call any number of times.

    Returns "sent", "retry", "failed", "busy" (another worker holds it) or "skipped".
    """
    claimed = _claim(notification_id)
    if isinstance(claimed, str):
        return claimed
    notification = claimed
    try:
        provider_id = _send(notification)
    except DeliveryError as exc:
        return _after_error(notification, exc)
    fault_point("after_provider_accepted")
    now = timezone.now()
    # Conditional on `sending`: a status callback may already have said more (delivered).
    recorded = Notification.objects.filter(pk=notification.pk, status=Status.SENDING).update(
        status=Status.SENT, provider_id=provider_id, sent_at=now, sending_until=None, error=""
    )
    if not recorded:
        Notification.objects.filter(pk=notification.pk, provider_id="").update(provider_id=provider_id)
        Notification.objects.filter(pk=notification.pk, sent_at__isnull=True).update(sent_at=now)
    log.info("notification %s sent by %s (%s)", notification.pk, notification.channel, notification.template)
    return "sent"


def _claim(notification_id: int) -> Notification | str:
    now = timezone.now()
    with transaction.atomic():
        notification = Notification.objects.select_for_update().filter(pk=notification_id).first()
        if notification is None or notification.status not in (Status.QUEUED, Status.SENDING):
            return "skipped"
        if notification.status == Status.SENDING:
            if notification.sending_until and notification.sending_until > now:
                _enqueue(notification.pk, countdown=(notification.sending_until - now).total_seconds() + 1)
                return "busy"
            # The last hand-off never reported back: the provider may hold the message.
            notification.unknown_outcomes += 1
            if notification.unknown_outcomes > 1:
                return _fail(
                    notification,
                    "Not sent again: two hand-offs to the provider ended without an answer, so the "
                    "message may already have arrived (once or twice). Check with the recipient; "
                    "resend from the case if it did not.",
                    unknown_outcomes=notification.unknown_outcomes,
                )
        notification.status = Status.SENDING
        notification.attempts += 1
        notification.sending_holder = holders.me()
        notification.sending_until = leases.until(leases.lease_seconds(), now)
        notification.next_attempt_at = None
        notification.save(update_fields=["status", "attempts", "unknown_outcomes", "sending_holder", "sending_until", "next_attempt_at"])
    heartbeat.hold(SEND_LEASE, notification.pk)
    return notification


def _after_error(notification: Notification, exc: DeliveryError) -> str:
    error = str(exc)
    if exc.permanent:
        return _fail(notification, error)
    unknown = notification.unknown_outcomes + (1 if exc.outcome_unknown else 0)
    if unknown > 1:
        return _fail(
            notification,
            f"{error}. Not sent again: this was the second hand-off without an answer, so the message "
            "may already have arrived. Check with the recipient; resend from the case if it did not.",
            unknown_outcomes=unknown,
        )
    if notification.attempts >= MAX_ATTEMPTS:
        return _fail(notification, f"{error}. Gave up after {notification.attempts} attempts.", unknown_outcomes=unknown)
    delay = backoff_seconds(notification.attempts)
    with transaction.atomic():
        moved = Notification.objects.filter(pk=notification.pk, status=Status.SENDING).update(
            status=Status.QUEUED,
            sending_until=None,
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            unknown_outcomes=unknown,
            error=error,
        )
        if moved:
            _enqueue(notification.pk, countdown=delay)
    log.warning(
        "notification %s: attempt %s failed (%s), retrying in %.1fs",
        notification.pk, notification.attempts, error, delay,
    )
    return "retry"


def _fail(notification: Notification, error: str, **fields) -> str:
    with transaction.atomic():
        failed = Notification.objects.filter(pk=notification.pk, status__in=[Status.QUEUED, Status.SENDING]).update(
            status=Status.FAILED, error=error, sending_until=None, next_attempt_at=None, **fields
        )
        if failed and notification.escalate:
            _announce_failure(notification.pk)
    log.warning("notification %s failed: %s", notification.pk, error)
    return "failed"


def _announce_failure(notification_id: int):
    def announce():
        for receiver, result in delivery_failed.send_robust(sender=Notification, notification_id=notification_id):
            if isinstance(result, Exception):
                # The failure is on the record (and the case page) either way.
                log.error("notification %s: failure alert not queued (%s)", notification_id, result.__class__.__name__)

    transaction.on_commit(announce)


def _enqueue(notification_id: int, countdown: float | None = None):
    # If the broker is down, the sweeper (`stuck`) re-drives the record.
    enqueue_on_commit(SEND_TASK, notification_id, countdown=countdown)


def redrive(notification_id: int):
    """Queue a delivery again (the lease heartbeat, once its holder is gone)."""
    _enqueue(notification_id)


# --- the channels ---------------------------------------------------------------------------


def _configured(factory):
    """The channel's backend; a configuration error is retried (someone may be fixing it)
    and ends as a failure with the reason, never as a stuck record."""
    try:
        return factory()
    except (ImproperlyConfigured, ImportError, ValueError) as exc:
        raise DeliveryError(f"Not configured: {exc}") from exc


def _send(notification: Notification) -> str:
    if notification.channel == Channel.EMAIL:
        return _send_email(notification)
    backend = _configured(get_backend)
    try:
        return backend.send(notification.recipient, notification.body, callback_url=status_callback_url(notification))
    except SmsError as exc:
        raise DeliveryError(str(exc), permanent=exc.permanent, outcome_unknown=exc.outcome_unknown) from exc


def _message_id(notification: Notification) -> str:
    # The same Message-ID on a duplicate lets mail clients fold it into the original.
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "chairside.invalid"
    return f"<notification-{notification.pk}@{domain}>"


def _send_email(notification: Notification) -> str:
    message_id = _message_id(notification)
    email = EmailMultiAlternatives(
        notification.subject, notification.body, to=[notification.recipient], headers={"Message-ID": message_id}
    )
    if notification.html_body:
        email.attach_alternative(notification.html_body, "text/html")
    connection = _configured(get_connection)
    try:
        connection.open()
    except (OSError, smtplib.SMTPException) as exc:
        # Nothing was handed over: connecting or logging in failed.
        raise DeliveryError(f"Mail server unavailable ({exc.__class__.__name__})") from exc
    try:
        connection.send_messages([email])
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        permanent = all(code >= 500 for code in codes)
        raise DeliveryError(f"The mail server refused the recipient address (SMTP {', '.join(map(str, codes))})", permanent=permanent) from exc
    except smtplib.SMTPResponseException as exc:  # sender refused, data refused
        raise DeliveryError(f"The mail server refused the message (SMTP {exc.smtp_code})", permanent=exc.smtp_code >= 500) from exc
    except (smtplib.SMTPException, OSError) as exc:
        # Disconnected or timed out mid-conversation: it may have accepted the message.
        raise DeliveryError(f"The mail server stopped answering ({exc.__class__.__name__})", outcome_unknown=True) from exc
    finally:
        try:
            connection.close()
        except (OSError, smtplib.SMTPException):
            pass
    return message_id


def status_callback_url_base() -> str:
    """TWILIO_STATUS_CALLBACK_URL, by default this deployment's own receiver; "" turns
    delivery reports off."""
    base = settings.TWILIO_STATUS_CALLBACK_URL
    if base is None:
        base = settings.CHAIRSIDE_PUBLIC_URL + reverse("twilio-status")
    return base


def status_callback_url(notification: Notification) -> str:
    """Where Twilio reports delivery; the record's id rides along, since a callback can
    arrive before the provider's message id is recorded."""
    base = status_callback_url_base()
    return f"{base}?n={notification.pk}" if base else ""


def record_provider_status(*, notification_id: int | None, provider_id: str, provider_status: str, error_code: str = "") -> str:
    """A verified delivery report: move the record forward (never back). Idempotent."""
    with transaction.atomic():
        rows = Notification.objects.select_for_update().filter(channel=Channel.SMS)
        if notification_id is not None:
            notification = rows.filter(pk=notification_id).first()
        else:
            notification = rows.filter(provider_id=provider_id).first() if provider_id else None
        if notification is None:
            return "unknown"
        new = PROVIDER_STATUSES.get(provider_status)
        fields = {"provider_status": provider_status[:20]}
        if new is None or RANK[new] <= RANK[notification.status]:
            Notification.objects.filter(pk=notification.pk).update(**fields)
            return "ignored"
        now = timezone.now()
        fields.update(status=new, sending_until=None, next_attempt_at=None)
        if not notification.provider_id:
            fields["provider_id"] = provider_id
        if notification.sent_at is None:
            fields["sent_at"] = now
        if new == Status.DELIVERED:
            fields["delivered_at"] = now
        if new in (Status.UNDELIVERED, Status.FAILED):
            fields["error"] = f"Twilio reports the message {provider_status} ({describe_twilio_error(error_code)})"
        Notification.objects.filter(pk=notification.pk).update(**fields)
        if new in (Status.UNDELIVERED, Status.FAILED) and notification.escalate:
            _announce_failure(notification.pk)
    log.info("notification %s: provider reports %s", notification.pk, provider_status)
    return new.value


def stuck(now=None, limit: int = 500) -> list[int]:
    """Notifications nobody is working on: their task was lost, or their worker died.

    A queued one is left alone while the notify queue still holds messages (its message
    is most likely waiting there), unless it is older than SWEEP_BUSY_QUEUE_SECONDS: see
    `config.broker.sweep_cutoffs`.
    """
    now = now or timezone.now()
    [grace] = sweep_cutoffs([SEND_TASK], now=now, grace_seconds=30).values()
    unattended = Q(status=Status.QUEUED) & sweeps.overdue(grace, waiting_since="created_at")
    # A `sending` record whose lease ran out: its worker died mid-hand-off.
    unattended |= Q(status=Status.SENDING, sending_until__lt=now)
    return sweeps.oldest_ids(Notification.objects.filter(unattended), limit)
