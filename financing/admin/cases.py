"""The case list and the case page."""


from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import unquote
from django.db.models import Q
from django.utils import timezone
from django.utils.html import format_html

from .. import display, services
from ..dashboard import duration
from ..models import (
    CaseState,
    FinancedCase,
    WriteStatus,
)
from ..timeline import build_story
from .base import LocationScopedAdmin, ScopedHistoryAdmin, ScopedLocationFilter
from .case_actions import CancelForm, CaseActions
from .exports import CaseExport, ListExport
from .filters import AttentionFilter, CapturedFilter

STATE_COLORS = {
    CaseState.NEEDS_ATTENTION: "#b42318",
    CaseState.COMPLETED: "#067647",
    CaseState.DECLINED: "#6b7280",
    CaseState.EXPIRED: "#6b7280",
    CaseState.CANCELLED: "#6b7280",
}


@admin.register(FinancedCase)

class FinancedCaseAdmin(CaseActions, ListExport, LocationScopedAdmin, ScopedHistoryAdmin):
    list_display = [
        "reference",
        "state_badge",
        "location_code",
        "coordinator",
        "plan_total_money",
        "financed_money",
        "in_state_for",
        "attention",
    ]
    list_filter = ["state", ScopedLocationFilter, CapturedFilter, "promotion", AttentionFilter]
    list_select_related = ["location", "coordinator", "arrangement"]
    list_per_page = 50
    search_fields = ["reference", "patient_id"]  # exact matches only: see get_search_results
    search_help_text = "Exact case reference (CS-…) or PMS patient id."
    show_full_result_count = False
    ordering = ["-pk"]
    actions = ["resume_cases", "retry_steps", "cancel_cases"]
    change_form_template = "admin/financing/financedcase/change_form.html"
    change_list_template = "admin/financing/export_change_list.html"
    object_history_template = "admin/financing/financedcase/object_history.html"
    export_class = CaseExport
    export_related = ["location", "coordinator", "arrangement"]
    fieldsets = [
        (
            "Raw record",
            {
                "classes": ["collapse"],
                "fields": [
                    ("reference", "state", "resume_state"),
                    ("location", "coordinator", "promotion"),
                    ("patient_id", "guarantor_id", "treatment_plan_id"),
                    "pms_identity",
                    ("plan_total_money", "requested_down_payment_money"),
                    ("application_id", "apply_url", "patient_consents_to_messages"),
                    ("step_attempts", "next_attempt_at"),
                    "last_error",
                    ("captured_at", "application_sent_at", "decided_at"),
                    ("arrangement_written_at", "completed_at", "state_changed_at"),
                ],
            },
        )
    ]
    readonly_fields = [
        "reference",
        "state",
        "resume_state",
        "location",
        "coordinator",
        "promotion",
        "patient_id",
        "guarantor_id",
        "treatment_plan_id",
        "pms_identity",
        "plan_total_money",
        "requested_down_payment_money",
        "application_id",
        "apply_url",
        "patient_consents_to_messages",
        "step_attempts",
        "next_attempt_at",
        "last_error",
        "captured_at",
        "application_sent_at",
        "decided_at",
        "arrangement_written_at",
        "completed_at",
        "state_changed_at",
    ]

    def has_add_permission(self, request):
        return False  # cases start from the API (or the PMS), where the plan is checked

    def has_delete_permission(self, request, obj=None):
        return False

    def get_search_results(self, request, queryset, search_term):
        """Exact, index-backed matches: a reference (any case) or a PMS patient id."""
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(Q(reference=term.upper()) | Q(patient_id=term)), False

    def get_object(self, request, object_id, from_field=None):
        # One query for the case and everything the story shows one of.
        queryset = self.get_queryset(request).select_related(*services.CASE_RELATED, "shadow_comparison")
        try:
            return queryset.get(pk=int(object_id))
        except (FinancedCase.DoesNotExist, ValueError, TypeError):
            return None

    def history_view(self, request, object_id, extra_context=None):
        """simple-history's page, headed by the staff actions of the admin's own log."""
        actions = LogEntry.objects.filter(
            content_type_id=services.case_content_type().pk, object_id=str(unquote(object_id))
        ).select_related("user").order_by("-action_time", "-pk")
        return super().history_view(request, object_id, extra_context={"staff_actions": actions, **(extra_context or {})})

    # -- list columns

    @admin.display(description="State", ordering="state")
    def state_badge(self, case):
        return format_html(
            '<span class="case-state" style="color:{};font-weight:600">{}</span>',
            STATE_COLORS.get(case.state, "#1d4ed8"),
            case.get_state_display(),
        )

    @admin.display(description="Location", ordering="location__code")
    def location_code(self, case):
        return case.location.code

    # Money columns end in _money: the console's CSS right-aligns them (base_site.html).
    @admin.display(description="Plan total", ordering="plan_total")
    def plan_total_money(self, case):
        return display.money(case.plan_total)

    @admin.display(description="Financed")
    def financed_money(self, case):
        arrangement = getattr(case, "arrangement", None)
        return display.money(arrangement.financed_amount if arrangement else None)

    @admin.display(description="Down payment asked")
    def requested_down_payment_money(self, case):
        return display.money(case.requested_down_payment)

    @admin.display(description="In state for", ordering="state_changed_at")
    def in_state_for(self, case):
        return duration((timezone.now() - case.state_changed_at).total_seconds())

    @admin.display(description="Needs attention because")
    def attention(self, case):
        if case.state == CaseState.NEEDS_ATTENTION:
            reason = case.state_reason
        elif case.next_attempt_at and case.last_error:
            reason = f"Retrying: {case.last_error}"
        else:
            return ""
        # The whole reason is on the case page (and in the tooltip); the list stays scannable.
        short = reason if len(reason) <= 110 else reason[:108].rstrip() + "…"
        return format_html('<span title="{}">{}</span>', reason, short)

    # -- the case page

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            story = build_story(obj)
            can_change = self.has_change_permission(request, obj)
            context.update(
                story=story,
                effective=obj.arrangement.template_snapshot if story.arrangement else None,
                can_change=can_change,
                can_correct=can_change and request.user.has_perm("financing.add_correction")
                and story.arrangement is not None and story.arrangement.write_status == WriteStatus.WRITTEN,
                can_resume=can_change and obj.state == CaseState.NEEDS_ATTENTION,
                can_retry=can_change and obj.state in services.STEP_FOR_STATE,
                can_cancel=can_change and CaseState.CANCELLED in services.ALLOWED_TRANSITIONS[obj.state],
                can_resend=can_change and obj.coordinator_id is not None
                and (obj.state == CaseState.DECLINED or (obj.state == CaseState.COMPLETED and story.arrangement is not None and story.arrangement.write_status == WriteStatus.WRITTEN)),
                can_compare=can_change and story.arrangement is not None and story.arrangement.write_status == WriteStatus.SHADOW,
                cancel_form=CancelForm(),
                show_save=False,
                show_save_and_continue=False,
                show_save_and_add_another=False,
                show_delete=False,
            )
        return super().render_change_form(request, context, add, change, form_url, obj)
