"""One open case per patient plan of a practice database, not per location.

Adds FinancedCase.pms_identity, fills it for every existing case from its location's PMS
connection (`financing.partners.pms_identity`, what capture stores from now on), then
replaces the per-location constraint with the per-database one.

Existing duplicates (two open cases for one patient plan of one database, captured at two
locations before this change) cannot be settled by a migration: each already sent the
patient a credit application, and which one stands is a billing decision. The migration
stops and names them; cancel the extra one(s) from the console, then migrate again.
"""

from django.db import migrations, models
from django.db.models import Count

RELEASING = ("declined", "expired", "cancelled")


def fill_identities(apps, schema_editor):
    # The live registry, not a copy: existing cases must get exactly the name capture
    # gives new ones, or the constraint would not see them as the same database.
    from financing.partners import pms_identity

    Location = apps.get_model("financing", "Location")
    FinancedCase = apps.get_model("financing", "FinancedCase")
    for location in Location.objects.all():
        FinancedCase.objects.filter(location_id=location.pk).update(pms_identity=pms_identity(location))

    duplicates = (
        FinancedCase.objects.exclude(state__in=RELEASING)
        .values("pms_identity", "patient_id", "treatment_plan_id")
        .annotate(cases=Count("pk"))
        .filter(cases__gt=1)
    )
    problems = []
    for group in duplicates:
        cases = (
            FinancedCase.objects.filter(**{k: group[k] for k in ("pms_identity", "patient_id", "treatment_plan_id")})
            .exclude(state__in=RELEASING)
            .order_by("captured_at")
            .values_list("reference", "location__code", "state")
        )
        problems.append(
            f"treatment plan {group['treatment_plan_id']}: " + ", ".join(f"{ref} at {code} ({state})" for ref, code, state in cases)
        )
    if problems:
        raise RuntimeError(
            "These treatment plans have more than one open financing case in one practice database; "
            "cancel the extra case(s) in the console (keep the one the patient is going ahead with), "
            "then run the migration again:\n  " + "\n  ".join(problems)
        )


class Migration(migrations.Migration):

    dependencies = [
        ("financing", "0004_partner_rate_limits"),
    ]

    operations = [
        migrations.AddField(
            model_name="financedcase",
            name="pms_identity",
            field=models.CharField(default="", editable=False, max_length=255, verbose_name="practice database"),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="historicalfinancedcase",
            name="pms_identity",
            field=models.CharField(default="", editable=False, max_length=255, verbose_name="practice database"),
            preserve_default=False,
        ),
        migrations.RunPython(fill_identities, migrations.RunPython.noop, elidable=False),
        migrations.RemoveConstraint(
            model_name="financedcase",
            name="one_open_case_per_plan",
        ),
        migrations.AddConstraint(
            model_name="financedcase",
            constraint=models.UniqueConstraint(
                condition=models.Q(("state__in", ("declined", "expired", "cancelled")), _negated=True),
                fields=("pms_identity", "patient_id", "treatment_plan_id"),
                name="one_open_case_per_practice_plan",
            ),
        ),
    ]
