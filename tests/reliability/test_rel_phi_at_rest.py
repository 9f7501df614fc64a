"""Promise 7 at rest: the demographic Chairside keeps (the patient's first name and last
initial) and the partner credentials are encrypted with FIELD_ENCRYPTION_KEY, history
tables included; keys rotate; a wrong key raises instead of handing out ciphertext."""

import pytest
from cryptography.fernet import Fernet
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from core.fields import DecryptionError, EncryptedTextField
from financing.models import FinancedCase, Location

pytestmark = pytest.mark.django_db(transaction=True)

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()


def raw(table: str, column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT "{column}" FROM "{table}" WHERE id = %s', [pk])
        return cursor.fetchone()[0]


def encrypted_fields(model):
    return [f for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]


def test_history_tables_never_hold_an_encrypted_field_in_clear():
    """Every model's history either leaves an encrypted field out or encrypts it too."""
    checked = []
    for model in apps.get_models():
        base = getattr(model, "instance_type", None)  # simple-history's historical models
        if base is None:
            continue
        for field in encrypted_fields(base):
            names = {f.name: f for f in model._meta.concrete_fields}
            if field.name in names:
                assert isinstance(names[field.name], EncryptedTextField), f"{model.__name__}.{field.name} is stored in clear"
            checked.append(f"{base.__name__}.{field.name}")
    assert {"FinancedCase.patient_short_name", "Location.pms_api_key", "Location.lender_client_secret"} <= set(checked)


def test_phi_and_credentials_are_ciphertext_in_the_database(location, settings):
    settings.FIELD_ENCRYPTION_KEYS = [KEY_A]
    case = FinancedCase.objects.create(location=location, patient_id="1", treatment_plan_id="p1", promotion="deferred_12", patient_short_name="Zelda Q.")
    location.pms_api_key = "pms-secret-canary"
    location.save()
    stored = raw("financing_financedcase", "patient_short_name", case.pk)
    assert "Zelda" not in stored and Fernet(KEY_A.encode()).decrypt(stored.encode()) == b"Zelda Q."
    assert "pms-secret-canary" not in raw("financing_location", "pms_api_key", location.pk)
    # Nothing in any table, history tables included, holds the values in clear.
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            dump = repr(cursor.fetchall())
            assert "Zelda Q." not in dump and "pms-secret-canary" not in dump, table
    assert FinancedCase.objects.get(pk=case.pk).patient_short_name == "Zelda Q."


def test_a_wrong_key_raises_rather_than_returning_ciphertext(location, settings):
    settings.FIELD_ENCRYPTION_KEYS = [KEY_A]
    case = FinancedCase.objects.create(location=location, patient_id="1", treatment_plan_id="p1", promotion="deferred_12", patient_short_name="Zelda Q.")
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B]
    with pytest.raises(DecryptionError) as caught:
        FinancedCase.objects.get(pk=case.pk)
    assert str(caught.value) == (
        "Cannot decrypt FinancedCase.patient_short_name: FIELD_ENCRYPTION_KEY does not hold the key it was written with."
    )
    with pytest.raises(DecryptionError):
        list(FinancedCase.objects.values_list("patient_short_name", flat=True))


def test_rotate_field_key_re_encrypts_everything_with_the_first_key(location, settings):
    settings.FIELD_ENCRYPTION_KEYS = [KEY_A]
    location.pms_api_key = "pms-secret"
    location.lender_client_secret = "lender-secret"
    location.save()
    cases = [
        FinancedCase.objects.create(location=location, patient_id=str(i), treatment_plan_id=f"p{i}", promotion="deferred_12", patient_short_name=f"Pat{i} Q.")
        for i in range(3)
    ]
    history_rows = FinancedCase.history.count()
    before = raw("financing_financedcase", "patient_short_name", cases[0].pk)

    settings.FIELD_ENCRYPTION_KEYS = [KEY_B, KEY_A]  # step 1: new key first, old one kept
    assert FinancedCase.objects.get(pk=cases[0].pk).patient_short_name == "Pat0 Q."  # old rows still read
    call_command("rotate_field_key", stdout=open("/dev/null", "w"))

    settings.FIELD_ENCRYPTION_KEYS = [KEY_B]  # step 3: the old key is gone
    assert [FinancedCase.objects.get(pk=c.pk).patient_short_name for c in cases] == ["Pat0 Q.", "Pat1 Q.", "Pat2 Q."]
    location = Location.objects.get(pk=location.pk)
    assert (location.pms_api_key, location.lender_client_secret) == ("pms-secret", "lender-secret")
    after = raw("financing_financedcase", "patient_short_name", cases[0].pk)
    assert after != before and Fernet(KEY_B.encode()).decrypt(after.encode()) == b"Pat0 Q."
    assert FinancedCase.history.count() == history_rows  # a re-encryption is not a change of the case
    call_command("rotate_field_key", stdout=open("/dev/null", "w"))  # running it again is harmless
    assert FinancedCase.objects.get(pk=cases[2].pk).patient_short_name == "Pat2 Q."


def test_rotation_with_a_missing_key_stops_and_changes_nothing(location, settings):
    settings.FIELD_ENCRYPTION_KEYS = [KEY_A]
    case = FinancedCase.objects.create(location=location, patient_id="1", treatment_plan_id="p1", promotion="deferred_12", patient_short_name="Zelda Q.")
    before = raw("financing_financedcase", "patient_short_name", case.pk)
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B]  # someone dropped the old key too early
    with pytest.raises(CommandError) as caught:
        call_command("rotate_field_key", stdout=open("/dev/null", "w"))
    assert "Zelda" not in str(caught.value) and "Nothing of" in str(caught.value)
    assert raw("financing_financedcase", "patient_short_name", case.pk) == before
