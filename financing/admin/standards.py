"""The group's arrangement templates and each location's override of them."""


from decimal import Decimal

from django import forms
from django.contrib import admin
from django.db.models import Count
from django.utils.html import format_html, format_html_join
from django.utils.text import capfirst

from ..demo.money import EXAMPLE_LABEL, is_example
from ..models import (
    OVERRIDABLE_TEMPLATE_FIELDS,
    PROMOTION_CHOICES,
    ArrangementTemplate,
    Recording,
    Shortfall,
    TemplateOverride,
    effective_template,
    template_fields_in_words,
)
from ..scoping import locations_for, templates_for
from .base import LocationScopedAdmin, ScopedHistoryAdmin


# An in-house arrangement for the shortfall is written beside a CareCredit *payment*: where
# CareCredit itself is recorded as a payment arrangement, the PMS keeps one arrangement per
# account for it, so the shortfall goes on its down payment. The admin refuses the mix
# rather than letting a case find out later.
IN_HOUSE_NEEDS_PAYMENT = (
    "An in-house arrangement for the rest works only where CareCredit is recorded as a payment "
    "(“{payment}”): with “{arrangement}”, the rest is added to the down payment. "
    "Record CareCredit as a payment, or let the patient pay the rest as a down payment."
).format(payment=Recording.PAYMENT.label, arrangement=Recording.ARRANGEMENT.label)


def shortfall_conflict(recording: str, shortfall: str) -> bool:
    return shortfall == Shortfall.IN_HOUSE and recording != Recording.PAYMENT


def rate_field_name(code: str) -> str:
    return f"fee_rate_{code}"


RATE_FIELD_NAMES = [rate_field_name(code) for code, _ in PROMOTION_CHOICES]


def _rate_field(label: str) -> forms.DecimalField:
    # One percent per promotion, in the promotion's own words: billing types the rate from
    # their CareCredit agreement, never a JSON table of codes. Blank means no rate (such a
    # case needs a person before it is charged).
    return forms.DecimalField(
        label=f"{label} — fee %", required=False, min_value=Decimal("0"), max_value=Decimal("100"),
        max_digits=6, decimal_places=3,
        error_messages={
            "invalid": "Enter the fee as a percent, e.g. 9.90.",
            "min_value": "A fee rate is a percent from 0 to 100.",
            "max_value": "A fee rate is a percent from 0 to 100.",
            "max_decimal_places": "A fee rate has at most 3 decimals, e.g. 9.875.",
            "max_digits": "A fee rate is a percent from 0 to 100, with at most 3 decimals.",
            "max_whole_digits": "A fee rate is a percent from 0 to 100.",
        },
    )


class _TemplateFormBase(forms.ModelForm):
    """The group standard: its own pair, and each location's pair once its override applies."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        rates = self.instance.merchant_fee_rates or {}
        for code, _ in PROMOTION_CHOICES:
            if code in rates and rate_field_name(code) in self.fields:
                self.initial.setdefault(rate_field_name(code), rates[code])
        if rates and is_example(rates):
            # The demo's table: nobody should take it for their agreement's. (self.fields are
            # this form's own copies: the class's fields are shared by every template's form.)
            first = next((self.fields[name] for name in RATE_FIELD_NAMES if name in self.fields), None)
            if first is not None:
                first.help_text = f"These are {EXAMPLE_LABEL}."

    def fee_rates(self) -> dict:
        """The rates typed, as the template keeps them: {promotion code: percent as a string}."""
        return {
            code: str(self.cleaned_data[rate_field_name(code)])
            for code, _ in PROMOTION_CHOICES
            if self.cleaned_data.get(rate_field_name(code)) is not None
        }

    def save(self, commit=True):
        if all(name in self.fields for name in RATE_FIELD_NAMES):
            self.instance.merchant_fee_rates = self.fee_rates()
        return super().save(commit)

    def clean(self):
        cleaned = super().clean()
        recording, shortfall = cleaned.get("recording"), cleaned.get("shortfall")
        if recording is None or shortfall is None:
            return cleaned  # a field error already says what is wrong
        if shortfall_conflict(recording, shortfall):
            raise forms.ValidationError({"shortfall": IN_HOUSE_NEEDS_PAYMENT})
        if self.instance.pk:
            clashing = [
                loc.code
                for loc in self.instance.locations.select_related("template_override").order_by("code")
                if shortfall_conflict(*_overridden(loc, recording, shortfall))
            ]
            if clashing:
                raise forms.ValidationError(
                    f"{IN_HOUSE_NEEDS_PAYMENT} Location(s) {', '.join(clashing)} would mix them through their own overrides."
                )
        return cleaned


TemplateForm = forms.models.ModelFormMetaclass(
    "TemplateForm",
    (_TemplateFormBase,),
    {"__module__": __name__, **{rate_field_name(code): _rate_field(label) for code, label in PROMOTION_CHOICES}},
)


def _overridden(location, recording: str, shortfall: str) -> tuple[str, str]:
    override = getattr(location, "template_override", None)
    if override is None:
        return recording, shortfall
    return override.recording or recording, override.shortfall or shortfall


class TemplateOverrideForm(forms.ModelForm):
    """A site's override: the pair it ends up with (its own value, else the group's)."""

    def clean(self):
        cleaned = super().clean()
        location = cleaned.get("location") or getattr(self.instance, "location", None)
        template = getattr(location, "template", None) if location is not None else None
        if template is None:
            return cleaned
        recording = cleaned.get("recording") or template.recording
        shortfall = cleaned.get("shortfall") or template.shortfall
        if shortfall_conflict(recording, shortfall):
            field = "shortfall" if cleaned.get("shortfall") else "recording"
            raise forms.ValidationError({field: IN_HOUSE_NEEDS_PAYMENT})
        return cleaned


class TemplateOverrideInline(admin.StackedInline):
    model = TemplateOverride
    form = TemplateOverrideForm
    extra = 0
    max_num = 1
    can_delete = True
    fields = ["why", *OVERRIDABLE_TEMPLATE_FIELDS]


@admin.register(ArrangementTemplate)
class ArrangementTemplateAdmin(ScopedHistoryAdmin):
    """The group standard. Staff see the templates their locations use, and change one only
    when every location using it is theirs: a standard is changed by who owns all of it."""

    form = TemplateForm

    list_display = ["name", "default_promotion", "first_payment", "note_type", "used_by"]
    readonly_fields = ["locations_using_it", "merchant_fees"]
    search_fields = ["name"]

    def get_fields(self, request, obj=None):
        # The rate fields stand where the JSON table would: one labelled percent each.
        fields = [name for name in super().get_fields(request, obj) if name not in RATE_FIELD_NAMES]
        at = fields.index("merchant_fee_rates") if "merchant_fee_rates" in fields else len(fields)
        return [*fields[:at], *RATE_FIELD_NAMES, *fields[at + 1:]]


    @admin.display(description="Merchant fees")
    def merchant_fees(self, template):
        """The rate table as billing reads it, per promotion by its label."""
        rates = template.merchant_fee_rates or {}
        if not rates:
            return "No rates: a case recorded as a payment needs a person before it is charged."
        rows = format_html_join(
            "", "<li>{}: {}%</li>",
            ((label, rates[code]) for code, label in PROMOTION_CHOICES if code in rates),
        )
        note = format_html("<p><strong>{}</strong></p>", capfirst(EXAMPLE_LABEL)) if is_example(rates) else ""
        return format_html("{}<ul>{}</ul>", note, rows)

    def get_queryset(self, request):
        queryset = super().get_queryset(request).annotate(location_count=Count("locations"))
        return queryset.filter(pk__in=templates_for(request.user).values("pk"))

    def has_change_permission(self, request, obj=None):
        if not super().has_change_permission(request, obj):
            return False
        if obj is None or request.user.is_superuser:
            return True
        return not obj.locations.exclude(pk__in=locations_for(request.user).values("pk")).exists()

    @admin.display(description="First payment")
    def first_payment(self, template):
        if template.first_payment_day_of_month:
            return f"next day {template.first_payment_day_of_month} of the month"
        return f"{template.first_payment_offset_days} days after the decision"

    @admin.display(description="Used by", ordering="location_count")
    def used_by(self, template):
        return f"{template.location_count} location(s)"

    @admin.display(description="Locations using it")
    def locations_using_it(self, template):
        rows = template.locations.select_related("template_override").order_by("code")
        if not rows:
            return "—"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>{} — {}</li>",
                (
                    (loc.code, template_fields_in_words(effective_template(loc).overridden) or "the group standard, unchanged")
                    for loc in rows
                ),
            ),
        )


@admin.register(TemplateOverride)
class TemplateOverrideAdmin(LocationScopedAdmin, ScopedHistoryAdmin):
    form = TemplateOverrideForm
    list_display = ["location", "overrides", "why"]
    list_select_related = ["location"]
    autocomplete_fields = ["location"]
    fields = ["location", "why", *OVERRIDABLE_TEMPLATE_FIELDS]

    @admin.display(description="Overrides")
    def overrides(self, override):
        return template_fields_in_words(
            name for name in OVERRIDABLE_TEMPLATE_FIELDS if getattr(override, name) not in (None, "")
        ) or "—"
