from django.dispatch import Signal

# Sent once, after commit, when a notification with escalate=True fails for good (refused
# by the provider, undeliverable, or out of attempts). Argument: notification_id.
delivery_failed = Signal()
