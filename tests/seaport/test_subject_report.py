"""`seaport subject-report` (R6) on a warehouse built through real Kafka and `seaport ingest`.

One warehouse per module: the consent scenario of test_privacy_e2e plus, for one subject, access
logs, a beacon with a device, an address and an HTML-hostile page, and a dead letter. Counts are
checked against the input messages (and the stores by pseudonym), and the id never comes out.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from seaport.kafka.topics import create_topics
from tests.conftest import PROJECT_DIR
from tests.model import SHANGHAI, Dataset
from tests.pipelines.test_ingest import ingest, produce
from tests.test_privacy_e2e import T0, _iso, scenario, view
from transforms.masking import mask
from transforms.pseudonyms import Pseudonymizer, Purpose

SUBJECT = "o-scenario-granted_before"
MINOR = "o-scenario-minor"  # a minor without a guardian's consent: consent and marks, no events
HOSTILE_PAGE = "/p/<b>&x"
FORMATS = ("text", "json", "html")


@dataclass
class Built:
    ds: Dataset
    prefix: str
    key: Path
    warehouse: Path
    tmp: Path


def _extras(ds: Dataset) -> None:
    """More of SUBJECT: a beacon with a device and an address, two access-log records, a dead letter.
    Addresses are from the documentation ranges; the MAC is a locally administered one."""
    ds.add(
        "beacons.raw",
        view(900, "c-granted_before", T0 + timedelta(minutes=40), openid=SUBJECT, page=HOSTILE_PAGE,
             device={"model": "iPhone15,2", "os": "iOS", "os_version": "17.1", "mac": "02:00:5e:00:53:01"},
             network={"ip": "198.51.100.7", "user_agent": "Mozilla/5.0"}),
    )  # fmt: skip
    for n, ip in enumerate(["203.0.113.5", "203.0.113.9"]):
        ds.add(
            "access_logs.raw",
            {"schema": "access/1", "ts": _iso(T0 + timedelta(minutes=50 + n)), "ip": ip, "method": "GET",
             "path": f"/api/claims/<i>{n}</i>", "status": 200, "bytes": 10, "duration_ms": 3, "user_agent": "curl/8",
             "openid": SUBJECT},
        )  # fmt: skip
    bad = view(901, "c-granted_before", T0, openid=SUBJECT)
    bad["ts"] = "2026-11-23T10:00:00"  # naive: a dead letter that names the subject
    ds.add("beacons.raw", bad)


@pytest.fixture(scope="module")
def built(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Built:
    tmp = tmp_path_factory.mktemp("subject-report")
    ds, _ = scenario()
    _extras(ds)
    prefix = f"r{uuid.uuid4().hex[:8]}."
    create_topics(kafka_bootstrap, prefix)
    produce(kafka_bootstrap, prefix, ds.messages)
    key = tmp / "pseudonym.key"
    key.write_bytes(os.urandom(32))
    warehouse = tmp / "wh"
    ingest(kafka_bootstrap, prefix, warehouse, key, "--k", "1")
    return Built(ds, prefix, key, warehouse, tmp)


def report(built: Built, *args: str, fmt: str = "json", warehouse: Path | None = None) -> subprocess.CompletedProcess:
    env = os.environ | {"SEAPORT_PSEUDONYM_KEY_FILE": str(built.key), "PYTHONPATH": str(PROJECT_DIR)}
    env.pop("SEAPORT_SECURITY_DIR", None)
    command = [sys.executable, "-m", "seaport.cli", "subject-report", *args, "--format", fmt,
               "--warehouse", str(warehouse or built.warehouse)]  # fmt: skip
    # cwd: a temp folder, so that nothing is written into the repository
    return subprocess.run(command, env=env, cwd=built.tmp, capture_output=True, text=True, timeout=60)


def reports(built: Built, openid: str, **kw: Path) -> dict:
    """The report in every format (each exit 0, none naming the id); the JSON one, parsed."""
    out = {}
    for fmt in FORMATS:
        done = report(built, "--openid", openid, fmt=fmt, **kw)
        assert done.returncode == 0, done.stderr
        assert openid.lower() not in (done.stdout + done.stderr).lower(), fmt
        out[fmt] = done.stdout
    parsed = json.loads(out["json"])
    parsed["_text"], parsed["_html"] = out["text"], out["html"]
    return parsed


def messages(ds: Dataset, topic: str) -> list[dict]:
    return [json.loads(m) for m in ds.messages[topic]]


def valid(doc: dict) -> bool:
    return doc["ts"].endswith("Z")  # the only malformed ones here carry a naive ts


def expected(ds: Dataset, openid: str) -> dict:
    """SUBJECT's rows and facts, from the input messages alone."""
    beacons = [b for b in messages(ds, "beacons.raw") if (b.get("user") or {}).get("openid") == openid]
    access = [a for a in messages(ds, "access_logs.raw") if a.get("openid") == openid]
    consent = [c for c in messages(ds, "consent.events") if c["subject"].get("openid") == openid]
    good = [b for b in beacons if valid(b)]
    addresses = [b["network"]["ip"] for b in good if (b.get("network") or {}).get("ip")] + [a["ip"] for a in access]
    prefixes = Counter(str(ipaddress.ip_network(f"{ip}/24", strict=False)) for ip in addresses)

    def granted(b: dict) -> bool:  # consent at the event's own time (R3), no opt-out signal
        before = [c for c in consent if datetime.fromisoformat(c["ts"]) <= datetime.fromisoformat(b["ts"])]
        latest = max(before, key=lambda c: datetime.fromisoformat(c["ts"]), default=None)
        return latest is not None and latest["analytics"] == "granted" and not b.get("opt_out")

    def local_day(doc: dict) -> str:
        return datetime.fromisoformat(doc["ts"]).astimezone(SHANGHAI).date().isoformat()

    def utc_day(doc: dict) -> str:
        return datetime.fromisoformat(doc["ts"]).astimezone(UTC).date().isoformat()

    def days(docs: list[dict]) -> tuple[str, str] | tuple[None, None]:
        local = sorted(datetime.fromisoformat(d["ts"]).astimezone(SHANGHAI).date().isoformat() for d in docs)
        return (local[0], local[-1]) if local else (None, None)

    return {
        "rows": {
            "state.analytics_events": len(good),
            "state.consent_changes": len(consent),
            "state.visitor_days": len({local_day(b) for b in good if granted(b)}),  # kept for retention
            "security.security_events": len(good) + len(access),
            "security.security_anomalies": 0,  # no security report was run
            "security.deadletters": len(beacons) - len(good),
            "security.minor_flags": len(consent),
            "state.subject_days": len({utc_day(b) for b in good}),  # the day index
            "security.subject_days": len({utc_day(d) for d in good + access}),
        },
        "days": {"state.analytics_events": days(good), "security.security_events": days(good + access)},
        "consent": [
            [datetime.fromisoformat(c["ts"]), c["analytics"], bool(c.get("minor") and not c.get("guardian_consent"))]
            for c in consent
        ],
        "pages": Counter(b["page"] for b in good),
        "paths": Counter([b["page"] for b in good] + [a["path"] for a in access]),
        "prefixes": Counter({p.split(".")[0] + ".*.*.*/24": n for p, n in prefixes.items()}),
        "devices": len({b["device"]["mac"] for b in good if b.get("device", {}).get("mac")}),
    }


def stored_rows(built: Built, openid: str, warehouse: Path | None = None) -> dict[str, int]:
    """Rows per restricted table under the subject's pseudonyms, read from the stores directly."""
    p = Pseudonymizer.from_key_bytes(built.key.read_bytes())
    found = {}
    for store, purpose in (("state", Purpose.ANALYTICS), ("security", Purpose.SECURITY)):
        con = duckdb.connect(str((warehouse or built.warehouse) / f"{store}.duckdb"), read_only=True)
        tables = [t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        for table in tables:
            columns = [c for (c,) in con.execute(f"SELECT column_name FROM (DESCRIBE {table})").fetchall()]
            if "subject_pseudonym" in columns and table != "erasures":
                pseudonym = p.pseudonymize(purpose, "openid", openid)
                sql = f"SELECT count(*) FROM {table} WHERE subject_pseudonym = ?"
                found[f"{store}.{table}"] = con.execute(sql, [pseudonym]).fetchall()[0][0]
        con.close()
    return found


def counts(section: dict) -> Counter:
    return Counter({e["value"]: e["count"] for e in section["top"]})


def test_every_count_matches_the_input_messages_and_the_id_never_comes_out(built):
    r = reports(built, SUBJECT)
    want = expected(built.ds, SUBJECT)
    assert {t: v["rows"] for t, v in r["tables"].items()} == want["rows"] == stored_rows(built, SUBJECT)
    assert r["rows_held"] == sum(want["rows"].values()) > 0
    for table, (first, last) in want["days"].items():
        assert (r["tables"][table]["first_day"], r["tables"][table]["last_day"]) == (first, last)
    got = [[datetime.fromisoformat(c["ts"]), c["analytics"], c["minor_without_guardian"]] for c in r["consent_changes"]]
    assert got == want["consent"]
    assert len(r["minor_marks"]) == len(want["consent"])
    assert counts(r["pages"]) == want["pages"] and r["pages"]["distinct"] == len(want["pages"]) == 2
    assert counts(r["paths"]) == want["paths"] and r["paths"]["distinct"] == len(want["paths"])
    assert counts(r["ip_prefixes"]) == want["prefixes"] == Counter({"203.*.*.*/24": 2, "198.*.*.*/24": 1})
    p = Pseudonymizer.from_key_bytes(built.key.read_bytes())
    device = p.pseudonymize(Purpose.SECURITY, "mac", "02:00:5e:00:53:01")
    assert r["devices"]["distinct"] == want["devices"] == 1
    assert r["devices"]["top"] == [{"value": mask(device), "count": 1}]
    assert r["erasure_requests"] == [] and r["legal_holds"] == []
    assert r["subject"] == {
        "kind": "openid",
        "id_masked": mask(SUBJECT),
        "security_pseudonym": p.pseudonymize(Purpose.SECURITY, "openid", SUBJECT),
        "note": r["subject"]["note"],
    }
    assert "legal hold" in r["subject"]["note"] and r["subject"]["security_pseudonym"] in r["_text"]
    # no full address or device pseudonym in any format
    for shown in (r["_text"], r["_html"], json.dumps(r)):
        assert "203.0.113" not in shown and "198.51.100" not in shown and device not in shown
    # the page text is there in the text form, and escaped in HTML
    assert HOSTILE_PAGE in r["_text"]
    assert "/p/&lt;b&gt;&amp;x" in r["_html"] and HOSTILE_PAGE not in r["_html"] and "<i>" not in r["_html"]
    assert "nothing is held" not in r["_text"]


def test_other_subjects_match_their_stores(built):
    found = {openid: reports(built, openid) for openid in (MINOR, "o-scenario-tie_granted")}
    for openid, r in found.items():
        assert {t: v["rows"] for t, v in r["tables"].items()} == stored_rows(built, openid)
        assert r["rows_held"] > 0
    minor = found[MINOR]
    assert minor["tables"]["state.analytics_events"]["rows"] == 0  # a minor without a guardian: no facts
    assert [m["minor_without_guardian"] for m in minor["minor_marks"]] == [True]


def test_a_person_without_data_gets_a_report_that_nothing_is_held(built):
    r = reports(built, "o-test-nobody-00000000000000")
    assert r["rows_held"] == 0 and all(t["rows"] == 0 for t in r["tables"].values())
    assert r["summary"] == "nothing is held about this person"
    assert "nothing is held" in r["_text"] and r["_text"].count("nothing") >= 10  # every section says so
    done = report(built, "--anonymous-id", "c-nobody-at-all", fmt="text")
    assert done.returncode == 0 and "nothing is held about this person" in done.stdout


def test_after_erasure_only_the_erasure_record_and_the_held_rows_remain(built, kafka_bootstrap, tmp_path):
    warehouse = tmp_path / "erased"
    shutil.copytree(built.warehouse, warehouse)  # the module's warehouse stays as it was
    p = Pseudonymizer.from_key_bytes(built.key.read_bytes())
    held = p.pseudonymize(Purpose.SECURITY, "openid", SUBJECT)
    (warehouse / "legal_holds.toml").write_text(
        f'[[hold]]\nname = "INC-TEST-1"\nreason = "test incident <kept>"\nsubjects = ["{held}"]\n'
    )
    before = reports(built, SUBJECT, warehouse=warehouse)
    assert before["legal_holds"][0]["rows_kept"] == before["tables"]["security.security_events"]["rows"] > 0
    other = "o-scenario-minor_guardian"  # erased without a hold; has minor marks
    assert reports(built, other, warehouse=warehouse)["rows_held"] > 0
    for openid in (SUBJECT, other):
        erase = subprocess.run(
            [sys.executable, "-m", "seaport.cli", "erase", "--openid", openid, "--bootstrap", kafka_bootstrap,
             "--topic-prefix", built.prefix, "--warehouse", str(warehouse)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert erase.returncode == 0, erase.stderr
    ingest(kafka_bootstrap, built.prefix, warehouse, built.key, "--k", "1")

    gone = reports(built, other, warehouse=warehouse)
    assert gone["rows_held"] == 0 and gone["legal_holds"] == []
    assert gone["summary"] == "nothing is held about this person (apart from the erasure record)"
    assert len(gone["erasure_requests"]) == 1 and gone["erasure_requests"][0]["processed_at"]
    assert gone["erasure_requests"][0]["due_by"] > gone["erasure_requests"][0]["requested_at"][:10]
    assert "replays" in gone["erasure_note"] and "replays" in gone["_text"]

    kept = reports(built, SUBJECT, warehouse=warehouse)
    rows = {t: v["rows"] for t, v in kept["tables"].items() if v["rows"]}
    want = expected(built.ds, SUBJECT)["rows"]["security.security_events"]
    held_days = expected(built.ds, SUBJECT)["rows"]["security.subject_days"]  # the index of the held rows
    assert (
        rows
        == {"security.security_events": want, "security.subject_days": held_days}
        == {t: n for t, n in stored_rows(built, SUBJECT, warehouse).items() if n}
    )
    assert kept["legal_holds"] == [
        {"name": "INC-TEST-1", "reason": "test incident <kept>", "names_subject": True, "in_force": True,
         "rows_kept": want}
    ]  # fmt: skip
    assert len(kept["erasure_requests"]) == 1
    assert "INC-TEST-1" in kept["_text"] and "test incident &lt;kept&gt;" in kept["_html"]


def test_a_warehouse_in_use_or_missing_is_one_line(built, tmp_path):
    writer = duckdb.connect(str(built.warehouse / "state.duckdb"))  # a writer holds the file's lock
    try:
        done = report(built, "--openid", SUBJECT, fmt="text")
    finally:
        writer.close()
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "in use" in done.stderr and "try again" in done.stderr
    done = report(built, "--openid", SUBJECT, fmt="text", warehouse=tmp_path / "none")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "no warehouse folder" in done.stderr
    assert SUBJECT not in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--openid", "  "],
        ["--openid", "o-bad\x07id-0000"],
        ["--anonymous-id", "c-bad\tid"],
        ["--openid", SUBJECT, "--format", "xml"],
    ],
)
def test_bad_input_is_a_usage_error_of_one_line(tmp_path, args):
    env = os.environ | {"PYTHONPATH": str(PROJECT_DIR)}
    done = subprocess.run(
        [sys.executable, "-m", "seaport.cli", "subject-report", *args, "--warehouse", str(tmp_path)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "bad" not in done.stderr and SUBJECT not in done.stderr  # the id is never repeated
    assert ("--format" if "xml" in args else "--") in done.stderr
