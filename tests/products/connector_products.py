"""Helpers for the connector-product tests: what the front desk does in the product's sandbox."""

from datetime import date
from types import SimpleNamespace

import requests

# The connector product (as GET /v1/connector says) → the location's PMS kind.
KINDS = {"dentrix_g": "dentrix", "dentrix_enterprise": "dentrix_enterprise", "dentrix_ascend": "dentrix_ascend", "eaglesoft": "eaglesoft"}
NEEDS_POSTED_PRODUCTION = {"dentrix_ascend", "eaglesoft"}


def post_production(sandboxes, patient_id):
    """The front desk completes the treatment and posts it to the ledger."""
    requests.post(f"{sandboxes.dentrix_url}/_sandbox/patients/{patient_id}/post-production", json={}, timeout=5).raise_for_status()


def practice(sandboxes):
    """The sandbox's own view of the practice (what the front desk does, by hand)."""
    from sandboxes.dentrix.simulation import Practice

    return Practice(SimpleNamespace(pms_base_url=sandboxes.dentrix_url, pms_api_key="sandbox", clinic_ids=()))


def a_month_before(day: date) -> date:
    """For a first payment on the 15th (the template's), the month before, on the 15th."""
    return date(day.year - (day.month == 1), 12 if day.month == 1 else day.month - 1, day.day)
