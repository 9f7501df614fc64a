from django.apps import AppConfig


class FinancingConfig(AppConfig):
    name = "financing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from notifications.signals import delivery_failed

        from . import checks, messages  # noqa: F401 (checks registers the deploy checks)

        # A case notification that fails for good is announced to the billing team.
        delivery_failed.connect(messages.on_delivery_failed, dispatch_uid="financing.on_delivery_failed")
