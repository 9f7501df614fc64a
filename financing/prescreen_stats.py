"""The dashboard's measure of pre-screening: financed case acceptance (approved and completed
÷ captured) of pre-qualified patients against the rest, per location and week.

A case counts as pre-qualified when its patient's pre-screen, remembered at capture
(services/cardholder.remember_prescreen), was a pre-qualification or an existing cardholder
with available credit; the rest are everyone else (not pre-qualified, no result, not
screened). Weeks are the dashboard's cohorts: the week (Monday, UTC) of capture. One grouped
query, whatever the number of cases, scoped by the dashboard's own location list.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, Q
from django.db.models.functions import TruncWeek

from .models import PREQUALIFIED_RESULTS, CaseState, FinancedCase


def _ratio(numerator: int, denominator: int) -> Decimal | None:
    if not denominator:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


@dataclass
class Acceptance:
    prequalified_captured: int = 0
    prequalified_completed: int = 0
    rest_captured: int = 0
    rest_completed: int = 0

    @property
    def prequalified(self) -> Decimal | None:
        return _ratio(self.prequalified_completed, self.prequalified_captured)

    @property
    def rest(self) -> Decimal | None:
        return _ratio(self.rest_completed, self.rest_captured)

    def add(self, other: "Acceptance"):
        self.prequalified_captured += other.prequalified_captured
        self.prequalified_completed += other.prequalified_completed
        self.rest_captured += other.rest_captured
        self.rest_completed += other.rest_completed


def acceptance(location_ids, weeks: list[date]) -> dict:
    """(location id or None, week or None) → Acceptance, for the weeks given (Mondays)."""
    cells: dict = {}
    if not weeks:
        return cells
    start = datetime.combine(weeks[0], time.min, tzinfo=UTC)
    prequalified = Q(prescreen_outcome__in=PREQUALIFIED_RESULTS)
    completed = Q(state=CaseState.COMPLETED)
    rows = (
        FinancedCase.objects.filter(location_id__in=location_ids, captured_at__gte=start)
        .annotate(week=TruncWeek("captured_at"))
        .values("location_id", "week")
        .annotate(
            captured=Count("pk"),
            done=Count("pk", filter=completed),
            pq=Count("pk", filter=prequalified),
            pq_done=Count("pk", filter=prequalified & completed),
        )
        .order_by()
    )
    for row in rows:
        week = row["week"].date() if hasattr(row["week"], "date") else row["week"]
        cell = Acceptance(row["pq"], row["pq_done"], row["captured"] - row["pq"], row["done"] - row["pq_done"])
        for key in ((row["location_id"], week), (row["location_id"], None), (None, week), (None, None)):
            cells.setdefault(key, Acceptance()).add(cell)
    return cells


def dashboard_context(dashboard) -> dict:
    """What the dashboard's "Pre-qualified patients" section shows (templates/admin/
    financing/dashboard_prescreen.html), for the dashboard's locations and weeks."""
    cells = acceptance([loc.pk for loc in dashboard.locations], dashboard.weeks)

    def cell(location_id, week) -> Acceptance:
        return cells.get((location_id, week)) or Acceptance()

    return {
        "prescreen_overall": cell(None, None),
        "prescreen_locations": [(loc, cell(loc.pk, None)) for loc in dashboard.locations],
        "prescreen_weeks": [
            (week, cell(None, week), [cell(loc.pk, week) for loc in dashboard.locations])
            for week in reversed(dashboard.weeks)
        ],
    }
