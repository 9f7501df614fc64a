"""Queue a task by its name once the surrounding transaction commits.

By name, so the code that queues a step never imports the module that defines it (the
tasks import the services, not the other way round).
"""

from celery import current_app
from django.db import transaction


def task_named(name: str):
    """The registered task `name`. Each app registers its tasks when Django starts (its
    AppConfig.ready imports its tasks module), in the web process as in a worker."""
    return current_app.tasks[name]


def enqueue_on_commit(task_name: str, *args, countdown: float | None = None):
    """Send `task_name(*args)` after commit; a broker that is down never fails the caller.

    The record the task is about is committed whatever the broker says; if the message is
    lost, the beat sweepers re-drive the record, so an API request or a webhook must not
    fail for it (Django logs the error).
    """
    task = task_named(task_name)
    transaction.on_commit(lambda: task.apply_async(args, countdown=countdown), robust=True)
