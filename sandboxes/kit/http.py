"""JSON in and out, and the one exception a sandbox answers as an error.

Each sandbox renders `SandboxError` in its partner's own error shape
(`SandboxApp.error_body`); the kit only carries the status, a short machine code, a
one-line message, field problems and extra headers.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from werkzeug.wrappers import Request, Response


class SandboxError(Exception):
    """A request the sandbox refuses, answered in the sandbox's error shape."""

    def __init__(
        self,
        status: int,
        message: str = "",
        *,
        code: str = "error",
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message or code)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.headers = headers or {}


def field_errors(errors: dict[str, str], what: str) -> SandboxError:
    """400 with a one-line summary: the only problem, or the first and a count."""
    first_field, first = next(iter(errors.items()))
    if not first[:1].isupper():
        first = f"{first_field} {first}"
    summary = first if len(errors) == 1 else f"{first} (and {len(errors) - 1} more problem(s) with the {what})"
    return SandboxError(400, summary, code="validation_failed", fields=dict(errors))


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload), status=status, headers=headers, content_type="application/json")


def read_json(request: Request, *, object_only: bool = True) -> Any:
    """The request body as JSON (numbers with a fraction as Decimal); a 400 if it is not."""
    try:
        data = json.loads(request.get_data(cache=True) or b"null", parse_float=Decimal)
    except ValueError:
        raise SandboxError(400, "The request body is not valid JSON.", code="invalid_json") from None
    if object_only and not isinstance(data, dict):
        raise SandboxError(400, "The request body must be a JSON object.", code="validation_failed",
                           fields={"body": "must be a JSON object"})
    return data
