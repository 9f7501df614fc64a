"""The console's Reconciliation page, its actions, the accountant's CSV, and the dashboard's
money section: only the locations a person covers, amounts as $1,234.56, plain words."""

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from financing import display
from financing.models import CaseState, FinancedCase, ReconciliationItem, ReconciliationRun
from financing.services import reconciliation
from tests.console.console_factories import BILLING_PERMISSIONS, billing_user, console_client, make_case, plain_location
from tests.financing.recon_factories import charged_case, refunded
from tests.financing.test_reconciliation import DAY, FakeLender, FakePMS, one_of_each

D = Decimal
Outcome = ReconciliationItem.Outcome
pytestmark = pytest.mark.django_db
RECON = BILLING_PERMISSIONS + ["view_reconciliationitem", "change_reconciliationitem"]


@pytest.fixture
def world(template, monkeypatch):
    from financing import partners

    main = plain_location(template, "main", name="Main Street Dental")
    north = plain_location(template, "north", name="Northside Dental")
    lender, pms = FakeLender(), FakePMS()
    monkeypatch.setattr(partners, "lender_for", lambda location: lender)
    monkeypatch.setattr(partners, "pms_for", lambda location: pms)
    w = {"main": main, "north": north, "lender": lender, "pms": pms}
    w["cases"] = one_of_each(w)
    w["run"] = reconciliation.reconcile_day("5348120000000001", DAY)
    w["ann"] = billing_user("ann", main, perms=RECON)  # billing at main only
    w["central"] = billing_user("central", main, north, perms=RECON)
    return w


def test_a_clerk_sees_only_her_locations_exceptions_in_plain_words(world):
    page = console_client(world["ann"]).get("/admin/reconciliation/")
    assert page.status_code == 200
    html = page.content.decode()
    a, b, c, d = (world["cases"][k].reference for k in "abcd")
    assert c in html and d in html  # main's: missing at the lender, amount differs
    assert b not in html  # north's missing-in-the-PMS is not hers
    assert a not in html  # matched lines are not exceptions
    assert "Main Street Dental (main) · 2 open exceptions" in html
    assert "Northside" not in html
    assert "$3,000.00" in html and "fee $327.00" in html and "Amount differs" in html and "Missing at the lender" in html
    assert "missing_at_lender" not in page.content.decode().replace('data-outcome="missing_at_lender"', "")
    # An item of another location is out of reach for every action.
    other = world["run"].items.get(outcome=Outcome.MISSING_IN_PMS)
    client = console_client(world["ann"])
    assert client.post(f"/admin/reconciliation/{other.pk}/resolve/", {"note": "not mine"}).status_code == 404
    assert client.post(f"/admin/reconciliation/{other.pk}/post/").status_code == 404
    other.refresh_from_db()
    assert other.resolved_at is None
    assert world["pms"].posted == []


def test_central_billing_sees_both_and_resolved_ones_only_when_asked(world):
    client = console_client(world["central"])
    html = client.get("/admin/reconciliation/").content.decode()
    assert "Northside Dental (north) · 1 open exception" in html
    assert "Post the missing entries" in html
    item = world["run"].items.get(outcome=Outcome.MISSING_AT_LENDER)
    # A note is required.
    response = client.post(f"/admin/reconciliation/{item.pk}/resolve/", {"note": "  "}, follow=True)
    assert "a note is required" in response.content.decode()
    item.refresh_from_db()
    assert item.resolved_at is None
    response = client.post(f"/admin/reconciliation/{item.pk}/resolve/", {"note": "CareCredit funded it on Dec 4."}, follow=True)
    assert "Marked resolved, with your note." in response.content.decode()
    item.refresh_from_db()
    assert (item.resolved_by, item.resolution) == (world["central"], "CareCredit funded it on Dec 4.")
    assert world["cases"]["c"].reference not in client.get("/admin/reconciliation/").content.decode()
    shown = client.get("/admin/reconciliation/?resolved=1").content.decode()
    assert world["cases"]["c"].reference in shown and "CareCredit funded it on Dec 4." in shown


def test_post_the_missing_entries_sends_the_case_back_to_its_posting_step(world, monkeypatch):
    from financing.services import sweeps

    redriven = []
    monkeypatch.setattr(sweeps, "redrive", lambda case_id: redriven.append(case_id))
    item = world["run"].items.get(outcome=Outcome.MISSING_IN_PMS)
    response = console_client(world["central"]).post(f"/admin/reconciliation/{item.pk}/post/", follow=True)
    assert "The case&#x27;s posting step runs again" in response.content.decode()
    assert redriven == [world["cases"]["b"].pk]


def test_the_actions_need_the_change_permission(world):
    viewer = billing_user("vic", world["main"], perms=BILLING_PERMISSIONS + ["view_reconciliationitem"])
    client = console_client(viewer)
    page = client.get("/admin/reconciliation/").content.decode()
    assert "Mark resolved" not in page and "Run again" not in page
    item = world["run"].items.get(outcome=Outcome.AMOUNT_DIFFERS)
    assert client.post(f"/admin/reconciliation/{item.pk}/resolve/", {"note": "x"}).status_code == 403
    assert client.post("/admin/reconciliation/run/", {"merchant": "5348120000000001", "day": "2026-12-03"}).status_code == 403
    nobody = billing_user("nora", world["main"])  # no reconciliation permission at all
    assert console_client(nobody).get("/admin/reconciliation/").status_code == 403


def test_run_again_replaces_the_day_and_refuses_junk(world):
    client = console_client(world["ann"])
    world["lender"].lines = world["lender"].lines[:1]  # the report now holds only A's purchase
    response = client.post("/admin/reconciliation/run/", {"merchant": "5348120000000001", "day": "2026-12-03"}, follow=True)
    assert "Dec 3, 2026 reconciled again: 5 lines, 4 open exceptions." in response.content.decode()
    run = ReconciliationRun.objects.get()
    assert sorted(run.items.values_list("outcome", flat=True)) == ["matched"] + ["missing_at_lender"] * 4  # B, C, D and the refund
    assert client.post("/admin/reconciliation/run/", {"merchant": "5348120000000001", "day": "yesterday"}).status_code == 400
    assert client.post("/admin/reconciliation/run/", {"merchant": "9999", "day": "2026-12-03"}).status_code == 404


def test_the_csv_for_the_accountant(world):
    client = console_client(world["central"])
    response = client.get("/admin/reconciliation/export.csv?from=2026-12-01&to=2026-12-31")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="chairside-reconciliation-2026-12-01-to-2026-12-31.csv"'
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == [
        "Business day", "Location", "Case", "Transaction", "Outcome", "CareCredit transaction", "Charged or refunded at CareCredit",
        "Fees at CareCredit", "Charged or refunded in the ledger", "Fees in the ledger", "What was found", "Resolved on", "Resolved by", "Resolution note",
    ]
    assert len(rows) == 6
    by_case = {(r[2], r[3]): r for r in rows[1:]}
    d = by_case[(world["cases"]["d"].reference, "Purchase")]
    assert d[:10] == ["2026-12-03", "Main Street Dental", world["cases"]["d"].reference, "Purchase", "Amount differs", "TXN-D",
                      "3000.00", "327.00", "3000.00", "297.00"]
    # Ann's CSV holds main's lines only; a range without runs is headers only; junk is a 400.
    ann = console_client(world["ann"])
    mine = list(csv.reader(io.StringIO(b"".join(ann.get("/admin/reconciliation/export.csv?from=2026-12-01&to=2026-12-31").streaming_content).decode())))
    assert {r[1] for r in mine[1:]} == {"Main Street Dental"} and len(mine) == 5
    empty = ann.get("/admin/reconciliation/export.csv?from=2026-11-01&to=2026-11-30")
    assert len(b"".join(empty.streaming_content).decode().strip().splitlines()) == 1
    assert ann.get("/admin/reconciliation/export.csv?from=2026-12-31&to=2026-12-01").status_code == 400
    assert ann.get("/admin/reconciliation/export.csv?from=junk").status_code == 400


def test_the_dashboard_shows_the_money_per_location(template):
    main = plain_location(template, "main", name="Main Street Dental")
    north = plain_location(template, "north", name="Northside Dental")
    today = timezone.localdate()
    a, pa = charged_case(main, gross=D("2000.00"), day=today, txn="T1")
    charged_case(main, gross=D("1000.00"), day=today, txn="T2")
    charged_case(north, gross=D("5000.00"), day=today, txn="T3")
    refunded(a, pa, amount=D("250.00"), day=today, txn="R1")
    expired = make_case(main, state=CaseState.EXPIRED, reason="The CareCredit approval expired unused on Dec 31, 2026.")
    make_case(main, state=CaseState.EXPIRED, reason="No decision from CareCredit within 30 days.")
    run = ReconciliationRun.objects.create(merchant_number="5348120000000001", day=today - timedelta(days=1), finished_at=timezone.now())
    ReconciliationItem.objects.create(run=run, location=main, case=a, outcome=Outcome.AMOUNT_DIFFERS, transaction_kind="purchase")
    ReconciliationItem.objects.create(run=run, location=north, outcome=Outcome.MISSING_IN_PMS, transaction_kind="purchase")
    ReconciliationItem.objects.create(run=run, location=main, case=a, outcome=Outcome.MATCHED, transaction_kind="refund")
    ann = billing_user("ann", main, perms=RECON)
    html = console_client(ann).get("/admin/dashboard/").content.decode()
    # Main only: $3,000.00 funded, fees 9.90% → $198.00 + $99.00, one refund of $250.00.
    assert '<div class="value" id="kpi-funded">$3,000.00</div>' in html
    assert '<div class="value" id="kpi-fees">$297.00</div>' in html
    assert '<div class="value" id="kpi-refunds">$250.00</div>' in html
    assert '<div class="value" id="kpi-net">$2,453.00</div>' in html
    assert 'id="kpi-open-exceptions"><a href="/admin/reconciliation/">1</a>' in html
    assert '<div class="value" id="kpi-expired-unused">1</div>' in html
    assert "$5,000.00" not in html
    assert FinancedCase.objects.filter(pk=expired.pk, state=CaseState.EXPIRED).exists()


def test_run_again_counts_one_line_in_words_and_merchants_are_named_by_their_locations(world):
    client = console_client(world["central"])
    reconciliation_page = client.get("/admin/reconciliation/").content.decode()
    assert "…0001 (main, north)</td>" in reconciliation_page  # the day's row
    assert '<option value="5348120000000001">…0001 (main, north)</option>' in reconciliation_page
    charged_case(world["main"], gross=D("500.00"), day=DAY - timedelta(days=2), txn="txn_lonely")
    world["lender"].lines = []
    day = DAY - timedelta(days=2)
    response = client.post("/admin/reconciliation/run/", {"merchant": "5348120000000001", "day": day.isoformat()}, follow=True)
    assert ReconciliationRun.objects.get(day=day).items.count() == 1
    assert f"{day:%b} {day.day}, {day.year} reconciled again: 1 line, 1 open exception." in response.content.decode()


def test_the_money_words_are_the_same_on_the_dashboard_and_the_reconciliation_page(world):
    # docs/money.md: Charged (gross), Fees, Refunds, Net funded (what the practice receives).
    client = console_client(world["central"])
    for url in ("/admin/dashboard/", "/admin/reconciliation/"):
        page = client.get(url).content.decode()
        for word in ('>Charged<', '>Fees<', '>Refunds<', '>Net funded<'):
            assert word in page, (url, word)
        assert ">Funded<" not in page and ">Net<" not in page and ">Purchases<" not in page


def test_run_again_is_offered_only_for_days_over_at_the_lender(world):
    today = reconciliation.lender_day()
    ReconciliationRun.objects.create(merchant_number="5348120000000001", day=today, finished_at=timezone.now())
    page = console_client(world["ann"]).get("/admin/reconciliation/").content.decode()
    rows = {m.group(1): m.group(2) for m in re.finditer(r'<tr data-run="\d+">\s*<td class="nowrap">([^<]*)</td>(.*?)</tr>', page, re.S)}
    assert set(rows) == {display.day(today), display.day(DAY)}
    assert 'class="run-again"' not in rows[display.day(today)]
    assert 'class="run-again"' in rows[display.day(DAY)]
