"""Promise 7 in motion: a canary patient through the whole flow, with a forced exception in
the worker and another in a view, leaves no canary string anywhere it could leak.

The canary's demographics travel from Dentrix to CareCredit through Chairside. Only the
first name and last initial ("Ava Z.") may reach a notification; the surname, birth date,
phone, email and address must appear in no log line, no stored broker message, no task
result, no error response, no email or SMS body, and nowhere in the database in clear.
"""

import json

import pytest
import requests
from celery import current_app
from django.db import connection
from rest_framework.test import APIClient

from financing import api as financing_api
from financing.models import CaseState, FinancedCase
from notifications.models import Notification

from tests.reliability.harness import broker_capture, on_redis, state_of, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

CANARY = {
    "last_name": "Zzcanary-Lastname",
    "birth_date": "1901-02-03",
    "phone": "+15550109876",
    "email": "canary@example.invalid",
    "line1": "1 Canaryrow Lane",
    "city": "Canaryville",
}
NEEDLES = [*CANARY.values(), "Zzcanary", "zzcanary", "ZZCANARY", "5550109876", "Canaryrow"]


def leaks(text: str) -> list[str]:
    return [needle for needle in NEEDLES if needle in text]


def test_a_canary_patient_leaves_no_trace(celery_processes, sandboxes, location, coordinator, tmp_path, caplog):
    caplog.set_level("DEBUG")
    with broker_capture() as stored_messages:
        # The worker raises once right after the ledger note is written: a traceback in its log.
        processes = celery_processes(CHAIRSIDE_FAULT_POINTS="after_pms_note_write", CHAIRSIDE_BROKER_KEEP_PROCESSED="1")
        patient = requests.post(
            f"{sandboxes.dentrix_url}/_sandbox/patients",
            json={
                "first_name": "Ava", "last_name": CANARY["last_name"], "birth_date": CANARY["birth_date"],
                "phone": CANARY["phone"], "email": CANARY["email"],
                "address": {"line1": CANARY["line1"], "city": CANARY["city"], "state": "IL", "zip": "62701"},
                "procedures": [{"code": "D2740", "tooth": "3", "surface": "", "fee": "2500.00"}],
            },
            timeout=5,
        ).json()
        api = APIClient(raise_request_exception=False)
        api.force_authenticate(coordinator)
        body = {"location": location.code, "patient_id": patient["patient_id"], "treatment_plan_id": patient["treatment_plan_id"], "patient_consents_to_messages": True}
        created = api.post("/api/v1/cases/", body, format="json")
        assert created.status_code == 201
        case = FinancedCase.objects.get(pk=created.json()["id"])
        wait_for(lambda: state_of(case) == CaseState.COMPLETED, 60, *processes.all_logs())
        wait_for(lambda: not Notification.objects.filter(status__in=["queued", "sending"]).exists(), 40, *processes.all_logs())
        assert FinancedCase.objects.get(pk=case.pk).patient_short_name == "Ava Z."

        responses = [created.content.decode()]
        # A repeated intake (400) and a view that blows up while it holds the case (500).
        again = api.post("/api/v1/cases/", body, format="json")
        assert again.status_code == 400
        responses.append(again.content.decode())

        def explode(self, case):
            raise RuntimeError("the timeline could not be built")

        original = financing_api.CaseSerializer.get_timeline
        financing_api.CaseSerializer.get_timeline = explode
        try:
            broken = api.get(f"/api/v1/cases/{case.pk}/")
        finally:
            financing_api.CaseSerializer.get_timeline = original
        assert broken.status_code == 500
        responses.append(broken.content.decode())
        responses.append(api.get(f"/api/v1/cases/{case.pk}/").content.decode())
        messages = stored_messages()

    # The flow really ran through the fault and the patient data really went to CareCredit.
    worker_logs = "\n".join(log.read_text() for log in processes.all_logs())
    assert "InjectedFault" in worker_logs and "Internal Server Error" in caplog.text
    assert len(messages) >= 6
    sms = [json.loads(f.read_text()) for f in sorted((tmp_path / "sms").glob("*.json"))]
    emails = [f.read_text() for f in sorted((tmp_path / "email").glob("*"))]
    assert {m["to"] for m in sms} == {"+15555550100", CANARY["phone"]}  # the coordinator, and the apply link
    assert any("Ava Z." in m["body"] for m in sms) and emails

    assert leaks(caplog.text) == []
    assert leaks(worker_logs) == []
    assert [leaks(m) for m in messages if leaks(m)] == []
    assert [leaks(r) for r in responses if leaks(r)] == []
    assert [leaks(m["body"]) for m in sms if leaks(m["body"])] == []
    assert [leaks(e) for e in emails if leaks(e)] == []
    # Task results: none are kept anywhere.
    assert not current_app.conf.result_backend or current_app.conf.result_backend == "disabled://"
    if on_redis():
        with current_app.connection_for_write() as conn:
            assert list(conn.default_channel.client.scan_iter("celery-task-meta-*")) == []
    # And at rest: every table, history tables included (the patient's phone as the apply
    # link's recipient is stored, encrypted).
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            assert leaks(repr(cursor.fetchall())) == [], table
