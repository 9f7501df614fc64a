""""Needs you today": the console's landing page (the admin index, /admin/).

Per location the staff member covers (financing.scoping), each kind of work of the day
(financing.worklist), oldest first, each row a link to its case; the counts per location
link to the case list filtered the same way. Below it, the rest of the admin index (every
list the person may open), so nothing the stock index offered is lost.

A fixed number of queries whatever the data: one for the locations, three for the counts,
one per kind for its oldest `worklist.LIST_LIMIT` rows.
"""

from dataclasses import dataclass
from urllib.parse import urlencode

from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from core.inbound import id_param

from .. import worklist
from ..scoping import locations_for


@dataclass
class Group:
    kind: worklist.Kind
    title: str
    items: list
    total: int
    list_url: str
    empty: str = ""

    @property
    def more(self) -> int:
        return self.total - len(self.items)


def today_view(request):
    context = {**admin.site.each_context(request), "title": "Needs you today"}
    context["app_list"] = context["available_apps"]  # the stock index's list, built once
    context["can_view_cases"] = request.user.has_perm("financing.view_financedcase")
    if context["can_view_cases"]:
        context.update(_work(request))
    return TemplateResponse(request, "admin/financing/today.html", context)


def _work(request) -> dict:
    now = timezone.now()
    allowed = list(locations_for(request.user).order_by("code"))
    wanted = request.GET.get("location", "")
    wanted_id = id_param(wanted)
    # Another location's id, or junk, shows nothing (never a 500, never their counts).
    shown = [loc for loc in allowed if not wanted or loc.pk == wanted_id]
    ids = [loc.pk for loc in shown]
    counts = worklist.counts(ids, now)
    changelist = reverse("admin:financing_financedcase_changelist")

    def list_url(key, location_id=None):
        query = {"attention": key}
        if location_id or wanted_id:
            query["location"] = location_id or wanted_id
        return f"{changelist}?{urlencode(query)}"

    lenders = " or ".join(sorted({loc.lender_name for loc in shown})) or "the lender"
    groups = [
        Group(
            kind=kind,
            title=worklist.title(kind, lenders),
            items=worklist.oldest(kind.key, ids, now),
            total=counts.total(kind.key),
            list_url=list_url(kind.key),
            empty=worklist.empty(kind),
        )
        for kind in worklist.KINDS
    ]
    rows = [
        {
            "location": loc,
            "cells": [(counts.of(loc.pk, kind.key), list_url(kind.key, loc.pk)) for kind in worklist.KINDS],
            "total": counts.location_total(loc.pk),
        }
        for loc in shown
    ]
    return {
        "groups": groups,
        "rows": rows,
        "totals": [(group.total, group.list_url) for group in groups],
        "grand_total": counts.grand_total,
        "allowed": allowed,
        "selected_location": str(wanted_id) if wanted_id else "",
        "now": now,
        "assigned_url": f"{changelist}?assigned=me",
    }
