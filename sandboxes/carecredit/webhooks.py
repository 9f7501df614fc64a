"""The CareCredit sandbox's webhooks: signed, at least once, and misbehaving on request.

One dispatcher thread looks every 100 ms (and at once when an application is created or
forced, or the clock moves) for applications whose status moved (every step: the
intermediate PENDING as well as the final decision) and POSTs ``{"event_id", "type":
"application.status_changed", "application_id", "status", "created"}`` to the
application's callback_url, signed in the ``CareCredit-Signature`` header (see
`sign`). Delivery is at least once: a non-2xx answer or a connection error is retried
after 0.5 s, 1 s, 2 s, 4 s, 8 s (6 attempts in all, in sandbox time) with the same event
id and body, re-signed with a fresh timestamp. ``webhook_duplicates = N`` sends every
event N extra times; ``webhook_reorder = true`` holds an application's events until it
reaches its last status and releases each dispatch batch in reverse order (so a PENDING
persona's APPROVED arrives before its PENDING). Every attempt is recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import requests

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.1  # seconds between dispatcher passes
MAX_ATTEMPTS = 6
FIRST_BACKOFF = 0.5  # seconds; doubles after every failed attempt
# Short, so that one hanging receiver delays the single dispatcher thread only briefly.
TIMEOUT = (1.0, 3.0)
EVENT_TYPE = "application.status_changed"
SIGNATURE_HEADER = "CareCredit-Signature"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """``t=<unix>,v1=<hex HMAC-SHA256 of b"<t>." + body>``, keyed by the webhook secret:
    the Stripe/Sunbit-style scheme documented for CareCredit callbacks (lender.md, and
    carecredit_bridge/signing.py's docstring: the receiver's side)."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass
class WebhookEvent:
    event_id: str
    application_id: str
    status: str
    created: int
    callback_url: str

    def body(self) -> bytes:
        return json.dumps({
            "event_id": self.event_id,
            "type": EVENT_TYPE,
            "application_id": self.application_id,
            "status": self.status,
            "created": self.created,
        }).encode("utf-8")


@dataclass
class PendingDelivery:
    event: WebhookEvent
    body: bytes  # fixed per event: every attempt and every duplicate sends the same bytes
    copy: int  # 0 for the original, 1..N for webhook_duplicates
    attempt: int
    next_attempt_at: float


class WebhookDispatcher:
    """The one dispatcher thread of a sandbox `app` (its store, config, clock)."""

    def __init__(self, app: Any):
        self.app = app
        self.outbox: list[PendingDelivery] = []
        self.deliveries: list[dict[str, Any]] = []
        self.wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        # Bumped by clear(), so a webhook in flight during a reset is not recorded after it.
        self._generation = 0

    def clear(self) -> None:
        """Forget the outbox and the delivery log (store lock held)."""
        self.outbox.clear()
        self.deliveries.clear()
        self._generation += 1

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="carecredit-sandbox-webhooks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=sum(TIMEOUT) + 2)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def _loop(self) -> None:
        stopping = self.app.stopping
        while not stopping.is_set():
            # Woken early by a new or forced application, so an immediate decision's
            # webhook leaves at once instead of up to one interval later.
            self.wake.wait(POLL_INTERVAL)
            self.wake.clear()
            if stopping.is_set():
                return
            try:
                self.dispatch_once()
            except Exception:
                # Keep dispatching: one bad pass must not end webhooks for the whole run.
                log.exception("sandbox webhook dispatch failed")

    def dispatch_once(self) -> None:
        """One dispatcher pass: turn new status changes into events, then send what is due."""
        now = self.app.clock.now()
        with self.app.store.lock:
            self._collect_events(now)
            due = [delivery for delivery in self.outbox if delivery.next_attempt_at <= now]
            self.outbox = [delivery for delivery in self.outbox if delivery.next_attempt_at > now]
            generation = self._generation
            secret = self.app.config.webhook_secret
            concurrency = self.app.config.webhook_concurrency

        if concurrency > 1 and len(due) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="carecredit-sandbox-webhook")
            for start in range(0, len(due), concurrency):
                batch = due[start:start + concurrency]
                list(self._pool.map(lambda delivery: self._deliver(delivery, secret, generation), batch))
            return
        for delivery in due:
            if not self._deliver(delivery, secret, generation):
                return

    def _deliver(self, delivery: PendingDelivery, secret: str, generation: int) -> bool:
        """POST one attempt and record it; False when the dispatcher should stop this pass."""
        if self.app.stopping.is_set():
            return False
        status_code, error = _post(delivery, secret, int(self.app.clock.now()))
        delivered = status_code is not None and 200 <= status_code < 300
        with self.app.store.lock:
            if self._generation != generation:
                return False  # reset() happened meanwhile: forget this pass
            self.deliveries.append({
                "event_id": delivery.event.event_id,
                "application_id": delivery.event.application_id,
                "status": delivery.event.status,
                "copy": delivery.copy,
                "attempt": delivery.attempt,
                "status_code": status_code,
                "error": error,
                "at": self.app.clock.now(),
            })
            if not delivered and delivery.attempt < MAX_ATTEMPTS:
                backoff = FIRST_BACKOFF * 2 ** (delivery.attempt - 1)
                self.outbox.append(
                    replace(delivery, attempt=delivery.attempt + 1, next_attempt_at=self.app.clock.now() + backoff)
                )
        return True

    def _collect_events(self, now: float) -> None:
        """Queue one event per status step reached since the last pass (lock held)."""
        config = self.app.config
        batch: list[WebhookEvent] = []
        moving = sorted((self.app.store.applications[i] for i in self.app.store.unsettled), key=lambda a: a.seq)
        for application in moving:
            timeline = application.timeline()
            for at, status in timeline[application.steps_notified:]:
                if at > now:
                    break
                application.steps_notified += 1
                if application.callback_url:
                    application.held_events.append(WebhookEvent(
                        event_id="evt_" + secrets.token_hex(12),
                        application_id=application.application_id,
                        status=status,
                        created=int(at),
                        callback_url=application.callback_url,
                    ))
            finished = application.steps_notified >= len(timeline)
            if application.held_events and (not config.webhook_reorder or finished):
                batch.extend(application.held_events)
                application.held_events = []
            if finished and not application.held_events:
                # Nothing more will happen to it unless a status is forced (which re-adds it).
                self.app.store.unsettled.discard(application.application_id)
        if config.webhook_reorder:
            batch.reverse()
        for event in batch:
            body = event.body()
            for copy in range(1 + config.webhook_duplicates):
                self.outbox.append(PendingDelivery(event, body, copy, attempt=1, next_attempt_at=now))


def _post(delivery: PendingDelivery, secret: str, now: int) -> tuple[int | None, str | None]:
    """POST one attempt; (HTTP status, None) or (None, exception class name)."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "carecredit-sandbox-webhooks",
        # Re-signed on every attempt: a retry hours later must still pass the ±300 s window.
        SIGNATURE_HEADER: sign(secret, delivery.body, now),
    }
    try:
        response = requests.post(
            delivery.event.callback_url,
            data=delivery.body,
            headers=headers,
            timeout=TIMEOUT,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        return None, type(exc).__name__
    return response.status_code, None
