"""REST API: start a case, follow it. Every queryset is scoped to the caller's locations."""

from decimal import Decimal

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from notifications.models import Notification

from . import services
from .scoping import cases_for, locations_for
from .models import PROMOTION_CHOICES, CaseState, FinancedCase, related_or_none


class DecisionSerializer(serializers.Serializer):
    status = serializers.CharField()
    raw_status = serializers.CharField()
    approved_amount = serializers.DecimalField(max_digits=10, decimal_places=2, allow_null=True)
    credit_limit = serializers.DecimalField(max_digits=10, decimal_places=2, allow_null=True)
    offers = serializers.ListField(child=serializers.DictField())
    decided_at = serializers.DateTimeField(allow_null=True)


class ArrangementSerializer(serializers.Serializer):
    down_payment = serializers.DecimalField(max_digits=10, decimal_places=2)
    financed_amount = serializers.DecimalField(max_digits=10, decimal_places=2)
    recurring_amount = serializers.DecimalField(max_digits=10, decimal_places=2)
    number_of_payments = serializers.IntegerField()
    final_payment = serializers.DecimalField(max_digits=10, decimal_places=2)
    frequency = serializers.CharField()
    first_payment_date = serializers.DateField()
    apr = serializers.DecimalField(max_digits=5, decimal_places=2)
    total_of_payments = serializers.DecimalField(max_digits=10, decimal_places=2)
    finance_charge = serializers.DecimalField(max_digits=10, decimal_places=2)
    schedule = serializers.ListField(child=serializers.DictField())
    pms_arrangement_id = serializers.CharField()
    write_status = serializers.CharField()


class LedgerNoteSerializer(serializers.Serializer):
    type = serializers.CharField(source="note_type")
    text = serializers.CharField()
    pms_note_id = serializers.CharField()
    write_status = serializers.CharField()


class NotificationSerializer(serializers.Serializer):
    channel = serializers.CharField()
    template = serializers.CharField()
    status = serializers.CharField()
    sent_at = serializers.DateTimeField(allow_null=True)


class TimelineEntrySerializer(serializers.Serializer):
    state = serializers.CharField()
    at = serializers.DateTimeField()
    reason = serializers.CharField()


class ProcedureSerializer(serializers.Serializer):
    code = serializers.CharField()
    tooth = serializers.CharField(allow_blank=True)
    surface = serializers.CharField(allow_blank=True)
    fee = serializers.DecimalField(max_digits=10, decimal_places=2)


class CaseSerializer(serializers.ModelSerializer):
    location = serializers.SlugRelatedField(slug_field="code", read_only=True)
    procedures = ProcedureSerializer(many=True, read_only=True)
    decision = serializers.SerializerMethodField()
    arrangement = serializers.SerializerMethodField()
    ledger_note = serializers.SerializerMethodField()
    notifications = serializers.SerializerMethodField()
    timeline = serializers.SerializerMethodField()

    class Meta:
        model = FinancedCase
        fields = [
            "id",
            "reference",
            "state",
            "state_reason",
            "location",
            "patient_id",
            "guarantor_id",
            "treatment_plan_id",
            "plan_total",
            "requested_down_payment",
            "procedures",
            "promotion",
            "application_id",
            "apply_url",
            "patient_consents_to_messages",
            "captured_at",
            "decided_at",
            "arrangement_written_at",
            "completed_at",
            "decision",
            "arrangement",
            "ledger_note",
            "notifications",
            "timeline",
        ]

    @extend_schema_field(DecisionSerializer(allow_null=True))
    def get_decision(self, case):
        decision = related_or_none(case, "decision")
        return DecisionSerializer(decision).data if decision else None

    @extend_schema_field(ArrangementSerializer(allow_null=True))
    def get_arrangement(self, case):
        arrangement = related_or_none(case, "arrangement")
        return ArrangementSerializer(arrangement).data if arrangement else None

    @extend_schema_field(LedgerNoteSerializer(allow_null=True))
    def get_ledger_note(self, case):
        note = related_or_none(case, "ledger_note")
        return LedgerNoteSerializer(note).data if note else None

    @extend_schema_field(NotificationSerializer(many=True))
    def get_notifications(self, case):
        return NotificationSerializer(getattr(case, "notification_list", []), many=True).data

    @extend_schema_field(TimelineEntrySerializer(many=True))
    def get_timeline(self, case):
        entries, last = [], None
        for row in getattr(case, "history_rows", []):
            if row.state != last:
                entries.append({"state": row.state, "at": row.history_date, "reason": row.state_reason})
                last = row.state
        return TimelineEntrySerializer(entries, many=True).data


class CaseCreateSerializer(serializers.Serializer):
    location = serializers.SlugField(max_length=40)
    patient_id = serializers.RegexField(r"^[A-Za-z0-9_-]{1,40}$", error_messages={"invalid": "A PMS patient id: letters, digits, - or _."})
    treatment_plan_id = serializers.RegexField(
        r"^[A-Za-z0-9_-]{1,40}$", error_messages={"invalid": "A PMS treatment plan id: letters, digits, - or _."}
    )
    down_payment = serializers.DecimalField(
        max_digits=10, decimal_places=2, min_value=Decimal("0.00"), required=False, default=Decimal("0.00")
    )
    promotion = serializers.ChoiceField(choices=[c for c, _ in PROMOTION_CHOICES], required=False)
    patient_consents_to_messages = serializers.BooleanField(
        required=False, default=False,
        help_text="The patient agreed, at the chair, to get the CareCredit apply link by SMS or email.",
    )

    def validate_location(self, code):
        location = locations_for(self.context["request"].user).filter(code=code).select_related("template").first()
        if location is None:
            raise serializers.ValidationError(f"You have no location with code {code!r}.")
        return location


# The error answers, documented so that clients (and the schema tests) know their shape.
FIELD_ERRORS = OpenApiResponse(
    {
        "type": "object",
        "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    },
    description="Field → message(s), e.g. {\"patient_id\": \"Patient 999 was not found …\"}; "
    "a body that is not JSON Chairside reads (not UTF-8, over 2.5 MB, nested over 32 levels, "
    "a number over 100 characters or out of range) gives {\"detail\": …}.",
)
NOT_FOUND = OpenApiResponse(
    {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]},
    description="No such case among your locations' cases.",
)


class CaseViewSet(mixins.CreateModelMixin, mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = CaseSerializer

    def get_queryset(self):
        cases = (
            cases_for(self.request.user)
            .select_related("location", "decision", "arrangement", "ledger_note")
            .order_by("-captured_at", "-pk")
        )
        state = self.request.query_params.get("state")
        if state:
            cases = cases.filter(state=state)
        location = self.request.query_params.get("location")
        if location:
            cases = cases.filter(location__code=location)
        return cases

    def _decorate(self, cases):
        """Notifications and history for a page of cases: two queries, whatever the page size."""
        cases = list(cases)
        by_reference = {c.reference: c for c in cases}
        for case in cases:
            case.notification_list, case.history_rows = [], []
        for n in Notification.objects.filter(reference__in=by_reference).order_by("created_at"):
            by_reference[n.reference].notification_list.append(n)
        by_id = {c.pk: c for c in cases}
        history = FinancedCase.history.filter(id__in=by_id).order_by("history_date", "history_id")
        for row in history.only("id", "state", "state_reason", "history_date"):
            by_id[row.id].history_rows.append(row)
        return cases

    @extend_schema(
        parameters=[
            OpenApiParameter("state", str, enum=[s for s, _ in CaseState.choices]),
            OpenApiParameter("location", str, description="Location code"),
        ]
    )
    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(self._decorate(page), many=True).data)

    @extend_schema(parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)], responses={200: CaseSerializer, 404: NOT_FOUND})
    def retrieve(self, request, *args, **kwargs):
        case = self._decorate([self.get_object()])[0]
        return Response(self.get_serializer(case).data)

    @extend_schema(request=CaseCreateSerializer, responses={201: CaseSerializer, 400: FIELD_ERRORS})
    def create(self, request, *args, **kwargs):
        intake = CaseCreateSerializer(data=request.data, context={"request": request})
        intake.is_valid(raise_exception=True)
        data = intake.validated_data
        try:
            case = services.capture_case(
                location=data["location"],
                patient_id=data["patient_id"],
                treatment_plan_id=data["treatment_plan_id"],
                down_payment=data["down_payment"],
                promotion=data.get("promotion"),
                patient_consents_to_messages=data["patient_consents_to_messages"],
                actor=request.user,
            )
        except services.IntakeError as exc:
            return Response(exc.fields, status=status.HTTP_400_BAD_REQUEST)
        case = self.get_queryset().get(pk=case.pk)
        return Response(self.get_serializer(self._decorate([case])[0]).data, status=status.HTTP_201_CREATED)
