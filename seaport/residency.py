"""Data residency (R10): every store and export target declared with its region, in one file.

The file is `schemas/residency.toml`, or the one named by `SEAPORT_RESIDENCY`. A command names
the stores it touches (`seaport/cli.py`); before it runs, each must be declared, and each store
that holds personal data (state, security, the broker's log, the key) must lie in one of the
allowed regions, else the command is refused with one line and nothing is read or written.
Which stores hold personal data is decided here, not by the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from seaport.errors import SeaportError, read_toml

RESIDENCY_ENV = "SEAPORT_RESIDENCY"
DEFAULT_FILE = Path(__file__).resolve().parent.parent / "schemas" / "residency.toml"
PERSONAL_STORES = frozenset({"state", "security", "kafka", "key"})
STORES = PERSONAL_STORES | {"analytics"}


def _load() -> dict:
    path = Path(os.environ.get(RESIDENCY_ENV) or DEFAULT_FILE)
    raw = read_toml(path, "residency")
    allowed, stores, partners = raw.get("allowed_regions"), raw.get("stores"), raw.get("partners", {})
    if (
        not isinstance(allowed, list)
        or not all(isinstance(r, str) for r in allowed)
        or not isinstance(stores, dict)
        or not isinstance(partners, dict)
        or not all(isinstance(v, str) for v in (*stores.values(), *partners.values()))
    ):
        raise SeaportError(
            f"residency file {path.name}: needs allowed_regions (a list of regions), [stores] and [partners] "
            'tables of name = "region"'
        )
    unknown = set(stores) - STORES
    if unknown:
        raise SeaportError(f"residency file {path.name}: unknown store {sorted(unknown)[0]!r}")
    return raw


def check_stores(stores: tuple[str, ...]) -> None:
    """Refuse, in one line, to touch a store that is undeclared or holds personal data outside
    the allowed regions."""
    if not stores:
        return
    raw = _load()
    for store in stores:
        region = raw["stores"].get(store)
        if region is None:
            raise SeaportError(f"residency: the {store} store has no declared region")
        if store in PERSONAL_STORES and region not in raw["allowed_regions"]:
            raise SeaportError(
                f"residency: the {store} store holds personal data and is declared in {region!r}, "
                f"outside the allowed regions ({', '.join(raw['allowed_regions'])}) (R10)"
            )


def partner_region(name: str) -> str:
    """The declared region of an export target; an undeclared one is refused."""
    region = _load()["partners"].get(name)
    if region is None:
        raise SeaportError(f"no export target named {name!r} is declared in the residency file")
    return region


__all__ = ["PERSONAL_STORES", "RESIDENCY_ENV", "check_stores", "partner_region"]
