"""`seaport audit` (R4, R5): finds planted identifiers and their digests anywhere, passes pseudonyms."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from seaport import cli
from sinks.audit import Canaries, audit_warehouse
from transforms.pseudonyms import Pseudonymizer, Purpose

RNG = random.Random(77)
P = Pseudonymizer.from_key_bytes(RNG.randbytes(32))


def made_up() -> dict[str, str]:
    """Identifiers of a made-up person, fresh per call (never committed)."""
    return {
        "openid": "o" + "".join(RNG.choices("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789_-", k=27)),
        "anonymous_id": "c-" + RNG.randbytes(5).hex(),
        "mac": ":".join(f"{RNG.randrange(256):02x}" for _ in range(6)),
        "phone": f"1{RNG.choice('3456789')}{RNG.randrange(10**9):09d}",
        "ip": f"10.{RNG.randrange(256)}.{RNG.randrange(256)}.{RNG.randrange(1, 255)}",
    }


def clean_warehouse(root: Path, rows: int = 2000) -> list[dict[str, str]]:
    """A warehouse like the pipeline's: pseudonyms, prefixes, ids, aggregates; no identifier."""
    people = [made_up() for _ in range(50)]
    (root / "parquet" / "security_events" / "date=2026-11-24").mkdir(parents=True)
    columns = ["event_id", "event_time", "subject_pseudonym", "device_pseudonym", "ip_prefix", "page_or_path",
               "event_or_status", "user_agent", "policy_version", "key_id", "n"]  # fmt: skip
    data = []
    for i in range(rows):
        person = people[i % len(people)]
        prefix = ".".join(person["ip"].split(".")[:3]) + ".0/24"
        data.append(
            (
                str(uuid.UUID(int=RNG.getrandbits(128), version=4)),
                datetime(2026, 11, 24, tzinfo=UTC),
                P.pseudonymize(Purpose.SECURITY, "openid", person["openid"]),
                P.pseudonymize(Purpose.SECURITY, "mac", person["mac"]),
                prefix if i % 3 else "2001:db8:12::/48",
                f"/policy/{i % 40}?tab=2&phone=[phone]",
                "404" if i % 5 == 0 else "page_view",
                "Chrome 120",
                "2026-11-25.1",
                P.key_id,
                i * 7919,
            )
        )
    events = pa.Table.from_pylist([dict(zip(columns, row, strict=True)) for row in data])  # noqa: F841
    con = duckdb.connect(str(root / "security.duckdb"))
    con.execute("CREATE TABLE security_events AS SELECT * FROM events")
    con.execute(
        f"COPY security_events TO '{root}/parquet/security_events/date=2026-11-24/part-0.parquet' (FORMAT parquet)"
    )
    con.close()
    con = duckdb.connect(str(root / "analytics.duckdb"))
    con.execute(
        "CREATE TABLE page_views_hourly AS SELECT TIMESTAMPTZ '2026-11-24 08:00:00+08' AS hour, "
        "'/policy/' || i AS page, 10 + i AS views, 5 + i AS visitors, 1234.5 AS avg_duration_ms FROM range(100) t(i)"
    )
    con.execute("CREATE TABLE ingest_runs AS SELECT 'beacons.raw' AS topic, 0 AS partition, 0 AS start, 52000 AS stop")
    con.close()
    (root / "README.txt").write_text("Built by seaport ingest at 2026-11-24 08:15:30; policy 2026-11-25.1\n")
    return people


def run_audit(warehouse: Path, capsys, *extra: str) -> tuple[int, str]:
    code = cli.main(["audit", "--warehouse", str(warehouse), *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_clean_warehouse_passes(tmp_path, capsys):
    people = clean_warehouse(tmp_path)
    canaries = tmp_path.parent / f"{tmp_path.name}-canaries.txt"
    canaries.write_text("\n".join(v for person in people for v in person.values()) + "\n")
    code, out = run_audit(tmp_path, capsys, "--canaries", str(canaries))
    assert code == 0, out
    assert out.startswith("clean: 4 files, ")
    assert int(out.split(", ")[1].split()[0]) > 2000 * 9  # every value of every column was looked at


@pytest.mark.parametrize("where", ["duckdb", "parquet", "text"])
def test_planted_identifiers_and_digests_are_found_everywhere(tmp_path, capsys, where):
    people = clean_warehouse(tmp_path, rows=300)
    victim = people[0]
    mac_dashed = victim["mac"].replace(":", "-").upper()
    planted = {
        "phone": f"call {victim['phone'][:3]} {victim['phone'][3:7]} {victim['phone'][7:]}",
        "openid": f"/u/{victim['openid']}/home",
        "mac": f"device {mac_dashed}",
        "ip": f"from {victim['ip']}",
        "email": "contact " + "zhang.san" + "@" + "example.com",
        "canary_sha256": hashlib.sha256(victim["anonymous_id"].encode()).hexdigest(),
        "canary_md5": hashlib.md5(victim["mac"].upper().encode()).hexdigest().upper(),
        "canary_sha1": hashlib.sha1(victim["phone"].encode()).hexdigest(),
        "canary": f"cookie={victim['anonymous_id'].upper()}",
    }
    values = list(planted.values())
    if where == "duckdb":
        con = duckdb.connect(str(tmp_path / "security.duckdb"))
        con.execute("CREATE SCHEMA staging; CREATE TABLE staging.leftovers (note VARCHAR, n INTEGER)")
        con.executemany("INSERT INTO staging.leftovers VALUES (?, ?)", [(v, i) for i, v in enumerate(values)])
        con.close()
        location = "staging.leftovers.note"
    elif where == "parquet":
        con = duckdb.connect()
        con.execute("CREATE TABLE t (note VARCHAR)")
        con.executemany("INSERT INTO t VALUES (?)", [(v,) for v in values])
        con.execute(f"COPY t TO '{tmp_path}/parquet/security_events/date=2026-11-24/part-9.parquet' (FORMAT parquet)")
        con.close()
        location = "note"
    else:
        (tmp_path / "export.csv").write_text("note\n" + "\n".join(values) + "\n")
        location = "line "
    canaries = tmp_path.parent / f"{tmp_path.name}-canaries.txt"
    canaries.write_text("# one per line\n" + "\n".join(victim.values()) + "\n")

    code, out = run_audit(tmp_path, capsys, "--canaries", str(canaries))
    assert code == 1
    lines = [line.split("\t") for line in out.splitlines() if "\t" in line]
    found = {kind for _, loc, kind, *_ in lines if loc.startswith(location)}
    assert set(planted) <= found, out
    # findings never show the identifier itself, nor its digests (R5)
    for secret in [*victim.values(), mac_dashed, *(v for k, v in planted.items() if k.startswith("canary_"))]:
        assert secret.lower() not in out.lower()


def test_without_canaries_the_detectors_alone_fire(tmp_path, capsys):
    clean_warehouse(tmp_path, rows=100)
    card = "6222" + "0212" + "3456" + "7890"
    card = card[:-1] + str(next(d for d in range(10) if _luhn(card[:-1] + str(d))))
    (tmp_path / "notes.log").write_text(f"ok\npaid with {card}\n")
    code, out = run_audit(tmp_path, capsys)
    assert code == 1
    assert "notes.log\tline 2\tbank_card\t1 value(s)\te.g. 62" in out
    assert card not in out


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def test_a_database_locked_by_a_writer_is_scanned_from_a_copy(tmp_path, capsys):
    clean_warehouse(tmp_path, rows=50)
    secret = made_up()["phone"]
    db = tmp_path / "security.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys; con = duckdb.connect(sys.argv[1]); "
         "con.execute(\"CREATE TABLE leak AS SELECT ? AS v\", [sys.argv[2]]); con.execute('CHECKPOINT'); "
         "print('ready', flush=True); sys.stdin.read()", str(db), secret],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "ready"
        code, out = run_audit(tmp_path, capsys)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert code == 1
    assert "security.duckdb\tmain.leak.v\tphone" in out


def test_missing_warehouse_is_a_one_line_error(tmp_path, capsys):
    code, out = run_audit(tmp_path / "nowhere", capsys)
    assert code == 2
    assert out.strip().count("\n") == 0 and "no warehouse directory" in out


def test_canary_forms_cover_notations_and_digests():
    mac = "3c:22:fb:00:00:01"
    forms = Canaries.from_lines([mac.upper(), "", "# comment"]).forms
    assert {"3c-22-fb-00-00-01", "3c22fb000001", "3c22.fb00.0001"} <= set(forms)
    assert forms[hashlib.sha1(b"3c22fb000001").hexdigest()] == "canary_sha1"
    assert forms[hashlib.md5(b"3C:22:FB:00:00:01").hexdigest()] == "canary_md5"
    assert "# comment" not in forms


def test_audit_scans_every_value_of_a_large_table(tmp_path):
    con = duckdb.connect(str(tmp_path / "security.duckdb"))
    con.execute(
        "CREATE TABLE security_events AS SELECT uuid()::VARCHAR AS event_id, md5(i::VARCHAR) AS subject_pseudonym, "
        "'203.0.113.0/24' AS ip_prefix, '/policy/' || (i % 500) AS page_or_path, i AS n FROM range(300000) t(i)"
    )
    con.close()
    report = audit_warehouse(tmp_path)
    assert not report.findings
    assert report.values == 5 * 300000
