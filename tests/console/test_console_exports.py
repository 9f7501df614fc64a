"""Every export (case list, corrections, dashboard; CSV and XLSX) is safe to open in a
spreadsheet: text a spreadsheet would run as a formula (starting with =, +, -, @, a tab or
a carriage return) comes out as plain text with a leading ', numbers stay numbers."""

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import openpyxl
import pytest
from django.db import connection
from django.http import Http404
from django.test.utils import CaptureQueriesContext

from financing import services
from financing.models import CaseState, Correction, FinancedCase
from financing.spreadsheet import DATE, MONEY, Column, Export, neutralise
from tests.console.console_factories import billing_user, console_client, make_case, plain_location

pytestmark = pytest.mark.django_db

HYPERLINK = '=HYPERLINK("http://example.invalid","Open")'
PAYLOADS = [HYPERLINK, "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def csv_rows(response):
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode(), newline="")))


def xlsx_sheet(response):
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    return workbook.worksheets[0]


def xlsx_rows(sheet):
    return [[cell.value for cell in row] for row in sheet.iter_rows()]


def assert_nothing_runs(cells):
    """No text cell a spreadsheet would take for a formula, and no formula cell at all."""
    for cell in cells:
        value = getattr(cell, "value", cell)
        if getattr(cell, "data_type", "s") == "f":
            pytest.fail(f"formula cell: {value!r}")
        if isinstance(value, str):
            assert not value.startswith(TRIGGERS), value


@pytest.mark.parametrize("text", PAYLOADS)
def test_formula_text_gets_a_leading_quote(text):
    assert neutralise(text) == "'" + text


@pytest.mark.parametrize("value", ["Dentrix refused", "CS-1234", "", "1560.00", "a=b", "'=already", D("-5.00"), -3, 2.5, None, date(2026, 1, 1)])
def test_anything_else_is_left_as_it_is(value):
    assert neutralise(value) == value


@pytest.fixture
def site(main):
    return main  # the console conftest's location, where Ann bills


@pytest.fixture
def hostile(site, ann):
    """A case cancelled with a formula for a reason, one with a coordinator whose username
    starts with @, and a written case corrected with formulas for reasons."""
    cancelled = make_case(site, state=CaseState.NEEDS_ATTENTION, reason="x", resume_state="approved", plan_total=D("1560.00"))
    services.cancel_case(cancelled.pk, reason=HYPERLINK, actor=ann)
    tabbed = make_case(site, state=CaseState.CAPTURED)
    FinancedCase.objects.filter(pk=tabbed.pk).update(state_reason="\t=1+1", patient_id="\r=2+2")
    odd = billing_user("@SUM(1+1)", site)
    written = make_case(site, coordinator=odd, plan_total=D("1234567.80"))
    FinancedCase.objects.filter(pk=written.pk).update(patient_id="-1+1")
    for n, why in enumerate(PAYLOADS):
        services.record_correction(written.pk, field="first_payment_date", after=f"2030-01-{10 + n}", why=why, actor=ann)
    return {"cancelled": cancelled, "written": written, "tabbed": tabbed}


def test_the_case_export_neutralises_formulas_in_csv_and_xlsx(site, ann, hostile):
    client = console_client(ann)
    cancelled, written = hostile["cancelled"], hostile["written"]

    rows = csv_rows(client.get("/admin/financing/financedcase/export.csv"))
    header, *body = rows
    by_reference = {row[0]: dict(zip(header, row, strict=True)) for row in body}
    assert by_reference[cancelled.reference]["state_reason"] == "'" + HYPERLINK
    assert by_reference[written.reference]["coordinator"] == "'@SUM(1+1)"
    assert by_reference[written.reference]["patient_id"] == "'-1+1"
    assert by_reference[written.reference]["plan_total"] == "1234567.80"
    assert by_reference[hostile["tabbed"].reference]["state_reason"] == "'\t=1+1"
    assert by_reference[hostile["tabbed"].reference]["patient_id"] == "'\r=2+2"
    assert_nothing_runs(cell for row in rows for cell in row)

    sheet = xlsx_sheet(client.get("/admin/financing/financedcase/export.xlsx"))
    rows = xlsx_rows(sheet)
    header, *body = rows
    by_reference = {row[0]: dict(zip(header, row, strict=True)) for row in body}
    assert by_reference[cancelled.reference]["state_reason"] == "'" + HYPERLINK
    assert by_reference[written.reference]["coordinator"] == "'@SUM(1+1)"
    assert by_reference[written.reference]["patient_id"] == "'-1+1"
    assert by_reference[hostile["tabbed"].reference]["state_reason"] == "'\t=1+1"
    # XML reads a carriage return back as a newline; the leading quote is what matters.
    assert by_reference[hostile["tabbed"].reference]["patient_id"] in ("'\r=2+2", "'\n=2+2")
    assert_nothing_runs(cell for row in sheet.iter_rows() for cell in row)
    # Money is a number with a currency format, dates and times are dates and times.
    column = {name: i for i, name in enumerate(header)}
    row = next(r for r in sheet.iter_rows(min_row=2) if r[0].value == written.reference)
    total = row[column["plan_total"]]
    assert (total.value, total.data_type, total.number_format) == (1234567.8, "n", MONEY)
    assert row[column["number_of_payments"]].value == 12
    last_due = row[column["first_payment_date"]]
    assert (last_due.value.date().isoformat(), last_due.number_format) == ("2030-01-15", DATE)  # the last correction
    assert row[column["first_payment_date"]].is_date and row[column["captured_at"]].is_date
    assert row[column["time_zone"]].value == "America/New_York"


def test_the_corrections_export_neutralises_every_reason(site, ann, hostile):
    client = console_client(ann)
    rows = csv_rows(client.get("/admin/financing/correction/export.csv"))
    header, *body = rows
    assert header == ["recorded_at", "case", "location", "field", "before", "after", "why", "recorded_by", "time_zone"]
    # The service trims the reason (so "\t=1+1" is kept as "=1+1"): what it kept is exported.
    kept = sorted(Correction.objects.values_list("why", flat=True))
    assert kept[0] == "+cmd|' /C calc'!A0" and len(kept) == len(PAYLOADS)
    assert sorted(dict(zip(header, r, strict=True))["why"] for r in body) == ["'" + w for w in kept]
    assert_nothing_runs(cell for row in rows for cell in row)

    sheet = xlsx_sheet(client.get("/admin/financing/correction/export.xlsx"))
    rows = xlsx_rows(sheet)
    assert rows[0] == header
    assert sorted(r[6] for r in rows[1:]) == ["'" + w for w in kept]
    assert_nothing_runs(cell for row in sheet.iter_rows() for cell in row)
    assert {r[1] for r in rows[1:]} == {hostile["written"].reference}


def test_the_dashboard_export_neutralises_and_keeps_numbers(template):
    # A location code may start with a dash (a valid slug): it is text, so it is neutralised.
    site = plain_location(template, "-north")
    ann = billing_user("ann", site)
    make_case(site, captured_at=datetime.now(UTC) - timedelta(hours=2))
    client = console_client(ann)

    rows = csv_rows(client.get("/admin/dashboard.csv?weeks=4"))
    assert {r[0] for r in rows[1:]} == {"'-north", "ALL"}
    assert_nothing_runs(cell for row in rows for cell in row)

    sheet = xlsx_sheet(client.get("/admin/dashboard.xlsx?weeks=4"))
    rows = xlsx_rows(sheet)
    assert rows[0][:3] == ["location", "week_starting", "captured"]
    assert {r[0] for r in rows[1:]} == {"'-north", "ALL"}
    assert_nothing_runs(cell for row in sheet.iter_rows() for cell in row)
    this_week = [r for r in sheet.iter_rows(min_row=2) if r[0].value == "'-north" and r[2].value]
    assert len(this_week) == 1
    captured, acceptance = this_week[0][2], this_week[0][4]
    assert (captured.value, captured.data_type) == (1, "n")
    assert (acceptance.value, acceptance.data_type) == (1, "n")


class Ledger(Export):
    amount = Column("amount", column_name="amount", number_format=MONEY)
    memo = Column("memo", column_name="memo")


def test_xlsx_keeps_negative_amounts_numbers_and_survives_control_characters():
    rows = [{"amount": D("-5.00"), "memo": "-5.00"}, {"amount": D("1234.56"), "memo": "bell\x07 and nul\x00"}]
    response = Ledger().response(rows, fmt="xlsx", filename="t")
    sheet = xlsx_sheet(response)
    (_, _), (negative, memo), (positive, odd) = sheet.iter_rows()
    assert (negative.value, negative.data_type, negative.number_format) == (-5, "n", MONEY)
    assert memo.value == "'-5.00" and memo.data_type == "s"  # text that looks like a formula
    assert (positive.value, positive.number_format) == (1234.56, MONEY)
    assert odd.value == "bell\N{REPLACEMENT CHARACTER} and nul\N{REPLACEMENT CHARACTER}"

    lines = csv_rows(Ledger().response(rows, fmt="csv", filename="t"))
    assert lines[1] == ["-5.00", "'-5.00"]


def test_an_unknown_export_format_is_no_file_and_no_500(site, ann):
    client = console_client(ann)
    for url in ("/admin/financing/financedcase/export.ods", "/admin/financing/correction/export.json", "/admin/dashboard.ods"):
        response = client.get(url, follow=True)
        assert response.status_code in (200, 404) and "attachment" not in response.get("Content-Disposition", ""), url
    with pytest.raises(Http404):
        Ledger().response([], fmt="ods", filename="t")


def test_the_case_export_streams_in_a_fixed_number_of_queries(site, ann):
    client = console_client(ann)

    def queries_for_export(fmt):
        with CaptureQueriesContext(connection) as captured:
            response = client.get(f"/admin/financing/financedcase/export.{fmt}")
            b"".join(response.streaming_content)
        return len(captured)

    for _ in range(3):
        make_case(site)
    few = {fmt: queries_for_export(fmt) for fmt in ("csv", "xlsx")}
    for _ in range(30):
        make_case(site)
    assert {fmt: queries_for_export(fmt) for fmt in ("csv", "xlsx")} == few  # no query per row


def test_the_export_audit_log_names_the_filter_but_never_a_search_term(site, ann, hostile, caplog):
    # A search term can be a patient's surname (the surname search): it never reaches a log.
    client = console_client(ann)
    with caplog.at_level("INFO", logger="financing.admin.exports"):
        response = client.get("/admin/financing/financedcase/export.csv?q=Garcia&state__exact=cancelled")
    assert response.status_code == 200
    audit = [r.getMessage() for r in caplog.records if "export" in r.getMessage()]
    assert len(audit) == 1
    assert "state__exact=cancelled" in audit[0] and "Garcia" not in audit[0] and "q=%28a+search%29" in audit[0]
