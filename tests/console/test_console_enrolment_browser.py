"""A new staff member sets up their second factor in a real browser at 1366×768: the QR
code's secret read from the page, the code computed here as their app would, backup codes
that sign in once each, and the lockout still in force on the code step."""

import base64

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.conftest import make_user
from tests.console.test_console_browser import CHROMIUM, browser  # noqa: F401 (the fixture)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not __import__("pathlib").Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
]


def laptop_page(browser):  # noqa: F811
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.set_default_timeout(15_000)
    return page


def app_code(secret_text: str) -> str:
    return f"{totp(base64.b32decode(secret_text.replace(' ', ''))):06d}"


def password_step(page, base, username, password, code=""):
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.fill("#id_otp_token", code)
    page.click("input[type=submit]")


def sign_out(page):
    page.click("#logout-form button")
    page.wait_for_selector("#login-form, .login, #content")


def test_a_new_staff_member_sets_up_the_app_and_uses_a_backup_code_once(browser, live_server):  # noqa: F811
    nina = make_user("nina", is_staff=True, phone="")
    base = live_server.url
    page = laptop_page(browser)

    password_step(page, base, "nina", "pw-nina")
    page.wait_for_url(f"{base}/admin/sign-in/enrol/")
    qr = page.locator("#totp-qr svg")
    assert qr.is_visible()
    box = qr.bounding_box()
    assert box["width"] >= 150 and box["y"] + box["height"] <= 768  # scannable, on the first screen
    secret = page.inner_text("#totp-secret").strip()
    assert page.locator("#id_code").is_visible() and page.locator("#enrol-confirm").is_visible()

    page.fill("#id_code", app_code(secret))
    page.click("#enrol-confirm")
    page.wait_for_selector("#backup-codes")
    codes = [c.strip() for c in page.locator("#backup-codes li").all_inner_texts()]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert TOTPDevice.objects.get(user=nina).confirmed is True
    page.click("#continue")
    page.wait_for_url(f"{base}/admin/")
    assert page.locator("#your-sign-in").is_visible()
    sign_out(page)

    # A backup code instead of the app's code: once.
    password_step(page, base, "nina", "pw-nina", codes[0])
    page.wait_for_url(f"{base}/admin/")
    page.click("#your-sign-in")
    page.wait_for_selector("#codes-left")
    assert page.inner_text("#codes-left") == "9 of 10 left"
    sign_out(page)

    password_step(page, base, "nina", "pw-nina", codes[0])
    page.wait_for_selector(".errornote")
    assert page.url.startswith(f"{base}/admin/login/")
    assert StaticToken.objects.filter(device__user=nina).count() == 9


def test_the_lockout_still_applies_to_the_code_step(browser, live_server, settings):  # noqa: F811
    make_user("omar", is_staff=True, phone="")
    base = live_server.url
    page = laptop_page(browser)
    password_step(page, base, "omar", "pw-omar")
    page.wait_for_url(f"{base}/admin/sign-in/enrol/")
    secret = page.inner_text("#totp-secret").strip()
    right = app_code(secret)
    wrong = f"{(int(right) + 1) % 1000000:06d}"
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        page.fill("#id_code", wrong)
        page.click("#enrol-confirm")
        page.wait_for_selector("#enrol-error")
    page.fill("#id_code", wrong)
    page.click("#enrol-confirm")
    page.wait_for_selector("text=Too many failed sign-ins")
    # Locked out: the right code now changes nothing, and the console stays closed.
    page.goto(f"{base}/admin/sign-in/enrol/")
    assert "Too many failed sign-ins" in page.content()
    assert TOTPDevice.objects.get(user__username="omar").confirmed is False
    page.goto(f"{base}/admin/")
    assert page.url.startswith(f"{base}/admin/login/")
