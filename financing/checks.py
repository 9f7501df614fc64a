"""Deploy checks (`manage.py check --deploy`) for what only Chairside knows is unsafe.

Django's own deploy checks cover DEBUG, the secret key, HTTPS and cookies; these cover the
embedded demo's defaults that would be dangerous in production.
"""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=True)
def check_demo_secrets(app_configs, **kwargs):
    problems = []
    keys = settings.FIELD_ENCRYPTION_KEYS
    if keys[:1] == [settings.FIELD_ENCRYPTION_DEMO_KEY]:
        problems.append(
            Error(
                "FIELD_ENCRYPTION_KEY is the embedded demo key: patient data would be encrypted with a published key.",
                hint="Set FIELD_ENCRYPTION_KEY to a key of your own (python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())').",
                id="chairside.E001",
            )
        )
    elif settings.FIELD_ENCRYPTION_DEMO_KEY in keys:
        problems.append(
            Warning(
                "FIELD_ENCRYPTION_KEY still lists the embedded demo key for decryption.",
                hint="Run `manage.py rotate_field_key`, then drop the demo key.",
                id="chairside.W001",
            )
        )
    if settings.SEARCH_TOKEN_KEYS[:1] == [settings.SEARCH_TOKEN_DEMO_KEY]:
        problems.append(
            Error(
                "SEARCH_TOKEN_KEY is the embedded demo key: anyone could test a surname against the search tokens.",
                hint="Set SEARCH_TOKEN_KEY to a long random secret of your own (python -c 'import secrets; print(secrets.token_urlsafe(32))').",
                id="chairside.E004",
            )
        )
    if "whsec_sandbox" in settings.CARECREDIT_WEBHOOK_SECRETS:
        problems.append(
            Error(
                "CARECREDIT_WEBHOOK_SECRETS accepts the sandbox's secret: anyone could sign a decision webhook.",
                hint="Set CARECREDIT_WEBHOOK_SECRETS to the secret(s) CareCredit gave you.",
                id="chairside.E002",
            )
        )
    if settings.CHAIRSIDE_TESTING:
        problems.append(
            Error("CHAIRSIDE_TESTING is on: the reliability tests' fault points can be armed.", hint="Unset it.", id="chairside.E003")
        )
    return problems
