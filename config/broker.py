"""kombu's filesystem transport, with messages written atomically; and how deep a queue is,
for the sweepers.

The stock transport creates the message file under its final name and then writes into it;
a consumer polling the folder can move and read the file in between, get an empty or
half-written payload, and the worker dies on the JSON error ("Unrecoverable error:
JSONDecodeError"). The reliability tests hit it within minutes. Here a message is written
under a name no consumer looks at and renamed into place once complete: a rename within
one folder is atomic, so a consumer sees the whole message or none of it.
"""

import logging
import os
import uuid
from datetime import datetime, timedelta
from time import monotonic

from django.conf import settings
from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = "{}_{}.{}.msg".format(int(round(monotonic() * 1000)), uuid.uuid4(), queue)
        final = os.path.join(self.data_folder_out, name)
        # A leading dot and no ".msg" ending: _get never picks this name up.
        partial = os.path.join(self.data_folder_out, f".{name}.partial")
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


log = logging.getLogger(__name__)


def queue_for(task_name: str) -> str:
    """The queue the project's routing (CELERY_TASK_ROUTES) sends this task to."""
    from celery import current_app

    return current_app.amqp.router.route({}, task_name)["queue"].name


def queue_depth(queue: str) -> int | None:
    """How many messages wait in `queue` for a worker; None when the broker cannot say.

    Messages a worker already holds (running, prefetched, or waiting out a countdown) are
    not counted: Redis keeps them in its unacked set, the filesystem transport in the
    worker's memory. Redis deletes the list of an empty queue, and a passive declare of a
    queue that does not exist answers NOT_FOUND: that queue is empty.
    """
    from celery import current_app

    try:
        with current_app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=0)  # a broker that is down: say so at once
            try:
                return conn.default_channel.queue_declare(queue=queue, passive=True).message_count
            except ChannelError as exc:
                if str(getattr(exc, "reply_code", "")) == "404":
                    return 0
                raise
    except Exception as exc:  # noqa: BLE001 - any failure means "unknown", never "empty"
        log.warning("cannot read the depth of queue %s (%s: %s)", queue, exc.__class__.__name__, exc)
        return None


def sweep_cutoffs(task_names, *, now: datetime, grace_seconds: float) -> dict[str, datetime]:
    """For each task, the time before which work waiting for it counts as lost.

    Normally `grace_seconds` before now. But while the task's queue still holds messages,
    the work's own message is most likely among them, waiting its turn: re-driving it then
    only adds a duplicate behind it (in a burst, hundreds per sweep). So work is re-driven
    into a busy queue only once it is older than SWEEP_BUSY_QUEUE_SECONDS: a queue that
    never empties still gives back what it lost, later. A depth that cannot be read (broker
    down) leaves the grace alone, as before. Each queue is read once.
    """
    depths: dict[str, int | None] = {}
    cutoffs = {}
    for name in task_names:
        queue = queue_for(name)
        if queue not in depths:
            depths[queue] = queue_depth(queue)
        seconds = grace_seconds
        if depths[queue]:
            seconds = max(grace_seconds, settings.SWEEP_BUSY_QUEUE_SECONDS)
        cutoffs[name] = now - timedelta(seconds=seconds)
    return cutoffs
