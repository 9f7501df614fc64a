"""The group's arrangement templates and each location's override of them."""


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


class TemplateForm(forms.ModelForm):
    """The group standard: its own pair, and each location's pair once its override applies."""

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

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        field = form.base_fields.get("merchant_fee_rates")
        if field is not None and obj is not None and is_example(obj.merchant_fee_rates):
            # The demo's table: nobody should take it for their agreement's.
            field.help_text = f"{field.help_text} These are {EXAMPLE_LABEL}."
        return form

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
