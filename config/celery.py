import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

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
