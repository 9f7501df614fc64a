"""Every export of the console, as CSV or XLSX: streamed, and safe to open in a spreadsheet.

What is exported is declared with django-import-export: a `Resource` of `Column`s (its
`Field`, plus the XLSX number format), read row by row with `Resource.export_resource`.
How it is written is here, for two reasons the library does not cover:

- **Size.** The library builds the whole file in memory (a tablib Dataset, then openpyxl's
  normal workbook): 650 MB peak for 100,000 case rows as XLSX on the development machine.
  Here CSV streams row by row as the database cursor is read, and XLSX goes through
  openpyxl's write-only workbook into a temporary file, sent once complete (a zip cannot be
  sent before its end). Memory stays at the process's own (about 75 MB) whatever the
  number of rows; 100,000 rows cost about 5 s of CPU as CSV and 23 s as XLSX (the same as
  the library's XLSX, which is openpyxl's XML writing either way).
- **Formula injection** (OWASP "CSV Injection"). A cell a spreadsheet would read as a
  formula — text starting with `=`, `+`, `-`, `@`, a tab or a carriage return — is
  neutralised with a leading `'`, in both formats. The library (and tablib) only strip a
  leading `=`, and turn every cell into text; defusedcsv leaves tab and carriage return
  alone. Numbers, dates and times stay real cells: a negative amount is a number, never
  text, so only text is neutralised. In XLSX, text is never written as a formula either.

Times are exported on the row's location's clock: CSV as ISO 8601 with the offset
(2026-12-01T15:41:00-05:00); XLSX as a date-time cell of that wall clock (Excel has no time
zones), which is why every time-bearing export also has a `time_zone` column.
"""

import csv
import re
import tempfile
from datetime import date, datetime
from decimal import Decimal

from django.http import FileResponse, Http404, StreamingHttpResponse
from import_export import fields, resources, widgets
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
# What makes a spreadsheet read text as a formula (OWASP).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

MONEY = '"$"#,##0.00;-"$"#,##0.00'
DATE = "mmm d, yyyy"
DATETIME = "mmm d, yyyy h:mm AM/PM"
RATIO = "0.0000"
HOURS = "0.00"

# Characters XML 1.0 (so XLSX) cannot hold; openpyxl refuses the cell. Tab, newline and
# carriage return are allowed.
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def neutralise(value):
    """Text a spreadsheet would run as a formula, made plain text; anything else as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


class _Native(widgets.Widget):
    """Hands the value over as it is (a Decimal, a date): the writer decides its cell."""

    def render(self, value, obj=None, **kwargs):
        return value


class Column(fields.Field):
    """A column of an export: django-import-export's Field, plus how XLSX shows a number,
    a date or a time (`number_format`, Excel syntax)."""

    def __init__(self, attribute=None, *, number_format=None, **kwargs):
        super().__init__(attribute=attribute, widget=_Native(), **kwargs)
        self.number_format = number_format


class Export(resources.Resource):
    """A declared export. Subclasses list their Columns; `dehydrate_<name>` methods compute
    the ones an attribute path cannot reach."""

    class Meta:
        chunk_size = 2000  # rows per database round trip while streaming

    def response(self, rows, *, fmt: str, filename: str):
        """The download of `rows` (a queryset, read with the library's chunked iterator, or
        any iterable) as `fmt`, a key of FORMATS; an unknown format is a 404."""
        if fmt not in FORMATS:
            raise Http404("Exports are CSV or XLSX.")
        columns = self.get_export_fields()
        headers = self.get_export_headers()
        values = (self.export_resource(row) for row in self.iter_queryset(rows))
        if fmt == "csv":
            response = StreamingHttpResponse(_csv_lines(headers, values), content_type=FORMATS["csv"])
        else:
            response = FileResponse(_xlsx_file(headers, columns, values), content_type=FORMATS["xlsx"])
        response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
        return response


class _Line:
    """csv.writer writes into this and hands the line back, for streaming."""

    def write(self, text):
        return text


def _csv_cell(value):
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return neutralise(value)


def _csv_lines(headers, values):
    # Text quoted, numbers bare (OWASP also asks for the quotes; a spreadsheet still reads
    # a quoted number as a number, but bare ones stay numbers for any reader).
    writer = csv.writer(_Line(), quoting=csv.QUOTE_NONNUMERIC)
    yield writer.writerow([neutralise(h) for h in headers])
    for row in values:
        yield writer.writerow([_csv_cell(v) for v in row])


def _xlsx_cell(sheet, value, number_format):
    if isinstance(value, str):
        # Neutralised text never starts with "=", so openpyxl writes it as text, never a formula.
        return _XML_ILLEGAL.sub("\N{REPLACEMENT CHARACTER}", neutralise(value)) if value else None
    if isinstance(value, datetime):
        # Excel has no time zones: the wall clock of the zone the value is in (the
        # location's), named in the export's time_zone column.
        value = value.replace(tzinfo=None)
        number_format = number_format or DATETIME
    elif isinstance(value, date):
        number_format = number_format or DATE
    elif isinstance(value, Decimal):
        number_format = number_format or "0.00"
    if number_format is None or value is None:
        return value  # a plain cell costs a third of a formatted one: 100,000 rows add up
    cell = WriteOnlyCell(sheet, value=value)
    cell.number_format = number_format
    return cell


def _xlsx_file(headers, columns, values):
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Export")
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    header = []
    for text in headers:
        cell = WriteOnlyCell(sheet, value=_xlsx_cell(sheet, text, None))
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    formats = [getattr(column, "number_format", None) for column in columns]
    for row in values:
        sheet.append([_xlsx_cell(sheet, v, f) for v, f in zip(row, formats, strict=True)])
    # Deleted when the response closes it (or at once, on a failure before that).
    out = tempfile.TemporaryFile()
    workbook.save(out)
    out.seek(0)
    return out
