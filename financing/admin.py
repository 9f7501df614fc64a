"""The billing console: the Django admin as the central billing team's operations console.

- Scope: a staff member sees and acts on the locations of their memberships only (a
  superuser on all), in every list, filter, search, autocomplete, export and count. Every
  queryset goes through `scoped()`.
- State belongs to the state machine: case pages are read-only, and every action calls a
  named service in `financing.services`.
- Lists stay fast on big tables: exact-match search on indexed columns, no facet counts,
  no full-table count, related rows joined, not fetched one by one.
"""

import csv
import logging
from datetime import datetime, time, timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import ShowFacets
from django.core.paginator import Paginator
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.contrib.admin.utils import unquote
from django.http import Http404
from simple_history.admin import SimpleHistoryAdmin

from . import services
from .dashboard import duration
from .models import (
    OVERRIDABLE_TEMPLATE_FIELDS,
    ArrangementTemplate,
    CaseState,
    Correction,
    FinancedCase,
    InboundEvent,
    Location,
    Membership,
    ShadowComparison,
    TemplateOverride,
    TERMINAL_STATES,
    WriteStatus,
    effective_template,
)
from .scoping import locations_for, scoped, templates_for
from .timeline import build_story

log = logging.getLogger(__name__)

admin.site.site_header = "Chairside billing console"
admin.site.site_title = "Chairside"
admin.site.index_title = "Financed cases, arrangements and corrections"


class ScopedHistoryAdmin(SimpleHistoryAdmin):
    """simple-history's pages, held to the same scope as the change page, and read-only.

    Its history views look rows up by id, not through get_queryset, and its version page
    reverts on POST: a revert would bypass the services (and the location scope), so it is
    refused outright; corrections and actions are the way to change a record.
    """

    def _in_scope(self, request, object_id):
        if not self.get_queryset(request).filter(pk=unquote(object_id)).exists():
            raise Http404("No such record in your locations.")

    def history_view(self, request, object_id, extra_context=None):
        self._in_scope(request, object_id)
        return super().history_view(request, object_id, extra_context=extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        self._in_scope(request, object_id)
        if request.method == "POST":
            raise PermissionDenied("History is read-only: reverting would bypass Chairside's services.")
        return super().history_form_view(request, object_id, version_id, extra_context=extra_context)


class CappedPaginator(Paginator):
    """Counts at most CAP rows. Counting 100,000 filtered rows on every page view costs more
    than the page itself; past CAP the list says "10,000+" and a filter or search narrows it."""

    CAP = 10_000

    @cached_property
    def count(self):
        return self.object_list[: self.CAP + 1].count()


class LocationScopedAdmin(admin.ModelAdmin):
    """Staff see only their locations' rows; `location_path` says how a row reaches one."""

    location_path = "location_id"
    show_facets = ShowFacets.NEVER  # facet counts are a COUNT per filter choice per page view
    paginator = CappedPaginator

    def get_queryset(self, request):
        return scoped(super().get_queryset(request), request.user, self.location_path)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Location:
            kwargs["queryset"] = locations_for(request.user).order_by("code")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ScopedLocationFilter(admin.SimpleListFilter):
    """The location filter, listing only the user's locations (the stock one lists all)."""

    title = "location"
    parameter_name = "location"
    location_path = "location_id"

    def lookups(self, request, model_admin):
        return [(str(pk), code) for pk, code in locations_for(request.user).order_by("code").values_list("pk", "code")]

    def queryset(self, request, queryset):
        if self.value():
            if not str(self.value()).isdigit():
                return queryset.none()  # a location code or junk in the URL: nothing, not a 500
            return queryset.filter(**{self.location_path: self.value()})
        return queryset


class CapturedFilter(admin.ListFilter):
    """Captured between two dates (inclusive), plus the usual quick ranges."""

    title = "captured"
    template = "admin/financing/captured_filter.html"
    field_path = "captured_at"
    params = ("captured_from", "captured_to")

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        self.values = {}
        for name in self.params:
            if name in params:
                value = params.pop(name)
                value = value[-1] if isinstance(value, list) else value
                try:
                    self.values[name] = datetime.strptime(value, "%Y-%m-%d").date()
                except ValueError:
                    pass
        self.today = timezone.localdate()

    def has_output(self):
        return True

    def expected_parameters(self):
        return list(self.params)

    def queryset(self, request, queryset):
        tz = timezone.get_current_timezone()
        if "captured_from" in self.values:
            queryset = queryset.filter(captured_at__gte=datetime.combine(self.values["captured_from"], time.min, tzinfo=tz))
        if "captured_to" in self.values:
            end = self.values["captured_to"] + timedelta(days=1)
            queryset = queryset.filter(captured_at__lt=datetime.combine(end, time.min, tzinfo=tz))
        return queryset

    def choices(self, changelist):
        self.form = self.form_context(changelist)  # read by the template after the choices
        quick = [
            ("Any date", None),
            ("Today", self.today),
            ("Past 7 days", self.today - timedelta(days=6)),
            ("Past 30 days", self.today - timedelta(days=29)),
        ]
        for label, since in quick:
            if since is None:
                query = changelist.get_query_string(remove=list(self.params))
                selected = not self.values
            else:
                query = changelist.get_query_string({"captured_from": since.isoformat()}, ["captured_to"])
                selected = self.values == {"captured_from": since}
            yield {"selected": selected, "query_string": query, "display": label}

    def form_context(self, changelist):
        """What the template's from/to form needs: the current values and the other params."""
        keep = []
        for key, value in changelist.params.items():
            if key in self.params:
                continue
            for item in value if isinstance(value, list) else [value]:
                keep.append((key, item))
        return {
            "from": self.values.get("captured_from", ""),
            "to": self.values.get("captured_to", ""),
            "keep": keep,
        }


class AttentionFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [
            ("needs_attention", "Needs attention"),
            ("retrying", "Retrying after an error"),
            ("stalled", "Working state for over a day"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "needs_attention":
            return queryset.filter(state=CaseState.NEEDS_ATTENTION)
        if self.value() == "retrying":
            return queryset.filter(next_attempt_at__isnull=False).exclude(state__in=TERMINAL_STATES)
        if self.value() == "stalled":
            working = [CaseState.CAPTURED, CaseState.APPROVED, CaseState.ARRANGEMENT_WRITTEN]
            return queryset.filter(state__in=working, state_changed_at__lt=timezone.now() - timedelta(days=1))
        return queryset


class ReadOnlyAdmin(LocationScopedAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- templates -------------------------------------------------------------------------------


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


# --- locations -------------------------------------------------------------------------------


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Location)
class LocationAdmin(LocationScopedAdmin, ScopedHistoryAdmin):
    location_path = "pk"
    list_display = ["code", "name", "mode", "pms_kind", "lender_kind", "merchant_number", "template"]
    list_filter = ["mode"]
    list_select_related = ["template"]
    search_fields = ["code", "name"]
    ordering = ["code"]
    inlines = [TemplateOverrideInline, MembershipInline]

    def get_readonly_fields(self, request, obj=None):
        # Only superusers rewire partner endpoints and credentials.
        if request.user.is_superuser:
            return ["effective_template_table"]
        return ["code", "pms_kind", "pms_base_url", "pms_api_key", "lender_kind", "lender_base_url", "lender_client_id", "lender_client_secret", "merchant_number", "pms_requests_per_second", "lender_requests_per_second", "effective_template_table"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # Templates are the group's standard, but a staff member only sees the ones their
        # own locations use: another location's template name is not theirs to read.
        if db_field.name == "template":
            kwargs["queryset"] = templates_for(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="Effective template")
    def effective_template_table(self, location):
        if not location.pk:
            return "—"
        effective = effective_template(location)
        rows = (
            (name.replace("_", " "), getattr(effective, name) if getattr(effective, name) is not None else "—",
             "this location" if name in effective.overridden else f"group ({effective.name})")
            for name in OVERRIDABLE_TEMPLATE_FIELDS
            if name != "note_template"
        )
        return format_html(
            "<table><tr><th>Field</th><th>Value</th><th>From</th></tr>{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )


# --- cases -----------------------------------------------------------------------------------


class CancelForm(forms.Form):
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}))


class CorrectionForm(forms.Form):
    field = forms.ChoiceField(choices=Correction._meta.get_field("field").choices)
    after = forms.CharField(max_length=255)
    why = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), label="Why")

    def __init__(self, *args, pms_name: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["field"].label = f"Field corrected in {pms_name}"
        self.fields["after"].label = f"Value {pms_name} now holds"


STATE_COLORS = {
    CaseState.NEEDS_ATTENTION: "#b42318",
    CaseState.COMPLETED: "#067647",
    CaseState.DECLINED: "#6b7280",
    CaseState.EXPIRED: "#6b7280",
    CaseState.CANCELLED: "#6b7280",
}


@admin.register(FinancedCase)
class FinancedCaseAdmin(LocationScopedAdmin, ScopedHistoryAdmin):
    list_display = [
        "reference",
        "state_badge",
        "location_code",
        "coordinator",
        "plan_total",
        "financed",
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
    change_list_template = "admin/financing/financedcase/change_list.html"
    fieldsets = [
        (
            "Raw record",
            {
                "classes": ["collapse"],
                "fields": [
                    ("reference", "state", "resume_state"),
                    ("location", "coordinator", "promotion"),
                    ("patient_id", "guarantor_id", "treatment_plan_id"),
                    ("plan_total", "requested_down_payment"),
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
        "plan_total",
        "requested_down_payment",
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

    @admin.display(description="Financed")
    def financed(self, case):
        arrangement = getattr(case, "arrangement", None)
        return arrangement.financed_amount if arrangement else "—"

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

    def get_urls(self):
        def url(suffix, view, name):
            return path(f"<int:case_id>/{suffix}/", self.admin_site.admin_view(view), name=f"financing_financedcase_{name}")

        return [
            path("export.csv", self.admin_site.admin_view(self.export_view), name="financing_financedcase_export"),
            url("resume", self.resume_view, "resume"),
            url("retry", self.retry_view, "retry"),
            url("cancel", self.cancel_view, "cancel"),
            url("resend", self.resend_view, "resend"),
            url("compare", self.compare_view, "compare"),
            url("correct", self.correction_view, "correct"),
        ] + super().get_urls()

    def _case_for_action(self, request, case_id):
        """The case, only if it is in the user's scope and they may change it (else 404/403)."""
        case = get_object_or_404(self.get_queryset(request), pk=case_id)
        if not self.has_change_permission(request, case):
            raise PermissionDenied
        return case

    def _back(self, case_id):
        return HttpResponseRedirect(reverse("admin:financing_financedcase_change", args=[case_id]))

    def _post_only(self, request, case_id, action):
        if request.method != "POST":
            return self._back(case_id)
        case = self._case_for_action(request, case_id)
        try:
            message = action(case)
        except (services.InvalidTransition, services.IntakeError) as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, message, messages.SUCCESS)
        return self._back(case.pk)

    def resume_view(self, request, case_id):
        return self._post_only(
            request, case_id,
            lambda case: f"{services.resume_case(case.pk, actor=request.user).reference} resumed: the step it stopped at runs again.",
        )

    def retry_view(self, request, case_id):
        return self._post_only(
            request, case_id, lambda case: f"{services.retry_step(case.pk, actor=request.user).reference}: the current step runs again now."
        )

    def cancel_view(self, request, case_id):
        form = CancelForm(request.POST or None)
        if request.method == "POST" and not form.is_valid():
            self.message_user(request, "Give a reason to cancel the case.", messages.ERROR)
            return self._back(case_id)
        return self._post_only(
            request, case_id,
            lambda case: f"{services.cancel_case(case.pk, reason=form.cleaned_data['reason'], actor=request.user).reference} cancelled.",
        )

    def resend_view(self, request, case_id):
        return self._post_only(
            request, case_id,
            lambda case: f"The {services.resend_confirmation(case.pk, actor=request.user)} confirmation is on its way to the coordinator again.",
        )

    def compare_view(self, request, case_id):
        def compare(case):
            comparison = services.compare_shadow(case.pk, actor=request.user)
            return f"Compared again with {case.location.pms_name}: {comparison.get_outcome_display().lower()}."

        return self._post_only(request, case_id, compare)

    def correction_view(self, request, case_id):
        case = self._case_for_action(request, case_id)
        if not request.user.has_perm("financing.add_correction"):
            raise PermissionDenied
        arrangement = getattr(case, "arrangement", None)
        form = CorrectionForm(request.POST or None, initial={"field": request.GET.get("field", "")}, pms_name=case.location.pms_name)
        if request.method == "POST" and form.is_valid():
            try:
                correction = services.record_correction(
                    case.pk,
                    field=form.cleaned_data["field"],
                    after=form.cleaned_data["after"],
                    why=form.cleaned_data["why"],
                    actor=request.user,
                )
            except services.CorrectionError as exc:
                for name, message in exc.fields.items():
                    form.add_error(name if name in form.fields else None, message)
            else:
                self.message_user(
                    request,
                    f"Correction recorded: {correction.field.replace('_', ' ')} {correction.before} → {correction.after}.",
                    messages.SUCCESS,
                )
                return self._back(case.pk)
        current = {name: getattr(arrangement, name) for name in Correction.FIELDS} if arrangement else {}
        context = {
            **self.admin_site.each_context(request),
            "title": f"Record a correction to {case.reference}",
            "case": case,
            "arrangement": arrangement,
            "current": current,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/financing/financedcase/correction_form.html", context)

    # -- list actions

    @admin.action(description="Resume selected cases that need attention", permissions=["change"])
    def resume_cases(self, request, queryset):
        done = 0
        for case_id in queryset.filter(state=CaseState.NEEDS_ATTENTION).values_list("pk", flat=True):
            services.resume_case(case_id, actor=request.user)
            done += 1
        self.message_user(request, f"Resumed {done} case(s).", messages.SUCCESS if done else messages.WARNING)

    @admin.action(description="Retry the current step of selected cases now", permissions=["change"])
    def retry_steps(self, request, queryset):
        done = 0
        for case_id in queryset.values_list("pk", flat=True):
            try:
                services.retry_step(case_id, actor=request.user)
                done += 1
            except services.InvalidTransition as exc:
                self.message_user(request, str(exc), messages.WARNING)
        self.message_user(request, f"Retried {done} case(s).", messages.SUCCESS if done else messages.WARNING)

    @admin.action(description="Cancel selected cases (asks for a reason)", permissions=["change"])
    def cancel_cases(self, request, queryset):
        form = CancelForm(request.POST if "reason" in request.POST else None)
        if form.is_bound and form.is_valid():
            done = 0
            for case_id in queryset.values_list("pk", flat=True):
                try:
                    services.cancel_case(case_id, reason=form.cleaned_data["reason"], actor=request.user)
                    done += 1
                except services.InvalidTransition as exc:
                    self.message_user(request, str(exc), messages.WARNING)
            self.message_user(request, f"Cancelled {done} case(s).", messages.SUCCESS if done else messages.WARNING)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Cancel cases",
            "cases": queryset.select_related("location")[:200],
            "form": form,
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "select_across": request.POST.get("select_across", "0"),
        }
        return TemplateResponse(request, "admin/financing/financedcase/cancel_selected.html", context)

    # -- export

    EXPORT_COLUMNS = [
        "reference", "location", "state", "state_reason", "promotion", "coordinator", "patient_id",
        "plan_total", "financed_amount", "recurring_amount", "number_of_payments", "first_payment_date",
        "pms_arrangement_id", "captured_at", "arrangement_written_at", "completed_at",
    ]

    def export_view(self, request):
        """The list as CSV, with its current filters and search, scoped like the list."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        queryset = changelist.get_queryset(request).select_related("location", "coordinator", "arrangement")
        log.info("case export by user %s (%s)", request.user.pk, request.GET.urlencode() or "no filter")

        class Echo:
            def write(self, value):
                return value

        writer = csv.writer(Echo())

        def rows():
            yield writer.writerow(self.EXPORT_COLUMNS)
            for case in queryset.iterator(chunk_size=2000):
                arrangement = getattr(case, "arrangement", None)
                yield writer.writerow(
                    [
                        case.reference, case.location.code, case.state, case.state_reason, case.promotion,
                        case.coordinator.get_username() if case.coordinator else "", case.patient_id, case.plan_total,
                        *(
                            [arrangement.financed_amount, arrangement.recurring_amount, arrangement.number_of_payments,
                             arrangement.first_payment_date, arrangement.pms_arrangement_id]
                            if arrangement else ["", "", "", "", ""]
                        ),
                        case.captured_at.isoformat(),
                        case.arrangement_written_at.isoformat() if case.arrangement_written_at else "",
                        case.completed_at.isoformat() if case.completed_at else "",
                    ]
                )

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="chairside-cases-{timezone.now().date()}.csv"'
        return response


# --- what hangs off cases --------------------------------------------------------------------


class CaseLocationFilter(ScopedLocationFilter):
    location_path = "case__location_id"


@admin.register(Correction)
class CorrectionAdmin(ReadOnlyAdmin, ScopedHistoryAdmin):
    """Corrections are recorded from the case page (through the service), never edited."""

    location_path = "case__location_id"
    list_display = ["created_at", "case", "location_code", "field", "before", "after", "why", "actor"]
    list_filter = [CaseLocationFilter, "field"]
    list_select_related = ["case", "case__location", "actor"]
    search_fields = ["case__reference"]
    show_full_result_count = False
    ordering = ["-created_at"]

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        return (queryset.filter(case__reference=term.upper()), False) if term else (queryset, False)

    @admin.display(description="Location", ordering="case__location__code")
    def location_code(self, correction):
        return correction.case.location.code


@admin.register(ShadowComparison)
class ShadowComparisonAdmin(ReadOnlyAdmin):
    """Shadow mode's evidence, per location: where Chairside and the hand-entered agreement differ."""

    list_display = ["case", "location", "outcome", "discrepancy_count", "differences", "pms_agreement_id", "compared_at"]
    list_filter = [ScopedLocationFilter, "outcome"]
    list_select_related = ["case", "location"]
    show_full_result_count = False
    ordering = ["-compared_at"]
    actions = ["compare_again"]

    @admin.display(description="Differences")
    def differences(self, comparison):
        if not comparison.discrepancies:
            return comparison.detail or "—"
        return format_html(
            "<ul class='shadow-diffs'>{}</ul>",
            format_html_join(
                "", "<li>{}: Chairside {}, {} {}</li>",
                (
                    (d["field"].replace("_", " "), d["chairside"], comparison.location.pms_name, d["dentrix"])
                    for d in comparison.discrepancies
                ),
            ),
        )

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
    list_display = ["provider", "event_id", "application_id", "case", "received_at"]
    list_select_related = ["case"]
    search_fields = ["=event_id", "=application_id"]
    show_full_result_count = False
