"""`seaport simulate`: deterministic, realistic traffic with every fault the pipeline must survive."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from schemas.models import MAX_MESSAGE_BYTES, TOPIC_MODELS, AccessLog, Beacon, ConsentChange
from seaport import cli
from seaport.devtools.simulate import Traffic, out_paths, simulate

START = date(2026, 11, 24)
HOUR = timedelta(hours=1)


def parse(topic: str, line: bytes):
    """The validated model of a line, or None when the pipeline must reject it."""
    if len(line) > MAX_MESSAGE_BYTES:
        return None
    try:
        return TOPIC_MODELS[topic].model_validate_json(line)
    except ValidationError:
        return None


@pytest.fixture(scope="module")
def traffic() -> Traffic:
    return simulate(200, 2, 11, START)


@pytest.fixture(scope="module")
def beacons(traffic: Traffic) -> list[Beacon]:
    return [b for b in (parse("beacons.raw", line) for line in traffic.beacons) if b is not None]


@pytest.fixture(scope="module")
def access_logs(traffic: Traffic) -> list[AccessLog]:
    return [a for a in (parse("access_logs.raw", line) for line in traffic.access_logs) if a is not None]


@pytest.fixture(scope="module")
def consent(traffic: Traffic) -> list[ConsentChange]:
    return [ConsentChange.model_validate_json(line) for line in traffic.consent]


def test_same_arguments_give_the_same_bytes() -> None:
    assert simulate(40, 2, 5, START) == simulate(40, 2, 5, START)
    assert simulate(40, 2, 5, START).beacons != simulate(40, 2, 6, START).beacons


def test_only_the_deliberately_malformed_lines_fail_validation(traffic: Traffic) -> None:
    for topic, lines in traffic.by_topic().items():
        invalid = sum(parse(topic, line) is None for line in lines)
        assert invalid == traffic.malformed[topic], topic
    assert traffic.malformed["beacons.raw"] >= 12  # every kind at least once at the default rate
    assert traffic.malformed["access_logs.raw"] > 0


def test_malformed_beacons_cover_every_kind(traffic: Traffic) -> None:
    bad = [line for line in traffic.beacons if parse("beacons.raw", line) is None]
    reasons = set()
    for line in bad:
        if len(line) > MAX_MESSAGE_BYTES:
            reasons.add("oversize")
            continue
        try:
            Beacon.model_validate_json(line)
        except ValidationError as e:
            err = e.errors()[0]
            reasons.add((err["type"], ".".join(map(str, err["loc"]))))
    kinds = {r if isinstance(r, str) else r[0] for r in reasons}
    assert {"oversize", "json_invalid", "model_type", "literal_error", "missing", "int_parsing"} <= kinds
    assert "timezone_aware" in kinds  # a naive timestamp
    assert "value_error" in kinds  # a click without element
    assert b"{}" in bad
    assert any(line.startswith(b"[") for line in bad)


def test_beacons_are_realistic(beacons: list[Beacon]) -> None:
    kinds = Counter(b.event for b in beacons)
    assert set(kinds) == {"page_view", "click", "page_leave", "app_launch"}
    assert kinds["page_view"] > kinds["app_launch"] > 0
    assert all(b.element for b in beacons if b.event == "click")
    assert all(b.duration_ms is not None for b in beacons if b.event == "page_leave")
    assert {"/home", "/policy/query", "/claims/new", "/products/auto?tab=compare"} <= {b.page for b in beacons}
    signed_in = [b.user for b in beacons if b.user is not None]
    assert len(signed_in) > len(beacons) // 3
    assert all(re.fullmatch(r"o[\w-]{27}", u.openid or "") for u in signed_in)
    assert {u.city for u in signed_in} >= {"Shanghai", "Beijing"}
    assert all(b.anonymous_id.startswith("c-") for b in beacons)
    models = {b.device.model for b in beacons if b.device and b.device.model}
    assert any(m.startswith("iPhone") for m in models) and any(m.startswith("HUAWEI") for m in models)
    agents = " ".join({b.network.user_agent or "" for b in beacons if b.network})
    assert "MicroMessenger" in agents and "Chrome/" in agents and "Safari/" in agents


def test_some_pages_leak_a_phone_or_an_email_in_the_query(beacons: list[Beacon]) -> None:
    pages = {b.page for b in beacons}
    assert any(re.search(r"phone=1\d{10}\b", p) for p in pages)
    assert any(re.search(r"email=[a-z0-9]+@[a-z0-9]+\.com", p) for p in pages)


def test_visits_follow_the_shanghai_day(beacons: list[Beacon]) -> None:
    hours = Counter(b.ts.astimezone(ZoneInfo("Asia/Shanghai")).hour for b in beacons)
    assert hours[10] + hours[20] > 3 * (hours[3] + hours[4])


def test_visitors_share_an_anonymous_id_before_signing_in(beacons: list[Beacon]) -> None:
    openids_by_cookie = defaultdict(set)
    anonymous_before = set()
    for b in beacons:
        if b.user is not None:
            openids_by_cookie[b.anonymous_id].add(b.user.openid)
        else:
            anonymous_before.add(b.anonymous_id)
    shared = [c for c, ids in openids_by_cookie.items() if len(ids) > 1]
    assert shared and set(shared) & anonymous_before


def test_duplicates_are_exact_resends(traffic: Traffic, beacons: list[Beacon]) -> None:
    resent = Counter(line for line in traffic.beacons if parse("beacons.raw", line) is not None)
    repeated = [line for line, n in resent.items() if n > 1]
    assert len(repeated) >= 0.005 * len(beacons)
    ids = Counter(b.event_id for b in beacons)
    assert sum(n - 1 for n in ids.values()) == sum(resent[line] - 1 for line in repeated)


def test_late_events_arrive_hours_after_their_neighbours(beacons: list[Beacon]) -> None:
    latest, late = beacons[0].ts, 0
    for b in beacons:
        late += b.ts < latest - HOUR
        latest = max(latest, b.ts)
    assert late >= 0.01 * len(beacons)
    assert all(b.received_at is not None and b.received_at >= b.ts for b in beacons)


def test_consent_has_grants_withdrawals_regrants_and_minors(
    consent: list[ConsentChange], beacons: list[Beacon]
) -> None:
    history = defaultdict(list)
    for c in consent:
        history[c.subject.value].append(c)
    assert [c.ts for c in consent] == sorted(c.ts for c in consent)
    sequences = {tuple(c.analytics for c in changes) for changes in history.values()}
    assert ("granted", "withdrawn", "granted") in sequences and ("granted", "withdrawn") in sequences
    minors = [c for c in consent if c.minor]
    assert {c.guardian_consent for c in minors} == {True, False, None}
    assert any(c.subject.anonymous_id for c in consent) and any(c.subject.openid for c in consent)
    first_event, last_event = {}, {}
    for b in beacons:
        s = (b.user.openid if b.user and b.user.openid else None) or b.anonymous_id  # the subject (policy)
        first_event[s] = min(first_event.get(s, b.ts), b.ts)
        last_event[s] = max(last_event.get(s, b.ts), b.ts)
    grants = [c for c in consent if c.analytics == "granted" and c.subject.value in first_event]
    assert any(c.ts < first_event[c.subject.value] for c in grants)
    assert any(c.ts > last_event[c.subject.value] for c in grants)
    assert any(first_event[c.subject.value] < c.ts < last_event[c.subject.value] for c in grants)


def test_erasure_requests_name_known_subjects(traffic: Traffic, beacons: list[Beacon]) -> None:
    subjects = {(b.user.openid if b.user and b.user.openid else None) or b.anonymous_id for b in beacons}
    requests = [TOPIC_MODELS["erasure.requests"].model_validate_json(line) for line in traffic.erasures]
    assert len(requests) == 2 and all(r.subject.value in subjects for r in requests)


def test_access_logs_are_realistic_and_hold_no_unlabelled_attack(access_logs: list[AccessLog]) -> None:
    statuses = Counter(a.status for a in access_logs)
    assert statuses[200] > statuses[404] > 0 and any(s >= 500 for s in statuses)
    # attacks come labelled from `--attacks`; one here would be a false finding in `eval security`
    failed_logins = Counter(a.ip for a in access_logs if a.path == "/api/login" and a.status == 401)
    assert max(failed_logins.values(), default=0) < 20


def test_cli_out_writes_the_beacons_to_file_and_the_other_topics_beside_it(tmp_path, capsys) -> None:
    out = tmp_path / "traffic.jsonl"
    args = ["simulate", "--users", "120", "--days", "1", "--seed", "4", "--start", "2026-11-24"]
    assert cli.main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    expected = simulate(120, 1, 4, START).by_topic()
    for topic, path in out_paths(out).items():
        assert path.name == ("traffic.jsonl" if topic == "beacons.raw" else f"traffic.{topic}.jsonl")
        assert path.read_bytes() == b"".join(line + b"\n" for line in expected[topic])
        assert f"{path}\t{len(expected[topic])} lines" in printed
    assert not re.search(r"\bo[\w-]{27}\b|c-[0-9a-f]{16}|\d+\.\d+\.\d+\.\d+", printed)


def test_cli_help_and_bad_input(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["simulate", "--help"])
    assert exit_.value.code == 0
    helptext = capsys.readouterr().out
    for option in ("--users", "--days", "--seed", "--start", "--out", "--malformed-rate", "--topic-prefix"):
        assert option in helptext
    assert cli.main(["simulate", "--users", "0", "--out", "unused.jsonl"]) == 2
    assert cli.main(["simulate", "--late-rate", "1.5", "--out", "unused.jsonl"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and err.startswith("seaport simulate: error:")
