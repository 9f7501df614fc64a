"""A fixed number of queries per page, whatever the data size: the console stays fast at
100,000 cases (bench/admin_pages.py measures the times)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from financing import services
from financing.models import CaseState
from notifications.models import Notification
from tests.conftest import make_user
from tests.console.console_factories import billing_user, console_client, make_case, plain_location

pytestmark = pytest.mark.django_db


def queries(client, url):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(captured)


def grow(locations, n, coordinator):
    for i in range(n):
        location = locations[i % len(locations)]
        state = [CaseState.COMPLETED, CaseState.NEEDS_ATTENTION, CaseState.AWAITING_DECISION, CaseState.APPROVED][i % 4]
        make_case(location, state=state, coordinator=coordinator, reason="x", took=timedelta(minutes=i + 1))


def test_list_dashboard_and_export_pages_cost_the_same_at_5_and_50_cases(template):
    locations = [plain_location(template, code) for code in ("main", "north", "south")]
    coordinator = make_user("cora", locations[0])
    client = console_client(billing_user("cat", *locations))
    pages = [
        "/admin/financing/financedcase/",
        "/admin/financing/financedcase/?attention=needs_attention",
        "/admin/financing/financedcase/?state__exact=completed&captured_from=2000-01-01",
        "/admin/dashboard/",
        "/admin/dashboard/?weeks=52",
        "/admin/financing/correction/",
        "/admin/financing/shadowcomparison/",
    ]
    grow(locations, 5, coordinator)
    small = {url: queries(client, url) for url in pages}
    grow(locations, 45, coordinator)
    large = {url: queries(client, url) for url in pages}
    assert large == small
    assert small["/admin/financing/financedcase/"] <= 12
    # 3 of them: "Needs you today" counts; 3 the durations' percentiles; 1 pre-qualified patients against the rest;
    # 4 the money (purchases, refunds, open reconciliation exceptions, approvals expired unused)
    assert small["/admin/dashboard/"] <= 24


def test_case_page_costs_the_same_with_a_short_or_a_long_history(template):
    main = plain_location(template, "main")
    ann = billing_user("ann", main)
    coordinator = make_user("cora", main)
    client = console_client(ann)
    short = make_case(main, coordinator=coordinator)
    long = make_case(main, coordinator=coordinator)
    for i in range(12):
        services.record_correction(long.pk, field="recurring_amount", after=f"{210 + i}.00", why=f"fix {i}", actor=ann)
        Notification.objects.create(dedupe_key=f"k{i}", reference=long.reference, channel="email", recipient="x@example.com", template="case_approved", body="b")
    url = "/admin/financing/financedcase/{}/change/"
    queries(client, url.format(short.pk))  # warm the per-process caches (content types)
    assert queries(client, url.format(long.pk)) == queries(client, url.format(short.pk))
    assert queries(client, url.format(short.pk)) <= 20


def test_long_lists_count_up_to_a_cap(template, monkeypatch):
    from financing.admin.base import CappedPaginator

    monkeypatch.setattr(CappedPaginator, "CAP", 3)
    main = plain_location(template, "main")
    for _ in range(5):
        make_case(main)
    page = console_client(billing_user("ann", main)).get("/admin/financing/financedcase/")
    assert "3+ financed cases (filter or search to narrow them down)" in page.text
    assert len(page.context["cl"].result_list) == 5


def test_needs_you_today_costs_the_same_at_5_and_50_of_each_kind(template):
    """The landing page counts with indexed grouped queries and lists a capped few of each
    kind: its query count does not move with the data (pinned here, measured in bench/)."""
    from django.utils import timezone

    from financing.models import FinancedCase, ShadowComparison

    locations = [plain_location(template, code) for code in ("main", "north", "south")]
    client = console_client(billing_user("cat", *locations))
    now = timezone.now()

    def work(n):
        for i in range(n):
            location = locations[i % 3]
            make_case(location, state=CaseState.NEEDS_ATTENTION, reason="Dentrix refused the agreement.")
            retry = make_case(location, state=CaseState.APPROVED)
            wait = make_case(location, state=CaseState.AWAITING_DECISION)
            FinancedCase.objects.filter(pk=retry.pk).update(last_error="Dentrix timed out.", step_attempts=2)
            FinancedCase.objects.filter(pk=wait.pk).update(application_sent_at=now - timedelta(days=2, minutes=i))
            done = make_case(location)
            Notification.objects.create(dedupe_key=f"q{done.pk}", reference=done.reference, channel="email",
                                        recipient="c@example.com", template="case_approved", body="b", status="failed")
            late = make_case(location, state=CaseState.AWAITING_PRODUCTION)
            FinancedCase.objects.filter(pk=late.pk).update(production_awaited_at=now - timedelta(days=40, minutes=i))
            shadow = make_case(location, shadow=True)
            ShadowComparison.objects.create(case=shadow, location=location, outcome="mismatch", compared_at=now, discrepancy_count=1,
                                            discrepancies=[{"field": "down_payment", "chairside": "0.00", "dentrix": "1.00"}])

    work(5)
    small = queries(client, "/admin/")
    work(45)
    assert queries(client, "/admin/") == small
    # Session (read, then saved: 3), user, device, permissions (2), the index's app list (1)
    # and recent actions (1), the locations, 3 counts and 6 lists: nothing per row, per kind's
    # size or per location.
    assert small == 20
