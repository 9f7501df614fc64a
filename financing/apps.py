from django.apps import AppConfig


class FinancingConfig(AppConfig):
    name = "financing"
    default_auto_field = "django.db.models.BigAutoField"
