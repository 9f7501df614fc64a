"""Production settings: `check --deploy` is clean with the production environment (HTTPS,
secure cookies, HSTS, no DEBUG, no demo secrets), while `make run`'s plain-http embedded
setup keeps working; sessions end after an idle timeout.

(Login throttling and the second factor belong to the billing console's own tests.)
"""

import json
import os
import secrets
import subprocess
import sys
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.conftest import make_user

PRODUCTION_ENV = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECURE": "true",
    "DJANGO_BEHIND_TLS_PROXY": "true",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "chairside.example.com",
    "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    "SEARCH_TOKEN_KEY": secrets.token_urlsafe(32),
    "CARECREDIT_WEBHOOK_SECRETS": "whsec_" + secrets.token_hex(24),
    "CHAIRSIDE_PUBLIC_URL": "https://chairside.example.com",
}
SHOWN = [
    "DEBUG", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SECURE_PROXY_SSL_HEADER", "SESSION_COOKIE_AGE",
    "SESSION_SAVE_EVERY_REQUEST", "SESSION_EXPIRE_AT_BROWSER_CLOSE", "SESSION_COOKIE_HTTPONLY", "X_FRAME_OPTIONS",
    "CHAIRSIDE_FAULT_POINTS",
]


def manage(*args, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CHAIRSIDE_TESTING", "CHAIRSIDE_FAULT", "FIELD_ENCRYPTION", "SEARCH_TOKEN", "CARECREDIT_WEBHOOK"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args], env={**clean, **env}, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=120
    )


def resolved_settings(**env) -> dict:
    code = f"from django.conf import settings; import json; print(json.dumps({{n: getattr(settings, n, None) for n in {SHOWN!r}}}))"
    result = manage("shell", "-c", code, **env)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_check_deploy_is_clean_with_the_production_environment():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_the_production_environment_means_https_only_and_an_idle_logoff():
    assert resolved_settings(**PRODUCTION_ENV) == {
        "DEBUG": False,
        "SECURE_SSL_REDIRECT": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SESSION_COOKIE_AGE": 1800,
        "SESSION_SAVE_EVERY_REQUEST": True,
        "SESSION_EXPIRE_AT_BROWSER_CLOSE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "X_FRAME_OPTIONS": "DENY",
        "CHAIRSIDE_FAULT_POINTS": [],
    }
    # Fault points cannot be armed by accident: the variable alone does nothing.
    assert resolved_settings(CHAIRSIDE_FAULT_POINTS="after_pms_agreement_write")["CHAIRSIDE_FAULT_POINTS"] == []


def test_check_deploy_refuses_the_embedded_defaults():
    result = manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    for problem in ("security.W004", "security.W008", "security.W009", "security.W012", "security.W016", "chairside.E001", "chairside.E002", "chairside.E004"):
        assert problem in result.stdout + result.stderr, problem
    armed = manage("check", "--deploy", **PRODUCTION_ENV, CHAIRSIDE_TESTING="1")
    assert "chairside.E003" in armed.stdout + armed.stderr


@pytest.mark.django_db
def test_the_embedded_setup_still_serves_plain_http():
    assert (settings.SECURE_SSL_REDIRECT, settings.SESSION_COOKIE_SECURE, settings.SECURE_HSTS_SECONDS) == (False, False, 0)
    response = Client().get("/admin/login/")
    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response.headers


@pytest.mark.django_db
def test_a_session_ends_after_the_idle_timeout_and_each_request_extends_it(location):
    user = make_user("idle-billing", location, is_staff=True, is_superuser=True)
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    client = Client()
    client.force_login(user)
    session = client.session
    session["otp_device_id"] = device.persistent_id
    session.save()
    assert client.get("/admin/").status_code == 200
    row = Session.objects.get(session_key=client.session.session_key)
    expected = timezone.now() + timedelta(seconds=settings.SESSION_COOKIE_AGE)
    assert abs((row.expire_date - expected).total_seconds()) < 5  # 30 minutes from this request

    # Each request moves the end: set it close, ask again, it is 30 minutes away again.
    Session.objects.filter(pk=row.pk).update(expire_date=timezone.now() + timedelta(seconds=60))
    assert client.get("/admin/").status_code == 200
    assert Session.objects.get(pk=row.pk).expire_date > timezone.now() + timedelta(seconds=settings.SESSION_COOKIE_AGE - 5)

    # Idle past the timeout: signed out, for the admin and for the API alike.
    Session.objects.filter(pk=row.pk).update(expire_date=timezone.now() - timedelta(seconds=1))
    response = client.get("/admin/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/admin/login/")
    assert client.get("/api/v1/cases/").status_code in (401, 403)
