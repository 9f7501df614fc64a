"""The financing domain: where a financed case lives, and what it wrote where.

State lives here; every change of it goes through `financing.services`.
"""

import re
import secrets
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from core.fields import EncryptedTextField

from .display import agreement_term
from .markers import marker_for
from .ports import Interval, LedgerEntryKind, LedgerNoteType, TransactionKind

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


class Recording(models.TextChoices):
    # The patient's CareCredit schedule recorded as a payment arrangement (the first way).
    ARRANGEMENT = "arrangement", "Payment arrangement for the CareCredit schedule"
    # The native way (Dentrix, Open Dental, Denticon): a third-party payment and a merchant-fee
    # adjustment; a payment arrangement only for what the practice itself carries.
    PAYMENT = "payment", "CareCredit payment and merchant-fee adjustment"


class ChargeWhen(models.TextChoices):
    POSTED = "posted", "When the planned treatment is posted"
    STAFF = "staff", "When staff click Charge now"


class Shortfall(models.TextChoices):
    DOWN_PAYMENT = "down_payment", "The patient pays the rest as a down payment"
    IN_HOUSE = "in_house", "An in-house payment arrangement for the rest"


RECORDING_CHOICES = Recording.choices
CHARGE_WHEN_CHOICES = ChargeWhen.choices
SHORTFALL_CHOICES = Shortfall.choices


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

    # --- the money (issue 15): how a location records CareCredit in its PMS ----------------
    recording = models.CharField(
        "how CareCredit is recorded", max_length=12, choices=RECORDING_CHOICES, default=Recording.ARRANGEMENT,
        help_text="Changing it never rewrites a case already under way: each case keeps the way it started with.",
    )
    charge_when = models.CharField(
        "when the purchase is charged", max_length=8, choices=CHARGE_WHEN_CHOICES, default=ChargeWhen.POSTED,
        help_text="Only where CareCredit is recorded as a payment.",
    )
    charge_window_days = models.PositiveSmallIntegerField(
        "Charge now: days before treatment", default=30, validators=[MaxValueValidator(365)],
        help_text="Staff may charge the purchase at most this many days before the treatment (the lender's window).",
    )
    payment_type = models.CharField(
        max_length=60, default="CareCredit Payment", help_text="The PMS payment type the CareCredit payment is posted as.",
    )
    fee_adjustment_type = models.CharField(
        "merchant fee adjustment type", max_length=60, default="CareCredit Merchant Fee",
        help_text="The PMS adjustment type the merchant fee is posted as (a credit).",
    )
    refund_adjustment_type = models.CharField(
        max_length=60, default="CareCredit Refund", help_text="The PMS adjustment type a refund is posted as (a charge).",
    )
    # {promotion code: percent as a string}, e.g. {"deferred_12": "9.90"}: the group's own
    # CareCredit merchant agreement. A promotion missing from the table has no rate: such a
    # case needs attention before it is charged (never a guessed fee).
    merchant_fee_rates = models.JSONField(
        default=dict, blank=True, help_text="Merchant fee per promotion, in percent of the purchase, from your CareCredit agreement.",
    )
    shortfall = models.CharField(
        "when CareCredit approves less than the plan", max_length=12, choices=SHORTFALL_CHOICES, default=Shortfall.DOWN_PAYMENT,
    )
    in_house_max_months = models.PositiveSmallIntegerField(
        "in-house plan: most months", default=12, validators=[MinValueValidator(1), MaxValueValidator(120)],
    )
    in_house_apr = models.DecimalField(
        "in-house plan: APR %", max_digits=5, decimal_places=2, default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("36"))],
    )
    in_house_min_payment = models.DecimalField(
        "in-house plan: smallest payment", max_digits=8, decimal_places=2, default=Decimal("50.00"),
        validators=[MinValueValidator(Decimal("1.00"))],
    )

    history = HistoricalRecords()

    def __str__(self):
        return self.name


PMS_KIND_CHOICES = [
    ("dentrix", "Dentrix G-series (connector)"),
    ("dentrix_enterprise", "Dentrix Enterprise (connector)"),
    ("dentrix_ascend", "Dentrix Ascend (connector)"),
    ("eaglesoft", "Eaglesoft (connector)"),
    ("opendental", "Open Dental (API)"),
]


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order


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

    # The PMS product the location runs; `financing.partners.PMS_IMPLEMENTATIONS` holds how
    # Chairside talks to each. "dentrix" is the desktop G-series, the first one supported.
    pms_kind = models.CharField("PMS product", max_length=20, choices=PMS_KIND_CHOICES, default="dentrix")
    pms_base_url = models.URLField()
    pms_api_key = EncryptedTextField()
    # Location scoping says which cases staff see; this says which patients the location
    # may start cases for. A multi-clinic database (Dentrix Enterprise, Open Dental) serves
    # several locations through one connection, and each must reach only its own clinic's
    # patients. Blank means the database has a single clinic: no check.
    pms_clinic_ids = models.CharField(
        "clinics served",
        max_length=200,
        blank=True,
        validators=[
            RegexValidator(
                r"^\s*[A-Za-z0-9_-]{1,20}\s*(,\s*[A-Za-z0-9_-]{1,20}\s*)*$",
                "Clinic ids separated by commas, e.g. 1 or 1, 4 (letters, digits, - or _).",
            )
        ],
        help_text="The clinics of the practice database whose patients this location may start cases for: "
        "their ids in the PMS (the Dentrix Enterprise clinic, Open Dental's ClinicNum), separated by commas, "
        "e.g. 1 or 1, 4. A patient of any other clinic is refused. Leave blank only when the practice "
        "database has a single clinic: every patient in it can then be reached from this location.",
    )

    lender_kind = models.CharField(max_length=20, choices=[("carecredit", "CareCredit")], default="carecredit")
    lender_base_url = models.URLField()
    lender_client_id = models.CharField(max_length=120)
    lender_client_secret = EncryptedTextField()
    merchant_number = models.CharField(max_length=32)

    # What Chairside allows itself per partner connection, shared by every process
    # (financing/ratelimit.py). Locations sharing a connection should say the same.
    pms_requests_per_second = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        default=Decimal("5.00"),
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="Requests per second to this PMS connection. A Dentrix on-premises connector: 5. "
        "Open Dental allows 1 per second per customer key.",
    )
    lender_requests_per_second = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        default=Decimal("20.00"),
        validators=[MinValueValidator(Decimal("0.01"))],
        help_text="Requests per second to the lender for this merchant number (CareCredit: 20).",
    )
    # The nightly pre-screen of the next business day's patients (financing.services.prescreen):
    # at this hour of the location's own clock, on its business days' eve.
    prescreen_enabled = models.BooleanField(
        "pre-screen tomorrow's patients",
        default=True,
        help_text="Each morning, pre-screen with the lender the patients booked for the next business day "
        "with planned treatment over the threshold (a soft check: their credit is untouched).",
    )
    prescreen_hour = models.PositiveSmallIntegerField(
        "pre-screen at (hour)",
        default=6,
        validators=[MaxValueValidator(23)],
        help_text="The hour, 0–23 on the location's own clock, from which the day's pre-screen runs (6: 6:00 AM).",
    )
    prescreen_threshold = models.DecimalField(
        "pre-screen from (planned fees)",
        max_digits=10,
        decimal_places=2,
        default=Decimal("500.00"),
        validators=[MinValueValidator(Decimal("0.00"))],
        help_text="Only patients whose appointment carries at least this much planned treatment are pre-screened.",
    )
    business_days = models.CharField(
        max_length=40,
        default="mon,tue,wed,thu,fri",
        validators=[
            RegexValidator(
                r"^\s*(mon|tue|wed|thu|fri|sat|sun)\s*(,\s*(mon|tue|wed|thu|fri|sat|sun)\s*)*$",
                "Days the location is open, separated by commas, e.g. mon,tue,wed,thu,fri.",
                flags=re.IGNORECASE,
            )
        ],
        help_text="The days the location sees patients (mon,tue,…,sun, separated by commas): the pre-screen "
        "looks at the next of them after today.",
    )
    lender_prescreen_batches_per_minute = models.PositiveSmallIntegerField(
        default=6,
        validators=[MinValueValidator(1)],
        help_text="Pre-screen batches the lender takes per minute for this merchant number (CareCredit: 6).",
    )
    # The batch decision poller's bookkeeping: the lender's clock at the last complete
    # listing (the next one asks for changes since), and a lease so two polls of one
    # merchant never run at once.
    lender_polled_until = models.DateTimeField(null=True, blank=True, editable=False)
    lender_poll_lease_until = models.DateTimeField(null=True, blank=True, editable=False)

    history = HistoricalRecords(
        excluded_fields=["pms_api_key", "lender_client_secret", "lender_polled_until", "lender_poll_lease_until"]
    )

    def __str__(self):
        return f"{self.name} ({self.code})"

    def clean(self):
        self.pms_clinic_ids = ", ".join(self.clinic_ids)
        # Normalised ("Mon, tue" → "mon,tue"), in the week's order.
        self.business_days = ",".join(WEEKDAYS[i] for i in sorted(self.open_weekdays)) or self.business_days

    @property
    def open_weekdays(self) -> frozenset[int]:
        """The business days as date.weekday() numbers (Monday 0)."""
        days = (d.strip().lower() for d in self.business_days.split(","))
        return frozenset(WEEKDAYS.index(d) for d in days if d in WEEKDAYS)

    @property
    def clinic_ids(self) -> tuple[str, ...]:
        """The clinics this location serves; empty: every patient of its database."""
        return tuple(dict.fromkeys(c.strip() for c in self.pms_clinic_ids.split(",") if c.strip()))

    @property
    def pms_name(self) -> str:
        """The location's PMS as its staff call it ("Dentrix"), for every clerk-facing text."""
        from .partners import pms_name

        return pms_name(self)

    @property
    def lender_name(self) -> str:
        from .partners import lender_name

        return lender_name(self)


class TemplateOverride(models.Model):
    """Where one location departs from its group template. A blank field inherits the group's
    value, so a fix to the group standard reaches every site that has not said otherwise."""

    location = models.OneToOneField(Location, on_delete=models.CASCADE, related_name="template_override")
    default_promotion = models.CharField(max_length=20, choices=PROMOTION_CHOICES, blank=True)
    first_payment_offset_days = models.PositiveSmallIntegerField(null=True, blank=True)
    first_payment_day_of_month = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(28)],
        help_text="1–28: first payment on the next such day; 0: use the offset in days even if the group "
        "template sets a day of month; blank: inherit.",
    )
    note_type = models.CharField(
        max_length=20, choices=[(t.value, t.value.replace("_", " ")) for t in LedgerNoteType], blank=True
    )
    note_template = models.TextField(blank=True, help_text="Blank: inherit the group's note template.")
    recording = models.CharField("how CareCredit is recorded", max_length=12, choices=RECORDING_CHOICES, blank=True)
    charge_when = models.CharField("when the purchase is charged", max_length=8, choices=CHARGE_WHEN_CHOICES, blank=True)
    charge_window_days = models.PositiveSmallIntegerField(
        "Charge now: days before treatment", null=True, blank=True, validators=[MaxValueValidator(365)],
    )
    payment_type = models.CharField(max_length=60, blank=True)
    fee_adjustment_type = models.CharField("merchant fee adjustment type", max_length=60, blank=True)
    refund_adjustment_type = models.CharField(max_length=60, blank=True)
    shortfall = models.CharField("when CareCredit approves less than the plan", max_length=12, choices=SHORTFALL_CHOICES, blank=True)
    why = models.TextField(blank=True, help_text="Why this site departs from the group standard.")

    history = HistoricalRecords()

    def __str__(self):
        return f"overrides at {self.location.code}"


# The template fields a location may override. Frequency is not one: CareCredit promotions
# bill monthly, and notification channels stay a group decision.
OVERRIDABLE_TEMPLATE_FIELDS = (
    "default_promotion",
    "first_payment_offset_days",
    "first_payment_day_of_month",
    "note_type",
    "note_template",
    "recording",
    "charge_when",
    "charge_window_days",
    "payment_type",
    "fee_adjustment_type",
    "refund_adjustment_type",
    "shortfall",
)
# The money fields only the group sets: its CareCredit merchant agreement's rates, and its
# in-house financing terms.
GROUP_MONEY_FIELDS = ("merchant_fee_rates", "in_house_max_months", "in_house_apr", "in_house_min_payment")


def template_field_label(name: str) -> str:
    """A template setting as the console labels it ("How CareCredit is recorded"), never its
    field name ("recording")."""
    return str(ArrangementTemplate._meta.get_field(name).verbose_name)


def template_fields_in_words(names) -> str:
    """Overridden settings for a sentence: "first payment day of month; how CareCredit is recorded"."""
    return "; ".join(template_field_label(name) for name in names)


def template_value_label(name: str, value):
    """A setting's value as its choice reads ("CareCredit payment and merchant-fee adjustment"),
    not its code ("payment"); other values as they are."""
    choices = dict(ArrangementTemplate._meta.get_field(name).flatchoices)
    return choices.get(value, value) if choices else value


@dataclass(frozen=True)
class EffectiveTemplate:
    """The template a location actually uses: its group template with its overrides applied."""

    template_id: int
    name: str
    arrangement_type: str
    frequency: str
    first_payment_offset_days: int
    first_payment_day_of_month: int | None
    default_promotion: str
    note_type: str
    note_template: str
    notify_email: bool
    notify_sms: bool
    recording: str = Recording.ARRANGEMENT
    charge_when: str = ChargeWhen.POSTED
    charge_window_days: int = 30
    payment_type: str = "CareCredit Payment"
    fee_adjustment_type: str = "CareCredit Merchant Fee"
    refund_adjustment_type: str = "CareCredit Refund"
    shortfall: str = Shortfall.DOWN_PAYMENT
    merchant_fee_rates: dict = field(default_factory=dict)
    in_house_max_months: int = 12
    in_house_apr: Decimal = Decimal("0.00")
    in_house_min_payment: Decimal = Decimal("50.00")
    overridden: tuple[str, ...] = ()

    def merchant_fee_rate(self, promotion: str) -> Decimal | None:
        """The promotion's merchant fee in percent, or None where the table has no rate."""
        rate = (self.merchant_fee_rates or {}).get(promotion)
        return None if rate in (None, "") else Decimal(str(rate))

    def snapshot(self) -> dict:
        """What an arrangement records about the template it was computed from."""
        return {
            "template_id": self.template_id,
            "name": self.name,
            "overridden": list(self.overridden),
            "first_payment_offset_days": self.first_payment_offset_days,
            "first_payment_day_of_month": self.first_payment_day_of_month,
            "default_promotion": self.default_promotion,
            "note_type": self.note_type,
        }


def effective_template(location: Location) -> EffectiveTemplate:
    """The one place that resolves a location's template; every service asks it."""
    template = location.template
    try:
        override = location.template_override
    except TemplateOverride.DoesNotExist:
        override = None
    values = {name: getattr(template, name) for name in OVERRIDABLE_TEMPLATE_FIELDS}
    overridden = []
    if override is not None:
        for name in OVERRIDABLE_TEMPLATE_FIELDS:
            value = getattr(override, name)
            if value is None or value == "":
                continue
            if name == "first_payment_day_of_month" and value == 0:
                value = None  # 0 means "use the offset", which None says to compute_terms
            values[name] = value
            overridden.append(name)
    return EffectiveTemplate(
        template_id=template.pk,
        name=template.name,
        arrangement_type=template.arrangement_type,
        frequency=template.frequency,
        notify_email=template.notify_email,
        notify_sms=template.notify_sms,
        overridden=tuple(overridden),
        **{name: getattr(template, name) for name in GROUP_MONEY_FIELDS},
        **values,
    )


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
    # Approved before treatment, at a PMS that writes a plan only over posted production
    # (Dentrix Ascend, Eaglesoft): the arrangement waits until the procedures are posted.
    AWAITING_PRODUCTION = "awaiting_production", "Awaiting posted treatment"
    ARRANGEMENT_WRITTEN = "arrangement_written", "Arrangement written"
    # Recorded as a payment (Recording.PAYMENT): charged to the patient's CareCredit account,
    # then the payment and the merchant fee posted to the ledger (and an in-house
    # arrangement for the rest, where the location carries it).
    PURCHASED = "purchased", "Charged to CareCredit"
    POSTED = "posted", "Posted to the ledger"
    COMPLETED = "completed", "Completed"
    DECLINED = "declined", "Declined"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"
    NEEDS_ATTENTION = "needs_attention", "Needs attention"


TERMINAL_STATES = frozenset({CaseState.COMPLETED, CaseState.DECLINED, CaseState.EXPIRED, CaseState.CANCELLED})
# A case in one of these no longer holds its plan: the plan may be financed again. Every
# other case (completed included: a plan is financed once) holds it. One tuple for the
# database constraint and for intake's check, so the two never drift apart.
STATES_RELEASING_THE_PLAN = (CaseState.DECLINED.value, CaseState.EXPIRED.value, CaseState.CANCELLED.value)
WAITING_FOR_LENDER = frozenset({CaseState.APPLICATION_SENT, CaseState.AWAITING_DECISION})


class FinancedCase(models.Model):
    reference = models.CharField(max_length=16, unique=True, default=new_reference, editable=False)
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="cases")
    coordinator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="financed_cases"
    )

    # The practice database the plan lives in (`partners.pms_identity`, set at capture):
    # "one open case per plan" is counted over it, not over the location, because
    # locations sharing a database (the clinics of one Dentrix Enterprise, sites behind
    # one connector) reach the same patients and plans. Indexed by the unique constraint
    # below, which leads with it.
    pms_identity = models.CharField("practice database", max_length=255, editable=False)

    # The plan snapshot, taken from the PMS at capture.
    patient_id = models.CharField(max_length=40)
    guarantor_id = models.CharField(max_length=40, blank=True)
    treatment_plan_id = models.CharField(max_length=40)
    # "Ava T.": the most a notification may carry. Encrypted like every PHI field.
    patient_short_name = EncryptedTextField(blank=True)
    # The guarantor (who the payment agreement bills) as billing staff read them: "Mark T.",
    # the patient's own short name when they are their own guarantor. Blank when the PMS could
    # not be asked at capture.
    guarantor_short_name = EncryptedTextField(blank=True)
    # A keyed hash of the patient's normalised surname (core.blind_index), so the console
    # finds a case by surname with one indexed lookup instead of decrypting every row. Set
    # at capture from the PMS; cases captured before it existed have none (the surname was
    # never stored, so it cannot be backfilled without asking the PMS for every patient).
    surname_token = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    procedures = models.JSONField(default=list, blank=True)
    plan_total = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    requested_down_payment = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0.00"))
    promotion = models.CharField(max_length=20, choices=PROMOTION_CHOICES)
    # Recorded at the chair: the patient agreed to receive the CareCredit apply link by SMS
    # (or email) at the contact Dentrix holds. Without it, nothing is sent to the patient.
    patient_consents_to_messages = models.BooleanField(default=False)

    state = models.CharField(max_length=24, choices=CaseState.choices, default=CaseState.CAPTURED, db_index=True)
    state_reason = models.TextField(blank=True)
    # Where a needs_attention case goes back to when the billing team resumes it.
    resume_state = models.CharField(max_length=24, choices=CaseState.choices, blank=True)

    application_id = models.CharField(max_length=64, blank=True, db_index=True)
    apply_url = models.URLField(max_length=500, blank=True)

    # Step bookkeeping. A worker claims the case (lease) before a side effect; attempts
    # count claims of the current step and are reset when the step's transition happens.
    # The holder is the claiming process (core.holders), which renews lease_until while
    # its step runs (core.heartbeat); "" once a heartbeat handed the case back.
    step_attempts = models.PositiveSmallIntegerField(default=0)
    lease_token = models.CharField(max_length=32, blank=True)
    lease_holder = models.CharField(max_length=100, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)

    # Milestones. captured_at is the patient's "yes": time-to-arrangement starts here.
    captured_at = models.DateTimeField(auto_now_add=True)
    application_sent_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    arrangement_written_at = models.DateTimeField(null=True, blank=True)
    # The wait for posted production (AWAITING_PRODUCTION): when it began and when the PMS
    # showed the procedures posted. A wait for treatment is not a slow hand-off.
    production_awaited_at = models.DateTimeField(null=True, blank=True)
    production_posted_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    state_changed_at = models.DateTimeField(auto_now_add=True)
    # How the case records CareCredit in the PMS, fixed at capture from the location's
    # template: a change of the template never reaches a case already under way.
    recording = models.CharField(max_length=12, choices=RECORDING_CHOICES, default=Recording.ARRANGEMENT)
    purchased_at = models.DateTimeField(null=True, blank=True)
    posted_at = models.DateTimeField(null=True, blank=True)

    # The patient's pre-screen when the case was captured (financing.services.prescreen): the
    # result, kept on the case so the dashboard compares pre-qualified patients with the rest
    # however the nightly lists are refreshed. Blank: not pre-screened (or too long ago).
    prescreen_outcome = models.CharField(max_length=20, blank=True)
    prescreen_amount = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    prescreen_expires_on = models.DateField(null=True, blank=True)
    prescreened_at = models.DateTimeField(null=True, blank=True)
    # An existing cardholder approved on their card instead of an application: the account's
    # last four digits, as the lender names it (never the number).
    cardholder_account_last4 = models.CharField(max_length=4, blank=True)

    # Who in the billing team took the case on (financing.services.casework): a clerk assigns
    # a case to themselves so two people never work the same one.
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_cases"
    )
    assigned_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords(
        excluded_fields=[
            "lease_token", "lease_holder", "lease_until", "last_polled_at", "patient_short_name", "guarantor_short_name",
            "surname_token",
        ],
    )

    class Meta:
        constraints = [
            # One open (or completed) case per patient plan of a practice database, whichever
            # location captured it: a plan is financed once, and a second case would send the
            # patient a second credit application. Intake checks first for a clear 400; this
            # holds when two requests race past that check.
            models.UniqueConstraint(
                fields=["pms_identity", "patient_id", "treatment_plan_id"],
                condition=~Q(state__in=STATES_RELEASING_THE_PLAN),
                name="one_open_case_per_practice_plan",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="case_state_next_attempt"),
            # The lease heartbeat looks at the cases held right now, every few seconds.
            models.Index(fields=["lease_until"], condition=Q(lease_until__isnull=False), name="case_leased"),
            # The billing console: search by PMS patient id, the dashboard's weekly cohorts.
            models.Index(fields=["patient_id"], name="case_patient_id"),
            models.Index(fields=["location", "captured_at"], name="case_location_captured"),
            # "Needs you today": the open cases of a state, oldest first.
            models.Index(fields=["state", "state_changed_at"], name="case_state_changed"),
        ]

    def __str__(self):
        return self.reference

    def save(self, *args, **kwargs):
        if self._state.adding and not self.pms_identity:
            # Capture sets it; a case made any other way (a fixture, a script) is counted
            # against its location's practice database all the same.
            from .partners import pms_identity

            self.pms_identity = pms_identity(self.location)
        super().save(*args, **kwargs)

    @property
    def marker(self) -> str:
        """Stored in every PMS write so a later attempt can find what an earlier one wrote."""
        return marker_for(self.reference)

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
    # The last day the approval can be charged (the lender's date; LenderDecision.expires_on).
    expires_on = models.DateField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()


class WriteStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    WRITTEN = "written", "Written"
    UNKNOWN = "unknown", "Unknown (resolving by lookup)"
    FAILED = "failed", "Failed"
    SHADOW = "shadow", "Shadow (not written)"


class PaymentArrangement(models.Model):
    class Kind(models.TextChoices):
        CARECREDIT = "carecredit", "The CareCredit schedule"
        IN_HOUSE = "in_house", "In-house, for what the practice carries"

    case = models.OneToOneField(FinancedCase, on_delete=models.CASCADE, related_name="arrangement")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.CARECREDIT)
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

    # The effective template these terms were computed from. Arrangements are snapshots:
    # changing a template later never rewrites one.
    template_snapshot = models.JSONField(default=dict, blank=True)

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


# --- the money (issue 15) ----------------------------------------------------------------------


class Purchase(models.Model):
    """The case's charge to the patient's CareCredit account (Recording.PAYMENT): made once
    under its idempotency key, looked up by it before any retry."""

    class Status(models.TextChoices):
        PENDING = "pending", "Not charged yet"
        UNKNOWN = "unknown", "Sent, answer lost (resolving by lookup)"
        SETTLED = "settled", "Charged"
        VOIDED = "voided", "Voided"
        DECLINED = "declined", "Declined by the lender"

    case = models.OneToOneField(FinancedCase, on_delete=models.CASCADE, related_name="purchase")
    idempotency_key = models.CharField(max_length=64, unique=True)
    amount = models.DecimalField(max_digits=10, decimal_places=2)  # gross: what the account is charged
    promotion = models.CharField(max_length=20, choices=PROMOTION_CHOICES)
    fee_rate = models.DecimalField(max_digits=6, decimal_places=3)  # percent, from the template
    merchant_fee = models.DecimalField(max_digits=10, decimal_places=2)
    net_amount = models.DecimalField(max_digits=10, decimal_places=2)  # amount − merchant_fee: what is funded
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    lender_transaction_id = models.CharField(max_length=64, blank=True, db_index=True)
    authorization_code = models.CharField(max_length=20, blank=True)
    business_day = models.DateField(null=True, blank=True)  # the lender's settlement day
    decline_reason = models.CharField(max_length=255, blank=True)
    charged_by = models.ForeignKey(  # Charge now: the person who charged it; None when charged on posting
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    charged_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    def __str__(self):
        return f"purchase {self.idempotency_key}"

    @property
    def refunded(self) -> Decimal:
        return sum((r.amount for r in self.refunds.all() if r.status == Refund.Status.REFUNDED), Decimal("0.00"))


class Refund(models.Model):
    """Money given back on a purchase: a staff action, all or part, once per request."""

    class Status(models.TextChoices):
        PENDING = "pending", "Not sent yet"
        UNKNOWN = "unknown", "Sent, answer lost (resolving by lookup)"
        REFUNDED = "refunded", "Refunded"
        FAILED = "failed", "Refused by the lender"

    case = models.ForeignKey(FinancedCase, on_delete=models.PROTECT, related_name="refunds")
    purchase = models.ForeignKey(Purchase, on_delete=models.PROTECT, related_name="refunds")
    idempotency_key = models.CharField(max_length=64, unique=True)
    amount = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))])
    why = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    lender_transaction_id = models.CharField(max_length=64, blank=True, db_index=True)
    failure = models.CharField(max_length=255, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    refunded_at = models.DateTimeField(null=True, blank=True)
    # When its task is due again (backing off); the sweeper re-queues a refund whose message
    # was lost only once this has passed (services/refunds.py: refunds_to_redrive).
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()


class LedgerPosting(models.Model):
    """A payment or an adjustment Chairside posts to the PMS ledger, exactly once: its own
    marker in the entry's note, lookup before write, read back."""

    class Kind(models.TextChoices):
        PAYMENT = "payment", "CareCredit payment"
        MERCHANT_FEE = "merchant_fee", "Merchant fee"
        REFUND = "refund", "Refund"

    case = models.ForeignKey(FinancedCase, on_delete=models.CASCADE, related_name="postings")
    refund = models.OneToOneField(Refund, null=True, blank=True, on_delete=models.PROTECT, related_name="posting")
    kind = models.CharField(max_length=14, choices=Kind.choices)
    entry_kind = models.CharField(max_length=10, choices=[(k.value, k.value) for k in LedgerEntryKind])
    type_name = models.CharField(max_length=60)  # the PMS payment or adjustment type
    amount = models.DecimalField(max_digits=10, decimal_places=2)  # signed as the ledger shows it (ports.LedgerEntryRequest)
    entry_date = models.DateField()
    marker = models.CharField(max_length=60, unique=True)  # markers.posting_marker
    note = models.CharField(max_length=255)
    pms_entry_id = models.CharField(max_length=40, blank=True)
    write_status = models.CharField(max_length=10, choices=WriteStatus.choices, default=WriteStatus.PENDING)
    write_attempts = models.PositiveSmallIntegerField(default=0)
    written_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        indexes = [models.Index(fields=["case", "kind"], name="posting_case_kind")]


class ReconciliationRun(models.Model):
    """One merchant's settlement report for one day, matched against the ledger."""

    merchant_number = models.CharField(max_length=32)
    day = models.DateField()
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    purchases = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0.00"))
    refunds = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0.00"))
    fees = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0.00"))
    net = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0.00"))
    error = models.TextField(blank=True)  # the report could not be read (the run is tried again)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["merchant_number", "day"], name="one_reconciliation_per_merchant_day")]


class ReconciliationItem(models.Model):
    """One purchase or refund of a settlement report (or one posting the report lacks), and
    how it matched the ledger."""

    class Outcome(models.TextChoices):
        MATCHED = "matched", "Matched"
        MISSING_IN_PMS = "missing_in_pms", "Missing in the PMS"
        MISSING_AT_LENDER = "missing_at_lender", "Missing at the lender"
        AMOUNT_DIFFERS = "amount_differs", "Amount differs"

    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="items")
    location = models.ForeignKey(Location, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    case = models.ForeignKey(FinancedCase, null=True, blank=True, on_delete=models.SET_NULL, related_name="reconciliation_items")
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    transaction_kind = models.CharField(max_length=10, choices=[(k.value, k.value) for k in TransactionKind])
    lender_transaction_id = models.CharField(max_length=64, blank=True)
    lender_amount = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    lender_fee = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    ledger_amount = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    ledger_fee = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    detail = models.TextField(blank=True)  # in plain words, for the clerk
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    resolution = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        indexes = [models.Index(fields=["location", "outcome", "resolved_at"], name="recon_location_open")]


class InboundEvent(models.Model):
    """A partner webhook event we have acted on; the unique key de-duplicates redeliveries."""

    provider = models.CharField(max_length=20)
    event_id = models.CharField(max_length=100)
    application_id = models.CharField(max_length=64, blank=True)
    case = models.ForeignKey(FinancedCase, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "event_id"], name="one_inbound_event")]


class Correction(models.Model):
    """A billing-team fix of a written arrangement: what they changed in Dentrix, and why.

    Recorded through `services.record_correction`, which also updates the arrangement so
    Chairside's record matches Dentrix again. Counted by the dashboard's correction volume.
    """

    # The arrangement fields a correction may change, each with how its value is read.
    FIELDS = {
        "down_payment": "money",
        "recurring_amount": "money",
        "final_payment": "money",
        "financed_amount": "money",
        "number_of_payments": "count",
        "first_payment_date": "date",
        "apr": "percent",
        "pms_arrangement_id": "text",
    }

    arrangement = models.ForeignKey(PaymentArrangement, on_delete=models.PROTECT, related_name="corrections")
    # Denormalised from the arrangement so the console counts corrections per location and
    # week without joining three tables.
    case = models.ForeignKey(FinancedCase, on_delete=models.PROTECT, related_name="corrections")
    field = models.CharField(max_length=40, choices=[(name, name.replace("_", " ")) for name in FIELDS])
    before = models.CharField(max_length=255)
    after = models.CharField(max_length=255)
    why = models.TextField()
    # The PMS record before and after, where the correction made the PMS replace it: Dentrix
    # Enterprise keeps a new version of a plan whose terms change, Dentrix Ascend's plan is
    # deleted and made again. Blank when the record kept its id. The chain of a case's
    # arrangement is its corrections' pairs, oldest first. A before without an after: the
    # record in force could not be confirmed (the PMS could not be read back, or showed no
    # single successor): services/corrections.py.
    pms_record_before = models.CharField(max_length=40, blank=True)
    pms_record_after = models.CharField(max_length=40, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="corrections"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        indexes = [
            models.Index(fields=["case", "created_at"], name="correction_case_created"),
            models.Index(fields=["created_at"], name="correction_created"),  # the console's newest-first list
        ]

    def __str__(self):
        return f"{self.case.reference}: {self.field} {self.before} → {self.after}"


class ShadowComparison(models.Model):
    """Shadow mode's verdict on one case: what Chairside would have written against what staff
    entered by hand in Dentrix for the same guarantor, field by field."""

    class Outcome(models.TextChoices):
        MATCH = "match", "Matches"
        MISMATCH = "mismatch", "Differs"
        MISSING = "missing", "No hand-entered agreement yet"
        ERROR = "error", "Dentrix lookup failed"

    case = models.OneToOneField(FinancedCase, on_delete=models.CASCADE, related_name="shadow_comparison")
    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="shadow_comparisons")
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    pms_agreement_id = models.CharField(max_length=40, blank=True)
    # [{"field": ..., "chairside": ..., "dentrix": ...}] — strings, as shown to staff.
    discrepancies = models.JSONField(default=list, blank=True)
    discrepancy_count = models.PositiveSmallIntegerField(default=0)
    detail = models.TextField(blank=True)
    compared_at = models.DateTimeField()
    # A person looked at the discrepancies (and settled them with whoever entered the
    # agreement). Cleared when a later comparison finds different ones.
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        # The console lists them newest first, overall and per location.
        indexes = [
            models.Index(fields=["compared_at"], name="shadow_compared"),
            models.Index(fields=["location", "compared_at"], name="shadow_location_compared"),
            # "Needs you today": the discrepancies nobody has reviewed, a few among many.
            models.Index(
                fields=["location", "compared_at"],
                condition=Q(outcome="mismatch", reviewed_at__isnull=True),
                name="shadow_unreviewed",
            ),
        ]

    # The compared agreement fields (services.arrangement.COMPARED_AGREEMENT_FIELDS) as a
    # clerk reads them.
    FIELD_LABELS = {
        "interval": "Payment interval",
        "total_agreed_amount": "Total agreed",
        "down_payment": "Down payment",
        "payment_amount": "Payment amount",
        "number_of_payments": "Number of payments",
        "first_payment_due": "First payment due",
        "annual_finance_charge_pct": "APR (%)",
    }

    @property
    def needs_review(self) -> bool:
        return self.outcome == self.Outcome.MISMATCH and self.reviewed_at is None

    @property
    def labelled_discrepancies(self) -> list[dict]:
        """The discrepancies, each with the label a clerk reads instead of the field name."""
        return [{**d, "label": self.FIELD_LABELS.get(d["field"], d["field"].replace("_", " "))} for d in self.discrepancies]

    def discrepancy_lines(self, pms_name: str) -> list[str]:
        """"First payment due: Chairside Dec 1, 2026, Dentrix Dec 15, 2026", one per field."""
        return [
            f"{d['label']}: Chairside {agreement_term(d['field'], d['chairside'])}, {pms_name} {agreement_term(d['field'], d['dentrix'])}"
            for d in self.labelled_discrepancies
        ]

    def __str__(self):
        return f"shadow comparison of {self.case.reference}: {self.outcome}"


class CaseNote(models.Model):
    """A billing team member's internal note on a case: for the team only. Never sent in a
    notification, never logged, never exported; shown on the case page's timeline. Notes are
    kept as written (no edit, no delete), so the record of who said what stays true."""

    case = models.ForeignKey(FinancedCase, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # Notes may name the patient or their circumstances: PHI, so encrypted at rest.
    text = EncryptedTextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["case", "created_at"], name="case_note_case_created")]

    def __str__(self):
        return f"note on {self.case_id} by {self.author_id}"


# --- pre-screening the next business day's patients (financing.services.prescreen) ----------


class PrescreenResult(models.TextChoices):
    """What the nightly pre-screen found for a patient, in the words of the console."""

    PENDING = "pending", "Not screened yet"
    # The lender's answers (financing.ports.PrescreenOutcome, same values).
    PREQUALIFIED = "prequalified", "Pre-qualified"
    EXISTING_CARDHOLDER = "existing_cardholder", "Existing cardholder"
    NOT_PREQUALIFIED = "not_prequalified", "Not pre-qualified"
    NO_RESULT = "no_result", "No result"
    # Not sent to the lender at all.
    MINOR = "minor", "Not screened: under 18"
    OPTED_OUT = "opted_out", "Not screened: opted out"
    NOT_FOUND = "not_found", "Not screened: not found in the PMS"


# The answers that came from the lender; and those a case counts as pre-qualified.
SCREENED_RESULTS = (
    PrescreenResult.PREQUALIFIED, PrescreenResult.EXISTING_CARDHOLDER,
    PrescreenResult.NOT_PREQUALIFIED, PrescreenResult.NO_RESULT,
)
PREQUALIFIED_RESULTS = (PrescreenResult.PREQUALIFIED, PrescreenResult.EXISTING_CARDHOLDER)


class PrescreenRun(models.Model):
    """One location's pre-screen of one appointment day: the unit the beat job is idempotent
    on. A rerun takes the same row again (the day's list is refreshed, never duplicated);
    the lease keeps two workers off it, like a case's."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to read the schedule"
        SCREENING = "screening", "Screening"
        DONE = "done", "Done"
        FAILED = "failed", "Stopped"

    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="prescreen_runs")
    day = models.DateField(help_text="The appointment day screened (the next business day after run_on).")
    run_on = models.DateField(help_text="The location's date when the run started.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # Consecutive failed attempts (a partner error); a finished batch starts the count again.
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_token = models.CharField(max_length=32, blank=True)
    lease_holder = models.CharField(max_length=100, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    batches = models.PositiveSmallIntegerField(default=0, help_text="Batches sent to the lender.")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # The coordinators' morning message went out for this run (once).
    messaged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["location", "day"], name="one_prescreen_run_per_location_day")]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="prescreen_run_status_next")]

    def __str__(self):
        return f"pre-screen of {self.day} at {self.location.code}"


class Prescreen(models.Model):
    """A patient booked on a location's appointment day, and what the pre-screen found.

    Never a full name, a birth date, an address or an SSN: the demographics are read from
    the PMS for the lender's request and dropped with it. "Ava T." is the most kept.
    """

    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="prescreens")
    run = models.ForeignKey(PrescreenRun, on_delete=models.CASCADE, related_name="prescreens")
    day = models.DateField()
    patient_id = models.CharField(max_length=40)
    # The patient's visit that day (the earliest, if several) and the plan on it: the one
    # with the most planned treatment; planned_fees is the day's whole planned treatment.
    appointment_id = models.CharField(max_length=40)
    starts_at = models.DateTimeField()
    treatment_plan_id = models.CharField(max_length=40, blank=True)
    planned_fees = models.DecimalField(max_digits=10, decimal_places=2)
    patient_short_name = EncryptedTextField(blank=True)
    result = models.CharField(max_length=20, choices=PrescreenResult.choices, default=PrescreenResult.PENDING)
    # PREQUALIFIED: up to this amount; EXISTING_CARDHOLDER: the credit available.
    amount = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    expires_on = models.DateField(null=True, blank=True)
    raw_status = models.CharField(max_length=64, blank=True)  # the lender's own word
    screened_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["location", "patient_id", "day"], name="one_prescreen_per_patient_day"),
        ]
        indexes = [
            models.Index(fields=["run", "result"], name="prescreen_run_result"),
            # A case captured for the patient looks up their latest result.
            models.Index(fields=["location", "patient_id", "screened_at"], name="prescreen_patient_latest"),
        ]

    def __str__(self):
        return f"pre-screen of patient {self.patient_id} for {self.day}"


class PrescreenOptOut(models.Model):
    """A patient who asked not to be pre-screened at a location (set by staff)."""

    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="prescreen_opt_outs")
    patient_id = models.CharField("PMS patient id", max_length=40)
    note = models.CharField(max_length=200, blank=True, help_text="Optional: how the patient asked (no PHI needed).")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "pre-screening opt-out"
        constraints = [models.UniqueConstraint(fields=["location", "patient_id"], name="one_prescreen_opt_out")]

    def __str__(self):
        return f"patient {self.patient_id} opted out of pre-screening at {self.location.code}"


def related_or_none(instance: models.Model, name: str):
    """A one-to-one of `instance` (a case's decision, arrangement, ledger note…), or None."""
    try:
        return getattr(instance, name)
    except ObjectDoesNotExist:
        return None
