"""An append-only JSON-lines journal: what a sandbox wrote survives a restart.

One JSON object per line, written and fsynced before the write is acknowledged, so what
a client was told was saved is what a restart replays. A torn last line (a crash in the
middle of a write, never acknowledged) is skipped with a warning; a bad line anywhere
else stops the start, because replaying past it would silently lose data.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)


class Journal:
    def __init__(self, path: str, owner: str = "sandbox"):
        self.path = path
        self.owner = owner
        # `make run` points this into a var/ directory that may not exist yet.
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, sort_keys=True)
        with open(self.path, "a", encoding="utf-8") as journal:
            journal.write(line + "\n")
            journal.flush()
            os.fsync(journal.fileno())

    def truncate(self) -> None:
        open(self.path, "w", encoding="utf-8").close()

    def replay(self, check: Callable[[Any], Any]) -> Iterator[Any]:
        """Each entry, as `check` returns it; `check` raises ValueError, KeyError or
        TypeError for an entry it cannot use."""
        if not os.path.exists(self.path):
            return
        with open(self.path, encoding="utf-8") as journal:
            lines = journal.read().split("\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = check(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                if all(not rest.strip() for rest in lines[number:]):
                    log.warning("Ignoring a torn last line %d in the journal %s", number, self.path)
                    continue
                raise RuntimeError(
                    f"{self.owner} journal {self.path} is corrupt at line {number}: {exc}. "
                    "Move it aside or delete it to start afresh."
                ) from exc
            yield entry
