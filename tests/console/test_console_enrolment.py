"""A staff member sets up their own second factor at the first sign-in (QR code, secret,
confirming code, backup codes), signs in with a backup code once, makes new ones, and an
administrator can reset it. Wrong codes count towards the lockout at every step."""

import base64
import logging
import re
from datetime import timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import second_factor
from tests.conftest import make_user, verified_login

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
ENROL = "/admin/sign-in/enrol/"
SIGN_IN_PAGE = "/admin/sign-in/"


def code_from_secret(secret_text: str) -> str:
    """What the person's authenticator app shows now for the secret on the page."""
    return f"{totp(base64.b32decode(secret_text.replace(' ', ''))):06d}"


def page_secret(html: str) -> str:
    return re.search(r'id="totp-secret">([A-Z2-7 ]+)<', html).group(1)


def page_codes(html: str) -> list[str]:
    block = re.search(r'<ol id="backup-codes">(.*?)</ol>', html, re.S).group(1)
    return re.findall(r"<li>([a-z2-7]{8})</li>", block)


@pytest.fixture
def newcomer(db):
    return make_user("nina", is_staff=True, phone="")


def start(client, username="nina", password="pw-nina"):
    return client.post(LOGIN, {"username": username, "password": password, "otp_token": ""})


def test_a_password_without_an_app_leads_to_setting_one_up_and_signs_nobody_in(newcomer):
    client = Client()
    response = start(client)
    assert response.status_code == 302 and response.url == ENROL
    assert "_auth_user_id" not in client.session
    # Not signed in anywhere: neither the console nor the API takes a password alone.
    assert client.get("/admin/").status_code == 302
    assert client.get("/api/v1/cases/").status_code in (401, 403)

    page = client.get(ENROL)
    assert page.status_code == 200
    html = page.content.decode()
    assert '<svg' in html and 'id="totp-qr"' in html  # drawn here, inline
    assert "http" not in re.search(r'<div class="qr" id="totp-qr">(.*?)</div>', html, re.S).group(1).replace("http://www.w3.org", "")
    secret = page_secret(html)
    assert len(secret.replace(" ", "")) == 32
    # Reloading shows the same secret: what was scanned stays what counts.
    assert page_secret(client.get(ENROL).content.decode()) == secret
    device = TOTPDevice.objects.get(user=newcomer)
    assert device.confirmed is False
    assert base64.b32encode(device.bin_key).decode() == secret.replace(" ", "")


def test_the_right_code_confirms_the_app_signs_in_and_shows_ten_backup_codes_once(newcomer, caplog):
    caplog.set_level(logging.DEBUG)
    client = Client()
    start(client)
    secret = page_secret(client.get(ENROL).content.decode())
    response = client.post(ENROL, {"code": code_from_secret(secret)})
    assert response.status_code == 200
    codes = page_codes(response.content.decode())
    assert len(codes) == 10 and len(set(codes)) == 10
    assert "no-store" in response["Cache-Control"]
    device = TOTPDevice.objects.get(user=newcomer)
    assert device.confirmed is True
    assert sorted(StaticToken.objects.filter(device__user=newcomer).values_list("token", flat=True)) == sorted(codes)
    # Signed in, verified by the new app.
    assert client.get("/admin/").status_code == 200
    assert client.get(ENROL).status_code == 302  # nothing left to set up
    # Never logged: the secret, the codes, the otpauth URL.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "second factor enrolled for user" in logged
    for secret_part in [secret.replace(" ", ""), device.key, "otpauth", *codes]:
        assert secret_part not in logged
    # The codes are not shown again anywhere.
    assert not any(code in client.get(SIGN_IN_PAGE).content.decode() for code in codes)


def test_a_backup_code_signs_in_once(newcomer):
    client = Client()
    start(client)
    secret = page_secret(client.get(ENROL).content.decode())
    codes = page_codes(client.post(ENROL, {"code": code_from_secret(secret)}).content.decode())

    first = Client()
    response = first.post(LOGIN, {"username": "nina", "password": "pw-nina", "otp_token": codes[3].upper()})
    assert response.status_code == 302 and response.url == "/admin/"
    assert first.get("/admin/").status_code == 200
    assert StaticToken.objects.filter(device__user=newcomer).count() == 9

    again = Client()
    refused = again.post(LOGIN, {"username": "nina", "password": "pw-nina", "otp_token": codes[3]})
    assert refused.status_code == 200
    assert "_auth_user_id" not in again.session
    assert AccessAttempt.objects.get(username="nina").failures_since_start == 1
    assert StaticToken.objects.filter(device__user=newcomer).count() == 9


def test_wrong_codes_while_setting_up_lock_the_username_out(newcomer, settings):
    client = Client(REMOTE_ADDR="203.0.113.7")
    start(client)
    secret = page_secret(client.get(ENROL).content.decode())
    right = code_from_secret(secret)
    wrong = f"{(int(right) + 1) % 1000000:06d}"
    for n in range(1, settings.AXES_FAILURE_LIMIT):
        response = client.post(ENROL, {"code": wrong})
        assert response.status_code == 200
        # The first is "not the code", the next ones django-otp's throttle (wait a little):
        # each counts.
        assert re.search(r"not the one your app shows now|Too many wrong codes in a row", response.content.decode())
        assert AccessAttempt.objects.get(username="nina").failures_since_start == n
    assert client.post(ENROL, {"code": wrong}).status_code == 429
    # Locked: even the right code does nothing now.
    locked = client.post(ENROL, {"code": right})
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    assert TOTPDevice.objects.get(user=newcomer).confirmed is False
    assert not StaticDevice.objects.filter(user=newcomer).exists()
    assert "_auth_user_id" not in client.session


def test_a_malformed_code_is_explained_and_not_counted(newcomer):
    client = Client()
    start(client)
    response = client.post(ENROL, {"code": "12ab"})
    assert "Enter the 6-digit code" in response.content.decode()
    assert not AccessAttempt.objects.filter(username="nina").exists()


def test_a_wrong_app_code_at_sign_in_counts_towards_the_lockout(settings):
    """With the right password, a wrong code is a failed sign-in too."""
    user = make_user("ann", is_staff=True, phone="")
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    right = f"{totp(device.bin_key):06d}"
    wrong = f"{(int(right) + 1) % 1000000:06d}"
    client = Client(REMOTE_ADDR="203.0.113.8")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert client.post(LOGIN, {"username": "ann", "password": "pw-ann", "otp_token": wrong}).status_code == 200
    assert client.post(LOGIN, {"username": "ann", "password": "pw-ann", "otp_token": wrong}).status_code == 429
    assert client.post(LOGIN, {"username": "ann", "password": "pw-ann", "otp_token": right}).status_code == 429
    assert "_auth_user_id" not in client.session
    # A blank code is no guess: asked for, not counted.
    other = make_user("bea", is_staff=True, phone="")
    TOTPDevice.objects.create(user=other, name="phone", confirmed=True)
    assert client.post(LOGIN, {"username": "bea", "password": "pw-bea", "otp_token": ""}).status_code == 200
    assert not AccessAttempt.objects.filter(username="bea").exists()


def test_setting_up_expires_after_ten_minutes(newcomer):
    client = Client()
    start(client)
    secret = page_secret(client.get(ENROL).content.decode())
    with time_machine.travel(timezone.now() + timedelta(minutes=second_factor.ENROL_MINUTES, seconds=5), tick=False):
        response = client.post(ENROL, {"code": code_from_secret(secret)})
    assert response.status_code == 302 and response.url == "/admin/login/"
    assert TOTPDevice.objects.get(user=newcomer).confirmed is False


def test_your_sign_in_makes_new_backup_codes_and_the_old_ones_stop_working(newcomer):
    client = Client()
    start(client)
    secret = page_secret(client.get(ENROL).content.decode())
    old = page_codes(client.post(ENROL, {"code": code_from_secret(secret)}).content.decode())
    page = client.get(SIGN_IN_PAGE)
    assert page.status_code == 200
    assert "10 of 10 left" in page.content.decode()
    new = page_codes(client.post(SIGN_IN_PAGE).content.decode())
    assert len(new) == 10 and not set(new) & set(old)
    refused = Client().post(LOGIN, {"username": "nina", "password": "pw-nina", "otp_token": old[0]})
    assert refused.status_code == 200
    # django-otp throttles a device for a second after a failure: come back a little later.
    with time_machine.travel(timezone.now() + timedelta(seconds=3), tick=False):
        assert Client().post(LOGIN, {"username": "nina", "password": "pw-nina", "otp_token": new[0]}).status_code == 302
    assert "9 of 10 left" in client.get(SIGN_IN_PAGE).content.decode()
    # Only a verified session reaches the page.
    assert Client().get(SIGN_IN_PAGE).status_code == 302


def test_an_administrator_resets_a_second_factor_and_the_admin_log_says_so(newcomer):
    TOTPDevice.objects.create(user=newcomer, name=second_factor.AUTHENTICATOR_NAME, confirmed=True)
    second_factor.replace_backup_codes(newcomer)
    nina = Client()
    verified_login(nina, newcomer)
    assert nina.get("/admin/").status_code == 200

    admin_user = make_user("root", is_staff=True, is_superuser=True, phone="")
    admin = Client()
    verified_login(admin, admin_user)
    listing = admin.get("/admin/auth/user/")
    assert "Reset second factor" in listing.content.decode()
    response = admin.post(
        "/admin/auth/user/", {"action": "reset_second_factor", "_selected_action": [newcomer.pk]}, follow=True
    )
    assert "Second factor reset for nina" in response.content.decode()
    assert not TOTPDevice.objects.filter(user=newcomer).exists()
    assert not StaticDevice.objects.filter(user=newcomer).exists()
    entry = LogEntry.objects.get(object_id=str(newcomer.pk))
    assert entry.user == admin_user and "Reset the second factor" in entry.get_change_message()
    # Nina's verified session no longer opens the console; her next sign-in sets up a new app.
    assert nina.get("/admin/").status_code == 302
    assert start(Client()).url == ENROL


def test_nobody_reads_backup_codes_in_the_admin(newcomer):
    codes = second_factor.replace_backup_codes(newcomer)
    admin = Client()
    verified_login(admin, make_user("root", is_staff=True, is_superuser=True, phone=""))
    assert admin.get("/admin/otp_static/staticdevice/").status_code == 404
    page = admin.get(f"/admin/auth/user/{newcomer.pk}/change/").content.decode()
    assert not any(code in page for code in codes)


def test_staff_without_the_permission_cannot_reset(newcomer):
    from django.contrib.auth.models import Permission

    clerk = make_user("clerk", is_staff=True, phone="")
    clerk.user_permissions.set(Permission.objects.filter(codename__in=["view_user", "change_user"]))
    client = Client()
    verified_login(client, clerk)
    TOTPDevice.objects.create(user=newcomer, name="phone", confirmed=True)
    listing = client.get("/admin/auth/user/")
    assert listing.status_code == 200 and "reset_second_factor" not in listing.content.decode()
    client.post("/admin/auth/user/", {"action": "reset_second_factor", "_selected_action": [newcomer.pk]})
    assert TOTPDevice.objects.filter(user=newcomer).exists()
    assert not LogEntry.objects.filter(object_id=str(newcomer.pk)).exists()
