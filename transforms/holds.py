"""Legal holds: security rows the law requires to keep, that erasure and retention respect (R8).

A hold file (TOML; `<warehouse>/legal_holds.toml`, or the file named by `SEAPORT_LEGAL_HOLDS`)
lists holds, each with a name, a reason, and what it covers: subjects (their *security*
pseudonyms, as `seaport report security` and `seaport subject-report` show them), a range of
days, or both; a hold may lapse on a day (`until`). Example:

    [[hold]]
    name = "INC-2026-014"
    reason = "open security incident: credential stuffing"
    subjects = ["3f9c…"]          # security pseudonyms (32 hex characters)
    from = 2026-11-28             # first and last day covered (the warehouse's time zone)
    to = 2026-11-30
    until = 2027-06-30            # optional: the hold lapses after this day

A held row of the security store (`security_events`, `security_anomalies`) survives erasure,
a minor's deletion and retention; an erasure receipt counts it with the hold's name. A hold
never keeps anything in the analysts' stores nor stops a subject's analytics facts being
unlinked: those serve no legal purpose.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from seaport.errors import SeaportError, read_toml

HOLDS_ENV = "SEAPORT_LEGAL_HOLDS"
HOLDS_FILE = "legal_holds.toml"
_HEX = frozenset("0123456789abcdef")


class Hold(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    name: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=1000)
    subjects: tuple[str, ...] = ()
    first_day: date | None = Field(default=None, alias="from")
    last_day: date | None = Field(default=None, alias="to")
    until: date | None = None

    @field_validator("subjects")
    @classmethod
    def _pseudonyms(cls, subjects: tuple[str, ...]) -> tuple[str, ...]:
        for s in subjects:
            if len(s) != 32 or not set(s) <= _HEX:
                raise ValueError("subjects are security pseudonyms: 32 lower-case hex characters each")
        return subjects

    @model_validator(mode="after")
    def _covers_something(self) -> Hold:
        if not self.subjects and self.first_day is None and self.last_day is None:
            raise ValueError("a hold names subjects, days (from/to), or both")
        if self.first_day and self.last_day and self.first_day > self.last_day:
            raise ValueError("from is after to")
        return self


def holds_path(warehouse: Path) -> Path:
    return Path(os.environ.get(HOLDS_ENV) or Path(warehouse) / HOLDS_FILE)


def load_holds(warehouse: Path) -> list[Hold]:
    """The holds in force for `warehouse` (none without a file); a malformed file is a one-line error."""
    path = holds_path(warehouse)
    if not path.exists():
        if os.environ.get(HOLDS_ENV):
            raise SeaportError(f"the legal holds file named by {HOLDS_ENV} does not exist")
        return []
    raw = read_toml(path, "legal holds")
    unknown = set(raw) - {"hold"}
    if unknown or not isinstance(raw.get("hold", []), list):
        raise SeaportError(f"legal holds file {path.name}: only [[hold]] tables are allowed")
    holds = []
    for n, entry in enumerate(raw.get("hold", []), start=1):
        try:
            holds.append(Hold.model_validate(entry))
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "hold"
            raise SeaportError(f"legal holds file {path.name}: hold {n}: {where}: {first['msg']}") from None
    return holds


def holds_table(holds: list[Hold]) -> pa.Table:
    """One row per (hold, subject) — subject null: any subject — for SQL (`held_sql`)."""
    rows = [
        {
            "name": h.name,
            "reason": h.reason,
            "subject_pseudonym": s,
            "first_day": h.first_day,
            "last_day": h.last_day,
            "until": h.until,
        }
        for h in holds
        for s in (h.subjects or (None,))
    ]
    schema = pa.schema(
        [
            ("name", pa.string()),
            ("reason", pa.string()),
            ("subject_pseudonym", pa.string()),
            ("first_day", pa.date32()),
            ("last_day", pa.date32()),
            ("until", pa.date32()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def held_sql(holds: str, subject: str, day: str, today: str = "current_date") -> str:
    """SQL: the holds (a relation like `holds_table`) in force on `today` that cover a row of
    `subject` on `day`, as a join condition on `h`."""
    return f"""({holds}.until IS NULL OR {holds}.until >= {today})
       AND ({holds}.subject_pseudonym IS NULL OR {holds}.subject_pseudonym = {subject})
       AND ({holds}.first_day IS NULL OR {day} >= {holds}.first_day)
       AND ({holds}.last_day IS NULL OR {day} <= {holds}.last_day)"""


__all__ = ["HOLDS_ENV", "HOLDS_FILE", "Hold", "held_sql", "holds_path", "holds_table", "load_holds"]
