"""The case list's filters (django-filter): a value the API does not know is a 400 naming
the parameter and what it accepts, every filter is in the schema, and filtering never
reaches past the caller's locations."""

from datetime import datetime, timezone

import pytest
from rest_framework.test import APIClient

from financing.models import CaseState, FinancedCase
from tests.conftest import make_location, make_user

pytestmark = pytest.mark.django_db(transaction=True)

STATES = ("captured, application_sent, awaiting_decision, approved, awaiting_production, arrangement_written, purchased, posted, "
          "completed, declined, expired, cancelled, needs_attention")
PROMOTIONS = "deferred_6, deferred_12, deferred_18, deferred_24, reduced_apr_24, reduced_apr_36, reduced_apr_48, reduced_apr_60"


@pytest.fixture
def north(template, sandboxes):
    return make_location(template, sandboxes, code="north", timezone="America/Los_Angeles")


def make_case(location, name, *, state=CaseState.CAPTURED, promotion="deferred_12", captured_at):
    case = FinancedCase.objects.create(
        location=location, patient_id=f"P-{name}", treatment_plan_id=f"T-{name}", promotion=promotion, state=state
    )
    FinancedCase.objects.filter(pk=case.pk).update(captured_at=captured_at)  # auto_now_add on create
    return case.pk


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


@pytest.fixture
def cases(location, north):
    """Main is in New York (UTC-5 in December), north in Los Angeles (UTC-8)."""
    return {
        # 2026-12-01 22:00 in New York, already 2026-12-02 in UTC.
        "main_late_dec1": make_case(location, "a", captured_at=utc(2026, 12, 2, 3, 0)),
        "main_dec2": make_case(location, "b", state=CaseState.COMPLETED, promotion="reduced_apr_36", captured_at=utc(2026, 12, 2, 15, 0)),
        # 2026-12-02 23:30 in Los Angeles: 2026-12-03 in UTC and in New York.
        "north_late_dec2": make_case(north, "c", state=CaseState.NEEDS_ATTENTION, captured_at=utc(2026, 12, 3, 7, 30)),
        "north_dec3": make_case(north, "d", promotion="reduced_apr_36", captured_at=utc(2026, 12, 3, 18, 0)),
    }


def ids(response):
    assert response.status_code == 200, response.json()
    return sorted(case["id"] for case in response.json()["results"])


def api_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.parametrize(
    "query, expected",
    [
        ({}, ["main_late_dec1", "main_dec2", "north_late_dec2", "north_dec3"]),
        ({"state": "completed"}, ["main_dec2"]),
        ({"state": "needs_attention"}, ["north_late_dec2"]),
        ({"state": "declined"}, []),
        ({"promotion": "reduced_apr_36"}, ["main_dec2", "north_dec3"]),
        ({"location": "north"}, ["north_late_dec2", "north_dec3"]),
        ({"location": "main", "promotion": "reduced_apr_36"}, ["main_dec2"]),
        # A day is the case's location's day, not UTC's.
        ({"captured_to": "2026-12-01"}, ["main_late_dec1"]),
        ({"captured_from": "2026-12-02", "captured_to": "2026-12-02"}, ["main_dec2", "north_late_dec2"]),
        ({"captured_from": "2026-12-03"}, ["north_dec3"]),
        ({"captured_from": "0001-01-01", "captured_to": "9999-12-31"}, ["main_late_dec1", "main_dec2", "north_late_dec2", "north_dec3"]),
    ],
)
def test_each_filter_narrows_the_list(cases, location, north, query, expected):
    admin = make_user("boss", location, is_superuser=True)
    assert ids(api_for(admin).get("/api/v1/cases/", query)) == sorted(cases[name] for name in expected)


@pytest.mark.parametrize(
    "query, parameter, message",
    [
        ({"state": "bogus"}, "state", f"bogus is not one of: {STATES}."),
        ({"state": "Completed"}, "state", f"Completed is not one of: {STATES}."),
        ({"promotion": "deferred_7"}, "promotion", f"deferred_7 is not one of: {PROMOTIONS}."),
        ({"location": "nowhere"}, "location", "You have no location with code 'nowhere'; yours: main."),
        # Another location's code reads exactly like a code that does not exist.
        ({"location": "north"}, "location", "You have no location with code 'north'; yours: main."),
        ({"captured_from": "2026-13-01"}, "captured_from", "Give a date as YYYY-MM-DD."),
        ({"captured_to": "12/01/2026"}, "captured_to", "Give a date as YYYY-MM-DD."),
        ({"captured_from": "2026-12-03", "captured_to": "2026-12-02"}, "captured_to", "2026-12-02 is before captured_from (2026-12-03)."),
    ],
)
def test_a_value_the_api_does_not_know_is_a_400_naming_the_parameter_and_what_it_accepts(cases, location, query, parameter, message):
    response = api_for(make_user("a", location)).get("/api/v1/cases/", query)
    assert response.status_code == 400
    assert response.json() == {"detail": f"{parameter}: {message}", "errors": {parameter: [message]}}


def test_filters_stay_within_the_callers_locations(cases, location, north):
    mine = api_for(make_user("a", location))
    assert ids(mine.get("/api/v1/cases/")) == sorted([cases["main_late_dec1"], cases["main_dec2"]])
    # Every filter that matches north's cases still answers only main's.
    assert ids(mine.get("/api/v1/cases/", {"state": "needs_attention"})) == []
    assert ids(mine.get("/api/v1/cases/", {"captured_from": "2026-12-03"})) == []
    assert ids(mine.get("/api/v1/cases/", {"promotion": "reduced_apr_36"})) == [cases["main_dec2"]]
    assert mine.get("/api/v1/cases/", {"location": "north"}).status_code == 400
    # A staff member of both sees both; one of no location, nothing, and every code is refused.
    both = make_user("b", location)
    both.memberships.create(location=north, role="coordinator")
    assert ids(api_for(both).get("/api/v1/cases/", {"location": "north"})) == sorted([cases["north_late_dec2"], cases["north_dec3"]])
    nobody = api_for(make_user("c"))
    assert ids(nobody.get("/api/v1/cases/", {"captured_from": "2026-01-01"})) == []
    assert nobody.get("/api/v1/cases/", {"location": "main"}).json() == {
        "detail": "location: You have no location with code 'main'; yours: none.",
        "errors": {"location": ["You have no location with code 'main'; yours: none."]},
    }


def test_a_cases_own_address_ignores_the_lists_filters(cases, location):
    api = api_for(make_user("a", location))
    assert api.get(f"/api/v1/cases/{cases['main_dec2']}/", {"state": "bogus"}).json()["id"] == cases["main_dec2"]


@pytest.mark.parametrize(
    "name, schema",
    [
        ("state", {"type": "string", "enum": sorted(STATES.split(", "))}),
        ("promotion", {"type": "string", "enum": sorted(PROMOTIONS.split(", "))}),
        ("location", {"type": "string"}),
        ("captured_from", {"type": "string", "format": "date"}),
        ("captured_to", {"type": "string", "format": "date"}),
    ],
)
def test_each_filter_is_in_the_schema(location, name, schema):
    api = api_for(make_user("a", location))
    parameters = api.get("/api/schema/?format=json").json()["paths"]["/api/v1/cases/"]["get"]["parameters"]
    [parameter] = [p for p in parameters if p["name"] == name]
    assert (parameter["in"], parameter["schema"]) == ("query", schema)
    assert parameter["description"].startswith("Only cases")
