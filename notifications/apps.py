from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Registers this app's Celery tasks in every process (web included): the services
        # queue them by name.
        from . import tasks  # noqa: F401

        # A hand-off's lease is renewed while it runs, and handed back (the delivery queued
        # again) once its holder is gone: core.heartbeat, in every worker process.
        from core import heartbeat

        from .models import Notification
        from .services import SEND_LEASE, redrive

        heartbeat.register(SEND_LEASE, model=Notification, holder_field="sending_holder", until_field="sending_until", redrive=redrive)
