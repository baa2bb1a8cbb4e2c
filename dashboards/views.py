"""The analysts' documented views of `analytics.duckdb`.

Each view is one file `dashboards/sql/<name>.sql`: a header comment (what it answers, what each
column means, its caveats) and one SELECT over the analytics tables only. `create_views(con)`
creates them all as `main.<name>` on a connection whose `main` is the analytics store; every ingest
run calls it after re-materializing the aggregates. `SELECT sql FROM duckdb_views()` shows a
view's text with its header, and `comment` holds the header's first line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

SQL_DIR = Path(__file__).resolve().parent / "sql"
_NAME = re.compile(r"[a-z][a-z0-9_]*")


def view_files() -> list[Path]:
    """The view files, by name."""
    return sorted(SQL_DIR.glob("*.sql"))


def create_views(con: Any) -> list[str]:
    """`CREATE OR REPLACE VIEW main.<name>` of each file of `dashboards/sql/`; returns the names."""
    names = []
    for path in view_files():
        name = path.stem
        if not _NAME.fullmatch(name):
            raise ValueError(f"a view file must be named like an SQL identifier: {path.name}")
        select = path.read_text(encoding="utf-8").strip().rstrip(";")
        con.execute(f"CREATE OR REPLACE VIEW main.{name} AS\n{select}\n")
        first = select.splitlines()[0]
        summary = first.removeprefix("--").strip().removeprefix(f"{name}:").strip() if first.startswith("--") else ""
        con.execute(f"COMMENT ON VIEW main.{name} IS " + "'" + summary.replace("'", "''") + "'")
        names.append(name)
    return names
