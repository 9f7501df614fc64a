"""Twilio's delivery status callbacks.

Authenticated by X-Twilio-Signature (HMAC-SHA1 keyed by the auth token over the URL Twilio
called and the sorted POST parameters), compared in constant time. The record moves only
forward, so Twilio's out-of-order and repeated callbacks are harmless. Nothing from the
body (phone numbers) is logged or echoed.
"""

import hmac
import logging

from django.conf import settings
from django.http import HttpResponse
from django.views import View
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt

from . import services
from .sms import twilio_signature

log = logging.getLogger(__name__)


@method_decorator(csrf_exempt, name="dispatch")
class TwilioStatusView(View):
    http_method_names = ["post"]

    def post(self, request):
        token = settings.TWILIO_AUTH_TOKEN
        signature = request.headers.get("X-Twilio-Signature", "")
        params = {name: request.POST.getlist(name) for name in request.POST}
        if not (token and signature and any(
            hmac.compare_digest(twilio_signature(url, params, token), signature) for url in _called_urls(request)
        )):
            log.warning("twilio status callback rejected: bad or missing signature")
            return HttpResponse("Invalid signature", status=403, content_type="text/plain")
        try:
            notification_id = int(request.GET["n"]) if "n" in request.GET else None
        except ValueError:
            return HttpResponse("Malformed callback", status=400, content_type="text/plain")
        outcome = services.record_provider_status(
            notification_id=notification_id,
            provider_id=request.POST.get("MessageSid", "")[:100],
            provider_status=request.POST.get("MessageStatus", "").lower(),
            error_code=request.POST.get("ErrorCode", ""),
        )
        log.info("twilio status callback for notification %s: %s", notification_id, outcome)
        return HttpResponse(status=204)


def _called_urls(request) -> list[str]:
    """The URL Twilio signed is the StatusCallback we gave it (behind a proxy the request's
    own host and scheme may differ), with the query string it carries."""
    query = request.META.get("QUERY_STRING", "")
    configured = services.status_callback_url_base()
    urls = [request.build_absolute_uri()]
    if configured:
        urls.append(configured + (f"?{query}" if query else ""))
    return urls
