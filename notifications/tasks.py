from celery import shared_task

from . import services


@shared_task(
    name="notifications.send",
    autoretry_for=(services.TransientDeliveryError,),
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=services.MAX_ATTEMPTS,
)
def send_notification(notification_id: int) -> str:
    return services.deliver(notification_id)
