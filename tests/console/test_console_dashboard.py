"""The owner's dashboard: exact numbers per location and week, charts with no network, CSV."""

import csv
import io
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from financing import services
from financing.dashboard import build_dashboard, week_start
from financing.models import CaseState, FinancedCase
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
    # Time to arrangement is the hand-off: approval → written, half of each case's time here
    # (make_case decides at half-time): nearest rank of 5, 10, 15, 20 minutes.
    assert (cell.median_seconds, cell.p90_seconds) == (10 * 60, 20 * 60)
    assert (cell.approval_median_seconds, cell.approval_p90_seconds) == (10 * 60, 20 * 60)  # capture → approval

    north_cell = dashboard.cell(north, last)
    assert (north_cell.captured, north_cell.completed, north_cell.written, north_cell.corrections) == (2, 1, 1, 0)
    assert (north_cell.median_seconds, north_cell.p90_seconds) == (1.5 * 3600, 1.5 * 3600)
    assert dashboard.cell(main, last).captured == 0 and dashboard.cell(main, last).median_seconds is None

    overall = dashboard.cell(None, None)
    assert (overall.captured, overall.completed, overall.written, overall.corrections) == (8, 5, 5, 1)
    assert overall.acceptance == D("0.6250") and overall.corrections_per_arrangement == D("0.2000")
    assert (overall.median_seconds, overall.p90_seconds) == (15 * 60, 1.5 * 3600)  # 5, 10, 15, 20 min, 1.5 h
    assert dashboard.cell(None, this).median_seconds == 10 * 60
    assert (overall.waited, overall.waiting, overall.wait_median_seconds) == (0, 0, None)
    assert len(dashboard.weeks) == 12 and dashboard.weeks[-1] == this


def test_the_page_draws_svg_charts_without_the_network_and_exports_csv(data, weeks):
    this, _ = weeks
    client = console_client(billing_user("cat", data["main"], data["north"]))
    page = client.get("/admin/dashboard/?weeks=4")
    assert page.status_code == 200
    assert page.text.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart"') == 5
    assert "Time to approval, median (minutes)" in page.text and "Time to arrangement, median (minutes)" in page.text
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
        "time_to_approval_median_hours": "0.17",
        "time_to_approval_p90_hours": "0.33",
        "time_to_arrangement_median_hours": "0.17",
        "time_to_arrangement_p90_hours": "0.33",
        "corrections": "0",
        "corrections_per_arrangement": "0.0000",
        "waited_for_treatment": "0",
        "still_waiting_for_treatment": "0",
        "wait_for_treatment_median_hours": "",
    }


def test_recording_a_correction_moves_the_dashboard(data, weeks):
    ann = billing_user("ann", data["main"])
    client = console_client(ann)
    before = client.get("/admin/dashboard/").context["overall"]
    assert (before.corrections, before.written) == (0, 4)
    services.record_correction(data["main_cases"][1].pk, field="recurring_amount", after="210.00", why="Rounded", actor=ann)
    after = client.get("/admin/dashboard/").context["overall"]
    assert (after.corrections, after.corrections_per_arrangement) == (1, D("0.2500"))


def test_a_wait_for_treatment_is_counted_apart_from_the_hand_off(template, weeks, django_user_model):
    """At a PMS that writes a plan only over posted treatment, the hand-off starts when the
    treatment is posted: two days' wait for it is the wait's number, not the arrangement's."""
    this, _ = weeks
    main = plain_location(template, "main")
    t0 = at(this)

    def case(state, decided, written=None, awaited=None, posted=None):
        c = make_case(main, state=state, captured_at=t0)
        FinancedCase.objects.filter(pk=c.pk).update(
            decided_at=t0 + decided, arrangement_written_at=t0 + written if written else None,
            production_awaited_at=t0 + awaited if awaited else None, production_posted_at=t0 + posted if posted else None,
        )

    minutes = lambda n: timedelta(minutes=n)  # noqa: E731
    # Approved in 10 min, waited two days for the treatment, written 4 min after its posting.
    case(CaseState.COMPLETED, minutes(10), written=minutes(11) + timedelta(days=2, minutes=4), awaited=minutes(11),
         posted=minutes(11) + timedelta(days=2))
    case(CaseState.COMPLETED, minutes(20), written=minutes(26))  # no wait: written 6 min after the approval
    case(CaseState.AWAITING_PRODUCTION, minutes(30), awaited=minutes(31))  # still waiting
    case(CaseState.DECLINED, minutes(5))  # a decline is no approval
    boss = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")
    cell = build_dashboard(boss, weeks=4).cell(main.pk, this)
    assert (cell.approval_median_seconds, cell.approval_p90_seconds) == (20 * 60, 30 * 60)  # 10, 20, 30 min
    assert (cell.median_seconds, cell.p90_seconds) == (4 * 60, 6 * 60)  # 4 and 6 min: the hand-offs
    assert (cell.waited, cell.waiting, cell.wait_median_seconds) == (2, 1, 2 * 86400)
    page = console_client(billing_user("ann", main)).get("/admin/dashboard/?weeks=4")
    assert 'id="kpi-wait">2.0 d<' in page.text and "2 cases waited for the treatment to be posted, 1 still waiting" in page.text
    assert 'id="kpi-median">4 min<' in page.text and 'id="kpi-approval">20 min<' in page.text
