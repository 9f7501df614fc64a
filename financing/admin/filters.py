"""The list filters staff narrow the case lists with."""

from datetime import datetime, time, timedelta

from django.contrib import admin
from django.utils import timezone

from .. import pms_connection, worklist
from ..models import PMS_KIND_CHOICES, CaseState
from .base import ScopedLocationFilter, scope_locations


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
    """The work of the day, kind by kind (financing.worklist defines each), plus cases stalled
    in a working state."""

    title = "needs a person"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        kinds = [(kind.key, worklist.title(kind)) for kind in worklist.KINDS]
        return kinds + [("stalled", "Working state for over a day")]

    def queryset(self, request, queryset):
        if self.value() in worklist.KIND:
            return queryset.filter(worklist.case_filter(self.value(), timezone.now()))
        if self.value() == "stalled":
            working = [CaseState.CAPTURED, CaseState.APPROVED, CaseState.ARRANGEMENT_WRITTEN]
            return queryset.filter(state__in=working, state_changed_at__lt=timezone.now() - timedelta(days=1))
        return queryset


class AssignedFilter(admin.SimpleListFilter):
    title = "assigned"
    parameter_name = "assigned"

    def lookups(self, request, model_admin):
        return [("me", "Assigned to me"), ("nobody", "Not assigned"), ("anyone", "Assigned to anyone")]

    def queryset(self, request, queryset):
        if self.value() == "me":
            return queryset.filter(assigned_to=request.user)
        if self.value() == "nobody":
            return queryset.filter(assigned_to__isnull=True)
        if self.value() == "anyone":
            return queryset.filter(assigned_to__isnull=False)
        return queryset


class PmsProductFilter(admin.SimpleListFilter):
    """The PMS products of the user's own locations, by name ("Dentrix Enterprise"): a
    product none of their locations runs is not offered."""

    title = "PMS product"
    parameter_name = "pms_product"
    kind_path = "location__pms_kind"

    def lookups(self, request, model_admin):
        in_scope = {kind for _, _, kind in scope_locations(request)}
        return [(kind, pms_connection.kind_label(kind)) for kind, _ in PMS_KIND_CHOICES if kind in in_scope]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        if self.value() not in dict(PMS_KIND_CHOICES):
            return queryset.none()  # junk in the URL: nothing, never a 500
        return queryset.filter(**{self.kind_path: self.value()})


class LocationPmsProductFilter(PmsProductFilter):
    kind_path = "pms_kind"


class CaseLocationFilter(ScopedLocationFilter):
    location_path = "case__location_id"
