"""An encrypted text field for PHI and partner credentials.

Fernet (AES-128-CBC + HMAC-SHA256) with a dedicated key list, FIELD_ENCRYPTION_KEY: the
first key encrypts, every key decrypts, so keys rotate without a flag day. A value that no
key can decrypt raises instead of handing ciphertext to the caller (a silent fallback would
display ciphertext and re-encrypt it on the next save).
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


class DecryptionError(Exception):
    pass


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY must be one or more Fernet keys, comma separated.") from exc


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


class EncryptedTextField(models.TextField):
    """Stored as a Fernet token; no lookups, ordering or uniqueness on its content."""

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return fernet().encrypt(value.encode()).decode()

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        try:
            return fernet().decrypt(value.encode()).decode()
        except InvalidToken as exc:
            raise DecryptionError(
                f"Cannot decrypt {self.model.__name__}.{self.name}: FIELD_ENCRYPTION_KEY does not hold the key it was written with."
            ) from exc
