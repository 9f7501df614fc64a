"""Delivery records: one row per message per channel, de-duplicated by key.

This app knows nothing of financing: it is handed a message (channel, recipient, subject,
bodies, a reference to show on screens) and delivers it once.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

# The recipient may be a patient's phone or email (the apply link): it is PHI, so it is
# encrypted at rest like every other PHI field (the one field type of the shared kit).
from core.fields import EncryptedTextField

e164 = RegexValidator(r"^\+[1-9]\d{6,14}$", "A phone number in E.164 form, e.g. +15555550100.")


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"


class ContactPreference(models.Model):
    """How a staff member wants to be told: email, SMS or both."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="contact")
    phone = models.CharField(max_length=20, blank=True, validators=[e164], help_text="E.164, e.g. +15555550100")
    by_email = models.BooleanField(default=True)
    by_sms = models.BooleanField(default=False)

    def __str__(self):
        return f"contact for {self.user}"

    def clean(self):
        if not (self.by_email or self.by_sms):
            raise ValidationError("Choose email, SMS or both: a confirmation must reach you somehow.")
        if self.by_sms and not self.phone:
            raise ValidationError({"phone": "A phone number is needed for SMS."})


class Notification(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        # A worker is handing it to the provider, or died doing so (outcome unknown).
        SENDING = "sending", "Handing to provider"
        SENT = "sent", "Handed to provider"
        DELIVERED = "delivered", "Delivered"
        UNDELIVERED = "undelivered", "Not delivered"
        FAILED = "failed", "Failed"

    dedupe_key = models.CharField(max_length=120, unique=True)
    reference = models.CharField(max_length=40, db_index=True, help_text="What this is about, e.g. a case reference.")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    recipient = EncryptedTextField()
    template = models.CharField(max_length=60)
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    html_body = models.TextField(blank=True)
    # Whether a permanent failure is announced (signals.delivery_failed). Alerts about
    # failed notifications are sent with escalate=False, so a failure never loops.
    escalate = models.BooleanField(default=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    provider_id = models.CharField(max_length=100, blank=True)
    provider_status = models.CharField(max_length=20, blank=True, help_text="The provider's own word, verbatim.")
    attempts = models.PositiveSmallIntegerField(default=0)
    # Hand-offs that ended without an answer (worker killed, timeout after the request
    # went out): each may have reached the provider, so only one more is allowed.
    unknown_outcomes = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    # The lease of a hand-off: the process handing it over (core.holders), renewing
    # sending_until while it works (core.heartbeat); "" once a heartbeat handed it back.
    sending_holder = models.CharField(max_length=100, blank=True)
    sending_until = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="notification_status_next"),
            # The lease heartbeat looks at the hand-offs under way, every few seconds.
            models.Index(fields=["sending_until"], condition=models.Q(sending_until__isnull=False), name="notification_sending"),
        ]

    def __str__(self):
        return f"{self.template} by {self.channel} for {self.reference}"

    @property
    def is_failure(self) -> bool:
        return self.status in (self.Status.FAILED, self.Status.UNDELIVERED)
