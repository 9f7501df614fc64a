"""Django's own rendering of dates and times (read-only admin fields, history pages, the
`date` filter with no argument) in the console's one format: see financing/display.py."""

from financing.display import DATE_FORMAT, DATETIME_FORMAT, TIME_FORMAT

__all__ = ["DATE_FORMAT", "DATETIME_FORMAT", "TIME_FORMAT", "SHORT_DATE_FORMAT", "SHORT_DATETIME_FORMAT"]

SHORT_DATE_FORMAT = DATE_FORMAT
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
