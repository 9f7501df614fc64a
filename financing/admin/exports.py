"""The case list as a file, with its current filters and search, scoped like the list."""

import csv
import logging

from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ERROR_FLAG
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone

log = logging.getLogger(__name__)


class CaseExport:
    """The case admin's export view (mixed into FinancedCaseAdmin)."""

    EXPORT_COLUMNS = [
        "reference", "location", "state", "state_reason", "promotion", "coordinator", "patient_id",
        "plan_total", "financed_amount", "recurring_amount", "number_of_payments", "first_payment_date",
        "pms_arrangement_id", "captured_at", "arrangement_written_at", "completed_at",
    ]

    def export_view(self, request):
        """The list as CSV, with its current filters and search, scoped like the list."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
            queryset = changelist.get_queryset(request).select_related("location", "coordinator", "arrangement")
        except IncorrectLookupParameters:
            # A filter value the field cannot read (?location__id__exact=abc): the list
            # page's own answer to it, not a 500.
            return HttpResponseRedirect(reverse("admin:financing_financedcase_changelist") + f"?{ERROR_FLAG}=1")
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
