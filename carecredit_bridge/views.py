"""The CareCredit webhook receiver.

The webhook is a hint, not the truth: verify its signature over the raw bytes, then
re-fetch the decision from CareCredit and apply that. It answers 2xx only once the event
id and the case change are committed together; if CareCredit cannot be asked right now it
answers 503, records nothing, and CareCredit's redelivery (or the beat poller) brings it
back. Responses and logs name the failure, never the body.
"""

import logging
import time

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.inbound import MalformedBody, parse_json
from financing import partners, services
from financing.models import InboundEvent
from financing.ports import PartnerError

from .signing import SIGNATURE_HEADER, InvalidSignature, verify

log = logging.getLogger(__name__)
PROVIDER = "carecredit"

WebhookResult = inline_serializer("WebhookResult", {"status": serializers.CharField()})
WebhookError = inline_serializer("WebhookError", {"error": serializers.CharField()})


class CareCreditWebhookView(APIView):
    authentication_classes = []  # the signature is the authentication
    permission_classes = [AllowAny]

    @extend_schema(
        summary="CareCredit status-change webhook (signed)",
        request=inline_serializer(
            "CareCreditEvent",
            {
                "event_id": serializers.CharField(),
                "type": serializers.CharField(),
                "application_id": serializers.CharField(),
                "status": serializers.CharField(required=False),
                "created": serializers.IntegerField(required=False),
            },
        ),
        responses={
            200: WebhookResult,
            400: OpenApiResponse(WebhookError, description="Bad signature or malformed event"),
            503: OpenApiResponse(WebhookError, description="CareCredit could not be asked; redeliver later"),
        },
    )
    def post(self, request):
        try:
            raw = request.body
        except RequestDataTooBig:
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            log.warning("carecredit webhook rejected: body over %s bytes", limit)
            return Response({"error": f"Malformed event: The body is larger than {limit} bytes."}, status=400)
        try:
            verify(
                request.headers.get(SIGNATURE_HEADER),
                raw,
                settings.CARECREDIT_WEBHOOK_SECRETS,
                now=time.time(),
                tolerance=settings.CARECREDIT_WEBHOOK_TOLERANCE_SECONDS,
            )
        except InvalidSignature as exc:
            log.warning("carecredit webhook rejected: %s", exc)
            return Response({"error": f"Invalid signature: {exc}"}, status=400)
        try:
            event = parse_json(raw)
        except MalformedBody as exc:
            # The reason names the problem (depth, encoding, a position), never the content.
            log.warning("carecredit webhook rejected: %s", exc)
            return Response({"error": f"Malformed event: {exc}"}, status=400)
        try:
            event_id, application_id = event["event_id"], event["application_id"]
            # Printable: a NUL or another control character is no id, and PostgreSQL
            # refuses a NUL in text (the lookup below would be a 500).
            if not (isinstance(event_id, str) and 0 < len(event_id) <= 100 and event_id.isprintable()):
                raise ValueError
            if not (isinstance(application_id, str) and 0 < len(application_id) <= 64 and application_id.isprintable()):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            log.warning("carecredit webhook rejected: malformed event")
            return Response({"error": "Malformed event: event_id and application_id are required strings."}, status=400)

        if InboundEvent.objects.filter(provider=PROVIDER, event_id=event_id).exists():
            return Response({"status": "duplicate"})
        case = services.case_for_application(application_id)
        decision = None
        if case is not None:
            try:
                decision = partners.lender_for(case.location).get_decision(application_id)
            except PartnerError as exc:
                log.warning("carecredit webhook %s: re-fetch failed (%s); asking for redelivery", event_id, exc)
                return Response({"error": "CareCredit could not be asked for the decision; redeliver later."}, status=503)
        outcome = services.accept_lender_event(
            provider=PROVIDER, event_id=event_id, application_id=application_id, decision=decision, case=case
        )
        log.info("carecredit webhook %s: %s", event_id, outcome)
        return Response({"status": outcome})
