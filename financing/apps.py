from django.apps import AppConfig


class FinancingConfig(AppConfig):
    name = "financing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from notifications.signals import delivery_failed

        # checks registers the deploy checks; tasks registers this app's Celery tasks in
        # every process (web included), since the services queue them by name.
        from . import checks, messages, tasks  # noqa: F401

        # A case notification that fails for good is announced to the billing team.
        delivery_failed.connect(messages.on_delivery_failed, dispatch_uid="financing.on_delivery_failed")

        # A case's lease is renewed while its step runs, and handed back (its step queued
        # again) once its holder is gone: core.heartbeat, in every worker process.
        from core import heartbeat

        from .models import FinancedCase
        from .services import redrive
        from .services.leases import CASE_LEASE

        heartbeat.register(CASE_LEASE, model=FinancedCase, holder_field="lease_holder", until_field="lease_until", redrive=redrive)

        # A pre-screen run's lease, the same way (services/prescreen.py).
        from .models import PrescreenRun
        from .services import prescreen

        heartbeat.register(
            prescreen.PRESCREEN_LEASE, model=PrescreenRun, holder_field="lease_holder", until_field="lease_until",
            redrive=prescreen.redrive,
        )
