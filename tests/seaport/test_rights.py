"""People's rights as commands (issue 10): erasure due dates, receipts and legal holds (R8),
`erase --status`, residency (R10), the export gate (R4), the audit trail and least privilege (R12).

Everything runs through real Kafka and `seaport` as a user runs it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from tests.model import SHANGHAI
from tests.pipelines.test_ingest import ingest, produce
from tests.test_privacy_e2e import T0, phone, scenario, view
from transforms.deadlines import due_by, is_working_day, working_days_left
from transforms.pseudonyms import Pseudonymizer, Purpose


def seaport(*args: str, key: Path | None = None, extra_env: dict | None = None, timeout: int = 120):
    env = os.environ | (extra_env or {})
    if key:
        env["SEAPORT_PSEUDONYM_KEY_FILE"] = str(key)
    return subprocess.run(
        [sys.executable, "-m", "seaport.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def kafka(bootstrap: str, prefix: str) -> list[str]:
    return ["--bootstrap", bootstrap, "--topic-prefix", prefix]


# --------------------------------------------------------------------------------- due dates


def at_noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=SHANGHAI)


def test_due_dates_count_mainland_working_days_across_spring_festival_and_national_day():
    # Spring Festival 2026: Feb 15-23 off, Saturday Feb 14 and Saturday Feb 28 are make-up working days
    assert is_working_day(date(2026, 2, 14)) and is_working_day(date(2026, 2, 28))
    assert not any(is_working_day(date(2026, 2, d)) for d in range(15, 24))
    # received Tuesday Feb 10: Feb 11,12,13,14(Sat) = 4, then Feb 24-27 = 8, Feb 28(Sat) = 9, Mar 2-6 = 14, Mar 9
    assert due_by(at_noon(date(2026, 2, 10))) == date(2026, 3, 9)
    # National Day 2026: Oct 1-7 off, Sunday Sep 20 and Saturday Oct 10 are make-up working days
    assert is_working_day(date(2026, 9, 20)) and is_working_day(date(2026, 10, 10))
    assert not any(is_working_day(date(2026, 10, d)) for d in range(1, 8))
    # received Friday Sep 25: Sep 28,29,30 = 3, Oct 8,9,10(Sat) = 6, Oct 12-16 = 11, Oct 19-22 = 15
    assert due_by(at_noon(date(2026, 9, 25))) == date(2026, 10, 22)
    # an ordinary fortnight with no holiday: 15 working days are three weeks
    assert due_by(at_noon(date(2026, 11, 2))) == date(2026, 11, 23)
    # the day is mainland China's: 20:00 UTC on Nov 1 is already Monday Nov 2 in Shanghai
    assert due_by(datetime(2026, 11, 1, 20, tzinfo=UTC)) == date(2026, 11, 23)
    assert working_days_left(date(2026, 3, 9), date(2026, 3, 5)) == 2  # Mar 6, Mar 9
    assert working_days_left(date(2026, 3, 9), date(2026, 3, 9)) == 0
    assert working_days_left(date(2026, 3, 9), date(2026, 3, 11)) == -2


# ----------------------------------------------------------------------------- erase --status


def erasure(request_id: str, anonymous_id: str, at: datetime) -> dict:
    return {
        "schema": "erasure/1",
        "ts": at.astimezone(UTC).isoformat(),
        "subject": {"anonymous_id": anonymous_id},
        "request_id": request_id,
    }


def test_erase_status_lists_overdue_first_and_exits_1_until_they_are_done(kafka_bootstrap, topic_prefix, tmp_path,
                                                                          key_file):  # fmt: skip
    now = datetime.now(UTC)
    requests = [
        erasure("req-recent", "c-status-1", now - timedelta(days=1)),
        erasure("req-40-days", "c-status-2", now - timedelta(days=40)),
        erasure("req-30-days", "c-status-3", now - timedelta(days=30)),
    ]
    produce(kafka_bootstrap, topic_prefix, {"erasure.requests": [json.dumps(r).encode() for r in requests]})
    warehouse = tmp_path / "wh"
    status = seaport("erase", "--status", "--warehouse", str(warehouse), *kafka(kafka_bootstrap, topic_prefix))
    assert status.returncode == 1, status.stderr
    lines = [line for line in status.stdout.splitlines() if line.startswith("req-")]
    assert [line.split()[0] for line in lines] == ["req-40-days", "req-30-days", "req-recent"]
    assert "OVERDUE" in lines[0] and "OVERDUE" in lines[1] and "open" in lines[2]
    assert "3 open (2 overdue)" in status.stdout
    due = due_by(now - timedelta(days=1)).isoformat()
    assert due in lines[2]
    assert "c-status" not in status.stdout + status.stderr

    ingest(kafka_bootstrap, topic_prefix, warehouse, key_file)
    status = seaport("erase", "--status", "--warehouse", str(warehouse), *kafka(kafka_bootstrap, topic_prefix))
    assert status.returncode == 0, status.stdout + status.stderr
    assert "0 open (0 overdue), 3 done" in status.stdout
    done = {line.split()[0]: line for line in status.stdout.splitlines() if line.startswith("req-")}
    assert "(late)" in done["req-40-days"] and "(late)" not in done["req-recent"]

    con = duckdb.connect(str(warehouse / "analytics.duckdb"), read_only=True)
    log = dict(con.execute("SELECT request_id, due_by FROM erasure_log").fetchall())
    con.close()
    assert log == {r["request_id"]: due_by(datetime.fromisoformat(r["ts"])) for r in requests}


# ------------------------------------------------------------------- receipts and legal holds


def hold_file(path: Path, *holds: str) -> None:
    path.write_text("\n".join(holds))


def security_rows(warehouse: Path, pseudonym: str | None = None) -> list[tuple]:
    con = duckdb.connect(str(warehouse / "security.duckdb"), read_only=True)
    try:
        where = "WHERE subject_pseudonym = ?" if pseudonym else ""
        return con.execute(
            f"SELECT event_id, CAST(timezone('Asia/Shanghai', event_time) AS DATE) FROM security_events {where}",
            [pseudonym] if pseudonym else [],
        ).fetchall()
    finally:
        con.close()


def test_erasure_receipt_and_a_legal_hold_keep_exactly_the_held_rows(kafka_bootstrap, topic_prefix, tmp_path,
                                                                     key_file):  # fmt: skip
    ds, _ = scenario()
    subject = "o-scenario-granted_before"
    for n, days in ((901, 2), (902, 3)):  # two more days of this subject, outside the hold
        ds.add("beacons.raw", view(n, "c-granted_before", T0 + timedelta(days=days), openid=subject))
    ds.add("beacons.raw", view(903, "c-never", T0 + timedelta(days=2), openid="o-scenario-never"))  # not erased
    produce(kafka_bootstrap, topic_prefix, ds.messages)
    warehouse = tmp_path / "wh"
    ingest(kafka_bootstrap, topic_prefix, warehouse, key_file, "--k", "1")
    p = Pseudonymizer.from_key_bytes(key_file.read_bytes())
    sec = p.pseudonymize(Purpose.SECURITY, "openid", subject)
    rows = security_rows(warehouse, sec)
    on_held_day = [r for r in rows if r[1] == T0.date()]
    assert len(on_held_day) == 3 and len(rows) == 5
    hold_file(
        warehouse / "legal_holds.toml",
        "[[hold]]",
        'name = "INC-TEST-1"',
        'reason = "open security incident"',
        f'subjects = ["{sec}"]',
        f"from = {T0.date().isoformat()}",
        f"to = {T0.date().isoformat()}",
        "[[hold]]",  # a second hold of the same rows, listed after the first and named before it
        'name = "AUDIT-TEST-0"',
        'reason = "annual audit"',
        f'subjects = ["{sec}"]',
        f"from = {T0.date().isoformat()}",
        f"to = {T0.date().isoformat()}",
    )
    erase = seaport("erase", "--openid", subject, "--request-id", "req-held", "--warehouse", str(warehouse),
                    *kafka(kafka_bootstrap, topic_prefix))  # fmt: skip
    assert erase.returncode == 0, erase.stderr
    ingest(kafka_bootstrap, topic_prefix, warehouse, key_file, "--k", "1")

    assert sorted(security_rows(warehouse, sec)) == sorted(on_held_day)  # exactly the held rows stay
    con = duckdb.connect(str(warehouse / "analytics.duckdb"), read_only=True)
    (removed, held, holds, done), *others = con.execute(
        "SELECT rows_removed, rows_held, holds, processed_at FROM erasure_log WHERE request_id = 'req-held'"
    ).fetchall()
    con.close()
    assert others == [] and done is not None
    removed = json.loads(removed)
    assert removed["security.security_events (deleted)"] == 2
    assert removed["state.analytics_events (unlinked)"] == 5
    assert removed["state.consent_changes (unlinked)"] == 1
    # both holds of the rows, in order of name: the same request, the same text
    assert held == 3 and holds == "AUDIT-TEST-0: annual audit; INC-TEST-1: open security incident"
    assert sec not in json.dumps(removed) + str(holds)

    # retention respects a day hold too: with 1 day of retention only held rows stay
    hold_file(
        warehouse / "legal_holds.toml",
        "[[hold]]",
        'name = "AML-TEST-2"',
        'reason = "anti-money-laundering retention"',
        f"from = {T0.date().isoformat()}",
        f"to = {T0.date().isoformat()}",
    )
    before = security_rows(warehouse)
    assert {d for _, d in before} == {T0.date(), T0.date() + timedelta(days=2)}
    # (retention runs with a run's commit: one message to read, a dead letter)
    produce(kafka_bootstrap, topic_prefix, {"beacons.raw": [b"not json"]})
    ingest(kafka_bootstrap, topic_prefix, warehouse, key_file, "--k", "1", "--security-retention-days", "1")
    assert sorted(security_rows(warehouse)) == sorted(r for r in before if r[1] == T0.date())


def test_a_malformed_hold_file_refuses_in_one_line(kafka_bootstrap, topic_prefix, tmp_path, key_file):
    warehouse = tmp_path / "wh"
    warehouse.mkdir()
    hold_file(warehouse / "legal_holds.toml", "[[hold]]", 'name = "x"', 'reason = "y"', 'subjects = ["not-hex"]')
    produce(kafka_bootstrap, topic_prefix, {"beacons.raw": [json.dumps(view(1, "c-1", T0)).encode()]})
    done = seaport("ingest", "--warehouse", str(warehouse), *kafka(kafka_bootstrap, topic_prefix), key=key_file)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "legal holds file" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------------------------- residency


def residency(tmp_path: Path, **stores: str) -> dict:
    declared = {"state": "cn-mainland", "security": "cn-mainland", "kafka": "cn-mainland", "key": "cn-mainland",
                "analytics": "cn-mainland"} | stores  # fmt: skip
    path = tmp_path / "residency.toml"
    path.write_text(
        'allowed_regions = ["cn-mainland"]\n[stores]\n'
        + "".join(f'{k} = "{v}"\n' for k, v in declared.items() if v)
        + '[partners]\nacme = "eu-west-1"\n'
    )
    return {"SEAPORT_RESIDENCY": str(path)}


@pytest.mark.parametrize("store", ["state", "security", "kafka", "key"])
def test_a_personal_store_outside_the_allowed_regions_is_refused_before_anything_is_touched(tmp_path, key_file, store):
    warehouse = tmp_path / "wh"
    env = residency(tmp_path, **{store: "eu-west-1"})
    # an unreachable broker: the refusal must come before any connection
    done = seaport("ingest", "--warehouse", str(warehouse), "--bootstrap", "127.0.0.1:1", key=key_file, extra_env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and f"the {store} store" in done.stderr and "eu-west-1" in done.stderr
    assert not warehouse.exists()
    undeclared = seaport("ingest", "--warehouse", str(warehouse), "--bootstrap", "127.0.0.1:1", key=key_file,
                         extra_env=residency(tmp_path, **{store: ""}))  # fmt: skip
    assert undeclared.returncode == 2 and "no declared region" in undeclared.stderr
    assert not warehouse.exists()


def test_export_copies_aggregates_only_after_a_clean_audit(kafka_bootstrap, topic_prefix, tmp_path, key_file):
    ds, _ = scenario()
    produce(kafka_bootstrap, topic_prefix, ds.messages)
    warehouse = tmp_path / "wh"
    ingest(kafka_bootstrap, topic_prefix, warehouse, key_file, "--k", "1")
    env = residency(tmp_path)
    unknown = seaport("export", "--partner", "nobody", "--to", str(tmp_path / "x"), "--warehouse", str(warehouse),
                      extra_env=env)  # fmt: skip
    assert unknown.returncode == 2 and "no export target named 'nobody'" in unknown.stderr
    assert not (tmp_path / "x").exists()

    out = tmp_path / "out"
    done = seaport("export", "--partner", "acme", "--to", str(out), "--warehouse", str(warehouse), extra_env=env)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "MANIFEST.json").read_text())
    parquet = warehouse / "parquet"
    expected = sorted(str(p.relative_to(parquet)) for p in parquet.rglob("*.parquet") if ".scratch" not in p.parts)
    assert sorted(f["path"] for f in manifest["files"]) == expected and expected
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet")) == expected
    assert manifest["partner"] == "acme" and manifest["region"] == "eu-west-1"
    assert not any(p.name.endswith(".duckdb") for p in out.rglob("*"))  # no store leaves

    # a planted identifier in what would be copied: refused, nothing copied
    planted = phone(random.Random(7))
    day = next((parquet / "page_views_hourly").iterdir())
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * REPLACE ('/p/{planted}' AS page) FROM read_parquet('{day / 'data_0.parquet'}')) "
        f"TO '{day / 'data_0.parquet'}.new' (FORMAT parquet)"
    )
    con.close()
    os.replace(f"{day / 'data_0.parquet'}.new", day / "data_0.parquet")
    refused_to = tmp_path / "refused"
    refused = seaport("export", "--partner", "acme", "--to", str(refused_to), "--warehouse", str(warehouse),
                      extra_env=env)  # fmt: skip
    assert refused.returncode == 1
    assert "nothing was exported" in refused.stderr and planted not in refused.stdout + refused.stderr
    assert not refused_to.exists() or not any(refused_to.iterdir())
    assert not any(p.name.startswith(".export-") for p in tmp_path.iterdir())


# ---------------------------------------------------------------- the audit trail, privileges


def trail_rows(warehouse: Path) -> list[tuple]:
    con = duckdb.connect(str(warehouse / "audit_trail.duckdb"), read_only=True)
    try:
        return con.execute("SELECT seq, command, options, outcome, key_id, policy_version FROM audit_trail").fetchall()
    finally:
        con.close()


def test_audited_commands_leave_chained_entries_and_tampering_is_found(kafka_bootstrap, topic_prefix, tmp_path,
                                                                       key_file):  # fmt: skip
    ds, _ = scenario()
    produce(kafka_bootstrap, topic_prefix, ds.messages)
    warehouse = tmp_path / "wh"
    ingest(kafka_bootstrap, topic_prefix, warehouse, key_file, "--k", "1")
    subject = "o-scenario-never"
    assert seaport("erase", "--openid", subject, "--warehouse", str(warehouse),
                   *kafka(kafka_bootstrap, topic_prefix)).returncode == 0  # fmt: skip
    access = seaport("subject-report", "--openid", "o-scenario-gpc", "--warehouse", str(warehouse), key=key_file)
    assert access.returncode == 0, access.stderr
    assert seaport("report", "security", "--date", T0.date().isoformat(), "--warehouse", str(warehouse)).returncode == 0
    out = tmp_path / "out"
    assert seaport("export", "--partner", "example-partner", "--to", str(out), "--warehouse",
                   str(warehouse)).returncode == 0  # fmt: skip
    refused = seaport("export", "--partner", "nobody", "--to", str(out), "--warehouse", str(warehouse))
    assert refused.returncode == 2

    rows = trail_rows(warehouse)
    assert [r[1] for r in rows] == ["ingest", "erase", "subject-report", "report", "export", "export"]
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5, 6]
    ingest_row, erase_row, access_row = rows[0], rows[1], rows[2]
    key_id = Pseudonymizer.from_key_bytes(key_file.read_bytes()).key_id
    assert ingest_row[4] == key_id and ingest_row[5] and ingest_row[3].startswith("run ")
    assert json.loads(erase_row[2])["openid"] == "(given)" and erase_row[3].startswith("filed request")
    assert access_row[4] == key_id and json.loads(access_row[2])["openid"] == "(given)"
    assert rows[5][3].startswith("refused: no export target")
    assert all(subject not in str(r) and "o-scenario-gpc" not in str(r) for r in rows)
    assert (warehouse / "audit_trail.duckdb").stat().st_mode & 0o777 == 0o600

    check = seaport("audit", "--trail", "--warehouse", str(warehouse))
    assert check.returncode == 0 and "6 entries" in check.stdout, check.stdout + check.stderr

    def tampered(name: str, sql: str) -> subprocess.CompletedProcess:
        copy = tmp_path / name
        copy.mkdir()
        for f in ("audit_trail.duckdb", "audit_trail.head"):
            shutil.copy(warehouse / f, copy / f)
        con = duckdb.connect(str(copy / "audit_trail.duckdb"))
        con.execute(sql)
        con.close()
        return seaport("audit", "--trail", "--warehouse", str(copy))

    edited = tampered("edited", "UPDATE audit_trail SET outcome = 'ok, nothing to see' WHERE seq = 4")
    assert edited.returncode == 1 and "entry 4: its content does not match" in edited.stdout
    removed = tampered("removed", "DELETE FROM audit_trail WHERE seq = 2")
    assert removed.returncode == 1 and "entry 2 is missing" in removed.stdout
    last = tampered("last", "DELETE FROM audit_trail WHERE seq = 6")
    assert last.returncode == 1 and "entries removed at the end" in last.stdout


def test_restricted_stores_are_their_owners_only_and_security_can_live_apart(kafka_bootstrap, topic_prefix,
                                                                             tmp_path, key_file):  # fmt: skip
    ds, _ = scenario()
    produce(kafka_bootstrap, topic_prefix, ds.messages)
    warehouse, security = tmp_path / "wh", tmp_path / "secteam"
    ingest(kafka_bootstrap, topic_prefix, warehouse, key_file, "--k", "1", "--security-dir", str(security))
    assert not (warehouse / "security.duckdb").exists()
    assert (security / "security.duckdb").stat().st_mode & 0o777 == 0o600
    assert security.stat().st_mode & 0o777 == 0o700
    assert (warehouse / "state.duckdb").stat().st_mode & 0o777 == 0o600
    assert len(security_rows(security)) > 10
    report = seaport("report", "security", "--date", T0.date().isoformat(), "--warehouse", str(warehouse),
                     "--security-dir", str(security))  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert (security / "reports" / f"security-{T0.date().isoformat()}.html").exists()
