"""The billing console in a real browser: Playwright driving Debian's Chromium against a live
server. Its screenshots land in artifacts/screenshots/ (the README's images come from the
demo data instead: `make screenshots`, docs/screenshots.py).

.ci/run installs Chromium; without /usr/bin/chromium these tests skip, saying so.
"""

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from financing import services
from financing.dashboard import week_start
from financing.models import CaseState, Location, ShadowComparison
from tests.conftest import make_location, make_user
from tests.console.console_factories import billing_user, make_case, plain_location

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
D = Decimal

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)"),
]


@pytest.fixture
def browser(monkeypatch):
    playwright_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # still plain synchronous code, so tell Django it may run them.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


def new_page(browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(15_000)
    return page


def shot(page, name):
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page, base_url, username, password, device):
    page.goto(f"{base_url}/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.fill("#id_otp_token", f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}/admin/")


def history(locations, coordinator, biller):
    """Eight weeks of cases, so the dashboard has lines to draw: a few corrections at the live
    locations, and hand-entered agreements compared at the shadow one."""
    this_week = week_start(timezone.now().date())
    minutes = [4, 6, 9, 5, 12, 7, 30, 8]
    for w in range(8):
        day = this_week - timedelta(weeks=7 - w)
        for n, location in enumerate(locations):
            shadow = location.mode == Location.Mode.SHADOW
            for i in range(3 + (w + n) % 3):
                captured = datetime.combine(day, time(14 + i), tzinfo=UTC)
                state = CaseState.DECLINED if (w + i + n) % 5 == 0 else CaseState.COMPLETED
                case = make_case(location, state=state, coordinator=coordinator, captured_at=captured, shadow=shadow,
                                 took=timedelta(minutes=minutes[(w + i + n) % 8] * (n + 1)), plan_total=D("1800.00") + 350 * i)
                if state != CaseState.COMPLETED:
                    continue
                if shadow:
                    differs = (w + i) % 3 == 0
                    ShadowComparison.objects.create(
                        case=case, location=location, compared_at=captured, pms_agreement_id=str(6000 + case.pk),
                        outcome="mismatch" if differs else "match", discrepancy_count=int(differs),
                        discrepancies=[{"field": "first_payment_due", "chairside": "2026-12-01", "dentrix": "2026-12-15"}] if differs else [],
                    )
                elif (w * 7 + i * 3 + n) % 9 == 0:
                    services.record_correction(case.pk, field="first_payment_date", after="2027-01-15", why="Patient asked for the 15th", actor=biller)


def test_a_biller_resumes_a_case_records_a_correction_and_sees_the_dashboard_move(browser, live_server, template, sandboxes, tasks):
    main = make_location(template, sandboxes, code="main", name="Main Street Dental")
    north = plain_location(template, "north", name="Northside Family Dentistry")
    coordinator = make_user("cora", main)
    ann = billing_user("ann", main)
    device = TOTPDevice.objects.create(user=ann, name="phone", confirmed=True)
    stuck = make_case(main, state=CaseState.NEEDS_ATTENTION, resume_state=CaseState.APPROVED, coordinator=coordinator,
                      reason="Guarantor account 3001 already has an active payment agreement (Dentrix id 7001); "
                      "Dentrix allows one per account. Close or adjust it in Dentrix, then resume this case.")
    # One case through the real flow against the sandboxes, for an honest timeline.
    patient = sandboxes.new_patient("Thompson", fees=("1250.00", "2000.00"))
    done = services.capture_case(location=main, patient_id=patient["patient_id"], treatment_plan_id=patient["treatment_plan_id"], actor=coordinator)
    tasks.drain()
    services.refresh_decision(done.pk)
    tasks.drain()
    done.refresh_from_db()
    assert done.state == CaseState.COMPLETED
    theirs = make_case(north, state=CaseState.NEEDS_ATTENTION, resume_state=CaseState.APPROVED, reason="x")
    page = new_page(browser)
    base = live_server.url

    page.goto(f"{base}/admin/")
    shot(page, "01-sign-in")
    sign_in(page, base, "ann", "pw-ann", device)

    # Find the case that needs attention, read why, resume it.
    page.click("text=Needs attention")
    page.wait_for_selector("#result_list")
    shot(page, "02-needs-attention")
    assert page.locator("#result_list tbody tr").count() == 1
    page.click(f"text={stuck.reference}")
    page.wait_for_selector("#case-banner")
    assert "already has an active payment agreement" in page.inner_text("#case-banner")
    page.click("#resume-case")
    page.wait_for_selector(".messagelist")
    assert f"{stuck.reference} resumed" in page.inner_text(".messagelist")
    stuck.refresh_from_db()
    assert stuck.state == CaseState.APPROVED
    assert tasks.names() == ["financing.write_arrangement"]

    # The dashboard before the correction.
    page.click("text=Dashboard")
    page.wait_for_selector("#kpis")
    assert page.inner_text("#kpi-corrections") == "0.000"

    # Record a correction on the written case.
    page.goto(f"{base}/admin/financing/financedcase/{done.pk}/change/")
    page.click("#record-correction")
    page.select_option("#id_field", "recurring_amount")
    page.fill("#id_after", "271.00")
    page.fill("#id_why", "Dentrix rounded the payment up to whole dollars")
    shot(page, "04-correction-form")
    page.click("#save-correction")
    page.wait_for_selector(".messagelist")
    assert "Correction recorded: recurring amount $270.84 → $271.00." in page.inner_text(".messagelist")
    assert "Dentrix rounded the payment up to whole dollars" in page.inner_text("#timeline")
    shot(page, "03-case-page")

    # The dashboard moved: one correction for the one written arrangement.
    page.click("text=Dashboard")
    page.wait_for_selector("#kpis")
    assert page.inner_text("#kpi-corrections") == "1.000"
    shot(page, "05-dashboard-one-location")

    # Another location's case is not there for this user, whatever the URL.
    page.goto(f"{base}/admin/financing/financedcase/{theirs.pk}/change/")
    assert "doesn’t exist" in page.inner_text(".messagelist")
    assert theirs.reference not in page.content()
    theirs.refresh_from_db()
    assert theirs.state == CaseState.NEEDS_ATTENTION


def test_a_central_biller_sees_three_locations_on_the_dashboard(browser, live_server, template, tasks):
    sites = [
        plain_location(template, "main", name="Main Street Dental"),
        plain_location(template, "north", name="Northside Family Dentistry"),
        plain_location(template, "south", name="Southgate Smiles", mode=Location.Mode.SHADOW),
        plain_location(template, "west", name="Westfield Dental"),
    ]
    coordinator = make_user("cora", sites[0])
    central = billing_user("central", *sites[:3])
    history(sites[:3], coordinator, central)
    hidden = make_case(sites[3])
    device = TOTPDevice.objects.create(user=central, name="phone", confirmed=True)
    page = new_page(browser)
    base = live_server.url
    sign_in(page, base, "central", "pw-central", device)

    page.click("text=Dashboard")
    page.wait_for_selector("#by-location")
    codes = page.locator("#by-location tbody tr td:first-child").all_inner_texts()
    assert codes == ["main", "north", "south"]
    assert page.locator("svg.chart").count() == 5  # time to approval, time to arrangement (median, p90), acceptance, corrections
    shot(page, "06-dashboard")
    page.set_viewport_size({"width": 1366, "height": 768})
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1366, f"the dashboard is {width} px wide at 1366"  # no sideways scroll

    page.click("text=All cases")
    page.wait_for_selector("#result_list")
    shot(page, "07-case-list")
    assert hidden.reference not in page.content()
