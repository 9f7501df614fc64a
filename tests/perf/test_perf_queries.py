"""Database queries per step of one approved case: a small constant, pinned exactly.

The benchmark (`make bench`) prints queries per case; this keeps each step's count from
creeping up unnoticed. A change that adds a query to a step must change the number here,
on purpose. Transaction control (BEGIN, COMMIT, savepoints) is left out of the counts:
SQLite's backend sends it as SQL and PostgreSQL's through the driver, so only the data
statements are the same on both.
"""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from financing.models import CaseState, FinancedCase
from tests.conftest import deliver_carecredit_webhook

pytestmark = pytest.mark.django_db(transaction=True)

# What each step costs in data statements (SELECT, INSERT, UPDATE).
EXPECTED = {
    # Includes the patient's latest pre-screen at the location (services/cardholder.py), one
    # indexed lookup (prescreen_patient_latest).
    "POST /api/v1/cases/": 10,
    "financing.send_application": 5,
    "webhook (approved)": 8,
    # Each includes the UPDATE that proves the lease is still the step's own right before
    # its Dentrix write (financing.services.leases.before_write).
    "financing.write_arrangement": 9,
    "financing.post_ledger_note": 12,
    "notifications.send (email)": 3,
    "notifications.send (sms)": 3,
}
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


def _run(tasks, name):
    item = next(t for t in tasks.queue if t.name == name)
    tasks.queue.remove(item)
    tasks.queue.insert(0, item)
    return tasks.run_next()


def test_one_approved_case_costs_a_fixed_number_of_queries(sandboxes, location, coordinator, tasks):
    patient = sandboxes.new_patient("Queries")
    api = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=coordinator).key}")
    counts, statements = {}, {}

    def measure(label, action):
        with CaptureQueriesContext(connection) as ctx:
            result = action()
        data = [q["sql"] for q in ctx.captured_queries if not q["sql"].startswith(TRANSACTION_CONTROL)]
        counts[label] = len(data)
        statements[label] = [sql[:160] for sql in data]
        return result

    response = measure("POST /api/v1/cases/", lambda: api.post(
        "/api/v1/cases/",
        {"location": location.code, "patient_id": patient["patient_id"], "treatment_plan_id": patient["treatment_plan_id"]},
        content_type="application/json",
    ))
    assert response.status_code == 201, response.content
    case_id = response.json()["id"]
    assert measure("financing.send_application", lambda: _run(tasks, "financing.send_application")) == "sent"

    case = FinancedCase.objects.get(pk=case_id)
    event = {"event_id": "evt_q", "type": "application.status_changed", "application_id": case.application_id}
    answer = measure("webhook (approved)", lambda: deliver_carecredit_webhook(event))
    assert answer.json() == {"status": "approved"}
    assert measure("financing.write_arrangement", lambda: _run(tasks, "financing.write_arrangement")) == "written"
    assert measure("financing.post_ledger_note", lambda: _run(tasks, "financing.post_ledger_note")) == "completed"
    assert measure("notifications.send (email)", lambda: _run(tasks, "notifications.send")) == "sent"
    assert measure("notifications.send (sms)", lambda: _run(tasks, "notifications.send")) == "sent"
    assert tasks.queue == []
    assert FinancedCase.objects.get(pk=case_id).state == CaseState.COMPLETED

    assert counts == EXPECTED, "\n".join(f"{label}: {counts[label]}\n  " + "\n  ".join(sqls) for label, sqls in statements.items())
    assert sum(counts.values()) == sum(EXPECTED.values())
