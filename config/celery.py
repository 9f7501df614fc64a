import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_process_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("chairside")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _database_connections_like_a_request(sender=None, **kwargs):
    """Around every task, what Django does around every web request: keep the connection
    (CONN_MAX_AGE), but drop one that broke (a PostgreSQL restart) or aged out, and check
    it before its first query (CONN_HEALTH_CHECKS). Celery's own Django fixup would close
    every connection before and after every task, which cost a new PostgreSQL backend per
    task; CELERY_DB_REUSE_MAX in settings turns that off."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return  # run in the caller's process, maybe inside its transaction: leave it be
    from django.db import close_old_connections

    close_old_connections()


# The lease heartbeat (core/heartbeat.py) runs in every process that runs tasks: it renews
# the leases of the task at hand, and its first beat re-drives at once what gone holders on
# this host held, so a worker's start, or a dead pool child's replacement, moves their work.


@worker_process_init.connect
def _heartbeat_in_each_pool_process(**kwargs):
    # In the pool process, not the worker's main one: a thread with a database connection
    # in a process that later forks would hand that connection to its children.
    from core import heartbeat

    heartbeat.start()


@worker_ready.connect
def _heartbeat_without_pool_processes(sender=None, **kwargs):
    """The solo and threads pools run tasks in the main process (it forks no more now)."""
    from celery.concurrency.prefork import TaskPool

    if not isinstance(getattr(sender, "pool", None), TaskPool):
        from core import heartbeat

        heartbeat.start()


@task_postrun.connect
def _end_the_tasks_holds(**kwargs):
    from core import heartbeat

    heartbeat.release_thread()
