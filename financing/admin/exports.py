"""A list as a file (CSV or XLSX), with its current filters and search, scoped like the list.

The columns of each export are declared here (django-import-export resources); how a file
is written — streamed, formulas neutralised — is `financing.spreadsheet`.
"""

import logging

from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ERROR_FLAG
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone

from .. import display, pms_connection
from ..spreadsheet import DATE, FORMATS, MONEY, Column, Export

log = logging.getLogger(__name__)


def on_location_clock(moment, location):
    """A stored (UTC) moment on its location's clock, still a datetime: CSV writes it with
    its offset, XLSX as that wall clock (with the export's time_zone column)."""
    return None if moment is None else moment.astimezone(display.zone_of(location))


def audited_filter(params) -> str:
    """The export's filter for the audit log, with any search term's value left out."""
    shown = params.copy()
    if shown.get("q"):
        shown["q"] = "(a search)"
    return shown.urlencode() or "no filter"


class CaseExport(Export):
    reference = Column("reference", column_name="reference")
    location = Column("location__code", column_name="location")
    pms_product = Column(column_name="pms_product")
    state = Column("state", column_name="state")
    state_reason = Column("state_reason", column_name="state_reason")
    promotion = Column("promotion", column_name="promotion")
    coordinator = Column("coordinator__username", column_name="coordinator")
    patient_id = Column("patient_id", column_name="patient_id")
    plan_total = Column("plan_total", column_name="plan_total", number_format=MONEY)
    financed_amount = Column("arrangement__financed_amount", column_name="financed_amount", number_format=MONEY)
    recurring_amount = Column("arrangement__recurring_amount", column_name="recurring_amount", number_format=MONEY)
    number_of_payments = Column("arrangement__number_of_payments", column_name="number_of_payments")
    first_payment_date = Column("arrangement__first_payment_date", column_name="first_payment_date", number_format=DATE)
    pms_arrangement_id = Column("arrangement__pms_arrangement_id", column_name="pms_arrangement_id")
    captured_at = Column(column_name="captured_at")
    arrangement_written_at = Column(column_name="arrangement_written_at")
    completed_at = Column(column_name="completed_at")
    time_zone = Column("location__timezone", column_name="time_zone")

    def dehydrate_pms_product(self, case):
        return pms_connection.kind_label(case.location.pms_kind)  # by its name: "Dentrix Enterprise"

    def dehydrate_captured_at(self, case):
        return on_location_clock(case.captured_at, case.location)

    def dehydrate_arrangement_written_at(self, case):
        return on_location_clock(case.arrangement_written_at, case.location)

    def dehydrate_completed_at(self, case):
        return on_location_clock(case.completed_at, case.location)


class CorrectionExport(Export):
    recorded_at = Column(column_name="recorded_at")
    case = Column("case__reference", column_name="case")
    location = Column("case__location__code", column_name="location")
    field = Column("field", column_name="field")
    # As recorded (money and APR as plain decimals, dates ISO): a term's kind is per row.
    before = Column("before", column_name="before")
    after = Column("after", column_name="after")
    why = Column("why", column_name="why")
    recorded_by = Column("actor__username", column_name="recorded_by")
    time_zone = Column("case__location__timezone", column_name="time_zone")

    def dehydrate_recorded_at(self, correction):
        return on_location_clock(correction.created_at, correction.case.location)


class ListExport:
    """`export.csv` and `export.xlsx` for a list: what the list shows now (filters, search,
    scope), every row. Mixed into a LocationScopedAdmin; `export_class` declares the columns."""

    export_class = None
    export_related = ()  # joined in the same query: no query per row

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view(self.export_view)
        return [
            path(f"export.{fmt}", view, {"fmt": fmt}, name="%s_%s_export_%s" % (*info, fmt)) for fmt in FORMATS
        ] + super().get_urls()

    def export_view(self, request, fmt):
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
            queryset = changelist.get_queryset(request).select_related(*self.export_related)
        except IncorrectLookupParameters:
            # A filter value the field cannot read (?location__id__exact=abc): the list
            # page's own answer to it, not a 500.
            info = self.opts.app_label, self.opts.model_name
            return HttpResponseRedirect(reverse("admin:%s_%s_changelist" % info) + f"?{ERROR_FLAG}=1")
        # Exports are audited: who took which rows out (the filter, never PHI: a search term
        # can be a patient's surname, so only that there was one).
        log.info("%s export (%s) by user %s (%s)", self.opts.model_name, fmt, request.user.pk, audited_filter(request.GET))
        name = f"chairside-{self.opts.verbose_name_plural.replace(' ', '-')}-{timezone.now().date()}"
        return self.export_class().response(queryset, fmt=fmt, filename=name)
