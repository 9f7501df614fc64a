"""Locations: their partners, their template, who works there; and *Test connection*,
which asks the location's PMS connection what it reaches (financing.pms_connection)."""

import copy

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join
from django.utils.text import capfirst

from .. import partners, pms_connection
from ..models import (
    OVERRIDABLE_TEMPLATE_FIELDS,
    PROMOTION_LABELS,
    Location,
    Membership,
    effective_template,
    template_field_label,
    template_value_label,
)
from ..scoping import templates_for
from .base import LocationScopedAdmin, ScopedHistoryAdmin
from .filters import LocationPmsProductFilter
from .standards import TemplateOverrideInline

# What reaches the PMS: a change to any of them is checked against the connection on save.
CONNECTION_FIELDS = ("pms_kind", "pms_base_url", "pms_api_key")
# The name of the Test connection button: it posts the page's form as it stands.
TEST_CONNECTION = "_test_connection"
# Only superusers rewire partner endpoints and credentials, or the clinics served (which
# patients of the practice database the location reaches): read-only for everyone else.
PARTNER_FIELDS = [
    "code", "pms_kind", "pms_base_url", "pms_api_key", "pms_clinic_ids", "lender_kind", "lender_base_url",
    "lender_client_id", "lender_client_secret", "merchant_number", "pms_requests_per_second", "lender_requests_per_second",
    "lender_prescreen_batches_per_minute",
]
# Shown in their place to those who may not change them: never a credential in clear.
SHOWN_INSTEAD = {"pms_kind": "pms_product", "pms_api_key": "pms_api_key_set", "lender_client_secret": "lender_secret_set"}


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class LocationForm(forms.ModelForm):
    """The location page's form. When the PMS product, address or key change (or a location
    is added), it asks the connection what it is: a different product is an error on the PMS
    product; a connection that cannot tell (unreachable, refused, silent) does not stop the
    save, and the admin warns that the product was not checked."""

    testing = False  # True when the page was posted by Test connection: check, never save

    class Meta:
        model = Location
        fields = "__all__"

    def clean_pms_kind(self):
        kind = self.cleaned_data["pms_kind"]
        if kind not in partners.PMS_IMPLEMENTATIONS:
            raise forms.ValidationError(f"Chairside cannot connect to {pms_connection.kind_label(kind)} yet: choose another PMS product.")
        return kind

    def clean(self):
        cleaned = super().clean()
        self.connection_report = None
        self.connection_warning = ""
        if not (self.testing or self._connection_changed()):
            return cleaned
        if any(name in self.errors for name in CONNECTION_FIELDS):
            if self.testing:
                self.connection_report = pms_connection.ConnectionReport(
                    problem="Correct the PMS settings marked below, then test the connection again."
                )
            return cleaned
        # The connection as the page has it now, saved or not (the location is not changed).
        candidate = copy.copy(self.instance)
        for name in CONNECTION_FIELDS:
            if name in cleaned:
                setattr(candidate, name, cleaned[name])
        report = self.connection_report = pms_connection.check(candidate)
        if self.testing:
            return cleaned
        if report.mismatch:
            self.add_error("pms_kind" if "pms_kind" in self.fields else None, report.mismatch)
        elif report.problem:
            self.connection_warning = f"Saved, but the PMS product could not be checked. {report.problem} Test the connection once it answers."
        return cleaned

    def _connection_changed(self) -> bool:
        if self.instance._state.adding:
            return True
        return any(name in self.fields and name in self.changed_data for name in CONNECTION_FIELDS)


class TestingConnection:
    """Mixed into the form when Test connection posted the page: the form is checked as if
    saved (so the page shows any field's error), then reported invalid without an error of
    its own, so the admin shows the page again with the edits as they were typed and saves
    nothing."""

    testing = True

    def is_valid(self):
        super().is_valid()
        return False


@admin.register(Location)
class LocationAdmin(LocationScopedAdmin, ScopedHistoryAdmin):
    location_path = "pk"
    form = LocationForm
    change_form_template = "admin/financing/location/change_form.html"
    # The Save buttons come first in the form: Enter in a field saves, never tests.
    save_on_top = True
    list_display = ["code", "name", "mode", "pms_product", "clinics_served", "lender_kind", "merchant_number", "template"]
    list_filter = ["mode", LocationPmsProductFilter]
    list_select_related = ["template"]
    search_fields = ["code", "name"]
    ordering = ["code"]
    inlines = [TemplateOverrideInline, MembershipInline]
    fieldsets = [
        (None, {"fields": ["code", "name", "timezone", "mode", "template", "effective_template_table"]}),
        ("Lender", {"fields": ["lender_kind", "lender_base_url", "lender_client_id", "lender_client_secret",
                               "merchant_number", "lender_requests_per_second", "lender_prescreen_batches_per_minute"]}),
        ("Practice management system", {"fields": ["pms_kind", "pms_base_url", "pms_api_key", "pms_clinic_ids",
                                                   "pms_requests_per_second"]}),
        # The nightly pre-screen of the next business day's patients (services/prescreen.py).
        ("Pre-screening tomorrow's patients", {"fields": ["prescreen_enabled", "prescreen_hour", "prescreen_threshold",
                                                          "business_days"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        if request.user.is_superuser:
            return ["effective_template_table"]
        return [SHOWN_INSTEAD.get(name, name) for name in PARTNER_FIELDS] + ["effective_template_table"]

    def get_fieldsets(self, request, obj=None):
        if request.user.is_superuser:
            return self.fieldsets
        return [
            (title, {**options, "fields": [SHOWN_INSTEAD.get(name, name) for name in options["fields"]]})
            for title, options in self.fieldsets
        ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if request.method == "POST" and TEST_CONNECTION in request.POST:
            return type(form.__name__, (TestingConnection, form), {})
        return form

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # Templates are the group's standard, but a staff member only sees the ones their
        # own locations use: another location's template name is not theirs to read.
        if db_field.name == "template":
            kwargs["queryset"] = templates_for(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        form = context["adminform"].form
        context.update(
            # Posting the page is changing it: who may not change the location may not test it.
            can_test_connection=self.has_add_permission(request) if add else self.has_change_permission(request, obj),
            connection_report=getattr(form, "connection_report", None) if form.testing else None,
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        report = form.connection_report
        if form.connection_warning:
            self.message_user(request, form.connection_warning, messages.WARNING)
        elif report is not None and report.matches:
            self.message_user(request, f"The PMS connection checked out: {report.found}", messages.INFO)

    @admin.display(description="PMS product", ordering="pms_kind")
    def pms_product(self, location):
        return pms_connection.kind_label(location.pms_kind)

    @admin.display(description="PMS API key")
    def pms_api_key_set(self, location):
        return "Set (shown only to superusers)" if location.pms_api_key else "Not set"

    @admin.display(description="Lender client secret")
    def lender_secret_set(self, location):
        return "Set (shown only to superusers)" if location.lender_client_secret else "Not set"

    @admin.display(description="Clinics served", ordering="pms_clinic_ids")
    def clinics_served(self, location):
        return ", ".join(location.clinic_ids) or "All (single-clinic database)"

    @admin.display(description="Effective template")
    def effective_template_table(self, location):
        if not location.pk:
            return "—"
        effective = effective_template(location)
        def shown(name):
            value = getattr(effective, name)
            if name == "default_promotion":
                return PROMOTION_LABELS.get(value, value)  # its label, never its code
            return "—" if value is None else template_value_label(name, value)

        rows = (
            (capfirst(template_field_label(name)), shown(name),
             "this location" if name in effective.overridden else f"group ({effective.name})")
            for name in OVERRIDABLE_TEMPLATE_FIELDS
            if name != "note_template"
        )
        return format_html(
            "<table><tr><th>Field</th><th>Value</th><th>From</th></tr>{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )
