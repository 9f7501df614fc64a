"""An index on the admin's log by object, for the case timeline's staff actions.

Every staff action writes a LogEntry against its case (financing.services.audit), and each
case page reads that case's entries. Django's own table is indexed by user and content type
only, and nearly every entry is a case's, so without this the lookup would read the whole
log. django_admin_log belongs to django.contrib.admin, whose migrations we do not own: the
index is plain SQL, the same on SQLite and PostgreSQL.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("financing", "0006_location_clinic_ids"),
    ]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS financing_admin_log_object ON django_admin_log (content_type_id, object_id)",
            reverse_sql="DROP INDEX IF EXISTS financing_admin_log_object",
        ),
    ]
