"""Named fault points: the reliability tests break a step on purpose, in a real worker.

A point is armed by settings.CHAIRSIDE_FAULT_POINTS (honoured only with CHAIRSIDE_TESTING=1,
see config/settings.py); everywhere else `fault_point` is a no-op.
"""

import logging
import os

from django.conf import settings

log = logging.getLogger(__name__)


class InjectedFault(Exception):
    pass


def fault_point(name: str):
    """Crash here when a test arms this point; a no-op otherwise.

    "name" raises InjectedFault (the step fails like any bug would); "name:exit" ends the
    process at once, like kill -9 or the OOM killer, with no cleanup and no except clause.
    """
    armed = getattr(settings, "CHAIRSIDE_FAULT_POINTS", ())
    if f"{name}:exit" in armed:
        log.warning("fault point %s: exiting the process", name)
        os._exit(137)
    if name in armed:
        raise InjectedFault(name)
