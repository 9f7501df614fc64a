"""One shape for every 4xx the REST API answers:

    {"detail": "<one sentence for a person>", "errors": {"<field>": ["<message>", ...]}}

`detail` is always a string a client can show as it is; `errors` is always an object whose
values are always lists of strings: the fields (body fields or query parameters) at fault,
empty when no field is (401, 403, 404, 405, 415, 429, an unreadable body). Before, a field's
messages were a list from DRF's validation but a string from intake's own checks, and a
client had to handle both.

The partner webhooks keep their own answers (CareCredit's `{"error": …}`, Twilio's plain
text): those are read by the partner's delivery machinery, not by an API client.
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.settings import api_settings

# Where the REST API lives: Django's own 400/404 answers there are this shape too.
API_PREFIX = "/api/"


def error_body(detail: str, errors: dict[str, list[str]] | None = None) -> dict:
    return {"detail": detail, "errors": errors or {}}


def field_errors(detail, field: str = "") -> dict[str, list[str]]:
    """DRF's ValidationError.detail (a dict, list or string, nested for nested fields) as
    {field: [messages]}; a nested field is named with dots ("offers.0.code")."""
    here = field or api_settings.NON_FIELD_ERRORS_KEY
    if isinstance(detail, dict):
        found = {}
        for key, value in detail.items():
            if not field and key == "__all__":  # a Django form's (django-filter's) own name
                key = api_settings.NON_FIELD_ERRORS_KEY
            name = f"{field}.{key}" if field else str(key)
            for name_, messages in field_errors(value, name).items():
                found.setdefault(name_, []).extend(messages)
        return found
    if isinstance(detail, (list, tuple)):
        if all(not isinstance(item, (dict, list, tuple)) for item in detail):
            return {here: [str(item) for item in detail]} if detail else {}
        found = {}
        for index, item in enumerate(detail):
            for name_, messages in field_errors(item, f"{field}.{index}" if field else str(index)).items():
                found.setdefault(name_, []).extend(messages)
        return found
    return {here: [str(detail)]}


def summary(errors: dict[str, list[str]]) -> str:
    """The field messages as one sentence: "patient_id: Patient 999 was not found in Dentrix." """
    parts = [
        message if field == api_settings.NON_FIELD_ERRORS_KEY else f"{field}: {message}"
        for field, messages in errors.items()
        for message in messages
    ]
    return " ".join(part if part.endswith((".", "?", "!")) else part + "." for part in parts) or "The request is invalid."


def exception_handler(exc, context):
    """REST_FRAMEWORK's EXCEPTION_HANDLER: DRF's answer, in the one shape. A body over
    DATA_UPLOAD_MAX_MEMORY_SIZE is a 400 like any unreadable body (Django would answer
    with its HTML error page)."""
    # Imported here: rest_framework.views reads the API settings, which name this module.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, RequestDataTooBig):
        exc = exceptions.ParseError(f"The body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
    response = drf_exception_handler(exc, context)
    if response is None:  # not an API error: Django's 500 (logged), never shown
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = field_errors(exc.detail)
        response.data = error_body(summary(errors), errors)
    else:
        detail = response.data.get("detail") if isinstance(response.data, dict) else None
        response.data = error_body(str(detail or exc))
    return response


def bad_request(request, exception, template_name="400.html"):
    """handler400: Django's own 400 (a bad Host header, a suspicious request), JSON on the API."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse(error_body("The request is malformed."), status=400)
    return defaults.bad_request(request, exception, template_name)


def page_not_found(request, exception, template_name="404.html"):
    """handler404: an address no route of the API matches ("/api/v1/cases/1.5/") is the
    API's JSON 404; elsewhere Django's page."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse(error_body("There is nothing at this address of the API."), status=404)
    return defaults.page_not_found(request, exception, template_name)
