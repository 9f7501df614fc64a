from django.apps import AppConfig


class CareCreditBridgeConfig(AppConfig):
    name = "carecredit_bridge"
    verbose_name = "CareCredit bridge"
