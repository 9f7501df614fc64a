"""The Chairside Celery app with the benchmark's counters (bench/instrument.py) attached.

    celery -A bench.celery_app worker ...
"""

from config.celery import app  # noqa: F401  (what `celery -A` looks for)

from . import instrument

instrument.install_worker()
