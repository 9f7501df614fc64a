from django.apps import AppConfig


class DentrixBridgeConfig(AppConfig):
    name = "dentrix_bridge"
    verbose_name = "Dentrix bridge"
