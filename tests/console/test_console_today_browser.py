""""Needs you today" and the clerk's own tools in a real browser (Playwright driving Debian's
Chromium against a live server), at the two widths billing staff use: a 1366×768 laptop and a
1920×1080 desktop. Screenshots land in artifacts/screenshots/.

Same fixtures and skips as test_console_browser.py.
"""

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from core import blind_index
from financing.models import CaseNote, FinancedCase
from tests.console.console_factories import billing_user, plain_location
from tests.console.test_console_browser import CHROMIUM, Path, browser, shot, sign_in  # noqa: F401 (browser is a fixture)
from tests.console.test_console_today import EXPECTED, LONG_REASON, work_at

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)"),
]

WIDTHS = {"1366": (1366, 768), "1920": (1920, 1080)}


def page_at(browser, width):  # noqa: F811 (the fixture's value)
    w, h = WIDTHS[width]
    page = browser.new_page(viewport={"width": w, "height": h})
    page.set_default_timeout(15_000)
    return page


@pytest.fixture
def day(template):
    main = plain_location(template, "main", name="Main Street Dental")
    north = plain_location(template, "north", name="Northside Family Dentistry")
    ann = billing_user("ann", main)
    return {"main": main, "mine": work_at(main), "theirs": work_at(north), "ann": ann,
            "device": TOTPDevice.objects.create(user=ann, name="phone", confirmed=True)}


def clipped(locator) -> bool:
    """True if any of the element's text is cut off: its content overflows its box, or the box
    reaches past the window's right edge (the page would have to scroll sideways)."""
    return locator.evaluate(
        """e => {
            const box = e.getBoundingClientRect();
            const style = getComputedStyle(e);
            return e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1
                || box.right > document.documentElement.clientWidth + 1
                || style.textOverflow === 'ellipsis' || style.webkitLineClamp !== 'none';
        }"""
    )


@pytest.mark.parametrize("width", list(WIDTHS))
def test_needs_you_today_shows_each_group_oldest_first_with_whole_reasons(browser, live_server, day, width):  # noqa: F811
    page = page_at(browser, width)
    base = live_server.url
    sign_in(page, base, "ann", "pw-ann", day["device"])  # lands on /admin/: the page itself
    assert page.inner_text("h1") == "Needs you today"
    for key, names in EXPECTED.items():
        rows = page.locator(f"#group-{key} tbody tr")
        assert rows.evaluate_all("rows => rows.map(r => r.dataset.reference)") == [day["mine"][n].reference for n in names], key
    # The long reason is all there, on screen, wrapped rather than cut.
    cell = page.locator(f"#group-needs_attention tr[data-reference='{day['mine']['na_old'].reference}'] td.detail")
    assert cell.inner_text().strip() == LONG_REASON
    assert not clipped(cell)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scroll
    # Counts for this location only, each a way into the filtered list.
    assert page.locator("#today-counts tbody tr").evaluate_all("rows => rows.map(r => r.dataset.location)") == ["main"]
    for case in day["theirs"].values():
        assert case.reference not in page.content()
    shot(page, f"10-needs-you-today-{width}")

    page.click(f"#today-counts tbody a[href*='attention=waiting']")
    page.wait_for_selector("#result_list")
    assert sorted(page.locator("#result_list tbody th a").all_inner_texts()) == sorted(
        day["mine"][n].reference for n in EXPECTED["waiting"]
    )
    page.close()


@pytest.mark.parametrize("width", list(WIDTHS))
def test_a_clerk_takes_a_case_leaves_a_note_and_finds_it_again_by_surname(browser, live_server, day, width):  # noqa: F811
    case = day["mine"]["na_old"]
    FinancedCase.objects.filter(pk=case.pk).update(surname_token=blind_index.token("surname", "Thompson"))
    page = page_at(browser, width)
    base = live_server.url
    sign_in(page, base, "ann", "pw-ann", day["device"])

    # From the day's list to the case: its page is titled by its reference.
    page.click(f"#group-needs_attention a:text('{case.reference}')")
    page.wait_for_selector("#case-banner")
    assert page.title() == f"Case {case.reference} | Chairside"
    assert page.inner_text("h1") == f"Case {case.reference}"
    assert "Change financed case" not in page.content()
    assert page.inner_text("#patient").startswith("Ava T.")

    page.click("#assign-to-me")
    page.wait_for_selector(".messagelist")
    assert f"{case.reference} is assigned to you." in page.inner_text(".messagelist")
    assert page.inner_text("#assigned-to").startswith("Assigned to ann")
    assert "Assigned to ann" in page.inner_text("#timeline")

    note = "Spoke with the guarantor: the old Dentrix agreement closes Monday, resume then."
    page.fill("#id_text", note)
    page.click("#add-note")
    page.wait_for_selector(".messagelist")
    row = page.locator("#timeline tr.note")
    assert row.count() == 1
    assert note in row.inner_text() and "ann" in row.inner_text()
    assert CaseNote.objects.get().author == day["ann"]
    shot(page, f"11-case-page-assigned-with-note-{width}")

    # Found again: by surname (any case), and under "Assigned to me".
    page.goto(f"{base}/admin/financing/financedcase/")
    page.fill("#searchbar", "THOMPSON")
    page.press("#searchbar", "Enter")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody th a").all_inner_texts() == [case.reference]
    page.goto(f"{base}/admin/financing/financedcase/")
    page.click("text=Assigned to me")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody th a").all_inner_texts() == [case.reference]
    assert "ann" in page.inner_text("#result_list tbody td.field-assigned")
    shot(page, f"12-case-list-assigned-to-me-{width}")
    page.close()
