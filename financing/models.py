"""The financing domain: where a financed case lives, and what it wrote where.

State lives here; every change of it goes through `financing.services`.
"""

import secrets
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from .fields import EncryptedTextField
from .ports import Interval, LedgerNoteType

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

PROMOTION_CHOICES = [
    ("deferred_6", "6 months deferred interest"),
    ("deferred_12", "12 months deferred interest"),
    ("deferred_18", "18 months deferred interest"),
    ("deferred_24", "24 months deferred interest"),
    ("reduced_apr_24", "24 months reduced APR, fixed payments"),
    ("reduced_apr_36", "36 months reduced APR, fixed payments"),
    ("reduced_apr_48", "48 months reduced APR, fixed payments"),
    ("reduced_apr_60", "60 months reduced APR, fixed payments"),
]
PROMOTION_LABELS = dict(PROMOTION_CHOICES)


def new_reference() -> str:
    return "CS-" + "".join(secrets.choice(CROCKFORD) for _ in range(8))


class ArrangementTemplate(models.Model):
    """The billing team's standard, set once and inherited by every location using it."""

    name = models.CharField(max_length=80, unique=True)
    arrangement_type = models.CharField(
        max_length=32, choices=[("payment_agreement", "Dentrix payment agreement")], default="payment_agreement"
    )
    # CareCredit promotions bill monthly; the other intervals exist for future lenders.
    frequency = models.CharField(max_length=16, choices=[(i.value, i.value) for i in Interval], default=Interval.MONTHLY)
    first_payment_offset_days = models.PositiveSmallIntegerField(
        default=30, help_text="First payment due this many days after the decision (ignored when a day of month is set)."
    )
    first_payment_day_of_month = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="1–28: first payment on the next such day after the decision."
    )
    default_promotion = models.CharField(max_length=20, choices=PROMOTION_CHOICES, default="deferred_12")
    note_type = models.CharField(
        max_length=20, choices=[(t.value, t.value.replace("_", " ")) for t in LedgerNoteType], default=LedgerNoteType.ACCOUNT
    )
    note_template = models.TextField(
        default=(
            "CareCredit {promotion} approved {approved_amount}. Financed {financed_amount}: "
            "{number_of_payments} payments of {recurring_amount}, first due {first_payment_date}. "
            "Down payment {down_payment}. Application {application_id}. {marker}"
        ),
        help_text="Placeholders: {promotion} {approved_amount} {financed_amount} {number_of_payments} "
        "{recurring_amount} {final_payment} {first_payment_date} {down_payment} {apr} {application_id} "
        "{reference} {marker}. The marker is always included.",
    )
    notify_email = models.BooleanField(default=True)
    notify_sms = models.BooleanField(default=True)

    history = HistoricalRecords()

    def __str__(self):
        return self.name


class Location(models.Model):
    class Mode(models.TextChoices):
        LIVE = "live", "Live"
        SHADOW = "shadow", "Shadow (compute, never write to the PMS)"
        PAUSED = "paused", "Paused"

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=120)
    timezone = models.CharField(max_length=64, default="America/New_York")
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.LIVE)
    template = models.ForeignKey(ArrangementTemplate, on_delete=models.PROTECT, related_name="locations")

    pms_kind = models.CharField(max_length=20, choices=[("dentrix", "Dentrix connector")], default="dentrix")
    pms_base_url = models.URLField()
    pms_api_key = EncryptedTextField()

    lender_kind = models.CharField(max_length=20, choices=[("carecredit", "CareCredit")], default="carecredit")
    lender_base_url = models.URLField()
    lender_client_id = models.CharField(max_length=120)
    lender_client_secret = EncryptedTextField()
    merchant_number = models.CharField(max_length=32)

    history = HistoricalRecords(excluded_fields=["pms_api_key", "lender_client_secret"])

    def __str__(self):
        return f"{self.name} ({self.code})"


class Membership(models.Model):
    class Role(models.TextChoices):
        COORDINATOR = "coordinator", "Treatment coordinator"
        BILLING = "billing", "Billing"
        ADMIN = "admin", "Location admin"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "location"], name="one_membership_per_location")]

    def __str__(self):
        return f"{self.user} @ {self.location.code} ({self.role})"


class CaseState(models.TextChoices):
    CAPTURED = "captured", "Captured"
    APPLICATION_SENT = "application_sent", "Application sent"
    AWAITING_DECISION = "awaiting_decision", "Awaiting decision"
    APPROVED = "approved", "Approved"
    ARRANGEMENT_WRITTEN = "arrangement_written", "Arrangement written"
    COMPLETED = "completed", "Completed"
    DECLINED = "declined", "Declined"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"
    NEEDS_ATTENTION = "needs_attention", "Needs attention"


TERMINAL_STATES = frozenset({CaseState.COMPLETED, CaseState.DECLINED, CaseState.EXPIRED, CaseState.CANCELLED})
WAITING_FOR_LENDER = frozenset({CaseState.APPLICATION_SENT, CaseState.AWAITING_DECISION})


class FinancedCase(models.Model):
    reference = models.CharField(max_length=16, unique=True, default=new_reference, editable=False)
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="cases")
    coordinator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="financed_cases"
    )

    # The plan snapshot, taken from the PMS at capture.
    patient_id = models.CharField(max_length=40)
    guarantor_id = models.CharField(max_length=40, blank=True)
    treatment_plan_id = models.CharField(max_length=40)
    # "Ava T.": the most a notification may carry. Encrypted like every PHI field.
    patient_short_name = EncryptedTextField(blank=True)
    procedures = models.JSONField(default=list, blank=True)
    plan_total = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    requested_down_payment = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0.00"))
    promotion = models.CharField(max_length=20, choices=PROMOTION_CHOICES)

    state = models.CharField(max_length=24, choices=CaseState.choices, default=CaseState.CAPTURED, db_index=True)
    state_reason = models.TextField(blank=True)
    # Where a needs_attention case goes back to when the billing team resumes it.
    resume_state = models.CharField(max_length=24, choices=CaseState.choices, blank=True)

    application_id = models.CharField(max_length=64, blank=True, db_index=True)
    apply_url = models.URLField(max_length=500, blank=True)

    # Step bookkeeping. A worker claims the case (lease) before a side effect; attempts
    # count claims of the current step and are reset when the step's transition happens.
    step_attempts = models.PositiveSmallIntegerField(default=0)
    lease_token = models.CharField(max_length=32, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)

    # Milestones. captured_at is the patient's "yes": time-to-arrangement starts here.
    captured_at = models.DateTimeField(auto_now_add=True)
    application_sent_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    arrangement_written_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    state_changed_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords(
        excluded_fields=["lease_token", "lease_until", "last_polled_at", "patient_short_name"],
    )

    class Meta:
        constraints = [
            # One open (or completed) case per treatment plan: a plan is financed once.
            models.UniqueConstraint(
                fields=["location", "treatment_plan_id"],
                condition=~Q(state__in=["declined", "expired", "cancelled"]),
                name="one_open_case_per_plan",
            ),
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="case_state_next_attempt")]

    def __str__(self):
        return self.reference

    @property
    def marker(self) -> str:
        """Stored in every PMS write so a later attempt can find what an earlier one wrote."""
        return f"[chairside:{self.reference}]"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES


class Decision(models.Model):
    case = models.OneToOneField(FinancedCase, on_delete=models.CASCADE, related_name="decision")
    status = models.CharField(max_length=16)  # financing.ports.DecisionStatus
    raw_status = models.CharField(max_length=64)  # verbatim from the lender
    requested_amount = models.DecimalField(max_digits=10, decimal_places=2)
    approved_amount = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    credit_limit = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    offers = models.JSONField(default=list, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()


class WriteStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    WRITTEN = "written", "Written"
    UNKNOWN = "unknown", "Unknown (resolving by lookup)"
    FAILED = "failed", "Failed"
    SHADOW = "shadow", "Shadow (not written)"


class PaymentArrangement(models.Model):
    case = models.OneToOneField(FinancedCase, on_delete=models.CASCADE, related_name="arrangement")
    marker = models.CharField(max_length=40)
    promotion = models.CharField(max_length=20, choices=PROMOTION_CHOICES)
    agreement_date = models.DateField()
    plan_total = models.DecimalField(max_digits=10, decimal_places=2)
    down_payment = models.DecimalField(max_digits=10, decimal_places=2)
    financed_amount = models.DecimalField(max_digits=10, decimal_places=2)
    recurring_amount = models.DecimalField(max_digits=10, decimal_places=2)
    number_of_payments = models.PositiveSmallIntegerField()
    final_payment = models.DecimalField(max_digits=10, decimal_places=2)
    frequency = models.CharField(max_length=16, choices=[(i.value, i.value) for i in Interval])
    first_payment_date = models.DateField()
    apr = models.DecimalField(max_digits=5, decimal_places=2)
    total_of_payments = models.DecimalField(max_digits=10, decimal_places=2)
    finance_charge = models.DecimalField(max_digits=10, decimal_places=2)
    schedule = models.JSONField(default=list)
    note = models.CharField(max_length=255)

    pms_arrangement_id = models.CharField(max_length=40, blank=True)
    write_status = models.CharField(max_length=10, choices=WriteStatus.choices, default=WriteStatus.PENDING)
    write_attempts = models.PositiveSmallIntegerField(default=0)
    written_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()


class LedgerNote(models.Model):
    case = models.OneToOneField(FinancedCase, on_delete=models.CASCADE, related_name="ledger_note")
    note_type = models.CharField(max_length=20, choices=[(t.value, t.value.replace("_", " ")) for t in LedgerNoteType])
    text = models.TextField()
    pms_note_id = models.CharField(max_length=40, blank=True)
    write_status = models.CharField(max_length=10, choices=WriteStatus.choices, default=WriteStatus.PENDING)
    write_attempts = models.PositiveSmallIntegerField(default=0)
    written_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()


class InboundEvent(models.Model):
    """A partner webhook event we have acted on; the unique key de-duplicates redeliveries."""

    provider = models.CharField(max_length=20)
    event_id = models.CharField(max_length=100)
    application_id = models.CharField(max_length=64, blank=True)
    case = models.ForeignKey(FinancedCase, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "event_id"], name="one_inbound_event")]
