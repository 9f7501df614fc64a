"""Sign-in hardening: the client address django-axes locks out, the admin login form, and
the admin site that sends a staff member without a second factor to set one up
(`accounts.second_factor` says how and why), and the page a locked-out person sees.
"""

from axes.helpers import get_cool_off
from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.forms.forms import NON_FIELD_ERRORS
from django.shortcuts import redirect, render
from django.utils.functional import cached_property
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite
from django_otp.forms import OTPAuthenticationFormMixin
from django_otp.plugins.otp_static.models import StaticDevice

from accounts import second_factor
from financing.display import span


def client_ip(request) -> str:
    """The address the request came from, seen through LOGIN_PROXY_COUNT trusted proxies.

    Each proxy appends the address it received the request from to X-Forwarded-For, so with
    N proxies the client is the N-th entry from the right; anything left of it was written
    by the client and is not to be trusted.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = settings.LOGIN_PROXY_COUNT
    if proxies <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < proxies:
        return remote
    return forwarded[-proxies]


ENROLMENT_REQUIRED = "enrolment_required"


class ConsoleLoginForm(OTPAdminAuthenticationForm):
    """django-otp's admin login form, without the extra round trip for the usual case, and
    with the code counted by the lockout.

    django-otp asks the user to pick a device before it checks a code, so a failed code is
    never counted against a device that was not meant (it could throttle backup codes).
    Nobody has to pick here: the code's shape says which device it is for (six digits: the
    authenticator app; eight letters: a backup code), and a staff member with exactly one
    confirmed device uses it.

    A wrong code counts towards the django-axes lockout like a wrong password (axes only
    sees failed passwords by itself). A staff member without an authenticator app is not
    signed in: the form starts their enrolment and the site sends them to it.
    """

    # Plain words: staff have an authenticator app (and backup codes), not an "OTP token".
    otp_error_messages = dict(
        OTPAuthenticationFormMixin.otp_error_messages,
        token_required="Enter the 6-digit code from your authenticator app, or one of your backup codes.",
        invalid_token="That code did not match. Enter the 6-digit code your authenticator app shows now, or an unused backup code.",
        device_required="Choose which authenticator to use.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        token = self.fields["otp_token"]
        token.label = "6-digit code from your authenticator app (or a backup code)"
        # No digits-only pattern or length: a backup code is eight letters.
        token.widget.attrs.update(autocomplete="one-time-code")
        self.fields["otp_device"].label = "Authenticator"

    @cached_property
    def _devices(self):
        user = self.get_user()
        return list(devices_for_user(user, confirmed=True)) if user else []

    @property
    def device_choice_needed(self) -> bool:
        """Only someone with more than one authenticator has one to pick: backup codes are
        told apart by their shape, so they never need the picker."""
        return len([d for d in self._devices if not isinstance(d, StaticDevice)]) > 1

    @property
    def challenge_offered(self) -> bool:
        """A challenge ("send me a code") means something only for a device that sends one;
        an authenticator app (TOTP) just shows its code."""
        return any(device.is_interactive() for device in self._devices if not isinstance(device, StaticDevice))

    def clean(self):
        self.cleaned_data = AdminAuthenticationForm.clean(self)  # the password (and is_staff)
        user = self.get_user()
        if user is not None and second_factor.needs_enrolment(user):
            second_factor.begin(self.request, user)
            raise forms.ValidationError("Set up your second factor to continue.", code=ENROLMENT_REQUIRED)
        self.clean_otp(user)
        return self.cleaned_data

    def clean_otp(self, user):
        if user is not None and self.cleaned_data.get("otp_token"):
            self.cleaned_data["otp_token"] = second_factor.normalise_code(self.cleaned_data["otp_token"])
        try:
            super().clean_otp(user)
        except forms.ValidationError as error:
            if user is not None and error.code != "token_required":  # a blank code is no guess
                second_factor.count_failure(self.request, user.get_username())
            raise

    def _chosen_device(self, user):
        device = super()._chosen_device(user)
        if device is None and not self.cleaned_data.get("otp_device"):
            device = second_factor.device_for_code(user, self.cleaned_data.get("otp_token") or "")
            if device is None:
                devices = list(devices_for_user(user, confirmed=True, for_verify=True))
                if len(devices) == 1:
                    return devices[0]
        return device


class ConsoleAdminSite(OTPAdminSite):
    """django-otp's admin site (every page needs a session verified by a device), whose
    sign-in sends a staff member without an authenticator app to set one up."""

    def login(self, request, extra_context=None):
        response = super().login(request, extra_context)
        form = (getattr(response, "context_data", None) or {}).get("form")
        if form is not None and form.has_error(NON_FIELD_ERRORS, ENROLMENT_REQUIRED):
            return redirect("console-enrol")
        return response


def locked_out(request, original_response=None, credentials=None):
    """django-axes' lockout answer (AXES_LOCKOUT_CALLABLE), as a console page: the console's
    own header and a wait in words ("Try again in 15 minutes"), not an ISO 8601 duration."""
    cool_off = get_cool_off(request)
    context = {
        **admin.site.each_context(request),
        "title": "Too many failed sign-ins",
        "try_again_in": span(cool_off) if cool_off else "",
    }
    return render(request, "admin/locked_out.html", context, status=settings.AXES_HTTP_RESPONSE_CODE)
