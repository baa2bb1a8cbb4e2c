"""The audit trail (R12): who ran what on personal data, when, and how it ended.

An append-only table in its own file, `<warehouse>/audit_trail.duckdb` (mode 0600): one row per
ingest run, erasure request, subject report, export and security report, with the time, the OS
user, the command and its options (never an identifier's value), the policy version and key id
where the key was used, and the outcome. Each row carries the SHA-256 of its own content and of
the previous row's hash, and `audit_trail.head` the last row's number and hash, so that
`seaport audit --trail` finds a row edited, deleted or inserted anywhere, the last included.
Rows are only ever inserted.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from seaport.errors import SeaportError

TRAIL_FILE = "audit_trail.duckdb"
HEAD_FILE = "audit_trail.head"
GENESIS = "0" * 64
LOCK_WAIT_S = 15.0
_DDL = """CREATE TABLE IF NOT EXISTS audit_trail (
    seq BIGINT PRIMARY KEY, recorded_at TIMESTAMPTZ, os_user VARCHAR, command VARCHAR, options VARCHAR,
    policy_version VARCHAR, key_id VARCHAR, outcome VARCHAR, prev_hash VARCHAR, hash VARCHAR)"""
_FIELDS = ("seq", "recorded_at", "os_user", "command", "options", "policy_version", "key_id", "outcome", "prev_hash")


def entry_hash(row: dict[str, Any]) -> str:
    at = row["recorded_at"]
    content = {f: (at.astimezone(UTC).isoformat() if f == "recorded_at" else row[f]) for f in _FIELDS}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    """The trail's file, waiting while another command appends (DuckDB locks whole files)."""
    deadline = time.monotonic() + LOCK_WAIT_S
    old = os.umask(0o077)
    try:
        while True:
            try:
                return duckdb.connect(str(path))
            except duckdb.IOException:
                if time.monotonic() > deadline:
                    raise SeaportError(f"the audit trail {path.name} stays locked by another process") from None
                time.sleep(0.05)
    finally:
        os.umask(old)


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def record(
    folder: Path,
    command: str,
    options: dict[str, Any],
    outcome: str,
    policy_version: str | None = None,
    key_id: str | None = None,
) -> None:
    """Append one entry to the trail of the warehouse at `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    con = _connect(folder / TRAIL_FILE)
    try:
        con.execute(_DDL)
        con.execute("BEGIN")
        last = con.execute("SELECT seq, hash FROM audit_trail ORDER BY seq DESC LIMIT 1").fetchall()
        seq, prev = (last[0][0] + 1, last[0][1]) if last else (1, GENESIS)
        row = {
            "seq": seq,
            "recorded_at": datetime.now(UTC),
            "os_user": os_user(),
            "command": command,
            "options": json.dumps(options, sort_keys=True, default=str),
            "policy_version": policy_version,
            "key_id": key_id,
            "outcome": outcome[:500],
            "prev_hash": prev,
        }
        row["hash"] = entry_hash(row)
        con.execute(f"INSERT INTO audit_trail VALUES ({', '.join('?' * len(row))})", list(row.values()))
        con.execute("COMMIT")
        head = folder / HEAD_FILE
        tmp = head.with_suffix(".tmp")
        tmp.write_text(f"{seq} {row['hash']}\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, head)
    finally:
        con.close()


def entries(folder: Path) -> list[dict[str, Any]]:
    path = Path(folder) / TRAIL_FILE
    if not path.exists():
        return []
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        cursor = con.execute("SELECT * FROM audit_trail ORDER BY seq")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    finally:
        con.close()


def verify(folder: Path) -> tuple[int, list[str]]:
    """(entries, problems): every break of the chain, one line each (no entry's content)."""
    rows = entries(folder)
    problems = []
    prev = GENESIS
    for n, row in enumerate(rows, start=1):
        if row["seq"] != n:
            problems.append(f"entry {n} is missing (next is {row['seq']})")
        if row["prev_hash"] != prev:
            problems.append(f"entry {row['seq']}: the chain is broken before it (an entry removed or changed)")
        if entry_hash(row) != row["hash"]:
            problems.append(f"entry {row['seq']}: its content does not match its hash (edited)")
        prev = row["hash"]
    head = Path(folder) / HEAD_FILE
    if head.exists():
        seq, _, hash_ = head.read_text().strip().partition(" ")
        last = rows[-1] if rows else {"seq": 0, "hash": GENESIS}
        if seq != str(last["seq"]) or hash_ != last["hash"]:
            problems.append(f"the last entry is not the one recorded last (entry {seq}): entries removed at the end")
    elif rows:
        problems.append(f"{HEAD_FILE} is missing")
    return len(rows), problems


# Options whose values identify a person: the trail says they were given, never what they were.
IDENTIFIER_OPTIONS = frozenset({"openid", "anonymous_id"})


def options_of(args: argparse.Namespace) -> dict[str, object]:
    """The options of a command as the audit trail keeps them: identifier values never."""
    hidden = {"command", "extra", "accepts_extra", "trail"}
    options: dict[str, object] = {}
    for name, value in sorted(vars(args).items()):
        if name in hidden or value is None or value is False:
            continue
        options[name] = "(given)" if name in IDENTIFIER_OPTIONS else value
    if args.extra:
        options["extra"] = args.extra
    return options


__all__ = ["HEAD_FILE", "TRAIL_FILE", "entries", "options_of", "record", "verify"]
