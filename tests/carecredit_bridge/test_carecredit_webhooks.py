"""Sandbox webhooks: signed, thin, at least once, with duplicates and reordering on demand."""

import json
import time

import requests

from carecredit_bridge.signing import SIGNATURE_HEADER, verify


def deliveries(sandbox):
    return requests.get(f"{sandbox.base_url}/_sandbox/webhooks", timeout=5).json()


def configure(sandbox, **settings):
    requests.put(f"{sandbox.base_url}/_sandbox/config", json=settings, timeout=5).raise_for_status()


def test_decision_is_delivered_once_signed_and_thin(
    cc_client, cc_sandbox, new_application_request, webhook_receiver, wait_until
):
    application = cc_client.create_application(new_application_request("Smith", callback_url=webhook_receiver.url))

    [(headers, body)] = webhook_receiver.wait_for(1)

    verify(headers[SIGNATURE_HEADER], body, [cc_sandbox.app.config.webhook_secret], now=time.time())
    assert headers["Content-Type"] == "application/json"
    event = json.loads(body)
    assert set(event) == {"event_id", "type", "application_id", "status", "created"}
    assert event["event_id"].startswith("evt_")
    assert (event["type"], event["application_id"], event["status"]) == (
        "application.status_changed", application.application_id, "APPROVED"
    )
    assert abs(event["created"] - time.time()) < 5
    cc_sandbox.app.dispatch_once()  # a dispatcher pass now: nothing else is due
    assert len(webhook_receiver.calls) == 1
    # The sandbox records a delivery once its answer is back: a moment after we answered.
    log = wait_until(lambda: deliveries(cc_sandbox))
    assert [(d["event_id"], d["application_id"], d["status_code"]) for d in log] == [
        (event["event_id"], application.application_id, 200)
    ]


def test_webhook_signed_with_another_secret_fails_verification(cc_client, new_application_request, webhook_receiver):
    cc_client.create_application(new_application_request("Declineman", callback_url=webhook_receiver.url))

    [(headers, body)] = webhook_receiver.wait_for(1)

    try:
        verify(headers[SIGNATURE_HEADER], body, ["whsec_someone_else"], now=time.time())
    except ValueError as error:
        assert str(error) == "no matching signature"
    else:
        raise AssertionError("a webhook verified with the wrong secret")
    assert json.loads(body)["status"] == "DECLINED"


def test_pending_persona_notifies_pending_then_approved(cc_client, new_application_request, webhook_receiver):
    application = cc_client.create_application(new_application_request("Pending", callback_url=webhook_receiver.url))

    calls = webhook_receiver.wait_for(2)

    events = [json.loads(body) for _, body in calls]
    assert [(e["application_id"], e["status"]) for e in events] == [
        (application.application_id, "PENDING"), (application.application_id, "APPROVED"),
    ]
    assert events[0]["event_id"] != events[1]["event_id"]
    assert events[0]["created"] <= events[1]["created"]


def test_failed_delivery_is_retried_with_the_same_event_and_a_fresh_signature(
    cc_client, cc_sandbox, new_application_request, webhook_receiver, wait_until
):
    webhook_receiver.fail_next = 1
    application = cc_client.create_application(new_application_request("Smith", callback_url=webhook_receiver.url))

    (first_headers, first_body), (second_headers, second_body) = webhook_receiver.wait_for(2)

    assert first_body == second_body
    secret = cc_sandbox.app.config.webhook_secret
    verify(first_headers[SIGNATURE_HEADER], first_body, [secret], now=time.time())
    verify(second_headers[SIGNATURE_HEADER], second_body, [secret], now=time.time())
    event_id = json.loads(first_body)["event_id"]
    # The sandbox records a delivery once its answer is back: a moment after we answered.
    log = wait_until(lambda: (entries := deliveries(cc_sandbox)) and len(entries) >= 2 and entries)
    assert [(d["event_id"], d["application_id"], d["attempt"], d["status_code"]) for d in log] == [
        (event_id, application.application_id, 1, 500),
        (event_id, application.application_id, 2, 200),
    ]
    # The first retry waits the initial 0.5 s backoff.
    assert log[1]["at"] - log[0]["at"] >= 0.45


def test_unreachable_receiver_is_retried_and_recorded(cc_client, cc_sandbox, new_application_request, wait_until):
    application = cc_client.create_application(new_application_request("Smith", callback_url="http://127.0.0.1:9/hook"))

    log = wait_until(lambda: (entries := deliveries(cc_sandbox)) and len(entries) >= 2 and entries)

    assert [(d["application_id"], d["attempt"], d["status_code"], d["error"]) for d in log[:2]] == [
        (application.application_id, 1, None, "ConnectionError"),
        (application.application_id, 2, None, "ConnectionError"),
    ]


def test_duplicates_send_the_same_event_several_times(
    cc_client, cc_sandbox, new_application_request, webhook_receiver, wait_until
):
    configure(cc_sandbox, webhook_duplicates=2)
    cc_client.create_application(new_application_request("Smith", callback_url=webhook_receiver.url))

    calls = webhook_receiver.wait_for(3)

    assert len({body for _, body in calls}) == 1
    cc_sandbox.app.dispatch_once()  # nothing more is due
    assert len(webhook_receiver.calls) == 3
    log = wait_until(lambda: (entries := deliveries(cc_sandbox)) and len(entries) >= 3 and entries)
    assert sorted(d["copy"] for d in log) == [0, 1, 2]


def test_reorder_delivers_a_batch_newest_first(cc_client, cc_sandbox, new_application_request, webhook_receiver):
    configure(cc_sandbox, webhook_reorder=True)
    cc_client.create_application(new_application_request("Pending", callback_url=webhook_receiver.url))

    calls = webhook_receiver.wait_for(2)

    assert [json.loads(body)["status"] for _, body in calls] == ["APPROVED", "PENDING"]


def test_no_callback_url_means_no_webhooks(cc_client, cc_sandbox, new_application_request, wait_until):
    application = cc_client.create_application(new_application_request("Smith", callback_url=""))
    wait_until(lambda: cc_client.get_decision(application.application_id).raw_status == "APPROVED")

    cc_sandbox.app.dispatch_once()  # the decision is reached, and nothing is sent
    assert deliveries(cc_sandbox) == []


def test_forced_status_is_notified(cc_client, cc_sandbox, new_application_request, webhook_receiver):
    application = cc_client.create_application(new_application_request("Expireson", callback_url=webhook_receiver.url))
    cc_sandbox.app.force_status(application.application_id, "EXPIRED")

    [(_, body)] = webhook_receiver.wait_for(1)

    assert json.loads(body)["status"] == "EXPIRED"


def test_reset_forgets_pending_retries(cc_client, cc_sandbox, new_application_request, wait_until, advance_clock):
    cc_client.create_application(new_application_request("Smith", callback_url="http://127.0.0.1:9/hook"))
    wait_until(lambda: deliveries(cc_sandbox))

    requests.post(f"{cc_sandbox.base_url}/_sandbox/reset", timeout=5).raise_for_status()

    advance_clock(cc_sandbox, 60)  # far past the first retry's backoff
    cc_sandbox.app.dispatch_once()
    assert deliveries(cc_sandbox) == []
