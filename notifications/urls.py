from django.urls import path

from .views import TwilioStatusView

urlpatterns = [path("twilio/status/", TwilioStatusView.as_view(), name="twilio-status")]
