"""The Reconciliation page in a real browser (Playwright driving Chromium against a live
server) at 1366 px: every exception's sentence whole, no sideways scrolling, and a clerk
marking one resolved with a note. Same fixtures and skips as test_console_browser.py."""

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from financing import partners
from financing.models import ReconciliationItem
from financing.services import reconciliation
from tests.console.console_factories import billing_user, plain_location
from tests.console.test_console_browser import CHROMIUM, Path, browser, shot, sign_in  # noqa: F401 (browser is a fixture)
from tests.console.test_console_reconciliation import RECON
from tests.financing.test_reconciliation import DAY, FakeLender, FakePMS, one_of_each

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)"),
]


def test_a_clerk_resolves_an_exception_at_1366_px(browser, live_server, template, monkeypatch):  # noqa: F811
    main = plain_location(template, "main", name="Main Street Dental")
    north = plain_location(template, "north", name="Northside Dental")
    lender, pms = FakeLender(), FakePMS()
    monkeypatch.setattr(partners, "lender_for", lambda location: lender)
    monkeypatch.setattr(partners, "pms_for", lambda location: pms)
    cases = one_of_each({"main": main, "north": north, "lender": lender, "pms": pms})
    reconciliation.reconcile_day("5348120000000001", DAY)
    ann = billing_user("ann", main, north, perms=RECON)
    device = TOTPDevice.objects.create(user=ann, name="phone", confirmed=True)

    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.set_default_timeout(15_000)
    sign_in(page, live_server.url, "ann", "pw-ann", device)
    page.goto(f"{live_server.url}/admin/reconciliation/")
    assert page.inner_text("h1") == "Reconciliation"
    rows = page.locator("tr[data-item]")
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.outcome)")) == ["amount_differs", "missing_at_lender", "missing_in_pms"]
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scroll
    differs = page.locator("tr[data-outcome='amount_differs']")
    assert "CareCredit kept a fee of $327.00, Chairside computed $297.00" in differs.inner_text()
    shot(page, "40-reconciliation-1366")

    differs.locator("textarea").fill("Template rate set to 10.90%; the fee difference adjusted by hand.")
    differs.locator("input.mark-resolved").click()
    page.wait_for_selector(".messagelist")
    assert "Marked resolved, with your note." in page.inner_text(".messagelist")
    assert page.locator("tr[data-outcome='amount_differs']").count() == 0
    item = ReconciliationItem.objects.get(outcome="amount_differs")
    assert (item.resolved_by, item.resolution) == (ann, "Template rate set to 10.90%; the fee difference adjusted by hand.")
    assert cases["d"].reference not in page.content()
    page.click("#show-resolved")
    page.wait_for_selector("tr[data-outcome='amount_differs'].resolved")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.close()
