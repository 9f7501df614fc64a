"""The case list's query filters (`GET /api/v1/cases/?state=…`), with django-filter.

A value the API does not know is a 400 naming the parameter and what it accepts (it was an
empty list: a typo read as "no such cases"), and drf-spectacular lists every filter, with
its allowed values, in the schema. Location scoping comes first (the view's queryset is
`cases_for(user)`); the `location` filter only accepts the codes of the caller's own
locations, so another location's code is the same 400 as a code that does not exist.
"""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import django_filters
from django import forms
from django.db.models import Q
from drf_spectacular.utils import extend_schema_field

from .models import PROMOTION_CHOICES, CaseState, FinancedCase, Location
from .scoping import locations_for

# How many of the caller's location codes an error message lists before "…".
LISTED_CODES = 20


def _one_of(values) -> str:
    values = list(values)
    shown = ", ".join(values[:LISTED_CODES])
    return shown + (", …" if len(values) > LISTED_CODES else "")


def _choice_message(choices) -> str:
    # Django fills %(value)s; "%%" keeps the text's own percent signs (there are none) literal.
    return "%(value)s is not one of: " + _one_of(value for value, _ in choices).replace("%", "%%") + "."


class LocationCodeField(forms.ModelChoiceField):
    """A location code among the caller's locations; the error lists the codes they have."""

    def to_python(self, value):
        try:
            return super().to_python(value)
        except forms.ValidationError:
            codes = _one_of(self.queryset.order_by("code").values_list("code", flat=True))
            # Params, not an f-string: django-filter formats the message with them, and a
            # "%" in the value would break the formatting (a 500 Schemathesis found).
            raise forms.ValidationError(
                "You have no location with code %(value)r; yours: %(codes)s.",
                code="invalid_choice",
                params={"value": value, "codes": codes or "none"},
            ) from None


class LocationCodeFilter(django_filters.ModelChoiceFilter):
    field_class = LocationCodeField


class CapturedForm(forms.Form):
    def clean(self):
        data = super().clean()
        start, end = data.get("captured_from"), data.get("captured_to")
        if start and end and start > end:
            self.add_error("captured_to", f"{end:%Y-%m-%d} is before captured_from ({start:%Y-%m-%d}).")
        return data


def _caller_locations(request):
    return locations_for(request.user) if request is not None else Location.objects.none()


DATE_FORMAT = {"input_formats": ["%Y-%m-%d"], "error_messages": {"invalid": "Give a date as YYYY-MM-DD."}}


class CaseFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(
        choices=CaseState.choices,
        help_text="Only cases in this state.",
        error_messages={"invalid_choice": _choice_message(CaseState.choices)},
    )
    # A code, not a row id (the model field is a key): the schema says so itself.
    location = extend_schema_field(
        {"type": "string", "description": "Only cases of this location (its code); one of your own locations."}
    )(LocationCodeFilter(queryset=_caller_locations, to_field_name="code", field_name="location"))
    promotion = django_filters.ChoiceFilter(
        choices=PROMOTION_CHOICES,
        help_text="Only cases financed with this promotion.",
        error_messages={"invalid_choice": _choice_message(PROMOTION_CHOICES)},
    )
    captured_from = django_filters.DateFilter(
        method="filter_captured",
        help_text="Only cases captured on or after this day (YYYY-MM-DD), in each case's location's time zone.",
        **DATE_FORMAT,
    )
    captured_to = django_filters.DateFilter(
        method="filter_captured",
        help_text="Only cases captured on or before this day (YYYY-MM-DD), in each case's location's time zone.",
        **DATE_FORMAT,
    )

    class Meta:
        model = FinancedCase
        fields = ["state", "location", "promotion", "captured_from", "captured_to"]
        form = CapturedForm

    def filter_captured(self, queryset, name, day):
        """A day is the location's day: 2026-12-01 at a New York location runs from 05:00
        UTC. One condition per time zone among the caller's locations (a handful at most)."""
        zones = _caller_locations(self.request).values_list("timezone", flat=True).distinct()
        condition = Q()
        for zone in zones:
            bound = _day_bound(day, ZoneInfo(zone), upper=(name == "captured_to"))
            if bound is None:  # past the calendar's ends: no bound on that side
                condition |= Q(location__timezone=zone)
            elif name == "captured_to":
                condition |= Q(location__timezone=zone, captured_at__lt=bound)
            else:
                condition |= Q(location__timezone=zone, captured_at__gte=bound)
        return queryset.filter(condition) if zones else queryset.none()


def _day_bound(day, zone, *, upper: bool):
    """The start of `day` (or, if `upper`, of the next day) in `zone`, or None where that
    moment is outside what datetime holds (0001-01-01 east of UTC, 9999-12-31's next day)."""
    try:
        start = datetime.combine(day + timedelta(days=1) if upper else day, time.min, tzinfo=zone)
        return start.astimezone(ZoneInfo("UTC"))
    except OverflowError:
        return None
