""""Reconciliation": the lender's settlement reports matched against the ledger
(financing/services/reconciliation.py), the exceptions per location, each with its action.

- *Post the missing entries* (an entry missing in the PMS): the case's posting step again.
- *Mark resolved* (any other exception, or one posted by hand): a note is required.
- *Run again*: a merchant's day matched again (resolutions of the same exceptions are kept).
- *Export CSV*: every line of a date range, with the accountant's column names.

Only the locations the user covers (financing.scoping); resolved exceptions are hidden unless
asked for. Permissions: the page and the export need `view_reconciliationitem`; the actions
`change_reconciliationitem`.
"""

import logging
from datetime import date, timedelta

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseBadRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from core.inbound import id_param

from .. import display
from ..models import ReconciliationItem, ReconciliationRun
from ..ports import PartnerError
from ..scoping import locations_for, scoped
from ..services import reconciliation
from ..spreadsheet import DATE, MONEY, Column, Export

log = logging.getLogger(__name__)
Outcome = ReconciliationItem.Outcome
VIEW, CHANGE = "financing.view_reconciliationitem", "financing.change_reconciliationitem"
RECENT_RUNS = 14
EXPORT_MAX_DAYS = 400


def _require(request, perm: str):
    if not request.user.has_perm(perm):
        raise PermissionDenied


def _items_for(user):
    return scoped(ReconciliationItem.objects.all(), user)


def _merchants_for(user) -> set[str]:
    return set(locations_for(user).values_list("merchant_number", flat=True))


def _page_url(request=None, location_id=None) -> str:
    url = reverse("console-reconciliation")
    return f"{url}?location={location_id}" if location_id else url


def reconciliation_view(request):
    _require(request, VIEW)
    allowed = list(locations_for(request.user).order_by("code"))
    wanted = request.GET.get("location", "")
    wanted_id = id_param(wanted)
    shown = [loc for loc in allowed if not wanted or loc.pk == wanted_id]
    show_resolved = request.GET.get("resolved") == "1"
    items = (
        ReconciliationItem.objects.filter(location__in=shown)
        .exclude(outcome=Outcome.MATCHED)
        .select_related("run", "case", "location", "resolved_by")
        .order_by("-run__day", "location__code", "pk")
    )
    if not show_resolved:
        items = items.filter(resolved_at=None)
    groups = []
    for location in shown:
        rows = [item for item in items if item.location_id == location.pk]
        groups.append({"location": location, "rows": rows, "open": sum(1 for r in rows if r.resolved_at is None)})
    merchants = {loc.merchant_number for loc in shown}
    # A merchant number says nothing to a clerk: "…0002 (demo-north)".
    where = {number: ", ".join(sorted(loc.code for loc in shown if loc.merchant_number == number)) for number in merchants}
    runs = list(ReconciliationRun.objects.filter(merchant_number__in=merchants).order_by("-day", "merchant_number")[:RECENT_RUNS])
    today = reconciliation.lender_day()
    for run in runs:
        run.where = where.get(run.merchant_number, "")
        # A day not over yet at the lender has no final report: rerun_view refuses it, so
        # it is not offered.
        run.over = run.day < today
    context = {
        **admin.site.each_context(request),
        "title": "Reconciliation",
        "allowed": allowed,
        "selected": wanted_id if wanted else None,
        "groups": groups,
        "runs": runs,
        "show_resolved": show_resolved,
        "can_act": request.user.has_perm(CHANGE),
        "export_from": today - timedelta(days=31),
        "export_to": today - timedelta(days=1),
        "yesterday": today - timedelta(days=1),
        "merchants": sorted(where.items()),
    }
    return TemplateResponse(request, "admin/financing/reconciliation.html", context)


def _scoped_item(request, item_id: int) -> ReconciliationItem:
    item = _items_for(request.user).select_related("case", "run", "location").filter(pk=item_id).first()
    if item is None:
        raise Http404("No such line in your locations' reconciliation.")
    return item


def post_missing_view(request, item_id: int):
    _require(request, CHANGE)
    if request.method != "POST":
        return HttpResponseRedirect(_page_url())
    item = _scoped_item(request, item_id)
    try:
        said = reconciliation.post_missing_entries(item.pk, actor=request.user)
    except (reconciliation.ReconciliationError, PartnerError) as exc:
        messages.error(request, f"Case {item.case.reference if item.case else ''}: {exc}")
    else:
        messages.success(request, f"Case {item.case.reference}: {said} Run the day again to see it matched.")
    return HttpResponseRedirect(_page_url(location_id=item.location_id))


def resolve_view(request, item_id: int):
    _require(request, CHANGE)
    if request.method != "POST":
        return HttpResponseRedirect(_page_url())
    item = _scoped_item(request, item_id)
    try:
        reconciliation.resolve(item.pk, note=request.POST.get("note", ""), actor=request.user)
    except reconciliation.ReconciliationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Marked resolved, with your note.")
    return HttpResponseRedirect(_page_url(location_id=item.location_id))


def rerun_view(request):
    _require(request, CHANGE)
    if request.method != "POST":
        return HttpResponseRedirect(_page_url())
    merchant = request.POST.get("merchant", "")
    try:
        day = date.fromisoformat(request.POST.get("day", ""))
    except ValueError:
        return HttpResponseBadRequest("The day is a date, YYYY-MM-DD.")
    if merchant not in _merchants_for(request.user):
        raise Http404("No such merchant among your locations.")
    if day >= reconciliation.lender_day():
        messages.error(request, f"{display.day(day)} is not over yet at the lender: its report is not final.")
        return HttpResponseRedirect(_page_url())
    run = reconciliation.reconcile_day(merchant, day)
    if run.error:
        messages.error(request, f"{display.day(day)} could not be reconciled: {run.error} It is tried again later.")
    else:
        open_count = run.items.exclude(outcome=Outcome.MATCHED).filter(resolved_at=None).count()
        lines = run.items.count()
        messages.success(
            request, f"{display.day(day)} reconciled again: {lines} line{'s' if lines != 1 else ''}, {open_count} open exception{'s' if open_count != 1 else ''}."
        )
    return HttpResponseRedirect(_page_url())


# --- the accountant's CSV ----------------------------------------------------------------------


class ReconciliationExport(Export):
    business_day = Column("run__day", column_name="Business day", number_format=DATE)
    location = Column("location__name", column_name="Location")
    case = Column("case__reference", column_name="Case")
    kind = Column(column_name="Transaction")
    outcome = Column(column_name="Outcome")
    lender_transaction = Column("lender_transaction_id", column_name="CareCredit transaction")
    lender_amount = Column("lender_amount", column_name="Charged or refunded at CareCredit", number_format=MONEY)
    lender_fee = Column("lender_fee", column_name="Fees at CareCredit", number_format=MONEY)
    ledger_amount = Column("ledger_amount", column_name="Charged or refunded in the ledger", number_format=MONEY)
    ledger_fee = Column("ledger_fee", column_name="Fees in the ledger", number_format=MONEY)
    detail = Column("detail", column_name="What was found")
    resolved_on = Column(column_name="Resolved on", number_format=DATE)
    resolved_by = Column("resolved_by__username", column_name="Resolved by")
    resolution = Column("resolution", column_name="Resolution note")

    def dehydrate_kind(self, item):
        return "Refund" if item.transaction_kind == "refund" else "Purchase"

    def dehydrate_outcome(self, item):
        return item.get_outcome_display()

    def dehydrate_resolved_on(self, item):
        return item.resolved_at.astimezone(display.zone_of(item.location)).date() if item.resolved_at else None


def export_view(request):
    _require(request, VIEW)
    try:
        start = date.fromisoformat(request.GET.get("from", ""))
        end = date.fromisoformat(request.GET.get("to", ""))
    except ValueError:
        return HttpResponseBadRequest("Choose the first and the last day, as YYYY-MM-DD.")
    if end < start or (end - start).days > EXPORT_MAX_DAYS:
        return HttpResponseBadRequest(f"The last day must follow the first, at most {EXPORT_MAX_DAYS} days later.")
    rows = (
        _items_for(request.user)
        .filter(run__day__gte=start, run__day__lte=end)
        .select_related("run", "location", "case", "resolved_by")
        .order_by("run__day", "location__code", "pk")
    )
    log.info("reconciliation export by user %s: %s to %s", request.user.pk, start, end)
    return ReconciliationExport().response(rows, fmt="csv", filename=f"chairside-reconciliation-{start}-to-{end}")
