"""The case list and the case page."""


from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import unquote
from django.db.models import Q
from django.utils import timezone
from django.utils.html import format_html

from core import blind_index

from .. import display, partners, services, worklist
from ..dashboard import duration
from ..models import (
    CaseState,
    FinancedCase,
    WriteStatus,
)
from ..services.capture import SURNAME
from ..timeline import build_story
from .base import LocationScopedAdmin, ScopedHistoryAdmin, ScopedLocationFilter
from .case_actions import CancelForm, CaseActions, ChargeNowForm, refund_context
from .money import money_box
from .casework import CaseworkActions
from .exports import CaseExport, ListExport
from .filters import AssignedFilter, AttentionFilter, CapturedFilter, PmsProductFilter

STATE_COLORS = {
    CaseState.NEEDS_ATTENTION: "#b42318",
    CaseState.COMPLETED: "#067647",
    CaseState.DECLINED: "#6b7280",
    CaseState.EXPIRED: "#6b7280",
    CaseState.CANCELLED: "#6b7280",
}


@admin.register(FinancedCase)

class FinancedCaseAdmin(CaseActions, CaseworkActions, ListExport, LocationScopedAdmin, ScopedHistoryAdmin):
    list_display = [
        "reference",
        "state_badge",
        "location_code",
        "patient",
        "captured",
        "promotion_label",
        "coordinator",
        "plan_total_money",
        "financed_money",
        "in_state_for",
        "assigned",
        "attention",
    ]
    list_filter = ["state", ScopedLocationFilter, PmsProductFilter, CapturedFilter, "promotion", AttentionFilter, AssignedFilter]
    list_select_related = ["location", "coordinator", "arrangement", "assigned_to"]
    list_per_page = 50
    search_fields = ["reference", "patient_id"]  # exact matches only: see get_search_results
    search_help_text = "Exact case reference (CS-…), PMS patient id, or the patient's whole surname (any case, accents or not)."
    show_full_result_count = False
    ordering = ["-pk"]
    actions = ["resume_cases", "retry_steps", "cancel_cases", "assign_to_me", "unassign"]
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
                    ("production_awaited_at", "production_posted_at"),
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
        "production_awaited_at",
        "production_posted_at",
        "arrangement_written_at",
        "completed_at",
        "state_changed_at",
    ]

    def has_add_permission(self, request):
        return False  # cases start from the API (or the PMS), where the plan is checked

    def has_delete_permission(self, request, obj=None):
        return False

    def get_search_results(self, request, queryset, search_term):
        """Exact, index-backed matches: a reference (any case), a PMS patient id, or a surname
        through its keyed search token (core.blind_index): the names stay encrypted, and no
        row is decrypted to search. Cases captured before the token existed have none."""
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(reference=term.upper()) | Q(patient_id=term)
        surname_tokens = blind_index.tokens(SURNAME, term)
        if surname_tokens:
            match |= Q(surname_token__in=surname_tokens)
        return queryset.filter(match), False

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

    @admin.display(description="Patient")
    def patient(self, case):
        """"Ava T.", and who pays when it is someone else (the agreement is on their account)."""
        if not case.guarantor_id or case.guarantor_id == case.patient_id:
            return case.patient_short_name or display.NOTHING
        return format_html(
            '{}<br><span class="muted">guarantor {}</span>',
            case.patient_short_name or display.NOTHING,
            case.guarantor_short_name or f"account {case.guarantor_id}",
        )

    @admin.display(description="Captured", ordering="captured_at")
    def captured(self, case):
        return display.day(case.captured_at, case.location)  # the date where the location is

    @admin.display(description="Promotion", ordering="promotion")
    def promotion_label(self, case):
        return case.get_promotion_display()

    @admin.display(description="Assigned to", ordering="assigned_to__username")
    def assigned(self, case):
        return case.assigned_to.get_username() if case.assigned_to else ""

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
        elif case.state in worklist.DRIVEN_STATES and case.last_error:
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
                # The page is the case, not a form to change it.
                title=f"Case {obj.reference}",
                subtitle=None,
                story=story,
                # The location's PMS product, what it calls the record, how it names its ids.
                pms={
                    "name": partners.pms_name(obj.location),
                    "record": partners.pms_record_name(obj.location),
                    "ids": partners.pms_id_labels(obj.location),
                },
                effective=obj.arrangement.template_snapshot if story.arrangement else None,
                can_change=can_change,
                can_correct=can_change and request.user.has_perm("financing.add_correction")
                and story.arrangement is not None and story.arrangement.write_status == WriteStatus.WRITTEN,
                can_resume=can_change and obj.state == CaseState.NEEDS_ATTENTION,
                can_retry=can_change and bool(services.step_for(obj)),
                can_cancel=can_change and CaseState.CANCELLED in services.ALLOWED_TRANSITIONS[obj.state],
                can_resend=can_change and obj.coordinator_id is not None
                and (obj.state == CaseState.DECLINED or (obj.state == CaseState.COMPLETED and story.arrangement is not None and story.arrangement.write_status == WriteStatus.WRITTEN)),
                can_compare=can_change and story.arrangement is not None and story.arrangement.write_status == WriteStatus.SHADOW,
                cancel_form=CancelForm(),
                refund_cancel_form=CancelForm(auto_id="id_refund_cancel_%s"),  # the same page: its own id
                money_back=refund_context(request.user, obj, can_change),
                money=money_box(obj, request.user, can_change=can_change),
                charge_now_form=ChargeNowForm(),
                show_save=False,
                show_save_and_continue=False,
                show_save_and_add_another=False,
                show_delete=False,
            )
        return super().render_change_form(request, context, add, change, form_url, obj)
