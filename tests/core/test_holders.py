"""Lease holders: a process is certainly dead only when this host's /proc shows it ended
(gone, a zombie, or its pid now another process's); of a holder elsewhere nothing is known."""

import os
import time

from core import holders


def elsewhere(holder: str) -> str:
    """The same process as if on another host (another machine, or another container)."""
    return holder.rsplit(":", 1)[0] + ":0123456789ab"


def test_a_holder_is_certainly_dead_only_when_this_host_shows_it_ended(other_process):
    assert holders.host(), "these tests need Linux's /proc"
    me = holders.me()
    assert me.split(":")[1] == str(os.getpid())
    assert not holders.certainly_dead(me)

    holder, stop = other_process()
    assert not holders.certainly_dead(holder)
    stop(reap=False)  # killed, not yet reaped by its parent: a zombie is gone too
    pid = int(holder.split(":")[1])
    deadline = time.monotonic() + 10
    while holders._stat(pid)[0] != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert holders._stat(pid)[0] == "Z" and holders.certainly_dead(holder)

    holder, stop = other_process()
    name, pid, start, host = holder.rsplit(":", 3)
    assert holders.certainly_dead(f"{name}:{pid}:{int(start) + 1}:{host}")  # the pid, reused by another process
    stop()
    assert holders.certainly_dead(holder)
    assert not holders.certainly_dead(elsewhere(holder))  # another host's: nothing is known of it
    for malformed in ("", "dead-worker", "a:b:c:d", f"x:{pid}:{start}:"):
        assert not holders.certainly_dead(malformed)
