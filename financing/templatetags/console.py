"""Formatting for the billing console's pages."""

from django import template

from financing import dashboard, display
from financing.messages import template_label
from financing.models import OVERRIDABLE_TEMPLATE_FIELDS, PROMOTION_LABELS, template_fields_in_words

register = template.Library()


@register.filter
def message_label(template_name):
    return template_label(template_name).capitalize()


@register.filter
def duration(seconds):
    return dashboard.duration(seconds)


@register.filter
def percent(value):
    return dashboard.percent(value)


@register.filter
def ratio(value):
    return "—" if value is None else f"{value:.3f}"


@register.filter
def promotion_label(code):
    """"12 months deferred interest", never "deferred_12"."""
    return PROMOTION_LABELS.get(code, code)


@register.filter
def age(moment, now):
    """How long ago ("2 days", "1 hour 30 minutes"), the way financing.display says a span."""
    return display.NOTHING if moment is None else display.span(now - moment)


@register.filter
def template_fields(names):
    """A location's overridden settings in words ("how CareCredit is recorded"), never field names."""
    return template_fields_in_words(name for name in names or () if name in OVERRIDABLE_TEMPLATE_FIELDS)
