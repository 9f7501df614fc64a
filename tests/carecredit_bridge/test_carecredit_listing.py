"""The changed-applications listing: the sandbox endpoint and the client's
list_changed_decisions (what the batch decision poller stands on)."""

import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import requests

import carecredit_bridge.client
from financing.ports import DecisionStatus, PermanentPartnerError


def seed(sandbox, merchant, last_name, *, ago, n):
    return sandbox.app.seed_application(
        merchant_number=merchant, reference=f"ref-{n}", requested_amount=Decimal("1000.00"), last_name=last_name,
        created_at=time.time() - ago, decision_delay=0,
    )["application_id"]


def test_only_the_merchants_changes_since_the_watermark_oldest_first(cc_sandbox, cc_client):
    old = seed(cc_sandbox, "M1", "Thompson", ago=3600, n=1)
    declined = seed(cc_sandbox, "M1", "Decline-Parker", ago=120, n=2)
    approved = seed(cc_sandbox, "M1", "Thompson", ago=60, n=3)
    seed(cc_sandbox, "M2", "Thompson", ago=60, n=4)  # another merchant

    page = cc_client.list_changed_decisions("M1", datetime.now(timezone.utc) - timedelta(minutes=10))

    assert [(d.application_id, d.status) for d in page.decisions] == [
        (declined, DecisionStatus.DECLINED),
        (approved, DecisionStatus.APPROVED),
    ]
    assert page.decisions[1].approved_amount == Decimal("1000.00") and page.decisions[1].offers
    assert page.next_cursor is None
    assert abs((datetime.now(timezone.utc) - page.as_of).total_seconds()) < 5
    assert old not in [d.application_id for d in cc_client.list_changed_decisions("M1", page.as_of).decisions]
    assert len(cc_client.list_changed_decisions("M1", None).decisions) == 3  # no watermark: everything


def test_pages_follow_a_cursor_over_one_snapshot(cc_sandbox, cc_client, monkeypatch):
    monkeypatch.setattr(carecredit_bridge.client, "DECISION_PAGE_SIZE", 2)
    ids = [seed(cc_sandbox, "M1", "Thompson", ago=50 - n, n=n) for n in range(5)]
    seen, cursor, as_of = [], None, None
    for _ in range(5):
        page = cc_client.list_changed_decisions("M1", None, cursor)
        as_of = as_of or page.as_of
        assert page.as_of == as_of  # every page shows the same moment
        seen += [d.application_id for d in page.decisions]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ids


def test_the_sandbox_refuses_a_malformed_listing_with_field_messages(cc_sandbox, cc_client):
    token = requests.post(
        f"{cc_sandbox.base_url}/v1/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "chairside-sandbox", "client_secret": "sandbox-secret"},
        timeout=5,
    ).json()["access_token"]
    response = requests.get(
        f"{cc_sandbox.base_url}/v1/applications",
        params={"limit": "0", "cursor": "not-a-cursor", "updated_since": "yesterday"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"merchant_number", "limit", "cursor", "updated_since"}
    with pytest.raises(PermanentPartnerError):
        cc_client.list_changed_decisions("", None)
