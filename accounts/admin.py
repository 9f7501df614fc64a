"""Users in the console, with the one second-factor action an administrator needs: reset."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import Exists, OuterRef
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from . import second_factor

User = get_user_model()
# django.contrib.auth registered its UserAdmin first (INSTALLED_APPS order): this one extends it.
if admin.site.is_registered(User):
    admin.site.unregister(User)
# django-otp's backup-code admin lists every code in clear: backup codes are shown once, to
# their owner, and nobody else reads them (an administrator resets instead, below).
if admin.site.is_registered(StaticDevice):
    admin.site.unregister(StaticDevice)


@admin.register(User)
class StaffUserAdmin(UserAdmin):
    list_display = (*UserAdmin.list_display, "second_factor")
    actions = ["reset_second_factor"]

    def get_queryset(self, request):
        # One EXISTS per row in the list's own query, not a query per row.
        app = TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)
        return super().get_queryset(request).annotate(has_authenticator=Exists(app))

    @admin.display(description="Second factor", boolean=True, ordering="has_authenticator")
    def second_factor(self, user):
        return user.has_authenticator

    def has_reset_second_factor_permission(self, request):
        # Removing someone's devices is removing devices: the same permission.
        return request.user.has_perm("otp_totp.delete_totpdevice") and request.user.has_perm("otp_static.delete_staticdevice")

    @admin.action(description="Reset second factor (they set it up again at their next sign-in)", permissions=["reset_second_factor"])
    def reset_second_factor(self, request, queryset):
        for user in queryset:
            removed = second_factor.reset(user, actor=request.user)
            # The admin's own log: who reset whose second factor, and when.
            self.log_change(request, user, f"Reset the second factor ({removed} devices removed); set up again at next sign-in.")
        names = ", ".join(sorted(u.get_username() for u in queryset))
        self.message_user(
            request, f"Second factor reset for {names}: each sets up an authenticator app at their next sign-in.", messages.SUCCESS
        )
