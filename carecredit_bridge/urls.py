from django.urls import path

from .views import CareCreditWebhookView

urlpatterns = [path("carecredit/", CareCreditWebhookView.as_view(), name="carecredit-webhook")]
