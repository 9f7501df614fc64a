"""The lease heartbeat: a thread in every worker process that keeps the leases its tasks
hold alive, and hands back the records of holders that are gone.

Every LEASE_HEARTBEAT_SECONDS, and once as soon as the process starts:

1. Renew: each record a task of this process claimed (`hold`; the hold ends with the
   task) gets its lease moved to now + CASE_LEASE_SECONDS. A step waiting on a slow
   partner keeps its record; a process that dies (kill -9, OOM, the hard time limit)
   stops renewing with it, since a thread dies with its process.
2. Hand back: every held record whose holder is gone — certainly dead on this host
   (core.holders), or silent for a whole lease (any host) — gets its holder cleared and
   its lease ended by one compare-and-set UPDATE on the holder and lease the beat saw (of
   several workers exactly one wins; a holder that renewed meanwhile keeps its record),
   and its app queues the work again after commit. The claim that follows counts an
   attempt like any other, so a step that kills its worker every time still ends.

The first beat of a new pool process is what makes a worker's start, or a dead child's
replacement, re-drive at once what its predecessors held on this host. A holder on
another host is known gone only once its lease has run out: at most CASE_LEASE_SECONDS +
LEASE_HEARTBEAT_SECONDS after it died, by any live worker.

Each app registers its kind of leased record (`register`, in its AppConfig.ready) and
calls `hold` when it claims one; config/celery.py starts the thread in the processes that
run tasks and ends a task's holds when the task ends.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import Q
from django.utils import timezone

from . import holders, leases

log = logging.getLogger(__name__)

BATCH = 500  # records looked at per kind and beat: normally a handful


@dataclass(frozen=True)
class Kind:
    model: type
    holder_field: str
    until_field: str
    redrive: Callable[[int], None]  # queue the record's work again (after commit), by id


_kinds: dict[str, Kind] = {}
_held: dict[int, set[tuple[str, int]]] = {}  # thread → (kind, id) its current task holds
_lock = threading.Lock()
_thread: threading.Thread | None = None


def register(name: str, *, model, holder_field: str, until_field: str, redrive: Callable[[int], None]):
    _kinds[name] = Kind(model, holder_field, until_field, redrive)


def hold(name: str, pk: int):
    """The current task holds this record: renew its lease until the task ends."""
    with _lock:
        _held.setdefault(threading.get_ident(), set()).add((name, pk))


def release_thread():
    """The current task ended. Whatever it still holds (a step that failed unexpectedly)
    is no longer renewed: its lease runs out and a heartbeat hands it back."""
    with _lock:
        _held.pop(threading.get_ident(), None)


def held_by_this_process() -> dict[str, set[int]]:
    with _lock:
        pairs = [pair for pairs in _held.values() for pair in pairs]
    held: dict[str, set[int]] = {}
    for name, pk in pairs:
        held.setdefault(name, set()).add(pk)
    return held


def beat(now=None) -> tuple[int, int]:
    """One heartbeat: (leases renewed, records handed back)."""
    now = now or timezone.now()
    me = holders.me()
    held = held_by_this_process()
    renewed = handed_back = 0
    for name, kind in _kinds.items():
        mine = held.get(name, set())
        if mine:
            renewed += kind.model.objects.filter(
                pk__in=mine, **{kind.holder_field: me, f"{kind.until_field}__isnull": False}
            ).update(**{kind.until_field: leases.until(leases.lease_seconds(), now)})
        handed_back += _hand_back(name, kind, mine, me, now)
    return renewed, handed_back


def _hand_back(name: str, kind: Kind, mine: set[int], me: str, now) -> int:
    # Candidates: leases that ran out (any holder), and live ones held on this host (the
    # only holders whose death this process can be sure of). Oldest lease first.
    candidates = Q(**{f"{kind.until_field}__lt": now})
    if holders.host():
        candidates |= Q(**{f"{kind.holder_field}__endswith": f":{holders.host()}"})
    leased = (
        kind.model.objects.filter(**{f"{kind.until_field}__isnull": False})
        .exclude(**{kind.holder_field: ""})
        .filter(candidates)
        .order_by(kind.until_field)
        .values_list("pk", kind.holder_field, kind.until_field)[:BATCH]
    )
    dead: dict[str, bool] = {}
    handed_back = 0
    for pk, holder, until in leased:
        if holder == me and pk in mine:
            continue  # ours, and just renewed
        lapsed = until < now
        if not lapsed:
            if holder not in dead:
                dead[holder] = holders.certainly_dead(holder)
            if not dead[holder]:
                continue  # alive, or on another host and still renewing: never taken over
        with transaction.atomic():
            taken = kind.model.objects.filter(pk=pk, **{kind.holder_field: holder, kind.until_field: until}).update(
                **{kind.holder_field: "", kind.until_field: now}
            )
            if taken:
                kind.redrive(pk)
        if taken:
            handed_back += 1
            why = "its lease ran out" if lapsed else "its process has ended"
            log.warning("%s %s: holder %s is gone (%s); queued again", name, pk, holder, why)
    return handed_back


def start():
    """Start this process's heartbeat thread (once per process)."""
    global _thread
    if _thread is not None and _thread.is_alive():
        return
    with _lock:
        _held.clear()  # a forked process holds nothing of its parent's
    _thread = threading.Thread(target=_run, name="lease-heartbeat", daemon=True)
    _thread.start()


def _run():
    while True:
        try:
            beat()
        except Exception as exc:  # noqa: BLE001 - the heartbeat must outlive a database hiccup
            log.warning("lease heartbeat failed (%s: %s); next try in %ss", exc.__class__.__name__, exc, settings.LEASE_HEARTBEAT_SECONDS)
        finally:
            close_old_connections()  # as after a request: drop a broken or aged connection
        time.sleep(settings.LEASE_HEARTBEAT_SECONDS)
