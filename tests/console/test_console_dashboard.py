"""The owner's dashboard: exact numbers per location and week, charts with no network, CSV."""

import csv
import io
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from financing import services
from financing.dashboard import build_dashboard, week_start
from financing.models import CaseState
from tests.console.console_factories import billing_user, console_client, make_case, plain_location

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def weeks():
    this = week_start(timezone.now().date())
    return this, this - timedelta(weeks=1)


def at(day, hour=9):
    return datetime.combine(day, time(hour), tzinfo=UTC)


@pytest.fixture
def data(template, weeks):
    this, last = weeks
    main, north = plain_location(template, "main"), plain_location(template, "north")
    main_cases = [make_case(main, captured_at=at(this), took=timedelta(minutes=m)) for m in (40, 10, 30, 20)]
    make_case(main, state=CaseState.DECLINED, captured_at=at(this))
    make_case(main, state=CaseState.NEEDS_ATTENTION, captured_at=at(this), reason="x")
    make_case(north, captured_at=at(last), took=timedelta(hours=3))
    make_case(north, state=CaseState.EXPIRED, captured_at=at(last))
    make_case(north, captured_at=at(last - timedelta(weeks=20)))  # outside the 12 weeks shown
    return {"main": main, "north": north, "main_cases": main_cases}


def test_the_three_numbers_per_location_and_week(data, weeks, django_user_model):
    this, last = weeks
    boss = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")
    services.record_correction(data["main_cases"][0].pk, field="apr", after="1.00", why="typo", actor=boss)
    dashboard = build_dashboard(boss, weeks=12)
    main, north = data["main"].pk, data["north"].pk

    cell = dashboard.cell(main, this)
    assert (cell.captured, cell.completed, cell.written, cell.corrections) == (6, 4, 4, 1)
    assert cell.acceptance == D("0.6667") and cell.corrections_per_arrangement == D("0.2500")
    assert (cell.median_seconds, cell.p90_seconds) == (20 * 60, 40 * 60)  # nearest rank of 10, 20, 30, 40

    north_cell = dashboard.cell(north, last)
    assert (north_cell.captured, north_cell.completed, north_cell.written, north_cell.corrections) == (2, 1, 1, 0)
    assert (north_cell.median_seconds, north_cell.p90_seconds) == (3 * 3600, 3 * 3600)
    assert dashboard.cell(main, last).captured == 0 and dashboard.cell(main, last).median_seconds is None

    overall = dashboard.cell(None, None)
    assert (overall.captured, overall.completed, overall.written, overall.corrections) == (8, 5, 5, 1)
    assert overall.acceptance == D("0.6250") and overall.corrections_per_arrangement == D("0.2000")
    assert (overall.median_seconds, overall.p90_seconds) == (30 * 60, 3 * 3600)  # 10, 20, 30, 40 min, 3 h
    assert dashboard.cell(None, this).median_seconds == 20 * 60
    assert len(dashboard.weeks) == 12 and dashboard.weeks[-1] == this


def test_the_page_draws_svg_charts_without_the_network_and_exports_csv(data, weeks):
    this, _ = weeks
    client = console_client(billing_user("cat", data["main"], data["north"]))
    page = client.get("/admin/dashboard/?weeks=4")
    assert page.status_code == 200
    assert page.text.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart"') == 4
    assert "Financed case acceptance (approved and completed ÷ captured)" in page.text
    # Nothing is fetched from anywhere: no script or stylesheet from another host.
    assert "<script src=\"http" not in page.text and "<link rel=\"stylesheet\" href=\"http" not in page.text
    assert 'id="kpi-acceptance">62.5%<' in page.text

    export = client.get("/admin/dashboard.csv?weeks=4")
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert len(rows) == 3 * 4  # main, north and ALL, four weeks each
    main_now = next(r for r in rows if r["location"] == "main" and r["week_starting"] == this.isoformat())
    assert main_now == {
        "location": "main",
        "week_starting": this.isoformat(),
        "captured": "6",
        "approved_and_completed": "4",
        "acceptance": "0.6667",
        "arrangements_written": "4",
        "time_to_arrangement_median_hours": "0.33",
        "time_to_arrangement_p90_hours": "0.67",
        "corrections": "0",
        "corrections_per_arrangement": "0.0000",
    }


def test_recording_a_correction_moves_the_dashboard(data, weeks):
    ann = billing_user("ann", data["main"])
    client = console_client(ann)
    before = client.get("/admin/dashboard/").context["overall"]
    assert (before.corrections, before.written) == (0, 4)
    services.record_correction(data["main_cases"][1].pk, field="recurring_amount", after="210.00", why="Rounded", actor=ann)
    after = client.get("/admin/dashboard/").context["overall"]
    assert (after.corrections, after.corrections_per_arrangement) == (1, D("0.2500"))
