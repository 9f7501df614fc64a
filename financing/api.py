"""REST API: start a case, follow it. Every queryset is scoped to the caller's locations."""

from decimal import Decimal

from django.db.models import prefetch_related_objects
from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.response import Response

from notifications.models import Notification

from . import services
from .api_filters import CaseFilter
from .scoping import cases_for, locations_for
from .models import PROMOTION_CHOICES, FinancedCase, Recording, related_or_none


class DecisionSerializer(serializers.Serializer):
    status = serializers.CharField()
    raw_status = serializers.CharField()
    approved_amount = serializers.DecimalField(max_digits=10, decimal_places=2, allow_null=True)
    credit_limit = serializers.DecimalField(max_digits=10, decimal_places=2, allow_null=True)
    offers = serializers.ListField(child=serializers.DictField())
    decided_at = serializers.DateTimeField(allow_null=True)


class ArrangementSerializer(serializers.Serializer):
    kind = serializers.CharField()  # carecredit | in_house (what the practice itself carries)
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


class PurchaseSerializer(serializers.Serializer):
    """The charge to the patient's CareCredit account (recorded as a payment)."""

    status = serializers.CharField()
    amount = serializers.DecimalField(max_digits=10, decimal_places=2)  # gross: what the account is charged
    promotion = serializers.CharField()
    fee_rate = serializers.DecimalField(max_digits=6, decimal_places=3)
    merchant_fee = serializers.DecimalField(max_digits=10, decimal_places=2)
    net_amount = serializers.DecimalField(max_digits=10, decimal_places=2)
    lender_transaction_id = serializers.CharField()
    business_day = serializers.DateField(allow_null=True)
    charged_at = serializers.DateTimeField(allow_null=True)


class PostingSerializer(serializers.Serializer):
    kind = serializers.CharField()  # payment | merchant_fee | refund
    entry_kind = serializers.CharField()  # payment | adjustment
    type = serializers.CharField(source="type_name")
    amount = serializers.DecimalField(max_digits=10, decimal_places=2)  # signed as the ledger shows it
    entry_date = serializers.DateField()
    pms_entry_id = serializers.CharField()
    write_status = serializers.CharField()


class RefundSerializer(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=10, decimal_places=2)
    status = serializers.CharField()
    lender_transaction_id = serializers.CharField()
    refunded_at = serializers.DateTimeField(allow_null=True)


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
    purchase = serializers.SerializerMethodField()
    postings = serializers.SerializerMethodField()
    refunds = serializers.SerializerMethodField()
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
            "production_awaited_at",
            "production_posted_at",
            "arrangement_written_at",
            "recording",
            "purchased_at",
            "posted_at",
            "completed_at",
            "decision",
            "arrangement",
            "ledger_note",
            "purchase",
            "postings",
            "refunds",
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

    @extend_schema_field(PurchaseSerializer(allow_null=True))
    def get_purchase(self, case):
        purchase = related_or_none(case, "purchase")
        return PurchaseSerializer(purchase).data if purchase else None

    @extend_schema_field(PostingSerializer(many=True))
    def get_postings(self, case):
        if case.recording != Recording.PAYMENT:
            return []  # only a case recorded as a payment posts to the ledger: no query for the others
        return PostingSerializer(sorted(case.postings.all(), key=lambda p: p.pk), many=True).data

    @extend_schema_field(RefundSerializer(many=True))
    def get_refunds(self, case):
        if case.recording != Recording.PAYMENT:
            return []  # refunds are of a purchase, which only a case recorded as a payment has
        return RefundSerializer(sorted(case.refunds.all(), key=lambda r: r.pk), many=True).data

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


class ErrorSerializer(serializers.Serializer):
    """Every 4xx of the API (core/api_errors.py): one sentence, and the fields at fault."""

    detail = serializers.CharField(help_text="One sentence for a person, naming the fields at fault.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Field or query parameter → its messages; empty when no field is at fault.",
    )


def error_response(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


# The error answers, documented so that clients (and the schema tests) know their shape.
INVALID_INTAKE = error_response(
    "A field is invalid or refused by the PMS, e.g. {\"detail\": \"patient_id: Patient 999 was not found in Dentrix.\", "
    "\"errors\": {\"patient_id\": [\"Patient 999 was not found in Dentrix.\"]}}; or a body that is not JSON Chairside "
    "reads (not UTF-8, over 2.5 MB, nested over 32 levels, a number over 100 characters or out of range), "
    "with no field in errors."
)
INVALID_FILTER = error_response("A query parameter has a value the API does not accept; errors names it and says what it accepts.")
NOT_FOUND = error_response("No such case among your locations' cases.")
# What any operation may answer besides its own errors.
COMMON_ERRORS = {
    401: error_response("No credentials, or wrong ones."),
    403: error_response("Signed in, but not allowed (e.g. a session without its CSRF token)."),
    405: error_response("The address does not take this method."),
    406: error_response("The response cannot be given in the asked-for format."),
    415: error_response("The body's content type is not JSON, a form or multipart."),
    429: error_response("Too many requests; Retry-After says when to try again."),
}


class CaseViewSet(mixins.CreateModelMixin, mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = CaseSerializer
    # Only for the schema, which reads the model (and the filters' fields) from it;
    # requests go through get_queryset, scoped to the caller.
    queryset = FinancedCase.objects.none()
    filter_backends = [DjangoFilterBackend]
    filterset_class = CaseFilter

    def get_queryset(self):
        return (
            cases_for(self.request.user)
            .select_related("location", "decision", "arrangement", "ledger_note", "purchase")
            .order_by("-captured_at", "-pk")
        )

    def filter_queryset(self, queryset):
        # The list's filters only: a case's own address answers it whatever the query string.
        return super().filter_queryset(queryset) if self.action == "list" else queryset

    def get_object(self):
        try:
            return super().get_object()
        except Http404:  # Django's "No FinancedCase matches the given query." names a model
            raise exceptions.NotFound("No such case among your locations' cases.") from None

    def _decorate(self, cases):
        """Notifications and history for a page of cases: two queries, whatever the page size;
        the ledger postings and refunds of those recorded as a payment: two more, only when
        the page has any (the others have none to show)."""
        cases = list(cases)
        prefetch_related_objects([c for c in cases if c.recording == Recording.PAYMENT], "postings", "refunds")
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

    @extend_schema(responses={200: CaseSerializer(many=True), 400: INVALID_FILTER, **COMMON_ERRORS})
    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(self._decorate(page), many=True).data)

    @extend_schema(parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)], responses={200: CaseSerializer, 404: NOT_FOUND, **COMMON_ERRORS})
    def retrieve(self, request, *args, **kwargs):
        case = self._decorate([self.get_object()])[0]
        return Response(self.get_serializer(case).data)

    @extend_schema(request=CaseCreateSerializer, responses={201: CaseSerializer, 400: INVALID_INTAKE, **COMMON_ERRORS})
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
            # The API's one error shape (core/api_errors.py), like the serializer's own errors.
            raise exceptions.ValidationError(exc.fields) from None
        case = self.get_queryset().get(pk=case.pk)
        return Response(self.get_serializer(self._decorate([case])[0]).data, status=status.HTTP_201_CREATED)
