"""Several PMS products in one console: the case list filters and exports by product, the
case page names the product's record and ids, the dashboard splits by product.

Only the "dentrix" registry entry is on main's foundation; the others come with their
bridges, so these tests add the entries they use (the shape of the real ones).
"""

import csv
import io
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from financing import partners, services
from financing.dashboard import build_dashboard, by_product, week_start
from financing.models import CaseState, ShadowComparison
from tests.conftest import make_user
from tests.console.console_factories import billing_user, console_client, make_case, plain_location

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def products(monkeypatch):
    dentrix = partners.PMS_IMPLEMENTATIONS["dentrix"]
    monkeypatch.setitem(partners.PMS_IMPLEMENTATIONS, "dentrix_enterprise", {
        **dentrix, "name": "Dentrix Enterprise", "product": "dentrix_enterprise", "record": "payment plan", "plans_per_account": None,
    })
    monkeypatch.setitem(partners.PMS_IMPLEMENTATIONS, "opendental", {
        **dentrix, "name": "Open Dental", "product": "opendental", "record": "payment plan", "plans_per_account": None,
        "ids": {"patient": "PatNum", "arrangement": "PayPlanNum", "note": "CommlogNum"},
    })


@pytest.fixture
def sites(template, products):
    return {
        "main": plain_location(template, "main"),
        "ent": plain_location(template, "ent", pms_kind="dentrix_enterprise"),
        "od": plain_location(template, "od", pms_kind="opendental"),
    }


def listed(response):
    return sorted(case.reference for case in response.context["cl"].result_list)


def test_the_case_list_filters_by_the_products_in_the_users_scope(sites):
    cases = {code: make_case(site) for code, site in sites.items()}
    both = console_client(billing_user("cat", sites["main"], sites["ent"]))

    listing = both.get("/admin/financing/financedcase/")
    filter_choices = [c["display"] for c in listing.context["cl"].filter_specs[2].choices(listing.context["cl"])]
    assert filter_choices == ["All", "Dentrix", "Dentrix Enterprise"]  # not Open Dental: none of theirs runs it
    assert "?pms_product=dentrix_enterprise" in listing.text and "?pms_product=opendental" not in listing.text

    assert listed(both.get("/admin/financing/financedcase/?pms_product=dentrix_enterprise")) == [cases["ent"].reference]
    assert listed(both.get("/admin/financing/financedcase/?pms_product=dentrix")) == [cases["main"].reference]
    # Another product's cases stay out of scope however asked; junk is nothing, not a 500.
    assert listed(both.get("/admin/financing/financedcase/?pms_product=opendental")) == []
    junk = both.get("/admin/financing/financedcase/?pms_product=%C2%B2")
    assert junk.status_code == 200 and listed(junk) == []


def test_the_case_export_carries_the_product_and_its_filter(sites):
    cases = {code: make_case(site) for code, site in sites.items()}
    client = console_client(billing_user("cat", *sites.values()))
    response = client.get("/admin/financing/financedcase/export.csv?pms_product=opendental")
    header, *rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert header[:3] == ["reference", "location", "pms_product"]
    assert [row[:3] for row in rows] == [[cases["od"].reference, "od", "Open Dental"]]

    everything = client.get("/admin/financing/financedcase/export.xlsx")
    import openpyxl

    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(everything.streaming_content))).worksheets[0]
    products = {row[0].value: row[2].value for row in sheet.iter_rows(min_row=2)}
    assert products == {cases["main"].reference: "Dentrix", cases["ent"].reference: "Dentrix Enterprise",
                        cases["od"].reference: "Open Dental"}


def test_the_case_page_names_the_products_record_and_ids(sites):
    case = make_case(sites["od"])
    page = console_client(billing_user("cat", sites["od"])).get(f"/admin/financing/financedcase/{case.pk}/change/").text
    assert '<tr><th>PMS</th><td id="pms-product">Open Dental</td></tr>' in page
    assert f'id="patient">Ava T. <span class="muted">(PatNum {case.patient_id})</span>' in page
    assert f'<th>Payment plan in Open Dental</th><td id="written-to-pms">Written · PayPlanNum <strong id="pms-agreement-id">{case.arrangement.pms_arrangement_id}</strong>' in page
    assert f"CommlogNum {case.ledger_note.pms_note_id}" in page
    assert "Payment agreement ID" not in page and "Patient ID" not in page

    g_series = make_case(sites["main"])
    page = console_client(billing_user("dan", sites["main"])).get(f"/admin/financing/financedcase/{g_series.pk}/change/").text
    assert '<td id="pms-product">Dentrix</td>' in page
    assert f"(Patient ID {g_series.patient_id})" in page
    assert f'<th>Payment agreement in Dentrix</th><td id="written-to-pms">Written · Payment agreement ID <strong' in page
    assert f"Ledger note ID {g_series.ledger_note.pms_note_id}" in page


def test_a_shadow_comparison_names_the_products_record(sites):
    case = make_case(sites["ent"], shadow=True)
    ShadowComparison.objects.create(case=case, location=sites["ent"], outcome="match", compared_at=timezone.now(), pms_agreement_id="6101")
    page = console_client(billing_user("cat", sites["ent"])).get(f"/admin/financing/financedcase/{case.pk}/change/").text
    assert "Shadow mode: compared with the payment plan entered by hand" in page
    assert "(Dentrix Enterprise Payment agreement ID 6101)" in page


def at(day, hour=9):
    return datetime.combine(day, time(hour), tzinfo=UTC)


def test_the_dashboard_splits_by_product_with_exact_numbers(sites, django_user_model):
    this = week_start(timezone.now().date())
    last = this - timedelta(weeks=1)
    boss = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")
    g = [make_case(sites["main"], captured_at=at(this), took=timedelta(minutes=m)) for m in (40, 10, 30, 20)]
    make_case(sites["main"], state=CaseState.DECLINED, captured_at=at(this))
    make_case(sites["ent"], captured_at=at(last), took=timedelta(hours=3))
    make_case(sites["ent"], captured_at=at(this), took=timedelta(minutes=5))
    make_case(sites["ent"], state=CaseState.EXPIRED, captured_at=at(last))
    make_case(sites["ent"], captured_at=at(last - timedelta(weeks=20)))  # before the 12 weeks shown
    make_case(sites["od"], state=CaseState.NEEDS_ATTENTION, captured_at=at(this), reason="x")
    services.record_correction(g[0].pk, field="apr", after="1.00", why="typo", actor=boss)

    rows = {row.kind: row for row in by_product(build_dashboard(boss, weeks=12))}
    assert list(rows) == ["dentrix", "dentrix_enterprise", "opendental"]
    assert [row.name for row in rows.values()] == ["Dentrix", "Dentrix Enterprise", "Open Dental"]
    g_series, enterprise, od = (rows[k].total for k in ("dentrix", "dentrix_enterprise", "opendental"))
    assert (g_series.captured, g_series.completed, g_series.written, g_series.corrections) == (5, 4, 4, 1)
    assert g_series.acceptance == D("0.8000") and g_series.corrections_per_arrangement == D("0.2500")
    assert (g_series.median_seconds, g_series.p90_seconds) == (20 * 60, 40 * 60)  # nearest rank of 10, 20, 30, 40 min
    assert (enterprise.captured, enterprise.completed, enterprise.written, enterprise.corrections) == (3, 2, 2, 0)
    assert (enterprise.median_seconds, enterprise.p90_seconds) == (5 * 60, 3 * 3600)  # 5 min, 3 h
    assert (od.captured, od.completed, od.written, od.median_seconds, od.p90_seconds) == (1, 0, 0, None, None)
    assert od.acceptance == D("0.0000")

    # One location shown (or locations of one product): no split.
    assert by_product(build_dashboard(boss, weeks=12, location_ids=[sites["ent"].pk])) == []

    page = console_client(boss).get("/admin/dashboard/")
    table = page.text.split('id="by-product"', 1)[1].split("</table>", 1)[0]
    assert '<a href="/admin/financing/financedcase/?pms_product=dentrix_enterprise">Dentrix Enterprise</a></td><td>ent</td>' in table
    assert "<td>3</td><td>2</td><td>66.7%</td><td>2</td>" in table and "<td>5 min</td><td>3.0 h</td>" in table
    single = console_client(billing_user("cat", sites["ent"])).get("/admin/dashboard/")
    assert 'id="by-product"' not in single.text


def test_the_product_split_costs_one_query_whatever_the_number_of_cases(sites):
    client = console_client(billing_user("cat", *sites.values()))
    coordinator = make_user("cora", sites["main"])

    def grow(n):
        for i in range(n):
            location = list(sites.values())[i % 3]
            make_case(location, coordinator=coordinator, took=timedelta(minutes=i + 1))

    def queries(url):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    grow(5)
    small = queries("/admin/dashboard/")
    one_product = queries(f"/admin/dashboard/?location={sites['main'].pk}")
    grow(45)
    assert queries("/admin/dashboard/") == small
    assert small == one_product + 1
