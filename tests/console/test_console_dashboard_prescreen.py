"""The dashboard's measure of pre-screening: financed case acceptance of pre-qualified patients
(a pre-qualification or an existing card, remembered at capture) against the rest, exact per
location and week, scoped like the rest of the dashboard."""

import re
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone

from financing.dashboard import build_dashboard, week_start
from financing.models import CaseState, FinancedCase
from financing.prescreen_stats import acceptance
from tests.console.console_factories import billing_user, console_client, make_case, plain_location

pytestmark = pytest.mark.django_db


def monday_at(day, hour=9):
    return datetime.combine(day, time(hour), tzinfo=UTC)


def case(location, outcome, state, captured_at):
    made = make_case(location, state=state, captured_at=captured_at)
    FinancedCase.objects.filter(pk=made.pk).update(prescreen_outcome=outcome)
    return made


@pytest.fixture
def data(template):
    this = week_start(timezone.now().date())
    last = this - timedelta(weeks=1)
    main, north = plain_location(template, "main"), plain_location(template, "north")
    # main, this week: pre-qualified 3 (2 completed), card 1 (completed), rest 4 (1 completed)
    for outcome, state in [
        ("prequalified", CaseState.COMPLETED), ("prequalified", CaseState.COMPLETED), ("prequalified", CaseState.DECLINED),
        ("existing_cardholder", CaseState.COMPLETED),
        ("not_prequalified", CaseState.COMPLETED), ("no_result", CaseState.DECLINED), ("", CaseState.EXPIRED),
        ("", CaseState.NEEDS_ATTENTION),
    ]:
        case(main, outcome, state, monday_at(this))
    # main, last week: rest only, 1 of 2
    case(main, "", CaseState.COMPLETED, monday_at(last))
    case(main, "", CaseState.CANCELLED, monday_at(last))
    # north, last week: pre-qualified 1 of 1
    case(north, "prequalified", CaseState.COMPLETED, monday_at(last, 15))
    return {"main": main, "north": north, "this": this, "last": last}


def counts(cell):
    return (cell.prequalified_captured, cell.prequalified_completed, cell.prequalified, cell.rest_captured, cell.rest_completed, cell.rest)


def test_acceptance_of_prequalified_patients_against_the_rest_per_location_and_week(data):
    main, north, this, last = data["main"].pk, data["north"].pk, data["this"], data["last"]
    weeks = [last, this]
    cells = acceptance([main, north], weeks)
    assert counts(cells[(main, this)]) == (4, 3, D("0.7500"), 4, 1, D("0.2500"))
    assert counts(cells[(main, last)]) == (0, 0, None, 2, 1, D("0.5000"))
    assert counts(cells[(north, last)]) == (1, 1, D("1.0000"), 0, 0, None)
    assert (north, this) not in cells
    assert counts(cells[(main, None)]) == (4, 3, D("0.7500"), 6, 2, D("0.3333"))
    assert counts(cells[(None, last)]) == (1, 1, D("1.0000"), 2, 1, D("0.5000"))
    assert counts(cells[(None, None)]) == (5, 4, D("0.8000"), 6, 2, D("0.3333"))
    # Only the locations asked for.
    assert counts(acceptance([north], weeks)[(None, None)]) == (1, 1, D("1.0000"), 0, 0, None)
    assert acceptance([main], []) == {}


def test_the_dashboard_page_shows_them_in_the_users_scope(data):
    ann = billing_user("ann", data["main"], perms=["view_financedcase"])
    page = console_client(ann).get("/admin/dashboard/").content.decode()
    plain = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert "Pre-qualified patients: financed case acceptance" in plain
    assert "Overall: 75.0% of 4 pre-qualified, 33.3% of 6 others." in plain
    assert re.search(r'<tr data-location="main"><td>main</td><td>4</td><td>3</td><td>75.0%</td><td>6</td><td>2</td><td>33.3%</td></tr>', page)
    assert 'data-location="north"' not in page  # not Ann's
    # This week's row: all shown, then main.
    this_week = re.search(r"<tr><td>[A-Z][a-z]{2} \d+, \d{4}</td><td>75.0% <span class=\"muted\">vs</span> 25.0%</td><td>75.0% <span class=\"muted\">\(4\) vs</span> 25.0% <span class=\"muted\">\(4\)</span></td></tr>", page)
    assert this_week, page[page.find("prescreen-by-week"):][:1500]
    dashboard = build_dashboard(ann)
    assert [loc.code for loc in dashboard.locations] == ["main"]
