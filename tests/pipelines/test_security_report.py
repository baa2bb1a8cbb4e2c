"""`seaport report security` on real DuckDB files: incidents against baselines, idempotent, masked (R5, R11).

The detectors themselves are tested on hand-made days in test_security_detectors.py."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import duckdb
import pytest

from seaport.cli import main
from sinks.warehouse import Warehouse
from tests.helpers import hold_write_lock
from tests.security_days import ATTACK_DAY, Ev, Store, Town, at, prefix, pseudonym
from transforms.masking import mask

DAY = ATTACK_DAY


@pytest.fixture
def rng() -> random.Random:
    return random.Random(20261124)


# --- the pipeline, on a real DuckDB warehouse -------------------------------------------------------


@pytest.fixture
def attacked_warehouse(tmp_path: Path, rng: random.Random) -> dict:
    """Seven quiet days, then a day with a planted brute force and scan carrying raw-IP canaries."""
    town = Town.make(7)
    store = Store(tmp_path / "security.duckdb")
    store.add(town.days(DAY, 7) + town.day(DAY))
    canary_ip = f"198.51.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    attacker = prefix(rng)
    rows = []
    # raw IPs in a path's query string and in the user agent: neither may leave the warehouse
    for i in range(30):
        rows.append(Ev(at(DAY, 0, 30), "access", None, None, attacker, f"/login?client_ip={canary_ip}", "401", "POST",
                       f"curl {canary_ip}"))  # fmt: skip
        rows.append(Ev(at(DAY, 23, 59), "access", None, None, attacker, f"/scan/{i}?from={canary_ip}", "404", "GET",
                       f"curl {canary_ip}"))  # fmt: skip
    # just outside the Shanghai day on both sides: must not count
    other = prefix(rng)
    rows += [Ev(at(DAY - dt.timedelta(days=1), 23, 59), "access", None, None, other, "/login", "401", "POST")] * 30
    rows += [Ev(at(DAY + dt.timedelta(days=1), 0, 0), "access", None, None, other, "/login", "401", "POST")] * 30
    store.add(rows)
    store.close()
    return {"warehouse": tmp_path, "people": town.people, "attacker": attacker, "canary_ip": canary_ip}


def run_report(warehouse: Path, *extra: str) -> int:
    return main(["report", "security", "--date", DAY.isoformat(), "--warehouse", str(warehouse), *extra])


def anomaly_rows(warehouse: Path) -> list[tuple]:
    con = duckdb.connect(str(warehouse / "security.duckdb"), read_only=True)
    try:
        return con.execute(
            "SELECT day, kind, subject_pseudonym, score, details FROM security_anomalies ORDER BY kind, details"
        ).fetchall()
    finally:
        con.close()


def test_report_finds_planted_attack_and_is_idempotent(attacked_warehouse: dict, capsys) -> None:
    warehouse = attacked_warehouse["warehouse"]
    assert run_report(warehouse) == 0
    report = warehouse / "reports" / f"security-{DAY.isoformat()}.html"
    assert str(report) in capsys.readouterr().out
    first = anomaly_rows(warehouse)
    # one incident: the brute force and the scan from the same prefix are merged
    [(day, kind, _, score, details)] = first
    details = json.loads(details)
    assert (day, kind, details["ip_prefix"]) == (DAY, "brute_force", attacked_warehouse["attacker"])
    assert details["failed_logins"] == 30  # the neighbours' days did not leak in
    assert "scanning" in [r["kind"] for r in details["related"]] and score >= 1
    assert "30 failed logins" in details["evidence"] and "30 distinct missing paths" in details["evidence"]

    assert run_report(warehouse) == 0
    assert anomaly_rows(warehouse) == first

    # the day's events change (e.g. an erasure): a re-run replaces the day's findings, not adds to them
    con = duckdb.connect(str(warehouse / "security.duckdb"))
    con.execute("DELETE FROM security_events WHERE page_or_path LIKE '/scan/%'")
    con.close()
    assert run_report(warehouse) == 0
    [(_, kind, _, _, details)] = anomaly_rows(warehouse)
    assert kind == "brute_force" and "related" not in json.loads(details)


def test_report_holds_no_raw_identifier(attacked_warehouse: dict) -> None:
    warehouse = attacked_warehouse["warehouse"]
    people = attacked_warehouse["people"]
    shared = people[0]
    # make one subject anomalous (on twelve devices) so a pseudonym appears in the report
    store = Store(warehouse / "security.duckdb")
    store.n = 10**6
    store.add([Ev(at(DAY, 12), "beacon", shared.subject, pseudonym(random.Random(i)), f"10.9.{i}.0/24", "/x", "click")
               for i in range(12)])  # fmt: skip
    store.close()
    assert run_report(warehouse) == 0
    html = (warehouse / "reports" / f"security-{DAY.isoformat()}.html").read_text(encoding="utf-8")
    canary = attacked_warehouse["canary_ip"]
    assert canary not in html
    assert all(canary not in row[4] for row in anomaly_rows(warehouse))
    assert attacked_warehouse["attacker"] in html  # prefixes are what the security team works with
    assert mask(shared.subject) in html  # R5: masked on display…
    assert all(p.subject not in html and p.device not in html for p in people)  # …never whole
    assert shared.subject in {row[2] for row in anomaly_rows(warehouse)}  # the restricted table keeps it


@pytest.fixture
def empty_warehouse(tmp_path: Path) -> Path:
    """A warehouse as `seaport ingest` leaves it before any message arrived."""
    Warehouse(tmp_path).close()
    return tmp_path


def test_day_without_data_gives_empty_report(empty_warehouse: Path, capsys) -> None:
    assert run_report(empty_warehouse) == 0
    html = (empty_warehouse / "reports" / f"security-{DAY.isoformat()}.html").read_text(encoding="utf-8")
    assert "no data yet" in html
    assert anomaly_rows(empty_warehouse) == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--date", "2026-13-01"], "--date must be a calendar date"),
        (["--date", "yesterday"], "--date must be a calendar date"),
        (["--date", "20261124"], "--date must be a calendar date"),
        (["--date", "2026-11-24", "--timezone", "Mars/Olympus"], "unknown --timezone"),
    ],
)
def test_bad_input_is_one_line_error(empty_warehouse: Path, capsys, argv: list[str], message: str) -> None:
    assert main(["report", "security", "--warehouse", str(empty_warehouse), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("seaport report: error: ") and message in err


def test_bad_option_value_is_one_line_usage_error(empty_warehouse: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        run_report(empty_warehouse, "--baseline-days", "0")
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "--baseline-days: must be a whole number above 0" in err


def test_store_locked_by_another_process_is_one_line_error(tmp_path: Path, capsys) -> None:
    holder = hold_write_lock(tmp_path / "security.duckdb")
    try:
        assert run_report(tmp_path) == 2
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot open security.duckdb" in err


def test_missing_warehouse_is_one_line_error(tmp_path: Path, capsys) -> None:
    assert run_report(tmp_path / "nowhere") == 2
    assert "does not exist" in capsys.readouterr().err


def test_report_renders_in_headless_chromium_without_console_errors(attacked_warehouse: dict, browser) -> None:
    warehouse = attacked_warehouse["warehouse"]
    assert run_report(warehouse) == 0
    page = warehouse / "reports" / f"security-{DAY.isoformat()}.html"
    browser.get(page.as_uri())
    assert browser.title == f"Security anomalies — {DAY.isoformat()}"
    findings = browser.find_elements("css selector", "li.finding")
    assert (
        len(findings) == 1 and "brute_force" in findings[0].text and attacked_warehouse["attacker"] in findings[0].text
    )
    assert browser.find_elements("css selector", "svg polyline")  # the day against its baseline
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
