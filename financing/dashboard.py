"""The owner's dashboard: the numbers per location, week by week.

- **Time to approval**: from capture (the patient's "yes") to the lender's approval; median
  and p90, nearest-rank.
- **Time to arrangement**: the hand-off, from the approval — or from the treatment posted in
  the PMS, when the case waited for it (a PMS that writes a plan only over posted production)
  — to the arrangement written; median and p90. A wait for treatment is not a slow hand-off,
  so it is counted on its own:
- **Wait for treatment**: how many cases waited for their treatment to be posted, the median
  of the finished waits, and how many still wait.
- **Financed case acceptance**: cases that were approved and completed ÷ cases captured.
- **Ledger correction volume**: corrections recorded ÷ arrangements written.

Cases are grouped by the week (Monday, UTC) they were captured in, so each week is a
cohort: its numbers can still move while its cases finish or get corrected. Every number
is aggregated by the database in a fixed number of queries, whatever the number of cases,
and every query is scoped to the user's locations.
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.contrib import admin
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Window
from django.db.models.functions import Coalesce, Greatest, RowNumber, TruncWeek
from django.template.response import TemplateResponse
from django.utils import dateformat, timezone

from core.inbound import id_param

from . import money_stats, pms_connection, prescreen_stats, worklist
from .charts import Series, line_chart
from .models import PMS_KIND_CHOICES, CaseState, Correction, FinancedCase, ShadowComparison
from .scoping import locations_for
from .spreadsheet import DATE, HOURS, RATIO, Column, Export

log = logging.getLogger(__name__)

WEEK_CHOICES = (4, 12, 26, 52)
DEFAULT_WEEKS = 12
CHART_LOCATIONS = 7  # more lines than this is noise: filter by location to see others


@dataclass
class Cell:
    captured: int = 0
    completed: int = 0
    written: int = 0
    corrections: int = 0
    # Time to arrangement: the hand-off (approval, or the treatment posted if later → written).
    median_seconds: float | None = None
    p90_seconds: float | None = None
    # Time to approval: capture → the lender's approval.
    approval_median_seconds: float | None = None
    approval_p90_seconds: float | None = None
    # The wait for treatment: cases that waited for it to be posted, the median finished wait,
    # and those still waiting.
    waited: int = 0
    waiting: int = 0
    wait_median_seconds: float | None = None
    wait_p90_seconds: float | None = None

    @property
    def acceptance(self) -> Decimal | None:
        return _ratio(self.completed, self.captured)

    @property
    def corrections_per_arrangement(self) -> Decimal | None:
        return _ratio(self.corrections, self.written)

    def add_counts(self, other: "Cell"):
        self.captured += other.captured
        self.completed += other.completed
        self.written += other.written
        self.corrections += other.corrections
        self.waited += other.waited
        self.waiting += other.waiting


@dataclass
class ShadowSummary:
    compared: int = 0
    match: int = 0
    mismatch: int = 0
    missing: int = 0
    error: int = 0
    fields_differing: int = 0


@dataclass
class Dashboard:
    weeks: list[date]
    locations: list  # the Location rows shown, in code order
    allowed: list  # every location the user may see (for the filter)
    # (location id or None for "all shown", week or None for the whole period) → Cell
    cells: dict = field(default_factory=dict)
    shadow: dict = field(default_factory=dict)  # location id → ShadowSummary
    work: worklist.Counts = field(default_factory=worklist.Counts)  # the work of the day, now

    def cell(self, location_id, week) -> Cell:
        return self.cells.get((location_id, week)) or Cell()


def _ratio(numerator: int, denominator: int) -> Decimal | None:
    if not denominator:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def build_dashboard(user, *, weeks: int = DEFAULT_WEEKS, location_ids=None, today: date | None = None) -> Dashboard:
    today = today or timezone.now().date()
    first_week = week_start(today) - timedelta(weeks=weeks - 1)
    week_list = [first_week + timedelta(weeks=i) for i in range(weeks)]

    allowed = list(locations_for(user).order_by("code"))  # query 1
    locations = [loc for loc in allowed if not location_ids or loc.pk in location_ids]
    ids = [loc.pk for loc in locations]
    dashboard = Dashboard(weeks=week_list, locations=locations, allowed=allowed)
    start = datetime.combine(first_week, time.min, tzinfo=UTC)
    cases = FinancedCase.objects.filter(location_id__in=ids, captured_at__gte=start)

    # Query 2: the counts, per location and week.
    counts = (
        cases.annotate(week=TruncWeek("captured_at"))
        .values("location_id", "week")
        .annotate(
            captured=Count("pk"),
            completed=Count("pk", filter=Q(state=CaseState.COMPLETED)),
            # Set when the agreement is written to Dentrix (never in shadow mode): no join.
            written=Count("pk", filter=Q(arrangement_written_at__isnull=False)),
            waited=Count("pk", filter=Q(production_awaited_at__isnull=False)),
            waiting=Count("pk", filter=Q(state=CaseState.AWAITING_PRODUCTION)),
        )
        .order_by()
    )
    for row in counts:
        cell = _cell(dashboard, row["location_id"], _day(row["week"]))
        cell.captured, cell.completed, cell.written = row["captured"], row["completed"], row["written"]
        cell.waited, cell.waiting = row["waited"], row["waiting"]

    # Query 3: corrections, counted in the week their case was captured.
    corrections = (
        Correction.objects.filter(case__location_id__in=ids, case__captured_at__gte=start)
        .annotate(week=TruncWeek("case__captured_at"))
        .values("case__location_id", "week")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in corrections:
        _cell(dashboard, row["case__location_id"], _day(row["week"])).corrections = row["n"]

    # Totals: per location over the period, per week over the locations, and overall.
    for (location_id, week), cell in list(dashboard.cells.items()):
        for key in ((location_id, None), (None, week), (None, None)):
            _cell(dashboard, *key).add_counts(cell)

    # Queries 4–6: each duration's percentiles for the same four groupings.
    for prefix, (of, took) in DURATIONS.items():
        for row in _percentiles(cases.filter(of), took):
            seconds = row["took"].total_seconds()
            for key, partition in PERCENTILE_GROUPS.items():
                rank, n = row[f"rank_{key}"], row[f"n_{key}"]
                if rank not in ((n + 1) // 2, (9 * n + 9) // 10):
                    continue
                cell = _cell(
                    dashboard,
                    row["location_id"] if "location_id" in partition else None,
                    _day(row["week"]) if "week" in partition else None,
                )
                if rank == (n + 1) // 2:
                    setattr(cell, f"{prefix}median_seconds", seconds)
                if rank == (9 * n + 9) // 10:
                    setattr(cell, f"{prefix}p90_seconds", seconds)

    # Query 7: shadow mode's verdicts, per location, compared in the period.
    outcomes = (
        ShadowComparison.objects.filter(location_id__in=ids, compared_at__gte=start)
        .values("location_id")
        .annotate(
            compared=Count("pk"),
            match=Count("pk", filter=Q(outcome=ShadowComparison.Outcome.MATCH)),
            mismatch=Count("pk", filter=Q(outcome=ShadowComparison.Outcome.MISMATCH)),
            missing=Count("pk", filter=Q(outcome=ShadowComparison.Outcome.MISSING)),
            error=Count("pk", filter=Q(outcome=ShadowComparison.Outcome.ERROR)),
        )
        .order_by()
    )
    for row in outcomes:
        location_id = row.pop("location_id")
        dashboard.shadow[location_id] = ShadowSummary(**row)

    # Queries 8–10: what needs a person today, as "Needs you today" counts it.
    dashboard.work = worklist.counts(ids, timezone.now())
    return dashboard


def _cell(dashboard: Dashboard, location_id, week) -> Cell:
    return dashboard.cells.setdefault((location_id, week), Cell())


def _day(value) -> date:
    return value.date() if hasattr(value, "date") else value


# The groupings the percentiles are computed for: (location, week), location over the
# period, week over the locations, and everything shown.
PERCENTILE_GROUPS = {"lw": ("location_id", "week"), "l": ("location_id",), "w": ("week",), "all": ()}


def _duration(end, start) -> ExpressionWrapper:
    return ExpressionWrapper(end - start, output_field=DurationField())


# The durations the dashboard takes percentiles of: Cell attribute prefix → (the cases that
# have it, the duration). The hand-off starts at the approval, or at the treatment posted
# when that came later (Coalesce: Greatest is NULL on SQLite when any argument is).
DURATIONS = {
    "": (
        Q(arrangement_written_at__isnull=False),
        _duration(F("arrangement_written_at"), Greatest(
            Coalesce("decided_at", "captured_at"), Coalesce("production_posted_at", "decided_at", "captured_at"))),
    ),
    "approval_": (
        Q(decided_at__isnull=False) & ~Q(state=CaseState.DECLINED),
        _duration(F("decided_at"), F("captured_at")),
    ),
    "wait_": (
        Q(production_awaited_at__isnull=False, production_posted_at__isnull=False),
        _duration(F("production_posted_at"), F("production_awaited_at")),
    ),
}


def _percentiles(cases, took):
    """The rows at the median's and the p90's nearest rank in each group, in one query.

    Each case gets, for each grouping, its rank by duration (`took`) within its group and
    the group's size; the database keeps only the rows at rank ⌈n/2⌉ or ⌈9n/10⌉ of some
    group (integer arithmetic, exact on every backend), so a handful of rows per group
    leave it, whatever the number of cases. One scan serves the four groupings.
    """
    windows = {}
    wanted = Q()
    for key, partition in PERCENTILE_GROUPS.items():
        by = [F(name) for name in partition] or None
        windows[f"rank_{key}"] = Window(RowNumber(), partition_by=by, order_by=[F("took").asc(), F("pk").asc()])
        windows[f"n_{key}"] = Window(Count("pk"), partition_by=by)
        n = F(f"n_{key}")
        wanted |= Q(**{f"rank_{key}": (n + 1) / 2}) | Q(**{f"rank_{key}": (9 * n + 9) / 10})
    rows = (
        cases.annotate(week=TruncWeek("captured_at"), took=took)
        .annotate(**windows)
        .filter(wanted)
        .values("location_id", "week", "took", *windows)
    )
    return list(rows)


# --- by PMS product -----------------------------------------------------------------------


@dataclass
class ProductRow:
    kind: str  # Location.pms_kind
    name: str  # as staff call it: "Dentrix Enterprise"
    locations: list  # the shown locations running it, in code order
    total: Cell  # its numbers over the period


def by_product(dashboard: Dashboard) -> list[ProductRow]:
    """The period's numbers for each PMS product the shown locations run (in the order of
    PMS_KIND_CHOICES), when they run more than one: the counts add up the locations'
    totals (no query); the percentiles come from one more query, ranked per product."""
    kinds = [kind for kind, _ in PMS_KIND_CHOICES if any(loc.pms_kind == kind for loc in dashboard.locations)]
    if len(kinds) < 2:
        return []
    rows = {}
    for kind in kinds:
        shown = [loc for loc in dashboard.locations if loc.pms_kind == kind]
        total = Cell()
        for loc in shown:
            total.add_counts(dashboard.cell(loc.pk, None))
        rows[kind] = ProductRow(kind, pms_connection.kind_label(kind), shown, total)
    start = datetime.combine(dashboard.weeks[0], time.min, tzinfo=UTC)
    cases = FinancedCase.objects.filter(location_id__in=[loc.pk for loc in dashboard.locations], captured_at__gte=start)
    for row in _product_percentiles(cases):
        cell, rank, n = rows[row["kind"]].total, row["rank"], row["n"]
        if rank == (n + 1) // 2:
            cell.median_seconds = row["took"].total_seconds()
        if rank == (9 * n + 9) // 10:
            cell.p90_seconds = row["took"].total_seconds()
    return list(rows.values())


def _product_percentiles(cases):
    """The rows at the median's and the p90's nearest rank per product, as _percentiles."""
    took = ExpressionWrapper(F("arrangement_written_at") - F("captured_at"), output_field=DurationField())
    by = [F("location__pms_kind")]
    n = F("n")
    return list(
        cases.filter(arrangement_written_at__isnull=False)
        .annotate(kind=F("location__pms_kind"), took=took)
        .annotate(
            rank=Window(RowNumber(), partition_by=by, order_by=[F("took").asc(), F("pk").asc()]),
            n=Window(Count("pk"), partition_by=by),
        )
        .filter(Q(rank=(n + 1) / 2) | Q(rank=(9 * n + 9) / 10))
        .values("kind", "took", "rank", "n")
    )


# --- presentation --------------------------------------------------------------------------


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def percent(value: Decimal | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _charts(dashboard: Dashboard) -> list:
    labels = [dateformat.format(w, "M j") for w in dashboard.weeks]  # Dec 1: the console's dates, less the year
    shown = dashboard.locations[:CHART_LOCATIONS]
    groups = [(None, "All shown locations", True)] + [(loc.pk, loc.code, False) for loc in shown]
    all_seconds = [
        seconds for c in dashboard.cells.values() for seconds in (c.p90_seconds, c.approval_median_seconds) if seconds is not None
    ]
    hours = bool(all_seconds) and max(all_seconds) >= 2 * 3600
    unit, divisor = ("hours", 3600) if hours else ("minutes", 60)

    def series(metric):
        return [
            Series(label, [metric(dashboard.cell(loc_id, week)) for week in dashboard.weeks], bold=bold)
            for loc_id, label, bold in groups
        ]

    def in_unit(seconds):
        return None if seconds is None else round(seconds / divisor, 2)

    def number(v):
        return f"{v:.0f}" if v == int(v) else f"{v:g}"

    specs = [
        (f"Time to approval, median ({unit})", lambda c: in_unit(c.approval_median_seconds), number),
        (f"Time to arrangement, median ({unit})", lambda c: in_unit(c.median_seconds), number),
        (f"Time to arrangement, p90 ({unit})", lambda c: in_unit(c.p90_seconds), number),
        (
            "Financed case acceptance (approved and completed ÷ captured)",
            lambda c: None if c.acceptance is None else float(c.acceptance) * 100,
            lambda v: f"{v:.0f}%",
        ),
        (
            "Ledger corrections per written arrangement",
            lambda c: None if c.corrections_per_arrangement is None else float(c.corrections_per_arrangement),
            lambda v: f"{v:.2f}",
        ),
    ]
    charts = [(title, line_chart(title, labels, series(metric), y_format=fmt)) for title, metric, fmt in specs]
    return charts


def _options(request) -> tuple[int, list[int]]:
    try:
        weeks = int(request.GET.get("weeks", DEFAULT_WEEKS))
    except ValueError:
        weeks = DEFAULT_WEEKS
    if weeks not in WEEK_CHOICES:
        weeks = DEFAULT_WEEKS
    location_ids = [i for i in map(id_param, request.GET.getlist("location")) if i is not None]
    return weeks, location_ids


def dashboard_view(request):
    weeks, location_ids = _options(request)
    dashboard = build_dashboard(request.user, weeks=weeks, location_ids=location_ids)
    rows = []
    for loc in dashboard.locations:
        total = dashboard.cell(loc.pk, None)
        work = [dashboard.work.of(loc.pk, kind.key) for kind in worklist.KINDS]
        rows.append({"location": loc, "total": total, "shadow": dashboard.shadow.get(loc.pk), "work": work})
    week_rows = [(week, dashboard.cell(None, week)) for week in reversed(dashboard.weeks)]
    context = {
        **admin.site.each_context(request),
        "title": "Owner's dashboard",
        "dashboard": dashboard,
        "overall": dashboard.cell(None, None),
        "rows": rows,
        "week_rows": week_rows,
        "charts": _charts(dashboard),
        "weeks": weeks,
        "week_choices": WEEK_CHOICES,
        "all_locations": [(loc.pk, loc.code) for loc in dashboard.allowed],
        "selected_locations": location_ids,
        "query_string": request.GET.urlencode(),
        "shadow_locations": [r for r in rows if r["shadow"] or r["location"].mode == "shadow"],
        "too_many_for_charts": len(dashboard.locations) > CHART_LOCATIONS,
        "chart_locations": CHART_LOCATIONS,
        "work_kinds": [worklist.title(kind) for kind in worklist.KINDS],
        "work_totals": [dashboard.work.total(kind.key) for kind in worklist.KINDS],
    }
    context["products"] = by_product(dashboard)  # the "By PMS product" table
    context.update(prescreen_stats.dashboard_context(dashboard))  # pre-qualified patients against the rest
    context.update(money_stats.money_context(dashboard))  # funded, fees, refunds, net; exceptions; expired unused
    return TemplateResponse(request, "admin/financing/dashboard.html", context)


class DashboardExport(Export):
    """Every location × week row, then the ALL row per week: the numbers, not their display."""

    location = Column("location", column_name="location")
    week_starting = Column("week", column_name="week_starting", number_format=DATE)
    captured = Column("captured", column_name="captured")
    approved_and_completed = Column("completed", column_name="approved_and_completed")
    acceptance = Column("acceptance", column_name="acceptance", number_format=RATIO)
    arrangements_written = Column("written", column_name="arrangements_written")
    time_to_approval_median_hours = Column("approval_median_hours", column_name="time_to_approval_median_hours", number_format=HOURS)
    time_to_approval_p90_hours = Column("approval_p90_hours", column_name="time_to_approval_p90_hours", number_format=HOURS)
    time_to_arrangement_median_hours = Column("median_hours", column_name="time_to_arrangement_median_hours", number_format=HOURS)
    time_to_arrangement_p90_hours = Column("p90_hours", column_name="time_to_arrangement_p90_hours", number_format=HOURS)
    corrections = Column("corrections", column_name="corrections")
    corrections_per_arrangement = Column("per_arrangement", column_name="corrections_per_arrangement", number_format=RATIO)
    waited_for_treatment = Column("waited", column_name="waited_for_treatment")
    still_waiting_for_treatment = Column("waiting", column_name="still_waiting_for_treatment")
    wait_for_treatment_median_hours = Column("wait_median_hours", column_name="wait_for_treatment_median_hours", number_format=HOURS)


def dashboard_export(request, fmt):
    weeks, location_ids = _options(request)
    dashboard = build_dashboard(request.user, weeks=weeks, location_ids=location_ids)
    # Exports are audited: who took which numbers out (no PHI in either).
    log.info("dashboard export (%s) by user %s: %s weeks, %s locations", fmt, request.user.pk, weeks, len(dashboard.locations))
    groups = [(loc.pk, loc.code) for loc in dashboard.locations] + [(None, "ALL")]
    rows = []
    for location_id, code in groups:
        for week in dashboard.weeks:
            cell = dashboard.cell(location_id, week)
            rows.append(
                {
                    "location": code,
                    "week": week,
                    "captured": cell.captured,
                    "completed": cell.completed,
                    "acceptance": cell.acceptance,
                    "written": cell.written,
                    "approval_median_hours": _hours(cell.approval_median_seconds),
                    "approval_p90_hours": _hours(cell.approval_p90_seconds),
                    "median_hours": _hours(cell.median_seconds),
                    "p90_hours": _hours(cell.p90_seconds),
                    "corrections": cell.corrections,
                    "per_arrangement": cell.corrections_per_arrangement,
                    "waited": cell.waited,
                    "waiting": cell.waiting,
                    "wait_median_hours": _hours(cell.wait_median_seconds),
                }
            )
    return DashboardExport().response(rows, fmt=fmt, filename=f"chairside-dashboard-{timezone.now().date()}")


def _hours(seconds: float | None) -> Decimal | None:
    if seconds is None:
        return None
    return (Decimal(seconds) / 3600).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
