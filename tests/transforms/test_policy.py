"""The field policy (R1-R4): validated on load, and the only thing deciding what a row holds."""

from __future__ import annotations

import json
import os
import pickle
import random
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.models import AccessLog, Beacon, ConsentChange, ErasureRequest
from seaport.errors import SeaportError
from transforms.policy import ANALYTICS_COLUMNS, POLICY_PATH, SECURITY_COLUMNS, FieldPolicy, redactions_of_event
from transforms.pseudonyms import Pseudonymizer, Purpose

RNG = random.Random(3)
P = Pseudonymizer.from_key_bytes(RNG.randbytes(32))
POLICY = FieldPolicy.load()
POLICY_TEXT = POLICY_PATH.read_text(encoding="utf-8")


# Per-message oracles over `FieldPolicy.protect_many`, which the pipeline calls on whole batches:
# one message's row under each purpose, and what redaction removed from it.
def _row(policy: FieldPolicy, kind: str, purpose: Purpose, message, p: Pseudonymizer) -> tuple[dict, list[str]]:
    cols, found = policy.protect_many(kind, purpose, [message], p)
    return {c: values[0] for c, values in cols.items()}, found.get(0, [])


def protect_beacon(policy: FieldPolicy, b: Beacon, p: Pseudonymizer) -> tuple[dict, dict, Counter]:
    analytics, found_analytics = _row(policy, "beacon", Purpose.ANALYTICS, b, p)
    security, found_security = _row(policy, "beacon", Purpose.SECURITY, b, p)
    return analytics, security, redactions_of_event(found_analytics, found_security)


def protect_access(policy: FieldPolicy, a: AccessLog, p: Pseudonymizer) -> tuple[dict, Counter]:
    security, found = _row(policy, "access", Purpose.SECURITY, a, p)
    return security, Counter(found)


def protect_consent(policy: FieldPolicy, c: ConsentChange, p: Pseudonymizer) -> tuple[dict, dict]:
    return _row(policy, "consent", Purpose.ANALYTICS, c, p)[0], _row(policy, "consent", Purpose.SECURITY, c, p)[0]


def protect_erasure(policy: FieldPolicy, e: ErasureRequest, p: Pseudonymizer) -> tuple[dict, dict]:
    return _row(policy, "erasure", Purpose.ANALYTICS, e, p)[0], _row(policy, "erasure", Purpose.SECURITY, e, p)[0]


def token(prefix: str, n: int, alphabet: str = "abcdefghijkmnpqrstuvwxyz0123456789") -> str:
    return prefix + "".join(RNG.choices(alphabet, k=n))


def identifiers() -> dict[str, str]:
    """A made-up person, fresh per call: none of it may appear in a row."""
    mac = ":".join(f"{RNG.randrange(256):02x}" for _ in range(6))
    return {
        "openid": token("o", 27, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"),
        "unionid": token("u", 27),
        "anonymous_id": token("c-", 10),
        "session_id": token("s-", 8),
        "nickname": token("nick", 6),
        "avatar_url": token("https://img.example/", 12),
        "mac": mac,
        "ip": f"{RNG.randrange(1, 223)}.{RNG.randrange(256)}.{RNG.randrange(256)}.{RNG.randrange(1, 255)}",
        "phone": f"1{RNG.choice('3456789')}{RNG.randrange(10**9):09d}",
    }


def beacon(ids: dict[str, str], signed_in: bool = True, **changes) -> Beacon:
    message = {
        "schema": "beacon/1",
        "event_id": token("e-", 12),
        "event": "click",
        "ts": "2026-11-24T08:15:30.123+08:00",
        "anonymous_id": ids["anonymous_id"],
        "session_id": ids["session_id"],
        "page": f"/policy/query?utm_source=wx&phone={ids['phone']}&x=1#frag",
        "referrer": f"/home?openid={ids['openid']}",
        "element": f"call {ids['phone']}",
        "user": {
            "openid": ids["openid"],
            "unionid": ids["unionid"],
            "nickname": ids["nickname"],
            "avatar_url": ids["avatar_url"],
            "gender": "female",
            "country": "CN",
            "city": "Shanghai",
            "language": "zh_CN",
        }
        if signed_in
        else None,
        "device": {"model": "iPhone15,2", "mac": ids["mac"], "os": "iOS", "os_version": "17.1.2"},
        "network": {
            "ip": ids["ip"],
            "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
        },
        "unknown_field": ids["phone"],  # not in the schema: must never pass through
        **changes,
    }
    return Beacon.model_validate(message)


def assert_no_identifier(row: dict, ids: dict[str, str]) -> None:
    text = repr(row).lower()
    for name, value in ids.items():
        assert value.lower() not in text, name
        assert value.replace(":", "").lower() not in text, name


def test_beacon_rows_have_the_agreed_columns_and_no_identifier():
    ids = identifiers()
    analytics, security, counts = protect_beacon(POLICY, beacon(ids), P)
    assert tuple(analytics) == ANALYTICS_COLUMNS
    assert tuple(security) == SECURITY_COLUMNS
    assert_no_identifier(analytics, ids)
    assert_no_identifier(security, ids)
    assert analytics["page"] == "/policy/query?utm_source=wx"
    assert analytics["element"] == "call [phone]"
    # the security copy drops query values too: a form can put anything there, shaped like nothing
    assert security["page_or_path"] == "/policy/query?utm_source=wx"
    assert counts["phone"] == 2  # in the page (counted once for both rows) and in the element
    assert analytics["ts"] == datetime(2026, 11, 24, 0, 15, 30, 123000, tzinfo=UTC)
    assert security["event_time"] == analytics["ts"]
    assert (analytics["os_version_major"], analytics["device_model"], analytics["os"]) == ("17", "iPhone15,2", "iOS")
    assert security["ip_prefix"] == ".".join(ids["ip"].split(".")[:3]) + ".0/24"
    assert security["user_agent"] == "Safari 17"
    assert (security["source"], security["event_or_status"], security["method"]) == ("beacon", "click", None)
    for row in (analytics, security):
        assert row["policy_version"] == POLICY.version and row["key_id"] == P.key_id


def test_subject_is_openid_when_signed_in_else_anonymous_id():
    ids = identifiers()
    for signed_in in (True, False):
        b = beacon(ids, signed_in=signed_in)
        analytics, security, _ = protect_beacon(POLICY, b, P)
        subject = ("openid", ids["openid"]) if signed_in else ("anonymous_id", ids["anonymous_id"])
        assert POLICY.subject_of("beacon", b.model_dump(mode="json", by_alias=True)) == subject
        assert analytics["subject_pseudonym"] == P.pseudonymize(Purpose.ANALYTICS, *subject)
        assert security["subject_pseudonym"] == P.pseudonymize(Purpose.SECURITY, *subject)
        assert analytics["subject_pseudonym"] != security["subject_pseudonym"]  # can't be joined (R1)
        assert analytics["session_pseudonym"] == P.pseudonymize(Purpose.ANALYTICS, "session_id", ids["session_id"])
    anonymous, _, _ = protect_beacon(POLICY, beacon(ids, signed_in=False), P)
    assert [anonymous[c] for c in ("gender", "country", "city", "language")] == [None] * 4


def test_consent_gated_columns_follow_the_policy():
    assert POLICY.consent_gated_columns() == ["gender", "country", "city", "language"]
    analytics, _, _ = protect_beacon(POLICY, beacon(identifiers()), P)
    assert [analytics[c] for c in POLICY.consent_gated_columns()] == ["female", "CN", "Shanghai", "zh_CN"]


def test_one_device_one_pseudonym_whatever_the_mac_notation():
    ids = identifiers()
    colon = protect_beacon(POLICY, beacon(ids), P)[1]["device_pseudonym"]
    dashed = dict(ids, mac=ids["mac"].replace(":", "-").upper())
    assert protect_beacon(POLICY, beacon(dashed), P)[1]["device_pseudonym"] == colon
    assert colon == P.pseudonymize(Purpose.SECURITY, "mac", ids["mac"])


def test_access_log_subject_is_openid_else_client_address():
    ids = identifiers()
    record = {
        "schema": "access/1",
        "ts": "2026-11-24T00:00:01Z",
        "ip": ids["ip"],
        "method": "GET",
        "path": f"/api/user?mobile={ids['phone']}&openid={ids['openid']}&user=canary-{ids['openid'][:6]}-x",
        "status": 404,
        "user_agent": "curl/8.4.0",
    }
    row, counts = protect_access(POLICY, AccessLog.model_validate(record), P)
    assert tuple(row) == SECURITY_COLUMNS
    assert_no_identifier(row, ids)
    assert row["subject_pseudonym"] == P.pseudonymize(Purpose.SECURITY, "ip", ids["ip"])
    assert (row["event_id"], row["source"], row["event_or_status"], row["method"]) == (None, "access", "404", "GET")
    assert row["page_or_path"] == "/api/user"  # no query value, of whatever shape, is kept
    assert counts == {"phone": 1, "openid": 1}
    assert row["user_agent"] == "curl 8"
    signed = protect_access(POLICY, AccessLog.model_validate({**record, "openid": ids["openid"]}), P)[0]
    assert signed["subject_pseudonym"] == P.pseudonymize(Purpose.SECURITY, "openid", ids["openid"])


def test_consent_and_erasure_rows_carry_each_purposes_pseudonym():
    ids = identifiers()
    change = ConsentChange.model_validate(
        {
            "schema": "consent/1",
            "ts": "2026-11-24T08:00:00Z",
            "subject": {"openid": ids["openid"]},
            "analytics": "granted",
        }
    )
    analytics, security = protect_consent(POLICY, change, P)
    assert analytics["subject_pseudonym"] == P.pseudonymize(Purpose.ANALYTICS, "openid", ids["openid"])
    assert security["subject_pseudonym"] == P.pseudonymize(Purpose.SECURITY, "openid", ids["openid"])
    assert (analytics["analytics"], analytics["minor"], analytics["guardian_consent"]) == ("granted", False, None)
    erasure = ErasureRequest.model_validate(
        {"schema": "erasure/1", "ts": "2026-11-25T00:00:00Z", "subject": {"anonymous_id": ids["anonymous_id"]},
         "request_id": "r-1"}
    )  # fmt: skip
    a, s = protect_erasure(POLICY, erasure, P)
    assert a["subject_pseudonym"] == P.pseudonymize(Purpose.ANALYTICS, "anonymous_id", ids["anonymous_id"])
    assert s["subject_pseudonym"] == P.pseudonymize(Purpose.SECURITY, "anonymous_id", ids["anonymous_id"])
    assert a["request_id"] == "r-1"
    for row in (analytics, security, a, s):
        assert_no_identifier(row, ids)


def test_policy_and_pseudonymizer_survive_pickling():
    ids = identifiers()
    b = beacon(ids)
    expected = protect_beacon(POLICY, b, P)
    assert protect_beacon(pickle.loads(pickle.dumps(POLICY)), b, pickle.loads(pickle.dumps(P))) == expected


GOLDEN = Path(__file__).parents[1] / "golden" / "field_policy.compiled.txt"


def test_what_every_rule_compiles_to_is_the_golden_file():
    """The compiled policy, step by step: a change to a rule shows here as a reviewed diff
    (regenerate with SEAPORT_REGENERATE_GOLDEN=1)."""
    lines = POLICY.compiled()
    if os.environ.get("SEAPORT_REGENERATE_GOLDEN"):
        GOLDEN.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert lines == GOLDEN.read_text(encoding="utf-8").splitlines()
    assert "beacon security: device.mac -> device_pseudonym by pseudonymize:mac normalized by mac" in lines
    assert "beacon analytics: anonymous_id -> subject_pseudonym by pseudonymize:anonymous_id fallback" in lines


def test_the_pseudonym_kind_is_the_rules_not_the_fields_name(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(edited('security = "pseudonymize:mac -> device_pseudonym"',
                           'security = "pseudonymize:device -> device_pseudonym"'), encoding="utf-8")  # fmt: skip
    ids = identifiers()
    device = protect_beacon(FieldPolicy.load(path), beacon(ids), P)[1]["device_pseudonym"]
    assert device == P.pseudonymize(Purpose.SECURITY, "device", ids["mac"].lower())
    assert device != protect_beacon(POLICY, beacon(ids), P)[1]["device_pseudonym"]
    assert (
        POLICY.pseudonym(P, Purpose.SECURITY, "mac", ids["mac"].upper().replace(":", "-"))
        == (protect_beacon(POLICY, beacon(ids), P)[1]["device_pseudonym"])
    )


# --- validation: a broken policy stops everything before a message is read ---------------------


def edited(old: str, new: str) -> str:
    assert old in POLICY_TEXT, old
    return POLICY_TEXT.replace(old, new, 1)


def without_rule(header: str) -> str:
    """The policy text with the table `header` removed."""
    return re.sub(rf"\n\[{re.escape(header)}\]\n(?:[^\[\n][^\n]*\n|\n)*", "\n", POLICY_TEXT, count=1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (without_rule("beacon.user.city"), "field beacon.user.city has no rule"),
        (without_rule("access.referrer"), "field access.referrer has no rule"),
        (without_rule("beacon.received_at"), "field beacon.received_at has no rule"),
        (without_rule("consent.subject.anonymous_id"), "field consent.subject.anonymous_id has no rule"),
        (
            edited('security = "generalize:ip_prefix -> ip_prefix"  #', 'security = "hash -> ip_prefix"  #'),
            "beacon.network.ip: unknown action 'hash -> ip_prefix'",
        ),
        (
            edited('analytics = "generalize:os_major -> os_version_major"', 'analytics = "generalize:round -> os"'),
            "beacon.device.os_version: unknown action 'generalize:round -> os'",
        ),
        (
            edited('[beacon.referrer]\ncategory = "content"', '[beacon.referrer]\ncategory = "public"'),
            "unknown category",
        ),
        (
            POLICY_TEXT + '\n[beacon.user.phone]\ncategory = "sensitive"\ncollected_for = "analytics"\n'
            'analytics = "drop"\nsecurity = "drop"\n',
            "rule for beacon.user.phone, which is not a field",
        ),  # fmt: skip
        (
            edited(
                '[beacon.referrer]\ncategory = "content"\n',
                '[beacon.referrer]\ncategory = "content"\nmarketing = "keep"\n',
            ),
            "beacon.referrer: unknown key(s) marketing",
        ),  # fmt: skip
        (
            edited('analytics = "drop"  # no analytical use', 'analytics = "keep -> city"  # no analytical use'),
            "beacon.user.nickname: a direct identifier is never kept in clear text",
        ),
        (
            edited('analytics = "generalize:redact -> device_model"', 'analytics = "keep -> model_name"'),
            "unknown column 'model_name'",
        ),
        (
            edited('analytics = "generalize:redact -> device_model"', 'analytics = "keep -> key_id"'),
            "unknown column 'key_id'",
        ),
        (
            edited(
                '[beacon.anonymous_id]\ncategory = "direct_identifier"\ncollected_for = "security"\nfallback = true',
                '[beacon.anonymous_id]\ncategory = "direct_identifier"\ncollected_for = "security"',
            ),
            "column subject_pseudonym is fed by both",
        ),  # fmt: skip
        (
            edited(
                'analytics = { granted = "generalize:redact -> city", not_granted = "drop" }',
                'analytics = { granted = "generalize:redact -> city", not_granted = "pseudonymize -> city" }',
            ),
            "without consent the action must be the same or drop",
        ),  # fmt: skip
        (
            edited(
                'security = "pseudonymize:mac -> device_pseudonym"', 'security = "pseudonymize -> device_pseudonym"'
            ),
            "beacon.device.mac: unknown action 'pseudonymize -> device_pseudonym' (drop, keep, keep:text, "
            "pseudonymize:KIND",
        ),  # fmt: skip
        (
            edited('normalize = "mac"  # lowercase', 'normalize = "upper"  # lowercase'),
            "beacon.device.mac: normalize must be one of mac",
        ),
        (
            edited(
                '[access.openid]\ncategory = "direct_identifier"\n',
                '[access.openid]\ncategory = "direct_identifier"\nnormalize = "mac"\n',
            ),
            "access.openid: every rule of pseudonym kind 'openid' must normalize alike",
        ),  # fmt: skip
        (edited('version = "', 'release = "'), "no `version"),
        (
            edited(
                '[beacon.referrer]\ncategory = "content"\ncollected_for = "security"\nanalytics = "drop"\n',
                '[beacon.referrer]\ncategory = "content"\ncollected_for = "security"\n',
            ),
            "beacon.referrer has no rule for purpose analytics",
        ),  # fmt: skip
        (POLICY_TEXT + "\n[beacon.page\n", "not valid TOML"),
        (POLICY_TEXT + '\n[clicks.x]\ncategory = "content"\n', "unknown message kind(s): clicks"),
    ],
)
def test_invalid_policies_are_refused_with_one_clear_line(text, message, tmp_path):
    path = tmp_path / "field_policy.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SeaportError) as raised:
        FieldPolicy.load(path)
    assert message in str(raised.value)
    assert str(raised.value).startswith(str(path)) and "\n" not in str(raised.value)


def test_missing_policy_file_is_a_clear_error(tmp_path):
    with pytest.raises(SeaportError, match="cannot read the field policy"):
        FieldPolicy.load(tmp_path / "absent.toml")


def test_policy_version_is_stamped_from_the_file(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(edited(f'version = "{POLICY.version}"', 'version = "test-9"'), encoding="utf-8")
    analytics, security, _ = protect_beacon(FieldPolicy.load(path), beacon(identifiers()), P)
    assert analytics["policy_version"] == security["policy_version"] == "test-9"


def test_leak_attempts_count_registration_fields_sent_as_keys_at_the_top_or_in_user() -> None:
    raws = [
        b'{"schema":"beacon/1","phone":"x1"}',  # counted
        b'{"schema":"beacon/1","user":{"id_number" :\t"x2"}}',  # counted: blanks before the colon
        b'{"schema":"beacon/1","page":"phone"}',  # a value, not a key
        b'{"schema":"beacon/1","phone":""}',  # empty: nothing sent
        b'{"schema":"beacon/1","device":{"phone":"x3"}}',  # neither at the top nor in user
        b'{"schema":"beacon/1","Phone":"x4"}',  # not the policy's name
        b'{"schema":"beacon/1"}',
    ]
    assert POLICY.leak_attempts(raws) == Counter({"leak_attempt:phone": 1, "leak_attempt:id_number": 1})
    assert POLICY.leak_attempts([]) == Counter()
    # names the policy may list, whatever their characters, are matched as they are written
    fields = ["real name", "a-b", "x.y", "(", "\u59d3\u540d"]
    policy = FieldPolicy.parse(
        re.sub(
            r"(?ms)^registration_fields = \[.*?\]",
            lambda _: f"registration_fields = {json.dumps(fields, ensure_ascii=False)}",
            POLICY_TEXT,
        )
    )
    raws = [json.dumps({"schema": "beacon/1", name: "v"}, ensure_ascii=False).encode() for name in fields]
    assert policy.leak_attempts([*raws, b'{"schema":"beacon/1","xzy":"v","real_name":"v"}']) == Counter(
        {f"leak_attempt:{name}": 1 for name in fields}
    )
