"""The CareCredit sandbox's store: applications, cardholder confirmations, tokens,
idempotency keys and each merchant's recent Quickscreen batches, behind one lock.

Only what the sandbox needs to decide is kept (the persona, not the applicant's
demographics). Status is computed lazily from timestamps (no timer per application);
the delays and the APR are captured when the application is created, so changing the
configuration later never moves an existing application backwards. Every timestamp is
the kit's injectable clock: moving it (``POST /_sandbox/clock``) moves every
application along its timeline.
"""

from __future__ import annotations

import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo
from decimal import Decimal
from typing import Any

from .config import SandboxConfig
from .personas import (
    APPLICATION_SENT, APPROVED, DECLINED, PENDING, REFERRED,
    approved_amount_for, credit_limit_for, money, persona_for, promotions_for,
)


PRESCREEN_WINDOW = 60.0  # seconds of sandbox time the Quickscreen rate is counted over

# CareCredit's own business day: Synchrony is in Stamford, CT. Approval expiry, the void
# window and the settlement report all count days in this zone, whatever the merchant's.
LENDER_ZONE = ZoneInfo("America/New_York")


def lender_day(timestamp: float) -> date:
    """The lender's business date at unix time `timestamp` (sandbox time)."""
    return datetime.fromtimestamp(timestamp, LENDER_ZONE).date()


def approval_expires_on(decided_at: float, valid_days: int) -> date:
    """The last lender day an approval decided at `decided_at` can be charged."""
    return lender_day(decided_at) + timedelta(days=valid_days)


def iso(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def iso_precise(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="microseconds")


@dataclass
class StoredApplication:
    """One application. Only what the sandbox needs to decide: no demographics."""

    application_id: str
    merchant_number: str
    reference: str
    requested_amount: Decimal
    persona: str
    callback_url: str
    apply_url: str
    idempotency_key: str | None
    fingerprint: str  # sha256 of the request body, to spot a reused idempotency key
    created_at: float
    # Captured at creation so later config changes cannot rewrite this application's past.
    decision_delay: float
    pending_delay: float
    reduced_apr: Decimal
    approval_valid_days: int = 30
    # Statuses forced through the control API, (unix time, raw status), in time order.
    forced: list[tuple[float, str]] = field(default_factory=list)
    # Webhook bookkeeping: how many timeline steps became events, and events held back
    # by webhook_reorder.
    steps_notified: int = 0
    held_events: list[Any] = field(default_factory=list)
    seq: int = 0  # creation order, which the dispatcher keeps when it sends events

    def timeline(self) -> list[tuple[float, str]]:
        """Every status change after creation, as (unix time, raw status), oldest first.

        Append-only as time passes, which is what lets the dispatcher remember how far
        it has notified with a single counter.
        """
        completed_at = self.created_at + self.decision_delay
        scripted = {
            "expire": [],
            "decline": [(completed_at, DECLINED)],
            "refer": [(completed_at, REFERRED)],
            "pending": [(completed_at, PENDING), (completed_at + self.pending_delay, APPROVED)],
            "partial": [(completed_at, APPROVED)],
            "approve": [(completed_at, APPROVED)],
        }[self.persona]
        if not self.forced:
            return scripted
        first_forced_at = self.forced[0][0]
        return [step for step in scripted if step[0] < first_forced_at] + list(self.forced)

    def status_at(self, now: float) -> tuple[str, float]:
        """(raw status, unix time it was reached) at `now`."""
        status, since = APPLICATION_SENT, self.created_at
        for at, step_status in self.timeline():
            if at <= now:
                status, since = step_status, at
        return status, since

    def to_json(self, now: float) -> dict[str, Any]:
        """The API view of the application at `now`."""
        status, since = self.status_at(now)
        approved = None
        if status == APPROVED:
            approved = approved_amount_for(self.persona, self.requested_amount)
        return {
            "application_id": self.application_id,
            "reference": self.reference,
            "merchant_number": self.merchant_number,
            "status": status,
            "requested_amount": money(self.requested_amount),
            "approved_amount": money(approved) if approved is not None else None,
            "credit_limit": money(credit_limit_for(approved)) if approved is not None else None,
            "promotions": promotions_for(approved, self.reduced_apr) if approved is not None else [],
            "decided_at": iso(since) if status in (APPROVED, DECLINED) else None,
            # The last lender day the approval can be charged (see `transact`).
            "expires_on": approval_expires_on(since, self.approval_valid_days).isoformat() if approved is not None else None,
            "created": iso(self.created_at),
            "apply_url": self.apply_url,
        }

    def approval_at(self, now: float) -> tuple[str, Decimal | None, float]:
        """(raw status, approved amount or None, unix time of the status) at `now`."""
        status, since = self.status_at(now)
        approved = approved_amount_for(self.persona, self.requested_amount) if status == APPROVED else None
        return status, approved, since


@dataclass
class StoredConfirmation:
    """One cardholder confirmation: final when made, so only its answer and its fingerprint."""

    payload: dict[str, Any]
    fingerprint: str  # sha256 of the request body, to spot a reused reference


class Store:
    """All mutable state of one sandbox; callers hold `lock` around reads and writes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        self.applications: dict[str, StoredApplication] = {}
        self.idempotency: dict[tuple[str, str], str] = {}  # (merchant, key) -> application id
        self.tokens: dict[str, float] = {}  # token -> expiry, sandbox time
        # Applications whose timeline may still produce events: the dispatcher looks only
        # at these, so a pass costs what is moving, not every application ever created.
        self.unsettled: set[str] = set()
        self.by_merchant: dict[str, list[str]] = {}
        # (merchant, reference) -> its confirmation: one per case reference.
        self.confirmations: dict[tuple[str, str], StoredConfirmation] = {}
        # Keys the account numbers' hash (quickscreen.account_for): new on every reset.
        self.account_key = secrets.token_bytes(32)
        # merchant -> sandbox times of its Quickscreen batches in the last window.
        self.prescreen_batches: dict[str, deque[float]] = {}
        # Purchases and refunds (see `transact`), and (merchant, clientTransId) -> their id.
        self.transactions: dict[str, Any] = {}
        self.transaction_keys: dict[tuple[str, str], str] = {}
        # merchant -> its fee rates by promotion code, over the default merchant agreement.
        self.fee_rates: dict[str, dict[str, Decimal]] = {}

    def take_prescreen_slot(self, merchant_number: str, now: float, per_window: int) -> float | None:
        """Count one batch for the merchant and return None, or, when it has sent
        `per_window` in the last PRESCREEN_WINDOW seconds, the seconds until one leaves
        the window (nothing counted)."""
        sent = self.prescreen_batches.setdefault(merchant_number, deque())
        while sent and sent[0] <= now - PRESCREEN_WINDOW:
            sent.popleft()
        if len(sent) >= per_window:
            return sent[len(sent) - per_window] + PRESCREEN_WINDOW - now
        sent.append(now)
        return None

    def add(
        self,
        config: SandboxConfig,
        public_url: str,
        *,
        merchant_number: str,
        reference: str,
        requested_amount: Decimal,
        last_name: str,
        callback_url: str,
        created_at: float,
        idempotency_key: str | None = None,
        fingerprint: str = "",
        decision_delay: float | None = None,
    ) -> StoredApplication:
        """A new application (lock held), with the configuration's delays and APR captured."""
        application_id = "app_" + secrets.token_hex(8)
        application = StoredApplication(
            application_id=application_id,
            merchant_number=merchant_number,
            reference=reference,
            requested_amount=requested_amount,
            persona=persona_for(last_name),
            callback_url=callback_url,
            apply_url=f"{public_url.rstrip('/')}/apply/{application_id}",
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
            created_at=created_at,
            decision_delay=config.decision_delay if decision_delay is None else decision_delay,
            pending_delay=config.pending_delay,
            reduced_apr=config.reduced_apr,
            approval_valid_days=config.approval_valid_days,
            seq=len(self.applications),
        )
        self.applications[application_id] = application
        self.unsettled.add(application_id)
        self.by_merchant.setdefault(merchant_number, []).append(application_id)
        if idempotency_key is not None:
            self.idempotency[(merchant_number, idempotency_key)] = application_id
        return application
