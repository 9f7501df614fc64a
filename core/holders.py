"""Who holds a lease, and whether that process is certainly gone.

A claim records its holder, `name:pid:start:host`: one process of the whole deployment,
never reused while the machine runs. `host` is a digest of the kernel's boot id and the
process's pid namespace (two containers on one kernel differ; a reboot differs); `start`
is the process's start time in clock ticks since boot, so a pid the kernel hands out
again is another holder; `name` is the host name, for people reading the record.

A worker knows for certain that a holder with its own `host` is gone when /proc shows no
live process with that pid and start time: a pool child that died and was replaced, or
the processes of a worker killed and restarted on this machine. Of a holder anywhere else
it knows nothing; only the holder's lease running out says it is gone (the holder renews
it while it lives: core.heartbeat). Without /proc (not Linux), nothing is ever certain.
"""

import hashlib
import os
import socket
from pathlib import Path

_identity: tuple[int, str] | None = None  # (pid, holder): recomputed after a fork
_host: str | None = None


def me() -> str:
    """This process, as a lease holder."""
    global _identity
    pid = os.getpid()
    if _identity is None or _identity[0] != pid:
        stat = _stat(pid)
        start = stat[1] if stat else 0
        _identity = (pid, f"{socket.gethostname()[:40]}:{pid}:{start}:{host()}")
    return _identity[1]


def certainly_dead(holder: str) -> bool:
    """True only when `holder` is a process of this host that no longer runs."""
    try:
        _, pid, start, holder_host = holder.rsplit(":", 3)
        pid, start = int(pid), int(start)
    except ValueError:
        return False
    if not holder_host or holder_host != host():
        return False
    stat = _stat(pid)
    # Z: a zombie, killed and not yet reaped by its parent; X: being torn down.
    return stat is None or stat[1] != start or stat[0] in ("Z", "X")


def host() -> str:
    """This machine's boot and pid namespace, as a short digest; "" when unknowable."""
    global _host
    if _host is None:
        try:
            boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
            namespace = os.readlink("/proc/self/ns/pid")
            shown_pid = int(Path("/proc/self/stat").read_text().split(" ", 1)[0])
            mounts = Path("/proc/mounts").read_text()
        except (OSError, ValueError):
            _host = ""
        else:
            # A /proc mounted from another pid namespace would answer for other processes,
            # and one mounted with hidepid hides other users' live processes: no certainty.
            hidden = any(line.split()[2:3] == ["proc"] and "hidepid" in line for line in mounts.splitlines())
            certain = shown_pid == os.getpid() and not hidden
            _host = hashlib.sha256(f"{boot} {namespace}".encode()).hexdigest()[:12] if certain else ""
    return _host


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of a process, or None if there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count after its last ")".
    fields = text.rpartition(")")[2].split()
    try:
        return fields[0], int(fields[19])  # fields 3 (state) and 22 (starttime)
    except (IndexError, ValueError):
        return None
