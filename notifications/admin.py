from django.contrib import admin

from .models import ContactPreference, Notification


@admin.register(ContactPreference)
class ContactPreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "phone", "by_email", "by_sms"]
    search_fields = ["user__username", "user__email"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset if request.user.is_superuser else queryset.filter(user=request.user)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["reference", "template", "channel", "recipient", "status", "attempts", "created_at", "sent_at"]
    list_filter = ["status", "channel", "template"]
    search_fields = ["=reference"]
    readonly_fields = [f.name for f in Notification._meta.fields]

    def get_queryset(self, request):
        from financing.services import cases_for

        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(reference__in=cases_for(request.user).values("reference"))

    def has_add_permission(self, request):
        return False
