"""A staff member's second factor: set up at the first sign-in, backup codes, reset.

Why a small flow of our own on django-otp rather than django-two-factor-auth: the console
signs in on one page (username, password and code: `config.signin.ConsoleLoginForm`,
django-otp's admin form) with django-axes counting failures per username and address.
django-two-factor-auth replaces that page with its own multi-step login wizard and admin
site, brings django-formtools and phone-number fields we do not use, and its code steps
are not counted by django-axes either, so the lockout would have to be wired into it all
the same. What it would give us — a QR code for a TOTP device and django-otp's static
backup codes — is the part below: django-otp's own devices (`otp_totp`, `otp_static`),
a QR code drawn by segno as inline SVG (nothing fetched), and two views.

The flow:

1. The sign-in form checks the password. A staff member without a confirmed authenticator
   app is not signed in: `begin` notes in the (new) session who proved their password,
   for ENROL_MINUTES, and the console shows the enrolment page.
2. The enrolment page shows a QR code of a new, unconfirmed TOTP device and its secret in
   text. A code from the app confirms it (`confirm`): only then is the person signed in,
   with the session verified by that device, and given BACKUP_CODES one-time codes.
   Every wrong code counts towards the django-axes lockout, like a wrong password.
3. Backup codes sign in instead of the app's code, once each; "Your sign-in" makes a new
   set (the old set stops working). An administrator resets a person's second factor
   (`reset`); they set up a new one at their next sign-in.

Never logged: secrets, codes, otpauth URLs. Logged: which user (by id) did what.
"""

import functools
import logging
import re
from datetime import timedelta

import segno
from django.contrib import auth
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django.utils import timezone
from django_otp import devices_for_user
from django_otp.middleware import is_verified as otp_is_verified
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

log = logging.getLogger(__name__)

ENROL_SESSION_KEY = "chairside_second_factor_enrolment"
ENROL_MINUTES = 10
BACKUP_CODES = 10
AUTHENTICATOR_NAME = "Authenticator app"
BACKUP_DEVICE_NAME = "Backup codes"

TOTP_CODE = re.compile(r"^\d{6}$")
# django-otp's static tokens: 8 characters of lower-case base32 (StaticToken.random_token).
BACKUP_CODE = re.compile(r"^[a-z2-7]{8}$")


def normalise_code(value: str) -> str:
    """What a person typed, as a code: spaces and dashes dropped, backup codes lower-cased."""
    return re.sub(r"[\s-]", "", value or "").lower()


def needs_enrolment(user) -> bool:
    """Staff sign in with an authenticator app; without a confirmed one they set one up."""
    return not TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def device_for_code(user, code: str):
    """The one device a code is meant for, by its shape: six digits are the app's, eight
    letters a backup code. Only that device hears a failure, so a mistyped app code never
    throttles the backup codes (django-otp's reason for asking which device is meant)."""
    # Locked like django-otp locks the devices it verifies: one code, one use.
    if TOTP_CODE.match(code):
        devices = list(TOTPDevice.objects.filter(user=user, confirmed=True).select_for_update())
    elif BACKUP_CODE.match(code):
        devices = list(StaticDevice.objects.filter(user=user, confirmed=True).select_for_update())
    else:
        return None
    return devices[0] if len(devices) == 1 else None


def count_failure(request, username: str):
    """A wrong code counts towards the lockout exactly like a wrong password (django-axes
    listens to this signal; past the limit it answers with the lockout page)."""
    user_login_failed.send(sender=__name__, credentials={"username": username}, request=request)


# --- enrolment -----------------------------------------------------------------------------


def begin(request, user):
    """The password was right and there is no authenticator yet: remember who, briefly.

    Nobody is signed in here: the session holds only this note until a code from the new
    app confirms it, so a password alone never opens the console nor the API.
    """
    request.session.cycle_key()  # a new session id once a password has been proven
    request.session[ENROL_SESSION_KEY] = {
        "user": user.pk,
        "backend": getattr(user, "backend", None) or "django.contrib.auth.backends.ModelBackend",
        "until": (timezone.now() + timedelta(minutes=ENROL_MINUTES)).timestamp(),
    }
    log.info("second factor enrolment started for user %s", user.pk)


def pending_user(request):
    """The staff member who proved their password and is setting up their app, or None."""
    note = request.session.get(ENROL_SESSION_KEY)
    if not isinstance(note, dict) or note.get("until", 0) < timezone.now().timestamp():
        return None
    user = get_user_model().objects.filter(pk=note.get("user"), is_active=True, is_staff=True).first()
    if user is None or not needs_enrolment(user):
        return None
    user.backend = note["backend"]
    return user


def enrolment_device(user) -> TOTPDevice:
    """The unconfirmed device being set up: the same one on every reload of the page, so
    the QR code a person already scanned stays the one that counts."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False, name=AUTHENTICATOR_NAME).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=user, name=AUTHENTICATOR_NAME, confirmed=False)


def secret_text(device: TOTPDevice) -> str:
    """The secret as an authenticator app takes it by hand: base32, in groups of four."""
    from base64 import b32encode

    secret = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def qr_svg(device: TOTPDevice) -> str:
    """The device's otpauth:// URL as an inline SVG QR code, drawn here (no service, no CDN)."""
    return segno.make(device.config_url, error="m").svg_inline(scale=5, border=2, title="QR code for your authenticator app")


class CodeRefused(Exception):
    """The code did not confirm the device; the message says what to do."""


def confirm(request, user, device: TOTPDevice, typed: str) -> list[str]:
    """Confirm the new app with a code from it, sign the person in, and return their
    backup codes (shown once: only their use is stored, never shown again)."""
    code = normalise_code(typed)
    if not TOTP_CODE.match(code):
        raise CodeRefused("Enter the 6-digit code your authenticator app shows for Chairside.")
    allowed, _ = device.verify_is_allowed()
    if not allowed or not device.verify_token(code):
        count_failure(request, user.get_username())
        if not allowed:
            raise CodeRefused("Too many wrong codes in a row: wait a minute, then enter the code your app shows now.")
        raise CodeRefused("That code is not the one your app shows now. Check the app's clock, then try the current code.")
    with transaction.atomic():
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        # Any other unconfirmed attempt (another browser tab) is void now.
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        codes = replace_backup_codes(user)
    user.otp_device = device  # django-otp marks the new session verified by it at login
    auth.login(request, user, backend=user.backend)
    # What OTPMiddleware gives request.user on later requests, for the rest of this one.
    user.is_verified = functools.partial(otp_is_verified, user)
    request.session.pop(ENROL_SESSION_KEY, None)
    log.info("second factor enrolled for user %s", user.pk)
    return codes


# --- backup codes ----------------------------------------------------------------------------


def replace_backup_codes(user) -> list[str]:
    """A new set of one-time backup codes; the previous set stops working."""
    with transaction.atomic():
        device, _ = StaticDevice.objects.get_or_create(user=user, name=BACKUP_DEVICE_NAME, defaults={"confirmed": True})
        device.token_set.all().delete()
        codes = [StaticToken.random_token() for _ in range(BACKUP_CODES)]
        StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
        device.throttle_reset()
    log.info("backup codes replaced for user %s", user.pk)
    return codes


def backup_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def authenticator(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


# --- reset ---------------------------------------------------------------------------------


def reset(user, *, actor) -> int:
    """Remove every second-factor device of `user` (a lost phone, a person leaving): any
    session they verified with one stops working, and they set up a new app at their next
    sign-in. Returns how many devices were removed."""
    with transaction.atomic():
        devices = list(devices_for_user(user, confirmed=None))
        for device in devices:
            device.delete()
    log.info("second factor of user %s reset by user %s (%s devices removed)", user.pk, getattr(actor, "pk", None), len(devices))
    return len(devices)
