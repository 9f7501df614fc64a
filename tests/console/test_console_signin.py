"""Staff sign in with a password and a second factor (TOTP); repeated failures lock the
username out from that address for a while."""

import io

import pytest
from django.core.management import call_command
from django.test import Client, RequestFactory
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.signin import client_ip
from financing.management.commands.seed_demo import DEMO_TOTP_BASE32, DEMO_TOTP_KEY
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"


def code_for(device) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


@pytest.fixture
def ann(db):
    user = make_user("ann", is_staff=True, phone="")
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return user, device


def test_password_and_code_sign_a_staff_member_in(ann):
    user, device = ann
    client = Client()
    response = client.post(LOGIN, {"username": "ann", "password": "pw-ann", "otp_token": code_for(device)})
    assert response.status_code == 302 and response.url == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_a_password_alone_is_not_enough(ann):
    user, device = ann
    client = Client()
    wrong_code = f"{(int(code_for(device)) + 1) % 1000000:06d}"
    for token in ("", wrong_code):
        response = client.post(LOGIN, {"username": "ann", "password": "pw-ann", "otp_token": token})
        assert response.status_code == 200  # the form again, with an error
        assert "_auth_user_id" not in client.session
    # A session that skipped the second factor (e.g. a password-only login) gets no admin page.
    client.force_login(user)
    assert client.get("/admin/").status_code == 302


def test_repeated_failures_lock_the_username_out_from_that_address(ann, settings):
    user, device = ann
    client = Client(REMOTE_ADDR="203.0.113.7")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert client.post(LOGIN, {"username": "ann", "password": "guess", "otp_token": "000000"}).status_code == 200
    assert client.post(LOGIN, {"username": "ann", "password": "guess", "otp_token": "000000"}).status_code == 429
    locked = client.post(LOGIN, {"username": "ann", "password": "pw-ann", "otp_token": code_for(device)})
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.text
    assert "_auth_user_id" not in client.session

    # The same user from another address, and another user from this one, are not locked.
    elsewhere = Client(REMOTE_ADDR="198.51.100.9")
    assert elsewhere.post(LOGIN, {"username": "ann", "password": "pw-ann", "otp_token": code_for(device)}).status_code == 302
    bob = make_user("bob", is_staff=True, phone="")
    bob_device = TOTPDevice.objects.create(user=bob, name="phone", confirmed=True)
    assert client.post(LOGIN, {"username": "bob", "password": "pw-bob", "otp_token": code_for(bob_device)}).status_code == 302


def test_client_address_is_read_through_the_configured_proxies(settings):
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    settings.LOGIN_PROXY_COUNT = 0
    assert client_ip(request) == "10.0.0.2"  # no proxy: the header is the client's to forge
    settings.LOGIN_PROXY_COUNT = 1
    assert client_ip(request) == "203.0.113.7"
    settings.LOGIN_PROXY_COUNT = 3
    assert client_ip(request) == "10.0.0.2"  # fewer hops than proxies: do not trust the header


def test_demo_logins_have_the_documented_second_factor(settings):
    import base64

    assert base64.b32encode(bytes.fromhex(DEMO_TOTP_KEY)).decode() == DEMO_TOTP_BASE32
    call_command("seed_demo", stdout=io.StringIO())
    out = io.StringIO()
    call_command("demo_totp", "billing", stdout=out)
    code = out.getvalue().strip()
    assert len(code) == 6 and code.isdigit()
    client = Client()
    response = client.post(LOGIN, {"username": "billing", "password": "chairside-demo", "otp_token": code})
    assert response.status_code == 302 and response.url == "/admin/"
    assert client.get("/admin/financing/financedcase/").status_code == 200


def test_the_sign_in_asks_for_the_code_in_plain_words_and_shows_no_device_machinery(ann):
    user, device = ann
    client = Client()
    page = client.get(LOGIN).text
    assert '<label for="id_otp_token" class="required">6-digit code from your authenticator app (or a backup code):</label>' in page
    # No digits-only keyboard or length: a backup code (eight letters) goes in the same field.
    assert 'autocomplete="one-time-code"' in page and "inputmode" not in page
    assert "OTP" not in page

    # A wrong code: the same plain page again, with a plain reason; one authenticator app,
    # so nothing to pick and nothing to send.
    wrong_code = f"{(int(code_for(device)) + 1) % 1000000:06d}"
    again = client.post(LOGIN, {"username": "ann", "password": "pw-ann", "otp_token": wrong_code})
    assert again.status_code == 200 and "_auth_user_id" not in client.session
    assert "That code did not match. Enter the 6-digit code your authenticator app shows now, or an unused backup code." in again.text
    for machinery in ("OTP Device", "Get OTP Challenge", "OTP Token", 'name="otp_device"', 'name="otp_challenge"'):
        assert machinery not in again.text
    missing = client.post(LOGIN, {"username": "ann", "password": "pw-ann", "otp_token": ""})
    assert "Enter the 6-digit code from your authenticator app, or one of your backup codes." in missing.text


def test_someone_with_two_authenticators_picks_one(ann):
    user, device = ann
    TOTPDevice.objects.create(user=user, name="tablet", confirmed=True)
    client = Client()
    again = client.post(LOGIN, {"username": "ann", "password": "pw-ann", "otp_token": "000000"})
    assert again.status_code == 200
    assert '<label for="id_otp_device">Authenticator:</label>' in again.text and 'name="otp_device"' in again.text
    assert 'name="otp_challenge"' not in again.text  # authenticator apps send nothing
    signed_in = client.post(
        LOGIN, {"username": "ann", "password": "pw-ann", "otp_device": device.persistent_id, "otp_token": code_for(device)}
    )
    assert signed_in.status_code == 302 and signed_in.url == "/admin/"


def test_the_lockout_page_is_a_console_page_with_the_wait_in_words(ann, settings):
    client = Client(REMOTE_ADDR="203.0.113.8")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(LOGIN, {"username": "ann", "password": "guess", "otp_token": "000000"})
    locked = client.post(LOGIN, {"username": "ann", "password": "guess", "otp_token": "000000"})
    assert locked.status_code == 429
    assert '<div id="site-name"><a href="/admin/">Chairside billing console</a></div>' in locked.text
    assert "<h1>Too many failed sign-ins</h1>" in locked.text
    assert "Try again in 15 minutes, or ask a Chairside administrator to unlock it" in locked.text
    assert "Django administration" not in locked.text and "PT15M" not in locked.text


def test_slash_is_the_console_and_there_is_no_view_site_link(ann):
    user, device = ann
    client = Client()
    home = client.get("/")
    assert home.status_code == 302 and home.url == "/admin/"
    client.post(LOGIN, {"username": "ann", "password": "pw-ann", "otp_token": code_for(device)})
    assert client.get("/", follow=True).redirect_chain[-1] == ("/admin/", 302)
    index = client.get("/admin/").text
    assert "View site" not in index
