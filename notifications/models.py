"""Delivery records: one row per message per channel, de-duplicated by key.

This app knows nothing of financing: it is handed a message (channel, recipient, subject,
bodies, a reference to show on screens) and delivers it once.
"""

from django.conf import settings
from django.db import models


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"


class ContactPreference(models.Model):
    """How a staff member wants to be told: email, SMS or both."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="contact")
    phone = models.CharField(max_length=20, blank=True, help_text="E.164, e.g. +15555550100")
    by_email = models.BooleanField(default=True)
    by_sms = models.BooleanField(default=False)

    def __str__(self):
        return f"contact for {self.user}"


class Notification(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Handed to provider"
        FAILED = "failed", "Failed"

    dedupe_key = models.CharField(max_length=120, unique=True)
    reference = models.CharField(max_length=40, db_index=True, help_text="What this is about, e.g. a case reference.")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    recipient = models.CharField(max_length=254)
    template = models.CharField(max_length=60)
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    html_body = models.TextField(blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    provider_id = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.template} by {self.channel} for {self.reference}"
