"""The services queue tasks by name: every name they queue must be a registered task in a
freshly started Django process that has not imported any tasks module itself (a web
process), or queueing fails there and only there."""

import ast
import json
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from financing.services.prescreen import RUN_TASK
from financing.services.refunds import REFUND_TASK
from financing.services.states import STEP_TASKS
from notifications.services import SEND_TASK

ROOT = Path(settings.BASE_DIR)


def registered_in_a_fresh_process() -> set[str]:
    script = (
        "import django, json; django.setup(); from celery import current_app; "
        "print(json.dumps(sorted(current_app.tasks)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_every_task_queued_by_name_is_registered_in_a_web_process():
    queued = set(STEP_TASKS) | {SEND_TASK, RUN_TASK, REFUND_TASK}
    assert len(queued) == 9
    assert queued <= registered_in_a_fresh_process()


def test_beat_schedules_only_registered_tasks():
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert scheduled <= registered_in_a_fresh_process()


def test_the_code_queues_no_task_name_that_is_not_in_the_table():
    """A literal task name anywhere in the services must be one the tables above know."""
    known = set(STEP_TASKS) | {SEND_TASK, RUN_TASK, REFUND_TASK}
    literals = set()
    for path in [*(ROOT / "financing" / "services").glob("*.py"), ROOT / "notifications" / "services.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if node.value.startswith(("financing.", "notifications.")) and " " not in node.value:
                    literals.add(node.value)
    assert literals <= known
