from django.apps import AppConfig


class OpenDentalBridgeConfig(AppConfig):
    name = "opendental_bridge"
    verbose_name = "Open Dental bridge"
