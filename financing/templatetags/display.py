"""Money, dates and times in templates, the one way financing/display.py shows them:

    {% load display %}
    {{ amount|money }}                   $1,234.56
    {{ moment|when:case.location }}      Dec 1, 2026, 3:41 PM EST (the location's wall clock)
    {{ a_date|day }}                     Dec 31, 2026
    {{ moment|clock:location }}          9:00 AM EST (a day's list: the date is said above it)
    {{ correction.after|term:correction.field }}   a corrected term, as its kind is shown
"""

from django import template

from financing import display
from financing.models import Correction

register = template.Library()


@register.filter
def money(amount):
    return display.money(amount)


@register.filter
def when(moment, where=None):
    return display.when(moment, where)


@register.filter
def clock(moment, where=None):
    return display.clock(moment, where)


@register.filter
def day(value, where=None):
    return display.day(value, where)


@register.filter
def span(length):
    return display.span(length)


@register.filter
def term(value, field):
    """A value of one of the arrangement's terms (`Correction.FIELDS`), shown by its kind."""
    return display.of_kind(Correction.FIELDS.get(field, "text"), value)


@register.filter
def agreement_term(value, name):
    """A payment agreement's field as shadow mode compared it, shown by its kind."""
    return display.agreement_term(name, value)
