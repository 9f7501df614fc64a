"""The connector products Chairside writes for, one small module each, over the G-series
rules every product keeps (`dentrix_bridge.rules`).

A connector serves one product's database (CONTRACT.md, contract v2), and each product
keeps its arrangement record by its own rules: what it calls it, its intervals, the fields
it adds, what it refuses. Each module here says so for its product, and only what differs:

- `KEY`, `NAME`, `RECORD`: the product as the connector reports it (`GET /v1/connector`),
  as staff call it, and what it calls its record ("payment plan");
- `validate_agreement(request, *, today=None[, procedures=None])`: what the product would
  refuse, {field: message} for a billing clerk. A product that writes only over posted
  production also takes `procedures`, the plan's procedures as the PMS holds them now
  (posted, balance), and checks them when it has them;
- `request_fields(request)`: the product's own fields of the create body (the v1 ones are
  `wire.agreement_request_to_json`'s);
- `stored_differences(request, stored)`: the product's own fields that the stored record
  does not hold as sent, as (label, sent, stored) for the read-back.
"""

from types import ModuleType

from . import ascend, eaglesoft, enterprise, g

PRODUCTS: dict[str, ModuleType] = {module.KEY: module for module in (g, enterprise, ascend, eaglesoft)}
DEFAULT = g.KEY


def product(key: str) -> ModuleType:
    """The module of the product called `key` ("dentrix_ascend"); ValueError otherwise."""
    try:
        return PRODUCTS[key]
    except KeyError:
        raise ValueError(f"unknown connector product {key!r}: one of {', '.join(PRODUCTS)}") from None
