"""`seaport subject-report`: what the restricted stores hold about one person (R6, the right of access).

The person is named by their WeChat OpenId or their anonymous cookie id. The report computes
their pseudonyms with the key and reads state.duckdb (under the analytics pseudonym) and
security.duckdb (under the security pseudonym), both read-only. Each section says "nothing"
when it is empty:

  - the subject: the kind of id and the id masked (the id is never printed, in any format),
    and their security pseudonym in full, the one a legal hold names;
  - per restricted table that holds rows of theirs: rows, first and last day (in --timezone);
  - their consent history, and their minor marks;
  - the devices and IP prefixes of their security events (masked), with counts;
  - the pages and paths they visited (the 20 most frequent, and how many distinct);
  - their erasure requests, with the day each is due (the erasure record itself is kept: it
    keeps them out of replays);
  - the legal holds naming them or covering days of their security rows, and the rows each keeps.

    SEAPORT_PSEUDONYM_KEY_FILE=key .venv/bin/python -m seaport.cli subject-report \\
        --openid X --warehouse warehouse/ --format json
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from seaport.commands.erase import identifier
from seaport.errors import SeaportError
from seaport.options import add_security_dir_option, check_timezone
from transforms.masking import mask

TOP = 20
# (store, table, the column of a row's time: the report shows its first and last day)
TABLES = (
    ("state", "analytics_events", "ts"),
    ("state", "consent_changes", "ts"),
    ("state", "visitor_days", "day"),
    ("state", "subject_days", "day"),
    ("security", "security_events", "event_time"),
    ("security", "security_anomalies", "day"),
    ("security", "deadletters", "stored_at"),
    ("security", "minor_flags", "ts"),
    ("security", "subject_days", "day"),
)
PSEUDONYM_NOTE = "the security pseudonym is shown in full: operators need it to place a legal hold"
ERASURE_NOTE = "the erasure record itself is kept: it keeps the person out of replays"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (__doc__ or "").split("\n\n", 1)[1]
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--openid", type=identifier, metavar="X", help="the person's WeChat OpenId (never printed)")
    who.add_argument("--anonymous-id", type=identifier, metavar="X", help="the person's cookie id (never printed)")
    parser.add_argument(
        "--warehouse", type=Path, default=Path("warehouse"), help="warehouse folder (default: %(default)s)"
    )
    add_security_dir_option(parser)
    parser.add_argument("--format", choices=["text", "json", "html"], default="text", help="default: %(default)s")
    parser.add_argument("--timezone", default="Asia/Shanghai", help="the zone of days and times (default: %(default)s)")
    parser.add_argument(
        "--dev", action="store_true", help="without SEAPORT_PSEUDONYM_KEY_FILE: the throw-away key in .seaport/"
    )


class Store:
    """One DuckDB file, read-only; a file that does not exist is an empty store."""

    def __init__(self, path: Path, tz: str) -> None:
        import duckdb

        self.con: Any = None
        self.tables: set[str] = set()
        if not path.exists():
            return
        try:
            self.con = duckdb.connect(str(path), read_only=True)
        except duckdb.IOException:
            raise SeaportError(f"the warehouse is in use ({path.name} is being written); try again") from None
        except duckdb.Error as e:
            raise SeaportError(f"cannot read {path.name}: {type(e).__name__}") from None
        self.con.execute(f"SET TimeZone = '{_sql_str(tz)}'")
        self.tables = {t for (t,) in self.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}

    def rows(self, table: str, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, params).fetchall() if table in self.tables else []

    def close(self) -> None:
        if self.con is not None:
            self.con.close()


def _sql_str(s: str) -> str:
    return s.replace("'", "''")


def build_report(args: argparse.Namespace, p: Any, policy_version: str) -> dict[str, Any]:
    from transforms.deadlines import due_by
    from transforms.holds import held_sql, holds_table, load_holds
    from transforms.pseudonyms import Purpose

    kind, value = ("openid", args.openid) if args.openid else ("anonymous_id", args.anonymous_id)
    pseudonyms = {"state": p.pseudonymize(Purpose.ANALYTICS, kind, value)}
    pseudonyms["security"] = sec = p.pseudonymize(Purpose.SECURITY, kind, value)
    tz, zone = args.timezone, ZoneInfo(args.timezone)
    holds = load_holds(args.warehouse)
    stores = {
        "state": Store(args.warehouse / "state.duckdb", tz),
        "security": Store((args.security_dir or args.warehouse) / "security.duckdb", tz),
    }
    st, sc = stores["state"], stores["security"]

    def when(t: datetime | None) -> str | None:
        return None if t is None else t.astimezone(zone).isoformat(timespec="seconds")

    def day(column: str) -> str:
        return column if column == "day" else f"CAST(timezone('{_sql_str(tz)}', {column}) AS DATE)"

    def counted(store: Store, table: str, column: str, pseudonym: str, shown: Any = str) -> dict[str, Any]:
        rows = store.rows(
            table,
            f"""SELECT {column}, count(*) AS n FROM {table} WHERE subject_pseudonym = ? AND {column} IS NOT NULL
                GROUP BY ALL ORDER BY n DESC, {column}""",
            [pseudonym],
        )
        top = [{"value": shown(v), "count": n} for v, n in rows[:TOP]]
        return {"distinct": len(rows), "top": top}

    try:
        tables = {}
        for store, table, column in TABLES:
            found = stores[store].rows(
                table,
                f"SELECT count(*), min({day(column)}), max({day(column)}) FROM {table} WHERE subject_pseudonym = ?",
                [pseudonyms[store]],
            )
            n, first, last = found[0] if found else (0, None, None)
            tables[f"{store}.{table}"] = {
                "rows": n,
                "first_day": first and first.isoformat(),
                "last_day": last and last.isoformat(),
            }
        consent = st.rows(
            "consent_changes",
            """SELECT ts, analytics, minor_without_guardian FROM consent_changes WHERE subject_pseudonym = ?
               ORDER BY ts, source_partition, source_offset""",
            [pseudonyms["state"]],
        )
        marks = sc.rows(
            "minor_flags",
            "SELECT ts, minor_without_guardian FROM minor_flags WHERE subject_pseudonym = ? ORDER BY ts, source_offset",
            [sec],
        )
        erasures = st.rows(
            "erasures",
            "SELECT request_id, requested_at, processed_at FROM erasures WHERE subject_pseudonym = ? ORDER BY requested_at",
            [pseudonyms["state"]],
        )
        held = []
        today = datetime.now(zone).date()
        for hold in holds:
            kept = 0
            if {"security_events", "security_anomalies"} <= sc.tables:
                sc.con.register("legal_holds", holds_table([hold]))
                kept = sc.con.execute(
                    f"""WITH r AS (SELECT ?::VARCHAR AS s, {day("event_time")} AS day FROM security_events
                                   WHERE subject_pseudonym = ?
                                   UNION ALL SELECT ?, day FROM security_anomalies WHERE subject_pseudonym = ?)
                        SELECT count(*) FROM r
                        WHERE EXISTS (SELECT 1 FROM legal_holds h WHERE {held_sql("h", "r.s", "r.day")})""",
                    [sec] * 4,
                ).fetchall()[0][0]
                sc.con.unregister("legal_holds")
            if kept or sec in hold.subjects:
                in_force = hold.until is None or hold.until >= today
                held.append({"name": hold.name, "reason": hold.reason, "names_subject": sec in hold.subjects,
                             "in_force": in_force, "rows_kept": kept})  # fmt: skip
        report = {
            "subject": {"kind": kind, "id_masked": mask(value), "security_pseudonym": sec, "note": PSEUDONYM_NOTE},
            "key_id": p.key_id,
            "policy_version": policy_version,
            "timezone": tz,
            "made_at": when(datetime.now(zone)),
            "rows_held": sum(t["rows"] for t in tables.values()),
            "tables": tables,
            "consent_changes": [{"ts": when(t), "analytics": a, "minor_without_guardian": m} for t, a, m in consent],
            "minor_marks": [{"ts": when(t), "minor_without_guardian": m} for t, m in marks],
            "devices": counted(sc, "security_events", "device_pseudonym", sec, mask),
            "ip_prefixes": counted(sc, "security_events", "ip_prefix", sec, mask),
            "pages": counted(st, "analytics_events", "page", pseudonyms["state"]),
            "paths": counted(sc, "security_events", "page_or_path", sec),
            "erasure_requests": [
                {"request_id": r, "requested_at": when(t), "processed_at": when(done), "due_by": due_by(t).isoformat()}
                for r, t, done in erasures
            ],
            "erasure_note": ERASURE_NOTE,
            "legal_holds": held,
        }
    finally:
        for opened in stores.values():
            opened.close()
    report["summary"] = (
        "nothing is held about this person" + (" (apart from the erasure record)" if erasures else "")
        if report["rows_held"] == 0
        else f"{report['rows_held']} rows held in {sum(1 for t in tables.values() if t['rows'])} tables"
    )
    return report


def sections(r: dict[str, Any]) -> list[tuple[str, list[str], list[tuple[Any, ...]], str]]:
    """(title, columns, rows, note) of each section, for the text and the HTML page."""

    def top(name: str) -> list[tuple[Any, ...]]:
        return [(e["value"], e["count"]) for e in r[name]["top"]]

    s = r["subject"]
    return [
        ("Subject", ["kind", "id (masked)", "security pseudonym"], [(s["kind"], s["id_masked"], s["security_pseudonym"])], s["note"]),
        ("Rows per restricted table", ["table", "rows", "first day", "last day"],
         [(k, t["rows"], t["first_day"], t["last_day"]) for k, t in r["tables"].items() if t["rows"]],
         f"days in {r['timezone']}"),
        ("Consent history", ["time", "analytics", "minor without guardian"],
         [(c["ts"], c["analytics"], c["minor_without_guardian"]) for c in r["consent_changes"]], ""),
        ("Minor marks", ["time", "minor without guardian"],
         [(m["ts"], m["minor_without_guardian"]) for m in r["minor_marks"]], ""),
        ("Devices (masked)", ["device", "events"], top("devices"), f"{r['devices']['distinct']} distinct"),
        ("IP prefixes (masked)", ["prefix", "events"], top("ip_prefixes"), f"{r['ip_prefixes']['distinct']} distinct"),
        ("Pages visited", ["page", "events"], top("pages"), f"{r['pages']['distinct']} distinct; top {TOP} shown"),
        ("Paths requested", ["path", "events"], top("paths"), f"{r['paths']['distinct']} distinct; top {TOP} shown"),
        ("Erasure requests", ["request", "requested at", "processed at", "due by"],
         [(e["request_id"], e["requested_at"], e["processed_at"], e["due_by"]) for e in r["erasure_requests"]],
         r["erasure_note"]),
        ("Legal holds", ["name", "reason", "names the subject", "in force", "rows kept"],
         [(h["name"], h["reason"], h["names_subject"], h["in_force"], h["rows_kept"]) for h in r["legal_holds"]], ""),
    ]  # fmt: skip


def _printable(value: Any) -> str:
    text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def render_text(r: dict[str, Any]) -> str:
    lines = [
        f"Subject report (R6): {r['summary']}",
        f"key {r['key_id']}, field policy {r['policy_version']}, made {r['made_at']}",
    ]
    for title, columns, rows, note in sections(r):
        lines += ["", title + (f" ({note})" if note else "")]
        if not rows:
            lines.append("  nothing")
            continue
        cells = [columns] + [[_printable(v) for v in row] for row in rows]
        widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines) + "\n"


def render_html(r: dict[str, Any]) -> str:
    from dashboards.html import esc, page, table

    body = [f"<h1>Subject report (R6)</h1><p>{esc(r['summary'])}</p>",
            f'<p class="note">key {esc(r["key_id"])}, field policy {esc(r["policy_version"])}, made {esc(r["made_at"])}</p>']  # fmt: skip
    for title, columns, rows, note in sections(r):
        body.append(f"<h2>{esc(title)}</h2>" + (f'<p class="note">{esc(note)}</p>' if note else ""))
        body.append(table(columns, rows) if rows else '<p class="empty">nothing</p>')
    return page("Subject report", "\n".join(body))


def run(args: argparse.Namespace) -> int:
    from transforms.policy import FieldPolicy
    from transforms.pseudonyms import Pseudonymizer

    check_timezone(args.timezone)
    for folder in (args.warehouse, args.security_dir):
        if folder is not None and not Path(folder).is_dir():
            raise SeaportError(f"no warehouse folder at {folder}")
    p = Pseudonymizer.from_environment(dev=args.dev, dev_dir=Path(".seaport"))
    version = FieldPolicy.load().version
    args.trail = {"key_id": p.key_id, "policy_version": version}
    report = build_report(args, p, version)
    if args.format == "json":
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(render_html(report) if args.format == "html" else render_text(report), end="")
    args.trail["outcome"] = f"reported ({args.format}): {report['rows_held']} rows held"
    return 0
