"""What a request may bring in: the one JSON reader, the page-size bound, the query guard.

Every JSON body Chairside reads (the REST API through DRF, the CareCredit webhook, the
partners' answers) goes through `parse_json`, so a hostile or broken body is a clear
`MalformedBody` (a ValueError) and never a RecursionError, an infinite float or an
unencodable string further in. Messages name the problem, never the body's content:
they end up in responses and logs.
"""

import json
import math
import re
from itertools import accumulate
from typing import Any, Callable

from django.conf import settings
from django.http import JsonResponse
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.pagination import LimitOffsetPagination

from .api_errors import error_body

# Chairside's own bodies are one or two levels deep; 32 leaves room for any partner's
# while keeping the standard parser (recursive, ~1,000 levels before RecursionError) safe.
MAX_DEPTH = 32
# A number longer than this is no amount, id or count any of our bodies carries. Python
# refuses ints over 4,300 digits anyway, but only where PYTHONINTMAXSTRDIGITS says so.
MAX_NUMBER_CHARS = 100
# The API's page size bound (`?limit=`): a page is read and serialised in one request.
MAX_PAGE_SIZE = 200


class MalformedBody(ValueError):
    """A body that is not JSON Chairside will read; the message is fit for the client."""


# A JSON string: quote, then runs of plain characters or escapes, then quote. Possessive
# quantifiers, so an unterminated string costs one pass, not a backtracking search.
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]++")
# Byte → step of the depth: +1 for an opening bracket, -1 for a closing one.
_STEP = tuple(1 if byte in b"[{" else -1 if byte in b"]}" else 0 for byte in range(256))
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def nesting_depth(text: str) -> int:
    """How deep the arrays and objects of `text` nest, without parsing it: strings are cut
    out, the brackets that remain are counted (C loops only, linear in the size)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).encode("ascii")
    # The running sum of the steps is the depth at each bracket; its peak is the answer.
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _refuse_constant(name: str):
    raise MalformedBody(f"{name} is not a JSON number.")


def _bounded_int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise MalformedBody(f"A number is longer than {MAX_NUMBER_CHARS} characters.")
    return int(literal)


def _bounded_float(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_float(literal: str):
        if len(literal) > MAX_NUMBER_CHARS:
            raise MalformedBody(f"A number is longer than {MAX_NUMBER_CHARS} characters.")
        value = parse(literal)
        # 1e999999 is valid JSON, and float() makes it inf: no amount is.
        if isinstance(value, float) and not math.isfinite(value):
            raise MalformedBody("A number is out of range.")
        return value

    return parse_float


def _check_strings(value) -> None:
    """A \\ud800 escape is valid JSON but no character: it cannot be stored, logged or
    encoded. Recursion is safe: the depth is bounded already."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedBody("The body holds a \\u escape that is no Unicode character (a lone surrogate).") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def parse_json(raw: bytes, *, max_bytes: int | None = None, parse_float: Callable[[str], Any] = float) -> Any:
    """`raw` as JSON, or MalformedBody: over `max_bytes`, not UTF-8 (RFC 8259 allows no
    other encoding between systems), nested over MAX_DEPTH, a number too long or
    infinite, NaN, a lone surrogate, or plain invalid JSON."""
    if max_bytes is not None and len(raw) > max_bytes:
        raise MalformedBody(f"The body is larger than {max_bytes} bytes.")
    try:
        # A leading byte order mark is dropped (RFC 8259 lets a parser ignore it; a
        # Windows-hosted connector may send one); any other non-UTF-8 byte is refused.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MalformedBody("The body is not UTF-8 text.") from None
    # Checked before parsing: the standard parser recurses once per level.
    if nesting_depth(text) > MAX_DEPTH:
        raise MalformedBody(f"The body nests arrays or objects deeper than {MAX_DEPTH} levels.")
    try:
        value = json.loads(
            text, parse_int=_bounded_int, parse_float=_bounded_float(parse_float), parse_constant=_refuse_constant
        )
    except MalformedBody:
        raise
    except RecursionError:  # cannot happen after the depth check; a 400 all the same
        raise MalformedBody(f"The body nests arrays or objects deeper than {MAX_DEPTH} levels.") from None
    except ValueError as exc:  # JSONDecodeError's message gives a position, not content
        raise MalformedBody(f"The body is not JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(text):
        _check_strings(value)
    return value


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser on `parse_json` (REST_FRAMEWORK's DEFAULT_PARSER_CLASSES).

    DRF (3.18) hands a JSON parser `request.body`, which Django refuses past
    DATA_UPLOAD_MAX_MEMORY_SIZE (see `core.api_errors.exception_handler`); should a version hand it the
    request stream instead, one byte over the limit is all that is read.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        try:
            return parse_json(raw, max_bytes=limit)
        except MalformedBody as exc:
            raise ParseError(str(exc)) from None


class Pagination(LimitOffsetPagination):
    """`?limit=` is capped at MAX_PAGE_SIZE (DRF clamps it; zero, negative or unreadable
    gives the default). Without a cap a 20-digit limit reached the database and overflowed
    SQLite's integer (a 500). `?offset=` needs no cap: DRF counts first and answers an
    empty page past the count, so no offset past it reaches the database."""

    max_limit = MAX_PAGE_SIZE

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.limit_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_limit)
                parameter["description"] = f"Number of results per page (default {self.default_limit}, at most {self.max_limit})."
            elif parameter["name"] == self.offset_query_param:
                parameter["schema"].update(minimum=0)
        return parameters


def id_param(value: str) -> int | None:
    """A row id from a query string, or None: ASCII digits only ("²".isdigit() is true, and
    int() refuses it) and at most 18 of them (any database's bigint holds them)."""
    if value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


def reject_nul_in_query(get_response):
    """Middleware: a NUL in the query string is a 400 for every page. PostgreSQL refuses
    NUL in text, so `?state=%00` reached it as a query and came back a 500 (the API's
    filters, the admin's list filters)."""

    def middleware(request):
        fields = [key for key, values in request.GET.lists() if "\x00" in key or any("\x00" in v for v in values)]
        if fields:
            # The parameters are named where their names are themselves free of NUL.
            errors = {key: ["The value holds a NUL character."] for key in fields if "\x00" not in key}
            return JsonResponse(error_body("The query string holds a NUL character.", errors), status=400)
        return get_response(request)

    return middleware
