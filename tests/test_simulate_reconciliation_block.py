"""simulate's closing reconciliation summary is one clean block: the log lines of the days
being reconciled come out before it, never between its lines."""

import io
import logging
from decimal import Decimal as D
from types import SimpleNamespace

import pytest

from sandboxes.management.commands import simulate

pytestmark = pytest.mark.django_db


def test_the_summary_is_one_block_after_the_runs_logs(monkeypatch, location):
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logging.getLogger().addHandler(handler)
    log = logging.getLogger("financing.services.reconciliation")
    monkeypatch.setattr(log, "level", logging.INFO)

    def reconcile_day(merchant, day):
        log.warning("reconciling %s", day)
        items = SimpleNamespace(all=lambda: [SimpleNamespace(case_id=n, outcome="matched") for n in (1, 2)])
        return SimpleNamespace(day=day, purchases=D("100.00"), refunds=D("0.00"), fees=D("9.90"), net=D("90.10"), error="", items=items)

    monkeypatch.setattr(simulate.reconciliation, "reconcile_day", reconcile_day)
    command = simulate.Command(stdout=out)
    site = SimpleNamespace(payment=True, location=location)
    started = [
        SimpleNamespace(case_id=n, site=site, final={"purchase": {"status": "settled", "business_day": day}})
        for n, day in enumerate( ("2026-12-05", "2026-12-06"), start=1)
    ]
    try:
        command._reconcile(started)
    finally:
        logging.getLogger().removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["reconciling 2026-12-05", "reconciling 2026-12-06"]
    assert lines[2] == "Reconciliation (the lender's settlement report against the ledger):"
    assert [line.split(":")[0] for line in lines[3:]] == [
        f"  merchant …{location.merchant_number[-4:]} ({location.code}), Dec 5, 2026",
        f"  merchant …{location.merchant_number[-4:]} ({location.code}), Dec 6, 2026",
    ]
