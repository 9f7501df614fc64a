"""The second-factor pages: setting up an authenticator app at the first sign-in, and "Your
sign-in" (what protects the account, new backup codes). The rules are in `second_factor`."""

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_lockout_response
from django.contrib import admin
from django.contrib import messages as flash
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from . import second_factor


def _context(request, title, **extra):
    return {**admin.site.each_context(request), "title": title, **extra}


@never_cache
@require_http_methods(["GET", "POST"])
def enrol(request):
    """Set up an authenticator app: a QR code, the secret in text, and one code to confirm.

    Reached only from the sign-in form, after the password (`second_factor.begin`); the
    person is signed in once the code confirms the app, and shown their backup codes.
    """
    user = second_factor.pending_user(request)
    if user is None:
        flash.info(request, "Sign in with your username and password to set up your second factor.")
        return redirect("admin:login")
    credentials = {"username": user.get_username()}
    if AxesProxyHandler.is_locked(request, credentials):
        return get_lockout_response(request, None, credentials)
    device = second_factor.enrolment_device(user)
    error = ""
    if request.method == "POST":
        try:
            codes = second_factor.confirm(request, user, device, request.POST.get("code", ""))
        except second_factor.CodeRefused as refused:
            error = str(refused)
        else:
            return _backup_codes(request, codes, first=True)
    context = _context(
        request,
        "Set up your second factor",
        staff_name=user.get_username(),
        qr_svg=second_factor.qr_svg(device),
        secret=second_factor.secret_text(device),
        error=error,
        minutes=second_factor.ENROL_MINUTES,
    )
    return TemplateResponse(request, "admin/accounts/enrol.html", context)


def _backup_codes(request, codes, *, first: bool):
    """The codes, in this one response only: never stored as text, never shown again."""
    context = _context(request, "Your backup codes", codes=codes, first=first, count=len(codes))
    return TemplateResponse(request, "admin/accounts/backup_codes.html", context)


@never_cache
@require_http_methods(["GET", "POST"])
def your_sign_in(request):
    """What protects this account, and new backup codes (the old ones stop working).

    Behind admin_view (see config.urls): only a session verified by a second factor gets
    here, so only the person themselves makes new codes.
    """
    user = request.user
    if request.method == "POST":
        return _backup_codes(request, second_factor.replace_backup_codes(user), first=False)
    app = second_factor.authenticator(user)
    context = _context(
        request,
        "Your sign-in",
        app=app,
        app_since=timezone.localtime(app.created_at) if app and app.created_at else None,
        codes_left=second_factor.backup_codes_left(user),
        codes_total=second_factor.BACKUP_CODES,
    )
    return TemplateResponse(request, "admin/accounts/your_sign_in.html", context)
