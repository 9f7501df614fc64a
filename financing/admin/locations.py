"""Locations: their partners, their template, who works there."""


from django.contrib import admin
from django.utils.html import format_html, format_html_join

from ..models import (
    OVERRIDABLE_TEMPLATE_FIELDS,
    PROMOTION_LABELS,
    Location,
    Membership,
    effective_template,
)
from ..scoping import templates_for
from .base import LocationScopedAdmin, ScopedHistoryAdmin
from .standards import TemplateOverrideInline


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Location)
class LocationAdmin(LocationScopedAdmin, ScopedHistoryAdmin):
    location_path = "pk"
    list_display = ["code", "name", "mode", "pms_kind", "clinics_served", "lender_kind", "merchant_number", "template"]
    list_filter = ["mode"]
    list_select_related = ["template"]
    search_fields = ["code", "name"]
    ordering = ["code"]
    inlines = [TemplateOverrideInline, MembershipInline]

    def get_readonly_fields(self, request, obj=None):
        # Only superusers rewire partner endpoints and credentials, or the clinics served
        # (which patients of the practice database the location reaches).
        if request.user.is_superuser:
            return ["effective_template_table"]
        return ["code", "pms_kind", "pms_base_url", "pms_api_key", "pms_clinic_ids", "lender_kind", "lender_base_url", "lender_client_id", "lender_client_secret", "merchant_number", "pms_requests_per_second", "lender_requests_per_second", "effective_template_table"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # Templates are the group's standard, but a staff member only sees the ones their
        # own locations use: another location's template name is not theirs to read.
        if db_field.name == "template":
            kwargs["queryset"] = templates_for(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

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
            return "—" if value is None else value

        rows = (
            (name.replace("_", " "), shown(name),
             "this location" if name in effective.overridden else f"group ({effective.name})")
            for name in OVERRIDABLE_TEMPLATE_FIELDS
            if name != "note_template"
        )
        return format_html(
            "<table><tr><th>Field</th><th>Value</th><th>From</th></tr>{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )
