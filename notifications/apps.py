from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Registers this app's Celery tasks in every process (web included): the services
        # queue them by name.
        from . import tasks  # noqa: F401
