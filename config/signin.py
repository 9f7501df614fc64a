"""Sign-in hardening: the client address django-axes locks out, and the admin login form."""

from django.conf import settings
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm


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

    def _chosen_device(self, user):
        device = super()._chosen_device(user)
        if device is None and not self.cleaned_data.get("otp_device"):
            devices = list(devices_for_user(user, confirmed=True, for_verify=True))
            if len(devices) == 1:
                return devices[0]
        return device
