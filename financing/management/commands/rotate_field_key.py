"""Re-encrypt every encrypted field with the first FIELD_ENCRYPTION_KEY.

Rotating the key, with no moment where a process cannot read a row:

1. Put the new key first and keep the old one after it, FIELD_ENCRYPTION_KEY=new,old, on
   every web and worker process (the first key encrypts, every key decrypts).
2. Run this command: each row is read with whichever key opens it and written back with
   the new one.
3. Drop the old key: FIELD_ENCRYPTION_KEY=new.

Rows are rewritten with QuerySet.update(): a re-encryption is not a change of the record,
so it leaves no history row and fires no signal. A value no key can open stops the command
with the model and field named (never the value).
"""

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core.fields import DecryptionError, EncryptedTextField


class Command(BaseCommand):
    help = "Re-encrypt every encrypted field with the first FIELD_ENCRYPTION_KEY (key rotation)."

    def handle(self, *args, **options):
        total = 0
        for model in apps.get_models():
            names = [f.attname for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
            if not names:
                continue
            rows = 0
            manager = model._base_manager
            pks = list(manager.order_by("pk").values_list("pk", flat=True))
            try:
                with transaction.atomic():
                    # Chunks of plain queries, not .iterator(): a server-side cursor left open
                    # by a decryption error would outlive the rolled-back transaction.
                    for start in range(0, len(pks), 500):
                        for pk, *values in manager.filter(pk__in=pks[start : start + 500]).values_list("pk", *names):
                            # Read decrypted (any key), written back encrypted with the first key.
                            manager.filter(pk=pk).update(**dict(zip(names, values)))
                            rows += 1
            except DecryptionError as exc:
                raise CommandError(f"{exc} Nothing of {model._meta.label} was changed.") from None
            total += rows
            self.stdout.write(f"{model._meta.label}: {rows} row(s) re-encrypted ({', '.join(names)})")
        self.stdout.write(self.style.SUCCESS(f"{total} row(s) re-encrypted with the first FIELD_ENCRYPTION_KEY."))
