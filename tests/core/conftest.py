"""A live process of this host, to stand for a lease holder."""

import subprocess
import sys

import pytest

HOLDER = "import sys; from core import holders; print(holders.me(), flush=True); sys.stdin.read()"


@pytest.fixture
def other_process(settings):
    """other_process() -> (holder, stop): a live process on this host, as a lease holder."""
    started = []

    def start():
        process = subprocess.Popen(
            [sys.executable, "-c", HOLDER], cwd=settings.BASE_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        started.append(process)
        holder = process.stdout.readline().strip()

        def stop(reap=True):
            process.kill()
            if reap:
                process.wait(timeout=10)

        return holder, stop

    yield start
    for process in started:
        process.kill()
        process.wait(timeout=10)
