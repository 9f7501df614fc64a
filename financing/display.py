"""How the console writes a moment: in the location's time zone, with its label."""

from datetime import datetime
from zoneinfo import ZoneInfo

from django.utils import timezone


def local_moment(moment: datetime, tz_name: str, *, now: datetime | None = None) -> str:
    """"3:12 PM EST" today (in the location), "Dec 1, 2026, 3:12 PM EST" on any other day."""
    zone = ZoneInfo(tz_name)
    local = moment.astimezone(zone)
    clock = f"{local:%I:%M %p}".lstrip("0") + f" {local:%Z}"
    if local.date() == (now or timezone.now()).astimezone(zone).date():
        return clock
    return f"{local:%b} {local.day}, {local.year}, {clock}"
