"""The group's arrangement templates and each location's override of them."""


from django.contrib import admin
from django.db.models import Count
from django.utils.html import format_html, format_html_join

from ..models import (
    OVERRIDABLE_TEMPLATE_FIELDS,
    ArrangementTemplate,
    TemplateOverride,
    effective_template,
)
from ..scoping import locations_for, templates_for
from .base import LocationScopedAdmin, ScopedHistoryAdmin


class TemplateOverrideInline(admin.StackedInline):
    model = TemplateOverride
    extra = 0
    max_num = 1
    can_delete = True
    fields = ["why", *OVERRIDABLE_TEMPLATE_FIELDS]


@admin.register(ArrangementTemplate)
class ArrangementTemplateAdmin(ScopedHistoryAdmin):
    """The group standard. Staff see the templates their locations use, and change one only
    when every location using it is theirs: a standard is changed by who owns all of it."""

    list_display = ["name", "default_promotion", "first_payment", "note_type", "used_by"]
    readonly_fields = ["locations_using_it"]
    search_fields = ["name"]

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
                    (loc.code, ", ".join(effective_template(loc).overridden) or "the group standard, unchanged")
                    for loc in rows
                ),
            ),
        )


@admin.register(TemplateOverride)
class TemplateOverrideAdmin(LocationScopedAdmin, ScopedHistoryAdmin):
    list_display = ["location", "overrides", "why"]
    list_select_related = ["location"]
    autocomplete_fields = ["location"]
    fields = ["location", "why", *OVERRIDABLE_TEMPLATE_FIELDS]

    @admin.display(description="Overrides")
    def overrides(self, override):
        return ", ".join(name for name in OVERRIDABLE_TEMPLATE_FIELDS if getattr(override, name) not in (None, "")) or "—"
