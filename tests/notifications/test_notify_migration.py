"""Recipients stored before encryption are encrypted by the migration, not left unreadable."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from notifications.models import Notification

pytestmark = pytest.mark.django_db(transaction=True)


def test_plain_text_recipients_are_encrypted_by_the_migration():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("notifications")
    executor.migrate([("notifications", "0001_initial")])
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO notifications_notification (dedupe_key, reference, channel, recipient, template, subject, body,"
            " html_body, status, provider_id, attempts, error, created_at) VALUES"
            " ('old:1', 'CS-OLD00001', 'sms', '+15555550100', 'case_approved', '', 'body', '', 'sent', 'SM1', 1, '',"
            " CURRENT_TIMESTAMP)"
        )
    executor = MigrationExecutor(connection)
    executor.migrate(latest)

    with connection.cursor() as cursor:
        cursor.execute("SELECT recipient FROM notifications_notification WHERE dedupe_key = 'old:1'")
        [(stored,)] = cursor.fetchall()
    assert stored.startswith("gAAAA") and "5555550100" not in stored
    old = Notification.objects.get(dedupe_key="old:1")
    assert (old.recipient, old.status, old.escalate, old.unknown_outcomes) == ("+15555550100", "sent", True, 0)
