"""What hangs off cases: corrections, shadow comparisons, inbound events. Read-only."""


from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.utils.html import format_html, format_html_join

from .. import display, services
from ..models import (
    Correction,
    InboundEvent,
    ShadowComparison,
)
from .base import ReadOnlyAdmin, ScopedHistoryAdmin, ScopedLocationFilter
from .exports import CorrectionExport, ListExport
from .filters import CaseLocationFilter


@admin.register(Correction)
class CorrectionAdmin(ListExport, ReadOnlyAdmin, ScopedHistoryAdmin):
    """Corrections are recorded from the case page (through the service), never edited."""

    location_path = "case__location_id"
    list_display = ["recorded", "case", "location_code", "field", "before_shown", "after_shown", "why", "actor"]
    list_filter = [CaseLocationFilter, "field"]
    list_select_related = ["case", "case__location", "actor"]
    search_fields = ["case__reference"]
    show_full_result_count = False
    ordering = ["-created_at"]
    change_list_template = "admin/financing/export_change_list.html"
    export_class = CorrectionExport
    export_related = ["case__location", "actor"]

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        return (queryset.filter(case__reference=term.upper()), False) if term else (queryset, False)

    @admin.display(description="Location", ordering="case__location__code")
    def location_code(self, correction):
        return correction.case.location.code

    # A list spanning locations: each row's time on its own location's clock, labelled.
    @admin.display(description="Recorded", ordering="created_at")
    def recorded(self, correction):
        return display.when(correction.created_at, correction.case.location)

    @admin.display(description="Before")
    def before_shown(self, correction):
        return display.of_kind(Correction.FIELDS.get(correction.field, "text"), correction.before)

    @admin.display(description="After")
    def after_shown(self, correction):
        return display.of_kind(Correction.FIELDS.get(correction.field, "text"), correction.after)


class ReviewedFilter(admin.SimpleListFilter):
    title = "reviewed"
    parameter_name = "reviewed"

    def lookups(self, request, model_admin):
        return [("no", "Discrepancies not reviewed yet"), ("yes", "Reviewed")]

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(outcome=ShadowComparison.Outcome.MISMATCH, reviewed_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(reviewed_at__isnull=False)
        return queryset


@admin.register(ShadowComparison)
class ShadowComparisonAdmin(ReadOnlyAdmin):
    """Shadow mode's evidence, per location: where Chairside and the hand-entered agreement differ."""

    list_display = ["case", "location", "outcome", "discrepancy_count", "differences", "pms_agreement_id", "compared", "review"]
    list_filter = [ScopedLocationFilter, "outcome", ReviewedFilter]
    list_select_related = ["case", "location", "reviewed_by"]
    show_full_result_count = False
    ordering = ["-compared_at"]
    actions = ["compare_again", "mark_reviewed"]

    @admin.display(description="Compared", ordering="compared_at")
    def compared(self, comparison):
        return display.when(comparison.compared_at, comparison.location)

    @admin.display(description="Differences")
    def differences(self, comparison):
        if not comparison.discrepancies:
            return comparison.detail or "—"
        return format_html(
            "<ul class='shadow-diffs'>{}</ul>",
            format_html_join(
                "", "<li>{}</li>", ((line,) for line in comparison.discrepancy_lines(comparison.location.pms_name)),
            ),
        )

    @admin.display(description="Reviewed")
    def review(self, comparison):
        if comparison.reviewed_at:
            who = comparison.reviewed_by.get_username() if comparison.reviewed_by else display.NOTHING
            return f"{who}, {display.day(comparison.reviewed_at, comparison.location)}"
        return "not yet" if comparison.outcome == ShadowComparison.Outcome.MISMATCH else ""

    @admin.action(description="Mark the discrepancies reviewed")
    def mark_reviewed(self, request, queryset):
        if not request.user.has_perm("financing.change_financedcase"):
            raise PermissionDenied
        done = 0
        for comparison in queryset.filter(outcome=ShadowComparison.Outcome.MISMATCH, reviewed_at__isnull=True).select_related("case"):
            services.mark_shadow_reviewed(comparison.case_id, actor=request.user)
            done += 1
        self.message_user(request, f"Marked {done} comparison(s) reviewed.", messages.SUCCESS if done else messages.WARNING)

    @admin.action(description="Compare again with what staff entered")
    def compare_again(self, request, queryset):
        for case_id in queryset.values_list("case_id", flat=True):
            if not request.user.has_perm("financing.change_financedcase"):
                break
            services.compare_shadow(case_id, actor=request.user)
        self.message_user(request, "Compared again.")

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(InboundEvent)
class InboundEventAdmin(ReadOnlyAdmin):
    location_path = "case__location_id"
    list_display = ["provider", "event_id", "application_id", "case", "received"]
    list_select_related = ["case", "case__location"]
    search_fields = ["=event_id", "=application_id"]
    show_full_result_count = False

    @admin.display(description="Received", ordering="received_at")
    def received(self, event):
        # An event for no case (unknown application) has no location: UTC, labelled so.
        return display.when(event.received_at, event.case.location if event.case else None)
