"""The migration that moves "one open case per plan" from the location to the practice
database: it names every existing case's database, and stops (naming them) on plans that
already have two open cases, which only billing can settle."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from financing import partners

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("financing", "0004_partner_rate_limits")]
AFTER = [("financing", "0005_case_pms_identity")]
CONNECTOR = "http://127.0.0.1:8102/"


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def before_the_migration():
    """The schema as it was before; back to the latest whatever the test does."""
    apps = migrate(BEFORE)
    yield apps
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def old_locations(apps, *codes, base_url=CONNECTOR):
    template = apps.get_model("financing", "ArrangementTemplate").objects.create(name="Group standard")
    Location = apps.get_model("financing", "Location")
    return [
        Location.objects.create(
            code=code, name=code, template=template, pms_kind="dentrix", pms_base_url=base_url, pms_api_key="sandbox",
            lender_base_url="http://127.0.0.1:8101", lender_client_id="c", lender_client_secret="s", merchant_number="1",
        )
        for code in codes
    ]


def old_case(apps, location, plan, state="captured", patient="1001"):
    return apps.get_model("financing", "FinancedCase").objects.create(
        location=location, patient_id=patient, treatment_plan_id=plan, promotion="deferred_12", state=state
    )


def test_every_existing_case_is_named_by_its_practice_database(before_the_migration):
    main, north = old_locations(before_the_migration, "main", "north")
    old_case(before_the_migration, main, "5001")
    old_case(before_the_migration, north, "5002")
    # Per location, the old rule allowed this; a declined case holds nothing either way.
    old_case(before_the_migration, north, "5001", state="declined")

    apps = migrate(AFTER)

    identities = set(apps.get_model("financing", "FinancedCase").objects.values_list("pms_identity", flat=True))
    assert identities == {partners.pms_identity(apps.get_model("financing", "Location").objects.get(code="main"))}
    assert identities == {"dentrix:127.0.0.1:8102"}


def test_two_open_cases_for_one_plan_stop_the_migration_naming_them(before_the_migration):
    main, north = old_locations(before_the_migration, "main", "north")
    first = old_case(before_the_migration, main, "5001")
    second = old_case(before_the_migration, north, "5001", state="awaiting_decision")

    with pytest.raises(RuntimeError) as stopped:
        migrate(AFTER)
    assert f"{first.reference} at main (captured), {second.reference} at north (awaiting_decision)" in str(stopped.value)
    assert "cancel the extra case(s)" in str(stopped.value)

    # Billing cancels the extra one; the migration then goes through.
    type(second).objects.filter(pk=second.pk).update(state="cancelled")
    apps = migrate(AFTER)
    assert apps.get_model("financing", "FinancedCase").objects.filter(pms_identity="dentrix:127.0.0.1:8102").count() == 2
