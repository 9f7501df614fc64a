"""What a clerk sees, in Chromium at 1366×768 and at 1920×1080: references on one line, money
right-aligned as $1,234.56, every time on its location's clock with the zone's label, exports
that open safely, a sign-in in plain words, and "/" leading to the console.

Screenshots land in artifacts/screenshots/ (one per page and width)."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import openpyxl
import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from financing import services
from financing.models import CaseState
from tests.console.console_factories import billing_user, make_case, plain_location
from tests.console.test_console_browser import CHROMIUM, SHOTS, browser  # noqa: F401 (the fixture)
from tests.console.test_console_browser import sign_in as sign_in_at_admin

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
]

VIEWPORTS = [pytest.param((1366, 768), id="1366x768"), pytest.param((1920, 1080), id="1920x1080")]
DECIDED = datetime(2026, 12, 1, 20, 41, tzinfo=UTC)  # 3:41 PM EST, 12:41 PM PST
# Dec 1, 2026, 3:41 PM EST
MOMENT = re.compile(r"^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{1,2}, \d{4}, \d{1,2}:\d{2} (AM|PM) [A-Z]{3,4}$")
LONG_REASON = (
    "Guarantor account 3001 already has an active payment agreement (Dentrix id 7001); Dentrix allows one "
    "per account. Close or adjust it in Dentrix, then resume this case. " * 2
).strip()
HYPERLINK = '=HYPERLINK("http://example.invalid","Open")'


@pytest.fixture
def console(template):
    east = plain_location(template, "east", name="Eastside Dental", timezone="America/New_York")
    west = plain_location(template, "west", name="Westside Dental", timezone="America/Los_Angeles")
    central = billing_user("central", east, west)
    device = TOTPDevice.objects.create(user=central, name="phone", confirmed=True)
    cases = {}
    for code, site in (("east", east), ("west", west)):
        cases[code] = make_case(site, captured_at=DECIDED - timedelta(minutes=10), took=timedelta(minutes=20), plan_total=D("1560.00"))
        services.record_correction(cases[code].pk, field="first_payment_date", after="2027-01-15", why="Patient asked", actor=central)
        for n in range(3):
            make_case(site, state=CaseState.NEEDS_ATTENTION, resume_state=CaseState.APPROVED, reason=LONG_REASON, plan_total=D("12345.67") + n)
    cancelled = make_case(east, state=CaseState.CAPTURED)
    services.cancel_case(cancelled.pk, reason=HYPERLINK, actor=central)
    return {"east": east, "west": west, "central": central, "device": device, "cases": cases, "cancelled": cancelled}


def open_page(browser, size):  # noqa: F811 (the fixture, passed in)
    width, height = size
    page = browser.new_page(viewport={"width": width, "height": height}, accept_downloads=True)
    page.set_default_timeout(15_000)
    return page


def shot(page, name, size):
    page.screenshot(path=str(SHOTS / f"{name}-{size[0]}.png"), full_page=True)


def line_count(page, selector):
    """How many lines an element's text takes (an inline box splits into one rect per line)."""
    return page.eval_on_selector(selector, "el => el.getClientRects().length")


def style(page, selector, prop):
    return page.eval_on_selector(selector, f"el => getComputedStyle(el)['{prop}']")


@pytest.mark.parametrize("size", VIEWPORTS)
def test_lists_keep_references_on_one_line_and_align_money(browser, live_server, console, size):  # noqa: F811
    page = open_page(browser, size)
    base = live_server.url
    sign_in_at_admin(page, base, "central", "pw-central", console["device"])

    page.goto(f"{base}/admin/financing/financedcase/?attention=needs_attention")
    page.wait_for_selector("#result_list")
    shot(page, "display-needs-attention", size)
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 6
    for i in range(6):
        row = f"#result_list tbody tr:nth-child({i + 1})"
        # The reference is the row's link, in a th: one line, never broken at its hyphen.
        assert line_count(page, f"{row} th.field-reference a") == 1, size
        assert re.fullmatch(r"CS-[0-9A-Z]{8}", page.inner_text(f"{row} th.field-reference"))
        height = page.eval_on_selector(f"{row} th.field-reference a", "el => el.getBoundingClientRect().height")
        line = float(style(page, f"{row} th.field-reference a", "lineHeight").removesuffix("px"))
        assert height <= line * 1.5, (size, height, line)
        # Money: $1,234.56, right-aligned, as is its header.
        amount = page.inner_text(f"{row} td.field-plan_total_money")
        assert re.fullmatch(r"\$12,34[5-7]\.67", amount), amount
        assert style(page, f"{row} td.field-plan_total_money", "textAlign") == "right"
        cell = page.eval_on_selector(f"{row} td.field-plan_total_money", "el => el.getBoundingClientRect()")
        text = page.eval_on_selector(
            f"{row} td.field-plan_total_money",
            "el => { const r = document.createRange(); r.selectNodeContents(el); return r.getBoundingClientRect(); }",
        )
        padding = float(style(page, f"{row} td.field-plan_total_money", "paddingRight").removesuffix("px"))
        assert abs((cell["x"] + cell["width"] - padding) - (text["x"] + text["width"])) < 2, "the amount sits at the right edge"
    assert style(page, "#result_list thead th.column-plan_total_money", "textAlign") == "right"
    assert style(page, "#result_list thead th.column-financed_money", "textAlign") == "right"

    # A list spanning locations: each row's time on its own location's clock, labelled.
    page.goto(f"{base}/admin/financing/correction/")
    page.wait_for_selector("#result_list")
    shot(page, "display-corrections", size)
    recorded = page.locator("#result_list tbody th.field-recorded").all_inner_texts()
    assert len(recorded) == 2 and all(MOMENT.match(t) for t in recorded), recorded
    labels = {t.rsplit(" ", 1)[1] for t in recorded}
    assert labels <= {"EST", "EDT", "PST", "PDT"} and len(labels) == 2, recorded
    befores = page.locator("#result_list tbody td.field-before_shown").all_inner_texts()
    assert all(re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}, \d{4}", t) for t in befores), befores
    assert page.locator("#result_list tbody td.field-after_shown").all_inner_texts() == ["Jan 15, 2027", "Jan 15, 2027"]


@pytest.mark.parametrize("size", VIEWPORTS)
def test_the_case_page_shows_each_time_on_the_locations_clock(browser, live_server, console, size):  # noqa: F811
    page = open_page(browser, size)
    base = live_server.url
    sign_in_at_admin(page, base, "central", "pw-central", console["device"])
    zones = {"east": {"EST", "EDT"}, "west": {"PST", "PDT"}}
    for code, decided in (("east", "Dec 1, 2026, 3:41 PM EST"), ("west", "Dec 1, 2026, 12:41 PM PST")):
        case = console["cases"][code]
        page.goto(f"{base}/admin/financing/financedcase/{case.pk}/change/")
        page.wait_for_selector("#timeline")
        shot(page, f"display-case-page-{code}", size)
        decision = page.locator("section", has=page.locator("h2", has_text="Decision"))
        assert decision.locator("tr", has_text="Decided").locator("td").inner_text() == decided
        assert decision.locator("tr", has_text="Requested").locator("td").inner_text() == "$1,560.00"
        assert style(page, "#arrangement-terms tr:nth-child(2) td", "textAlign") == "right"
        whens = page.locator("#timeline td.when").all_inner_texts()
        assert whens and all(MOMENT.match(t) for t in whens), whens
        # History rows are stamped when the test ran (standard or daylight time): the zone's labels.
        assert {t.rsplit(" ", 1)[1] for t in whens} <= zones[code], whens
        assert "Jan 15, 2027" in page.inner_text("#corrections")
        body = page.inner_text("body")
        assert "2026-12-01" not in body and "20:41" not in body and "$1560.00" not in body


@pytest.mark.parametrize("size", VIEWPORTS)
def test_the_correction_form_shows_and_takes_dates_one_way(browser, live_server, console, size):  # noqa: F811
    page = open_page(browser, size)
    base = live_server.url
    sign_in_at_admin(page, base, "central", "pw-central", console["device"])
    case = console["cases"]["east"]
    page.goto(f"{base}/admin/financing/financedcase/{case.pk}/correct/")
    page.wait_for_selector("#correction-form")
    shot(page, "display-correction-form", size)
    assert "First payment due date\tJan 15, 2027" in page.inner_text("#content-main table")  # its label, not its field name
    assert "dates as Jan 15, 2027" in page.inner_text("#correction-form")
    assert "Dec." not in page.inner_text("#content-main") and "YYYY" not in page.inner_text("#content-main")
    page.select_option("#id_field", "first_payment_date")
    page.fill("#id_after", "Feb 1, 2027")
    page.fill("#id_why", "Moved again")
    page.click("#save-correction")
    page.wait_for_selector(".messagelist")
    assert "Correction recorded: first payment date Jan 15, 2027 → Feb 1, 2027." in page.inner_text(".messagelist")


@pytest.mark.parametrize("size", VIEWPORTS)
def test_exports_downloaded_from_the_list_open_safely(browser, live_server, console, size):  # noqa: F811
    page = open_page(browser, size)
    base = live_server.url
    sign_in_at_admin(page, base, "central", "pw-central", console["device"])
    page.goto(f"{base}/admin/financing/financedcase/?state__exact=cancelled")
    page.wait_for_selector("#result_list")
    reference = console["cancelled"].reference

    with page.expect_download() as csv_download:
        page.click("#export-csv")
    rows = list(csv.reader(io.StringIO(Path(csv_download.value.path()).read_text(encoding="utf-8"), newline="")))
    header = rows[0]
    assert [r[0] for r in rows[1:]] == [reference]
    assert rows[1][header.index("state_reason")] == "'" + HYPERLINK

    with page.expect_download() as xlsx_download:
        page.click("#export-xlsx")
    assert xlsx_download.value.suggested_filename.endswith(".xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(Path(xlsx_download.value.path()).read_bytes())).worksheets[0]
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert [r[0] for r in values[1:]] == [reference]
    assert values[1][values[0].index("state_reason")] == "'" + HYPERLINK


@pytest.mark.parametrize("size", VIEWPORTS)
def test_slash_leads_to_a_sign_in_in_plain_words(browser, live_server, console, size):  # noqa: F811
    page = open_page(browser, size)
    base = live_server.url
    page.goto(f"{base}/")
    assert page.url.startswith(f"{base}/admin/login/")
    assert page.inner_text("label[for=id_otp_token]") == "6-digit code from your authenticator app (or a backup code):"
    device = console["device"]
    wrong = f"{(totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits) + 1) % 1000000:06d}"
    page.fill("#id_username", "central")
    page.fill("#id_password", "pw-central")
    page.fill("#id_otp_token", wrong)
    page.click("input[type=submit]")
    page.wait_for_selector(".errornote")
    shot(page, "display-sign-in-wrong-code", size)
    text = page.inner_text("#content")
    assert "That code did not match" in text
    assert "OTP" not in text and page.locator("#id_otp_device").count() == 0
    assert page.locator("input[name=otp_challenge]").count() == 0
