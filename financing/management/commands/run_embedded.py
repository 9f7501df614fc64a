"""`make run`: the whole system in the foreground, on the embedded defaults.

Starts the partner sandboxes (CareCredit, and one connector sandbox per connector
product: Dentrix G, Enterprise, Ascend, Eaglesoft), the web server and one Celery worker with embedded beat,
prints where to go, and stops every process it started on Ctrl-C (or when one dies).
"""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from .seed_demo import DEMO_PASSWORD, USERS


CONNECTOR_LABELS = {
    "dentrix_g": "Dentrix", "dentrix_enterprise": "Dentrix Enterprise", "dentrix_ascend": "Dentrix Ascend",
    "eaglesoft": "Eaglesoft",
}


def connector_sandboxes() -> list[tuple[str, str, int, str]]:
    """(process name, product, port, URL) of each connector sandbox `make run` starts."""
    return [
        ("dentrix-sandbox", "dentrix_g", settings.DENTRIX_SANDBOX_PORT, settings.DENTRIX_SANDBOX_URL),
        ("dentrix-enterprise-sandbox", "dentrix_enterprise", settings.DENTRIX_ENTERPRISE_SANDBOX_PORT,
         settings.DENTRIX_ENTERPRISE_SANDBOX_URL),
        ("dentrix-ascend-sandbox", "dentrix_ascend", settings.DENTRIX_ASCEND_SANDBOX_PORT, settings.DENTRIX_ASCEND_SANDBOX_URL),
        ("eaglesoft-sandbox", "eaglesoft", settings.EAGLESOFT_SANDBOX_PORT, settings.EAGLESOFT_SANDBOX_URL),
    ]


def commands(python: str) -> dict[str, list[str]]:
    """What `make run` starts, by name (a function: the tests start the same web server)."""
    var = settings.VAR_DIR
    return {
        "carecredit-sandbox": [python, "-m", "sandboxes.carecredit", "--host", "127.0.0.1", "--port", str(settings.CARECREDIT_SANDBOX_PORT)],
        # One process per product, each with its own journal (the G-series' keeps its name).
        **{
            name: [
                python, "-m", "sandboxes.dentrix", "--host", "127.0.0.1", "--port", str(port), "--product", product,
                "--state-file", str(var / f"{name}.jsonl"),
            ]
            for name, product, port, _ in connector_sandboxes()
        },
        "opendental-sandbox": [
            python, "-m", "sandboxes.opendental", "--host", "127.0.0.1", "--port", str(settings.OPENDENTAL_SANDBOX_PORT),
            "--state-file", str(var / "opendental-sandbox.jsonl"),
        ],
        # --insecure: runserver serves the static files (the console's, and Swagger UI's for
        # /api/docs/) although DEBUG is off; production serves them from STATIC_ROOT.
        "web": [python, "manage.py", "runserver", "--noreload", "--insecure", f"127.0.0.1:{settings.CHAIRSIDE_PORT}"],
        "worker": [
            python, "-m", "celery", "-A", "config", "worker", "--beat", "--loglevel", "INFO",
            "--queues", settings.CELERY_WORKER_QUEUES, "--concurrency", "2",
            "--schedule", settings.CELERY_BEAT_SCHEDULE_FILENAME, "--without-mingle", "--without-gossip",
        ],
    }


DEMO_PRODUCTION_CHECK_SECONDS = 10
DEMO_PRESCREEN_CHECK_SECONDS = 30


class Command(BaseCommand):
    help = "Run the sandboxes, the web server and a worker with beat until Ctrl-C."

    def handle(self, *args, **options):
        processes = commands(sys.executable)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # The demo posts treatment seconds after approval (simulate), so the worker looks for
        # posted production every few seconds rather than production's five minutes.
        env.setdefault("PRODUCTION_CHECK_SECONDS", str(DEMO_PRODUCTION_CHECK_SECONDS))
        # The demo locations' pre-screen of the next business day starts within half a minute
        # of the start (once their 6:00 AM has come), not five minutes.
        env.setdefault("PRESCREEN_CHECK_SECONDS", str(DEMO_PRESCREEN_CHECK_SECONDS))
        running = {}
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            self.announce_web_url()
            for name, command in processes.items():
                # Each child gets its own process group so Ctrl-C reaches it only through us.
                running[name] = subprocess.Popen(command, env=env, cwd=settings.BASE_DIR, start_new_session=True)
            time.sleep(2)
            self._banner()
            while not stopping:
                dead = [name for name, p in running.items() if p.poll() is not None]
                if dead:
                    self.stderr.write(f"{', '.join(dead)} exited; stopping everything.")
                    break
                time.sleep(0.5)
        finally:
            for process in running.values():
                if process.poll() is None:
                    process.terminate()  # the worker's warm shutdown stops its own pool
            deadline = time.monotonic() + 15
            for process in running.values():
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
            settings.WEB_URL_FILE.unlink(missing_ok=True)
            self.stdout.write("Chairside stopped.")

    @staticmethod
    def announce_web_url() -> str:
        """Write where the web server listens (settings.WEB_URL_FILE) for a second terminal."""
        url = f"http://127.0.0.1:{settings.CHAIRSIDE_PORT}"
        settings.WEB_URL_FILE.write_text(url + "\n")
        return url

    def _banner(self):
        url = settings.CHAIRSIDE_PUBLIC_URL
        logins = "\n".join(f"    {username:<24} {DEMO_PASSWORD}" for username, *_ in USERS)
        connectors = "\n".join(
            f"  {CONNECTOR_LABELS[product] + ' sandbox:':<29}{url}/v1/connector  (X-API-Key: sandbox)"
            for _, product, _, url in connector_sandboxes()
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"""
Chairside is running (Ctrl-C stops everything).
  Admin (billing console):     {url}/admin/
  API:                         {url}/api/v1/cases/   (docs: {url}/api/docs/)
  CareCredit sandbox:          {settings.CARECREDIT_SANDBOX_URL}
{connectors}
  Open Dental sandbox:         {settings.OPENDENTAL_SANDBOX_URL}/api/v1/patients/101  (Authorization: ODFHIR sandbox-developer/sandbox-customer)
  Demo logins (user / password):
{logins}
  Second factor (every staff login): .venv/bin/python manage.py demo_totp <user>
  Push demo cases through it from another terminal (it finds this server in {settings.WEB_URL_FILE}):
    .venv/bin/python manage.py simulate --cases 50
"""
            )
        )
