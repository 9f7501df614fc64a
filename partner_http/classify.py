"""The one mapping of `requests` failures and HTTP statuses onto `financing.ports` errors.

Every partner client uses it, so "retry later", "look up before writing again" and "ask
a human" mean the same thing whichever partner failed:

- nothing was sent (connection refused, DNS failure, connect timeout) -> Transient: the
  partner cannot have acted, so even a write is safe to retry;
- the base URL is malformed (InvalidURL, MissingSchema, InvalidSchema) -> Permanent at
  once: a configuration mistake that no retry fixes;
- sent, then a read timeout, a dropped connection or an incomplete answer -> Ambiguous
  on a write (the partner may have committed it), Transient on a read;
- 429 -> Transient (the partner refused before doing the work), with `retry_after`;
- 5xx -> Ambiguous on a write, Transient on a read, with `retry_after` (503 mostly);
- 401/403 -> Permanent (our credentials); 404 -> NotFoundError; other 4xx -> Permanent,
  carrying the partner's own message and per-field messages, trimmed;
- anything else (a redirect, which the clients never follow) -> Ambiguous on a write,
  Permanent on a read;
- a 2xx body that cannot be read -> Ambiguous on a write, Transient on a read.

Messages are for a billing clerk and carry no PHI: the partner's display name, what was
asked for (never its content), statuses, timeouts and the partner's one-line error
message (which the partner-specific `error_detail` chooses from its error body).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, Callable

import requests
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from core.inbound import parse_json
from financing.ports import (
    AmbiguousWriteError,
    NotFoundError,
    PartnerError,
    PermanentPartnerError,
    TransientPartnerError,
)

# The partner's message is shown to clerks: bounded, so a misbehaving partner cannot put
# a whole page (or an echoed request body) into an error or a case's reason.
MAX_MESSAGE = 300
MAX_FIELDS = 50

LOOK_UP_FIRST = "may or may not have been saved: look it up before writing again"

# Raised by requests before anything is sent, for a base URL that can never work.
BAD_ADDRESS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.URLRequired,
)


def no_error_detail(body: Any) -> tuple[str, dict[str, str]]:
    return "", {}


@dataclass(frozen=True)
class Partner:
    """What differs between partners, as far as the kit is concerned."""

    # The display name clerks know the partner by: "CareCredit", "Dentrix".
    name: str
    # The partner's decoded JSON error body -> (one-line message, {field: message}).
    # Only the partner's client knows which of its fields are safe to show.
    error_detail: Callable[[Any], tuple[str, dict[str, str]]] = no_error_detail


# --- transport failures ------------------------------------------------------------------


def nothing_was_sent(exc: requests.RequestException) -> bool:
    """True only when the request provably never reached the partner.

    requests reports a refused connection and a connection dropped mid-answer with the
    same ConnectionError; the urllib3 cause tells them apart. Anything not provably
    unsent counts as sent, because guessing "unsent" wrongly would allow a blind retry
    of a write that happened.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(exc, requests.exceptions.SSLError):
        cause = exc.args[0] if exc.args else None
        if isinstance(cause, MaxRetryError):
            cause = cause.reason
        # NewConnectionError covers refused, unreachable and DNS failures.
        return isinstance(cause, (NewConnectionError, ConnectTimeoutError))
    return False


def transport_error(
    partner: Partner,
    exc: requests.RequestException,
    *,
    what: str,
    is_write: bool,
    connect_timeout: float,
    read_timeout: float,
) -> PartnerError:
    """The port's error for a request that raised instead of answering.

    `what` names the object for a clerk, with its article: "the payment agreement".
    """
    name = partner.name
    if isinstance(exc, BAD_ADDRESS):
        return PermanentPartnerError(
            f"The {name} connection settings are invalid ({type(exc).__name__}); check the base URL"
        )
    if nothing_was_sent(exc):
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return TransientPartnerError(f"{name} could not be reached within {connect_timeout:g} s (connect timeout)")
        return TransientPartnerError(f"{name} could not be reached (connection refused or unknown host)")
    if isinstance(exc, requests.exceptions.Timeout):
        problem = f"{name} did not answer within {read_timeout:g} s (read timeout)"
    elif isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        problem = f"{name} sent an incomplete answer"
    elif isinstance(exc, requests.exceptions.ConnectionError):
        problem = f"{name} closed the connection without answering"
    else:
        problem = f"The call to {name} failed ({type(exc).__name__})"
    return _sent_but_unanswered(problem, what=what, is_write=is_write)


def _sent_but_unanswered(problem: str, *, what: str, is_write: bool, status: int | None = None,
                         retry_after: float | None = None) -> TransientPartnerError:
    if is_write:
        return AmbiguousWriteError(f"{problem}; {what} {LOOK_UP_FIRST}", status=status, retry_after=retry_after)
    return TransientPartnerError(problem, status=status, retry_after=retry_after)


# --- HTTP statuses -----------------------------------------------------------------------


def status_error(partner: Partner, response: requests.Response, *, what: str, is_write: bool) -> PartnerError | None:
    """The port's error for a non-2xx answer; None for a 2xx."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    name = partner.name
    message, fields = error_detail(partner, response)
    detail = f": {message}" if message else ""
    if status == 429 or status >= 500:
        # The sentence goes on after the partner's message ("; it asked us to retry...").
        detail = detail.rstrip(".")
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        hint = f"; it asked us to retry in {retry_after:g} s" if retry_after is not None else ""
        if status == 429:
            # Refused before any work was done, so never ambiguous, even for a write.
            return TransientPartnerError(
                f"{name} is limiting our request rate (HTTP 429){detail}{hint}", status=status, retry_after=retry_after
            )
        # A 5xx after a write may come after the commit (a crash on the way out).
        return _sent_but_unanswered(
            f"{name} is unavailable (HTTP {status}){detail}{hint}",
            what=what, is_write=is_write, status=status, retry_after=retry_after,
        )
    if status in (401, 403):
        return PermanentPartnerError(
            f"{name} refused Chairside's credentials (HTTP {status}); "
            f"check this location's {name} connection settings",
            status=status,
        )
    if status == 404:
        return NotFoundError(f"{name} could not find {what} (HTTP 404){detail}", status=status)
    if 400 <= status < 500:
        # The partner's own words say best what to fix; the status is in `.status`.
        return PermanentPartnerError(
            f"{name} rejected {what}{detail or f' (HTTP {status})'}", status=status, fields=fields
        )
    # 1xx/3xx are in no partner's contract (the clients never follow redirects: a
    # redirected POST becomes a GET). A read will get the same answer again: a human
    # must check the base URL. A write may have been done (303 See Other).
    problem = f"{name} sent an unexpected answer (HTTP {status}); check the base URL"
    if is_write:
        return AmbiguousWriteError(f"{problem}; {what} {LOOK_UP_FIRST}", status=status)
    return PermanentPartnerError(problem, status=status)


def error_detail(partner: Partner, response: requests.Response) -> tuple[str, dict[str, str]]:
    """The partner's message and field messages from an error body, one line each, bounded."""
    try:
        body = parse_json(response.content)  # depth-bounded: a partner's page is input too
    except ValueError:
        return "", {}
    try:
        message, fields = partner.error_detail(body)
    except (AttributeError, KeyError, TypeError, ValueError):
        return "", {}
    fields = {one_line(str(k)): one_line(str(v)) for k, v in list(fields.items())[:MAX_FIELDS]}
    return one_line(message), fields


def one_line(text: str) -> str:
    """Whitespace folded, bounded."""
    text = " ".join(str(text).split())
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 1] + "…"
    return text


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds ("2") or an HTTP date; None if unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


# --- 2xx bodies --------------------------------------------------------------------------


def unreadable_answer(partner: Partner, *, what: str, is_write: bool, status: int | None,
                      reason: str) -> TransientPartnerError:
    """A 2xx whose body does not fit the contract. After a write the record probably
    exists; a read is retried (a proxy's page in place of the partner's answer passes)."""
    if is_write:
        return AmbiguousWriteError(
            f"{partner.name} accepted {what} but its answer could not be read ({reason}); {what} {LOOK_UP_FIRST}",
            status=status,
        )
    return TransientPartnerError(f"{partner.name}'s answer for {what} could not be read ({reason})", status=status)


def json_answer(partner: Partner, response: requests.Response, *, what: str, is_write: bool) -> Any:
    """A 2xx body as JSON, every number a Decimal so money never passes through float."""
    try:
        # Depth-bounded like every body we read (core.inbound): a broken or hostile
        # answer nested 100,000 deep is "not JSON", not a RecursionError in the worker.
        return parse_json(response.content, parse_float=Decimal)
    except ValueError:
        if is_write:
            raise unreadable_answer(
                partner, what=what, is_write=True, status=response.status_code, reason="not JSON"
            ) from None
        raise TransientPartnerError(
            f"{partner.name} sent an answer that is not JSON (HTTP {response.status_code})",
            status=response.status_code,
        ) from None
