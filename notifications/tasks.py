"""Thin tasks: an id in, one service call. Retries with backoff are scheduled by
`services.deliver`, which counts attempts in the delivery record."""

from celery import shared_task

from . import services


@shared_task(name="notifications.send")
def send_notification(notification_id: int) -> str:
    return services.deliver(notification_id)


@shared_task(name="notifications.redrive")
def redrive_notifications() -> int:
    """Beat: re-enqueue every notification whose task was lost or whose worker died
    (deliver's claim makes a duplicate harmless)."""
    notification_ids = services.stuck()
    for notification_id in notification_ids:
        send_notification.delay(notification_id)
    return len(notification_ids)
