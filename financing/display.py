"""How the console and the messages show money, dates and times: one way, everywhere.

- Money: `$1,234.56` (`-$5.00`), from `financing.terms.money`; "—" for no amount.
- A date: `Dec 1, 2026`.
- A moment: `Dec 1, 2026, 3:41 PM EST`, in the location's time zone, with the zone's
  label (EST or EDT, PST or PDT: the label says which side of a DST change it is).
  Times are stored in UTC; a location's clerks read their own wall clock.
- A length of time: `15 minutes`, `1 hour 30 minutes`.

The case page, the lists, the timeline, the dashboard, the notifications, the ledger note
and the correction form all go through here (templates through the `display` template
filters). Django's own rendering of dates and times (read-only admin fields, history
pages) uses the same formats: `config/formats/en/formats.py` reads them from this module.
"""

import re
import typing
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils import dateformat, timezone

from .ports import AgreementRequest
from .terms import money as _money

# Django date-format syntax (https://docs.djangoproject.com/en/5.2/ref/templates/builtins/#date).
DATE_FORMAT = "M j, Y"  # Dec 1, 2026
TIME_FORMAT = "g:i A T"  # 3:41 PM EST
DATETIME_FORMAT = f"{DATE_FORMAT}, {TIME_FORMAT}"  # Dec 1, 2026, 3:41 PM EST
# The label is added from the moment itself (see when()).
_CLOCK = TIME_FORMAT.removesuffix(" T")
_WALL_CLOCK = f"{DATE_FORMAT}, {_CLOCK}"
NOTHING = "—"


@lru_cache(maxsize=256)
def _zone_named(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # A zone name the database does not know: show UTC, labelled so, rather than fail
        # the page (or guess a wall clock).
        return UTC


def zone_of(where) -> tzinfo:
    """The time zone of a Location (anything with `.timezone`), a zone name, or a tzinfo."""
    if where is None:
        return UTC
    if isinstance(where, tzinfo):
        return where
    name = getattr(where, "timezone", where)
    return _zone_named(str(name)) if name else UTC


def money(amount: Decimal | str | None) -> str:
    """Also takes the text form JSON keeps amounts in ("208.34", as in a schedule)."""
    if amount is None or amount == "":
        return NOTHING
    return _money(amount if isinstance(amount, Decimal) else Decimal(str(amount)))


def when(moment: datetime | None, where=None) -> str:
    """A moment on the wall clock of `where` (a location or zone), with the zone's label."""
    if moment is None:
        return NOTHING
    local = moment.astimezone(zone_of(where))
    # The label from the moment itself: Django's "T" leaves it out in the repeated hour
    # when clocks fall back (1:30 AM EDT, then 1:30 AM EST), just where it matters most.
    return f"{dateformat.format(local, _WALL_CLOCK)} {local.tzname()}"


def local_moment(moment: datetime, where, *, now: datetime | None = None) -> str:
    """A moment in a sentence: "3:12 PM EST" when it is today where the location is, else
    the whole "Dec 1, 2026, 3:12 PM EST"."""
    local = moment.astimezone(zone_of(where))
    if local.date() == (now or timezone.now()).astimezone(local.tzinfo).date():
        return f"{dateformat.format(local, _CLOCK)} {local.tzname()}"
    return when(moment, where)


def clock(moment: datetime | None, where=None) -> str:
    """The time of day of a moment on the wall clock of `where`, with the zone's label:
    "9:00 AM EST" (a day's list, whose date is said once above it)."""
    if moment is None:
        return NOTHING
    local = moment.astimezone(zone_of(where))
    return f"{dateformat.format(local, _CLOCK)} {local.tzname()}"


def day(value: date | datetime | str | None, where=None) -> str:
    """A date; a moment becomes the date it was where `where` is. Also takes the ISO text
    JSON keeps dates in ("2026-12-31", as in a schedule)."""
    if value is None or value == "":
        return NOTHING
    if isinstance(value, str):
        value = date.fromisoformat(value)
    if isinstance(value, datetime):
        value = value.astimezone(zone_of(where)).date()
    return dateformat.format(value, DATE_FORMAT)


def span(length: timedelta | None) -> str:
    """15 minutes, 1 hour, 1 hour 30 minutes, 2 days (whole minutes; under a minute, seconds)."""
    if length is None:
        return NOTHING
    seconds = int(length.total_seconds())
    if seconds < 60:
        return _units(seconds, "second")
    minutes = seconds // 60
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    parts = [_units(n, unit) for n, unit in ((days, "day"), (hours, "hour"), (minutes, "minute")) if n]
    return " ".join(parts)


def rough_span(length: timedelta | None) -> str:
    """A long wait as people say it: 3 days 4 hours (from a day on, whole hours), else as span."""
    if length is None or length < timedelta(days=1):
        return span(length)
    hours = int(length.total_seconds()) // 3600
    days, hours = divmod(hours, 24)
    return " ".join(_units(n, unit) for n, unit in ((days, "day"), (hours, "hour")) if n)


def _units(n: int, unit: str) -> str:
    return f"{n} {unit}{'' if n == 1 else 's'}"


# --- a value of a known kind (the arrangement's terms, as corrections record them) ----------

def of_kind(kind: str, value) -> str:
    """A term as clerks read it: kind is money, percent, count, date or text
    (`financing.models.Correction.FIELDS`). Accepts the stored text form too."""
    if value is None or value == "":
        return NOTHING
    try:
        if kind == "money":
            return money(value)
        if kind == "percent":
            return f"{Decimal(str(value)):.2f}%"
        if kind == "date":
            return day(value)
    except (ArithmeticError, ValueError):
        pass  # not the kind it claims: show it as it is rather than hide it
    return str(value)


def _kind_of(name: str, kind: type) -> str:
    if kind is date:
        return "date"
    if kind is Decimal:
        return "percent" if name.endswith("_pct") else "money"
    return "count" if kind is int else "text"


# The kinds of a payment agreement's fields, as shadow mode compares them (by name).
AGREEMENT_KINDS = {name: _kind_of(name, kind) for name, kind in typing.get_type_hints(AgreementRequest).items()}


def agreement_term(name: str, value) -> str:
    """A payment agreement's field as compared in shadow mode (stored as text), shown by its kind."""
    return of_kind(AGREEMENT_KINDS.get(name, "text"), value)


_MONTHS = {name: n for n, name in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
_SHOWN_DATE = re.compile(r"^([A-Za-z]{3,9})\.?\s+(\d{1,2}),?\s+(\d{4})$")


def parse_day(text: str) -> date:
    """A date typed the way the console shows it (`Jan 15, 2027`, `January 15 2027`) or as
    ISO 8601 (`2027-01-15`). Raises ValueError otherwise."""
    text = text.strip()
    match = _SHOWN_DATE.match(text)
    if match:
        name, dd, yyyy = match.groups()
        month = _MONTHS.get(name[:3].lower())
        if month is None or not dateformat.format(date(2000, month, 1), "F").lower().startswith(name.lower()):
            raise ValueError(f"unknown month {name!r}")
        return date(int(yyyy), month, int(dd))
    return date.fromisoformat(text)

