"""Records a clerk can trust, in a real browser at 1366×768 and 1920×1080 (issue 12, defects 1, 3, 4, 5):
the schedule after a correction, the person behind each action on the timeline, the reason
that still stands, and what a cancelled case left in Dentrix. Same pattern as
test_console_browser.py: Playwright driving Debian's Chromium against a live server, a
billing user signed in with their second factor."""

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from financing import services
from financing.models import CaseState, FinancedCase, PaymentArrangement
from notifications.models import Notification
from tests.conftest import make_user
from tests.console.console_factories import billing_user, make_case, plain_location, with_computed_terms
from tests.console.test_console_browser import CHROMIUM, browser, shot, sign_in  # noqa: F401 (browser: the fixture)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (.ci/run installs Debian's chromium)"),
]


@pytest.fixture(params=[(1366, 768), (1920, 1080)], ids=["1366x768", "1920x1080"])
def clerk(request, template, browser, live_server):  # noqa: F811
    """Ann, billing at Main Street Dental, signed in in a window of each width: (page, base url, location, ann)."""
    main = plain_location(template, "main", name="Main Street Dental")
    ann = billing_user("ann", main)
    device = TOTPDevice.objects.create(user=ann, name="phone", confirmed=True)
    width, height = request.param
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(15_000)
    sign_in(page, live_server.url, "ann", "pw-ann", device)
    page.screen_width = width  # for the screenshots' names
    return page, live_server.url, main, ann


def open_case(page, base, case):
    page.goto(f"{base}/admin/financing/financedcase/{case.pk}/change/")
    page.wait_for_selector("#case-banner")


def timeline_rows(page):
    """(who, what) of each timeline row, as the clerk reads them."""
    return [
        (row.locator("td").nth(1).inner_text(), row.locator("td").nth(2).inner_text())
        for row in page.locator("#timeline tr").all()[1:]
    ]


def test_a_corrected_first_payment_date_moves_the_schedule_on_the_case_page(clerk, tasks):
    page, base, main, ann = clerk
    # Decided 2026-12-01: 12 × $208.34, the first due 2026-12-31 (month ends after it).
    case = with_computed_terms(make_case(main, plan_total=Decimal("2500.00")), decision_date=date(2026, 12, 1))

    open_case(page, base, case)
    page.click("#schedule summary")
    assert page.inner_text("#schedule summary") == "12 payments, first due Dec 31, 2026"
    page.click("#record-correction")
    page.select_option("#id_field", "first_payment_date")
    page.fill("#id_after", "2027-01-15")
    page.fill("#id_why", "Patient asked for the 15th")
    page.click("#save-correction")
    page.wait_for_selector(".messagelist")
    assert "Correction recorded: first payment date Dec 31, 2026 → Jan 15, 2027." in page.inner_text(".messagelist")

    page.click("#schedule summary")
    assert page.inner_text("#schedule summary") == "12 payments, first due Jan 15, 2027"
    due = page.locator("#schedule tr td:nth-child(2)").all_inner_texts()
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    assert due == [f"{months[m % 12]} 15, {2027 + m // 12}" for m in range(12)]
    assert page.locator("#schedule tr td:nth-child(3)").all_inner_texts() == ["$208.34"] * 11 + ["$208.26"]
    assert "Dec 31, 2026" not in page.inner_text("#schedule")
    assert "worked out again" in page.inner_text("#corrected-note")
    shot(page, f"records-1-schedule-after-correction-{page.screen_width}")


def test_the_timeline_names_who_resent_and_who_cancelled_in_bulk(clerk, tasks):
    page, base, main, ann = clerk
    done = make_case(main, coordinator=make_user("cora", main))
    open_case(page, base, done)
    page.click("#resend-confirmation")
    page.wait_for_selector(".messagelist")
    rows = timeline_rows(page)
    assert ("ann", "Resent the approval confirmation to the coordinator, cora\nCase approved by Email: queued\nCase approved by SMS: queued") in rows
    assert [who for who, what in rows if "Case approved" in what] == ["ann"]  # not "Chairside"
    shot(page, f"records-3-resend-credited-{page.screen_width}")

    first, second = make_case(main, state=CaseState.CAPTURED), make_case(main, state=CaseState.AWAITING_DECISION)
    page.goto(f"{base}/admin/financing/financedcase/")
    page.check(f"input[name=_selected_action][value='{first.pk}']")
    page.check(f"input[name=_selected_action][value='{second.pk}']")
    page.select_option("select[name=action]", "cancel_cases")
    page.click("button[name=index]")
    page.fill("textarea[name=reason]", "Duplicate plans")
    page.click("input[type=submit]")
    page.wait_for_selector(".messagelist")
    assert "Cancelled 2 case(s)." in page.inner_text(".messagelist")
    open_case(page, base, second)
    who, what = timeline_rows(page)[-1]
    assert who == "ann" and what.startswith("Cancelled the case: Duplicate plans\nAwaiting decision → Cancelled")


def test_the_banner_says_the_reason_still_stands(clerk, tasks):
    page, base, main, ann = clerk
    reason = "Guarantor account 3001 already has an active payment agreement (Dentrix id 7001); close it in Dentrix."
    case = make_case(main, state=CaseState.APPROVED)
    services.leases.needs_attention(case.pk, None, reason)
    services.resume_case(case.pk, actor=ann)
    services.leases.needs_attention(case.pk, None, reason)
    assert Notification.objects.filter(reference=case.reference).count() == 1  # the first stop's alert only

    open_case(page, base, case)
    assert reason in page.inner_text("#case-banner")
    moment = r"(?:[A-Z][a-z]{2} \d{1,2}, \d{4}, )?\d{1,2}:\d{2} [AP]M E[SD]T"  # the location's clock, labelled
    assert re.fullmatch(
        rf"Stopped again for the same reason at {moment} \(stopped 2 times for it\); "
        rf"billing was alerted the first time, at {moment}, and not again\.",
        page.inner_text("#still-stands"),
    )
    assert page.locator("#still-stands").is_visible()
    shot(page, f"records-4-reason-still-stands-{page.screen_width}")


def test_a_cancelled_case_says_what_happened_in_dentrix(clerk, tasks):
    page, base, main, ann = clerk
    coordinator = make_user("cora", main)
    early = make_case(main, state=CaseState.AWAITING_DECISION, coordinator=coordinator)
    open_case(page, base, early)
    page.fill("textarea[name=reason]", "Patient chose to pay cash")
    page.click("#cancel-case")
    page.wait_for_selector(".messagelist")
    assert page.inner_text("#cancelled-outcome") == (
        "Not written: the case was cancelled before the arrangement step. Nothing was written to Dentrix."
    )
    assert "Pending" not in page.inner_text(".story")

    written = make_case(main, state=CaseState.ARRANGEMENT_WRITTEN, coordinator=coordinator)
    FinancedCase.objects.filter(pk=written.pk).update(
        state=CaseState.NEEDS_ATTENTION, resume_state=CaseState.ARRANGEMENT_WRITTEN, state_reason="Dentrix refused the ledger note"
    )
    agreement = PaymentArrangement.objects.get(case=written).pms_arrangement_id
    open_case(page, base, written)
    page.fill("textarea[name=reason]", "Treatment postponed")
    page.click("#cancel-case")
    page.wait_for_selector(".messagelist")
    assert page.inner_text("#written-to-pms").startswith("Written before the case was cancelled: it stays in Dentrix")
    assert "Pending" not in page.inner_text("#written-to-pms")
    outcome = page.inner_text("#cancelled-outcome")
    assert f"inactivate agreement {agreement} on guarantor account {written.guarantor_id} in Dentrix" in outcome
    assert page.locator("#cancelled-outcome").is_visible()
    shot(page, f"records-5-cancelled-written-{page.screen_width}")
    # The coordinator is told once, by each of their channels (email and SMS).
    assert sorted(Notification.objects.filter(reference=written.reference).values_list("template", "channel")) == [
        ("case_cancelled", "email"), ("case_cancelled", "sms"),
    ]
