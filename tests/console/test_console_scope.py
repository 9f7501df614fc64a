"""Per-location scope in every corner of the console: lists, filters, search, autocomplete,
exports, counts, case pages, action URLs and the dashboard."""

import csv
import io

import openpyxl
import pytest

from financing import services
from financing.models import CaseState, ShadowComparison
from tests.console.console_factories import billing_user, console_client, make_case, plain_location

pytestmark = pytest.mark.django_db


@pytest.fixture
def sites(template):
    return {code: plain_location(template, code) for code in ("main", "north", "south", "west")}


@pytest.fixture
def cases(sites):
    return {
        code: [make_case(site), make_case(site, state=CaseState.NEEDS_ATTENTION, reason="Dentrix refused", resume_state="approved")]
        for code, site in sites.items()
    }


def exported_rows(response, fmt):
    """The rows of an export (header first), read back as a spreadsheet would."""
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    if fmt == "csv":
        return list(csv.reader(io.StringIO(body.decode())))
    return [[c.value for c in row] for row in openpyxl.load_workbook(io.BytesIO(body)).worksheets[0].iter_rows()]


def listed(response, cases=None):
    """The references on the list page's rows."""
    return {case.reference for case in response.context["cl"].result_list}


def test_one_location_biller_sees_lists_filters_and_search_of_their_location_only(sites, cases):
    client = console_client(billing_user("ann", sites["main"]))
    every_case = [c for group in cases.values() for c in group]

    listing = client.get("/admin/financing/financedcase/")
    assert listing.status_code == 200
    assert listed(listing, every_case) == {c.reference for c in cases["main"]}
    # The location filter offers only their location (the stock filter would list all four).
    assert f"?location={sites['main'].pk}" in listing.text
    assert f"?location={sites['north'].pk}" not in listing.text

    # Filtering to someone else's location shows nothing of theirs.
    other = client.get(f"/admin/financing/financedcase/?location={sites['north'].pk}")
    assert listed(other, every_case) == set()

    # Search is exact, by reference (any case) or PMS patient id, and scoped.
    theirs = cases["north"][0]
    mine = cases["main"][1]
    assert listed(client.get(f"/admin/financing/financedcase/?q={theirs.reference}"), every_case) == set()
    assert listed(client.get(f"/admin/financing/financedcase/?q={mine.reference.lower()}"), every_case) == {mine.reference}
    assert listed(client.get(f"/admin/financing/financedcase/?q={mine.patient_id}"), every_case) == {mine.reference}

    needs = client.get("/admin/financing/financedcase/?attention=needs_attention")
    assert listed(needs, every_case) == {mine.reference}
    assert "Dentrix refused" in needs.text


def test_central_biller_of_three_sees_their_three_locations(sites, cases):
    client = console_client(billing_user("cat", sites["main"], sites["north"], sites["south"]))
    every_case = [c for group in cases.values() for c in group]
    listing = client.get("/admin/financing/financedcase/?attention=needs_attention")
    assert listed(listing, every_case) == {cases[code][1].reference for code in ("main", "north", "south")}
    assert f"?location={sites['west'].pk}" not in listing.text


def test_other_locations_case_pages_and_actions_are_refused(sites, cases):
    client = console_client(billing_user("ann", sites["main"]))
    theirs = cases["north"][1]
    assert client.get(f"/admin/financing/financedcase/{theirs.pk}/change/").status_code == 302  # "doesn't exist"
    for action in ("resume", "retry", "cancel", "resend", "compare"):
        assert client.post(f"/admin/financing/financedcase/{theirs.pk}/{action}/", {"reason": "x"}).status_code == 404
    assert client.get(f"/admin/financing/financedcase/{theirs.pk}/correct/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.state == CaseState.NEEDS_ATTENTION


def test_export_and_autocomplete_are_scoped(sites, cases):
    client = console_client(billing_user("cat", sites["main"], sites["north"]))
    export = client.get("/admin/financing/financedcase/export.csv?state__exact=completed")
    assert export.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert rows[0][:4] == ["reference", "location", "pms_product", "state"]
    assert sorted(r[0] for r in rows[1:]) == sorted([cases["main"][0].reference, cases["north"][0].reference])
    assert {r[1] for r in rows[1:]} == {"main", "north"}

    # The same rows as XLSX, and another location's case never, even asked for by filter.
    values = exported_rows(client.get("/admin/financing/financedcase/export.xlsx?state__exact=completed"), "xlsx")
    assert values[0][:4] == ["reference", "location", "pms_product", "state"]
    assert sorted(r[0] for r in values[1:]) == sorted([cases["main"][0].reference, cases["north"][0].reference])
    for fmt in ("csv", "xlsx"):
        other = exported_rows(client.get(f"/admin/financing/financedcase/export.{fmt}?location={sites['south'].pk}"), fmt)
        assert other[1:] == [] and other[0][0] == "reference"
        everything = exported_rows(client.get(f"/admin/financing/financedcase/export.{fmt}"), fmt)
        assert {r[1] for r in everything[1:]} == {"main", "north"} and len(everything) == 1 + 4

    found = client.get(
        "/admin/autocomplete/", {"app_label": "financing", "model_name": "templateoverride", "field_name": "location", "term": ""}
    )
    assert found.status_code == 200
    assert sorted(r["text"] for r in found.json()["results"]) == ["Main Dental (main)", "North Dental (north)"]


def test_shadow_comparisons_and_corrections_lists_are_scoped(sites, cases):
    for code in ("main", "north"):
        ShadowComparison.objects.create(
            case=cases[code][0], location=sites[code], outcome="mismatch", compared_at=cases[code][0].captured_at,
            discrepancies=[{"field": "payment_amount", "chairside": "208.34", "dentrix": "208.00"}], discrepancy_count=1,
        )
    for code in ("main", "north"):
        services.record_correction(cases[code][0].pk, field="first_payment_date", after="2030-01-15", why=f"fixed at {code}")
    client = console_client(billing_user("ann", sites["main"]))
    corrections = client.get("/admin/financing/correction/")
    assert [c.case.reference for c in corrections.context["cl"].result_list] == [cases["main"][0].reference]
    for fmt in ("csv", "xlsx"):
        exported = exported_rows(client.get(f"/admin/financing/correction/export.{fmt}"), fmt)
        assert [(r[1], r[6]) for r in exported[1:]] == [(cases["main"][0].reference, "fixed at main")], fmt
    page = client.get("/admin/financing/shadowcomparison/")
    assert page.status_code == 200
    assert cases["main"][0].reference in page.text and cases["north"][0].reference not in page.text
    assert "Payment amount: Chairside $208.34, Dentrix $208.00" in page.text  # a label, not a field name


def test_dashboard_counts_only_the_users_locations(sites, cases):
    client = console_client(billing_user("ann", sites["main"]))
    page = client.get("/admin/dashboard/")
    assert page.status_code == 200
    assert page.context["overall"].captured == 2
    assert [loc.code for loc in page.context["dashboard"].locations] == ["main"]
    # Asking for another location by id changes nothing.
    page = client.get(f"/admin/dashboard/?location={sites['north'].pk}")
    assert page.context["dashboard"].locations == [] and page.context["overall"].captured == 0
    for fmt in ("csv", "xlsx"):
        rows = exported_rows(client.get(f"/admin/dashboard.{fmt}?weeks=4"), fmt)
        assert {r[0] for r in rows[1:]} == {"main", "ALL"}, fmt
        rows = exported_rows(client.get(f"/admin/dashboard.{fmt}?weeks=4&location={sites['north'].pk}"), fmt)
        assert {r[0] for r in rows[1:]} == {"ALL"} and {str(r[2]) for r in rows[1:]} == {"0"}, fmt
