from django.conf import settings
from django.contrib import admin
from django.utils.module_loading import import_string

from . import services
from .models import ContactPreference, Notification


@admin.register(ContactPreference)
class ContactPreferenceAdmin(admin.ModelAdmin):
    """Every staff member sets their own channels here; superusers see everyone's.

    Ownership is the permission: a staff member needs no model permission to edit their own
    row, and cannot reach anyone else's."""

    list_display = ["user", "phone", "by_email", "by_sms"]
    search_fields = ["user__username", "user__email"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset if request.user.is_superuser else queryset.filter(user=request.user)

    def _own(self, request, obj):
        return request.user.is_superuser or obj is None or obj.user_id == request.user.pk

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request) and self._own(request, obj)

    def has_change_permission(self, request, obj=None):
        return self.has_view_permission(request, obj)

    def has_add_permission(self, request):
        if request.user.is_superuser:
            return True
        return self.has_module_permission(request) and not ContactPreference.objects.filter(user=request.user).exists()

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def get_fields(self, request, obj=None):
        fields = ["phone", "by_email", "by_sms"]
        return (["user"] + fields) if request.user.is_superuser else fields

    def save_model(self, request, obj, form, change):
        if not request.user.is_superuser:
            obj.user = request.user
        super().save_model(request, obj, form, change)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["reference", "template", "channel", "recipient", "status", "attempts", "created_at", "sent_at"]
    list_filter = ["status", "channel", "template"]
    search_fields = ["=reference"]
    readonly_fields = [f.name for f in Notification._meta.fields]
    actions = ["resend"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        visible_references = import_string(settings.NOTIFICATIONS_VISIBLE_REFERENCES)
        return queryset.filter(reference__in=visible_references(request.user))

    def has_add_permission(self, request):
        return False

    @admin.action(description="Resend selected notifications (same recipient)", permissions=["change"])
    def resend(self, request, queryset):
        copies = [services.resend(n.pk) for n in queryset]
        done = sum(1 for c in copies if c is not None)
        skipped = len(copies) - done
        self.message_user(request, f"Queued {done} again." + (f" {skipped} still on their way were left alone." if skipped else ""))
