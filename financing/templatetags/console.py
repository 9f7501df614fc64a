"""Formatting for the billing console's dashboard."""

from django import template

from financing import dashboard

register = template.Library()


@register.filter
def duration(seconds):
    return dashboard.duration(seconds)


@register.filter
def percent(value):
    return dashboard.percent(value)


@register.filter
def ratio(value):
    return "—" if value is None else f"{value:.3f}"
