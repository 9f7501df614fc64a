"""The stand-ins `make run` and the tests start in place of the partners.

- `sandboxes.carecredit`: the CareCredit API (``python -m sandboxes.carecredit``, 8101);
- `sandboxes.dentrix`: the Dentrix connector contract (``python -m sandboxes.dentrix``, 8102);
- `sandboxes.twilio`: Twilio's Messages API (``python -m sandboxes.twilio``, 8103);
- `sandboxes.kit`: what they share: the threaded server, faults, the journal, the
  injectable clock and the common control routes.

Each judges requests with its own rules, written from the partner's documentation, never
with Chairside's: nothing here imports `financing`, `carecredit_bridge`, `dentrix_bridge`
or `notifications`. As a Django app (no models) it carries ``manage.py simulate``.
"""
