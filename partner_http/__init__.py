"""The one HTTP kit every partner client is built on (CareCredit, Dentrix, and the next).

It owns what is the same for every partner: the session, timeouts and pacing of a
connection, and the mapping of transport failures and HTTP statuses onto the error types
of `financing.ports` (see `classify`). A client brings only what is its own: the
partner's display name, how to read a message from its error body, which calls write.

Depends on `financing.ports`, `requests` and `core.inbound` (the one JSON reader) only;
`financing` never imports it.
"""

from .classify import (
    BAD_ADDRESS,
    LOOK_UP_FIRST,
    Partner,
    error_detail,
    json_answer,
    nothing_was_sent,
    one_line,
    retry_after_seconds,
    status_error,
    transport_error,
    unreadable_answer,
)
from .connection import PartnerConnection, session_for

__all__ = [
    "BAD_ADDRESS",
    "LOOK_UP_FIRST",
    "Partner",
    "PartnerConnection",
    "error_detail",
    "json_answer",
    "nothing_was_sent",
    "one_line",
    "retry_after_seconds",
    "session_for",
    "status_error",
    "transport_error",
    "unreadable_answer",
]
