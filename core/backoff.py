"""Exponential backoff with jitter, the same curve for partner steps and deliveries."""

import random

from django.conf import settings


def backoff_seconds(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based).

    The ceiling doubles from RETRY_BASE_SECONDS up to RETRY_MAX_SECONDS; the draw is from its
    upper half ("equal jitter"), so retries of many records spread out but never come back
    sooner than half the ceiling.
    """
    ceiling = min(settings.RETRY_MAX_SECONDS, settings.RETRY_BASE_SECONDS * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)
