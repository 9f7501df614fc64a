"""The pre-screen on a case page: {% load prescreen %} {{ case|prescreen_words }}."""

from django import template

from financing.morning import case_prescreen_words

register = template.Library()


@register.filter
def prescreen_words(case):
    return case_prescreen_words(case)
