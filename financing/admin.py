"""The first cut of the billing console: read-only where the state machine owns the data,
scoped to the staff member's locations, with actions that go through the services."""

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin

from notifications.models import Notification

from . import services
from .models import (
    ArrangementTemplate,
    CaseState,
    Decision,
    FinancedCase,
    InboundEvent,
    LedgerNote,
    Location,
    Membership,
    PaymentArrangement,
)


class LocationScopedAdmin(admin.ModelAdmin):
    """Staff see only their locations' rows; `location_path` says how a row reaches one."""

    location_path = "location"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.location_path}__memberships__user": request.user})


class ReadOnlyInline(admin.StackedInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class DecisionInline(ReadOnlyInline):
    model = Decision
    fields = ["status", "raw_status", "requested_amount", "approved_amount", "credit_limit", "offers", "decided_at"]


class ArrangementInline(ReadOnlyInline):
    model = PaymentArrangement
    fields = [
        "promotion",
        "agreement_date",
        "plan_total",
        "down_payment",
        "financed_amount",
        "recurring_amount",
        "number_of_payments",
        "final_payment",
        "frequency",
        "first_payment_date",
        "apr",
        "total_of_payments",
        "finance_charge",
        "note",
        "pms_arrangement_id",
        "write_status",
        "write_attempts",
        "written_at",
        "verified_at",
    ]


class LedgerNoteInline(ReadOnlyInline):
    model = LedgerNote
    fields = ["note_type", "text", "pms_note_id", "write_status", "written_at"]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(ArrangementTemplate)
class ArrangementTemplateAdmin(SimpleHistoryAdmin):
    list_display = ["name", "default_promotion", "frequency", "first_payment_offset_days", "note_type"]


@admin.register(Location)
class LocationAdmin(LocationScopedAdmin, SimpleHistoryAdmin):
    location_path = "pk"
    list_display = ["code", "name", "mode", "pms_kind", "lender_kind", "merchant_number", "template"]
    list_filter = ["mode"]
    search_fields = ["code", "name"]
    inlines = [MembershipInline]

    def get_queryset(self, request):
        queryset = admin.ModelAdmin.get_queryset(self, request)
        return queryset if request.user.is_superuser else queryset.filter(memberships__user=request.user)

    def get_readonly_fields(self, request, obj=None):
        # Only superusers rewire partner endpoints and credentials.
        if request.user.is_superuser:
            return []
        return ["code", "pms_kind", "pms_base_url", "pms_api_key", "lender_kind", "lender_base_url", "lender_client_id", "lender_client_secret", "merchant_number"]


@admin.register(FinancedCase)
class FinancedCaseAdmin(LocationScopedAdmin, SimpleHistoryAdmin):
    list_display = [
        "reference",
        "state",
        "location",
        "coordinator",
        "plan_total",
        "financed",
        "in_state_for",
        "state_reason",
    ]
    list_filter = ["state", "location", "promotion"]
    list_select_related = ["location", "coordinator", "arrangement"]
    search_fields = ["=reference", "=patient_id"]
    date_hierarchy = "captured_at"
    show_full_result_count = False
    inlines = [DecisionInline, ArrangementInline, LedgerNoteInline]
    actions = ["resume_cases", "cancel_cases"]
    readonly_fields = [
        "reference",
        "location",
        "coordinator",
        "state",
        "state_reason",
        "resume_state",
        "patient_id",
        "guarantor_id",
        "treatment_plan_id",
        "procedures_table",
        "plan_total",
        "requested_down_payment",
        "promotion",
        "application_id",
        "apply_url",
        "step_attempts",
        "next_attempt_at",
        "last_error",
        "captured_at",
        "application_sent_at",
        "decided_at",
        "arrangement_written_at",
        "completed_at",
        "notifications",
    ]
    exclude = ["procedures", "patient_short_name", "lease_token", "lease_until", "last_polled_at", "state_changed_at"]

    def has_add_permission(self, request):
        return False  # cases start from the API (or the PMS), where the plan is checked

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Financed")
    def financed(self, case):
        arrangement = getattr(case, "arrangement", None)
        return arrangement.financed_amount if arrangement else "—"

    @admin.display(description="In state for")
    def in_state_for(self, case):
        seconds = int((timezone.now() - case.state_changed_at).total_seconds())
        if seconds < 3600:
            return f"{seconds // 60} min"
        if seconds < 86400:
            return f"{seconds // 3600} h"
        return f"{seconds // 86400} d"

    @admin.display(description="Procedures")
    def procedures_table(self, case):
        if not case.procedures:
            return "—"
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td align='right'>${}</td></tr>",
            ((p["code"], p["tooth"], p["surface"], p["fee"]) for p in case.procedures),
        )
        return format_html("<table><tr><th>Code</th><th>Tooth</th><th>Surface</th><th>Fee</th></tr>{}</table>", rows)

    @admin.display(description="Notifications")
    def notifications(self, case):
        rows = Notification.objects.filter(reference=case.reference).order_by("created_at")
        if not rows:
            return "—"
        items = format_html_join(
            "", "<li>{} by {} to {}: {}{}</li>",
            ((n.template, n.channel, n.recipient, n.get_status_display(), f" ({n.error})" if n.error else "") for n in rows),
        )
        return format_html("<ul>{}</ul>", items)

    @admin.action(description="Resume selected cases that need attention")
    def resume_cases(self, request, queryset):
        done = 0
        for case in queryset.filter(state=CaseState.NEEDS_ATTENTION):
            services.resume_case(case.pk, actor=request.user)
            done += 1
        self.message_user(request, f"Resumed {done} case(s).", messages.SUCCESS if done else messages.WARNING)

    @admin.action(description="Cancel selected cases")
    def cancel_cases(self, request, queryset):
        done = 0
        for case in queryset:
            try:
                services.cancel_case(case.pk, reason="Cancelled from the billing console", actor=request.user)
                done += 1
            except services.InvalidTransition as exc:
                self.message_user(request, str(exc), messages.WARNING)
        self.message_user(request, f"Cancelled {done} case(s).")


@admin.register(InboundEvent)
class InboundEventAdmin(LocationScopedAdmin):
    location_path = "case__location"
    list_display = ["provider", "event_id", "application_id", "case", "received_at"]
    search_fields = ["=event_id", "=application_id"]

    def has_change_permission(self, request, obj=None):
        return False
