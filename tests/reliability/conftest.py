"""Fixtures of the reliability tests; the machinery is in harness.py."""

import os

import pytest
from rest_framework.test import APIClient

from tests.reliability.harness import FAST_WORKER_ENV, CeleryProcesses, database_url, purge_broker


@pytest.fixture
def celery_processes(live_server, sandboxes, tmp_path, settings):
    """start(concurrency=2, beat=True, **env) -> CeleryProcesses, stopped at teardown."""
    settings.CHAIRSIDE_PUBLIC_URL = live_server.url
    started: list[CeleryProcesses] = []

    def start(concurrency: int = 2, beat: bool = True, **env_overrides) -> CeleryProcesses:
        """An override of None unsets the variable: the setting's production default applies."""
        purge_broker()
        env = {
            **os.environ,
            **FAST_WORKER_ENV,
            "CHAIRSIDE_TESTING": "1",
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CHAIRSIDE_PUBLIC_URL": live_server.url,
            "SMS_BACKEND": "notifications.sms.FileBackend",
            "SMS_FILE_PATH": str(tmp_path / "sms"),
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(tmp_path / "email"),
            **{k: str(v) for k, v in env_overrides.items()},
        }
        for name in [k for k, v in env_overrides.items() if v is None]:
            del env[name]
        processes = CeleryProcesses(env=env, cwd=settings.BASE_DIR, logdir=tmp_path, concurrency=concurrency, with_beat=beat)
        started.append(processes)
        return processes.start()

    yield start
    for processes in started:
        processes.stop()


@pytest.fixture
def api(coordinator):
    client = APIClient()
    client.force_authenticate(coordinator)
    return client


