"""Sign-in hardening: the client address django-axes locks out, the admin login form, and
the page a locked-out person sees."""

from axes.helpers import get_cool_off
from django.conf import settings
from django.contrib import admin
from django.shortcuts import render
from django.utils.functional import cached_property
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm
from django_otp.forms import OTPAuthenticationFormMixin

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


class ConsoleLoginForm(OTPAdminAuthenticationForm):
    """django-otp's admin login form, without the extra round trip for the usual case.

    django-otp asks the user to pick a device before it checks a code, so a failed code is
    never counted against a device that was not meant (it could throttle backup codes). A
    staff member with exactly one confirmed device has nothing to pick: use it.
    """

    # Plain words: staff have an authenticator app, not an "OTP token".
    otp_error_messages = dict(
        OTPAuthenticationFormMixin.otp_error_messages,
        token_required="Enter the 6-digit code from your authenticator app.",
        invalid_token="That code did not match. Enter the 6-digit code your authenticator app shows now.",
        device_required="Choose which authenticator to use.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        token = self.fields["otp_token"]
        token.label = "6-digit code from your authenticator app"
        token.widget.attrs.update(autocomplete="one-time-code", inputmode="numeric", pattern="[0-9]*", maxlength="6")
        self.fields["otp_device"].label = "Authenticator"

    @cached_property
    def _devices(self):
        user = self.get_user()
        return list(devices_for_user(user, confirmed=True)) if user else []

    @property
    def device_choice_needed(self) -> bool:
        """Only someone with more than one device has a device to pick (the login page
        shows no picker otherwise)."""
        return len(self._devices) > 1

    @property
    def challenge_offered(self) -> bool:
        """A challenge ("send me a code") means something only for a device that sends one;
        an authenticator app (TOTP) just shows its code."""
        return any(device.is_interactive() for device in self._devices)

    def _chosen_device(self, user):
        device = super()._chosen_device(user)
        if device is None and not self.cleaned_data.get("otp_device"):
            devices = list(devices_for_user(user, confirmed=True, for_verify=True))
            if len(devices) == 1:
                return devices[0]
        return device


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
