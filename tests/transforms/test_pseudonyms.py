"""Keyed pseudonyms (R1, R4): irreversible without the key, separated by purpose, picklable."""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import random
import stat

import pytest

from seaport.errors import SeaportError
from transforms.pseudonyms import KEY_FILE_ENV, Pseudonymizer, Purpose

RNG = random.Random(20261125)
MASTER = RNG.randbytes(32)


def made_up_openid() -> str:
    return "o" + "".join(RNG.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", k=27))


def test_pseudonym_is_hmac_sha256_under_the_purpose_key():
    p = Pseudonymizer.from_key_bytes(MASTER)
    openid = made_up_openid()
    purpose_key = hmac.new(MASTER, b"seaport/analytics", hashlib.sha256).digest()
    expected = hmac.new(purpose_key, f"openid:{openid}".encode(), hashlib.sha256).hexdigest()[:32]
    assert p.pseudonymize(Purpose.ANALYTICS, "openid", openid) == expected
    # the uncached form (ids of one event each) and non-ASCII values: the same HMAC
    for kind, value in (("event_id", "e-1"), ("openid", "o-测试-é")):
        mac = hmac.new(purpose_key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]
        assert p.pseudonymize(Purpose.ANALYTICS, kind, value) == mac


def test_purposes_and_kinds_are_separated():
    p = Pseudonymizer.from_key_bytes(MASTER)
    value = made_up_openid()
    analytics = p.pseudonymize(Purpose.ANALYTICS, "openid", value)
    security = p.pseudonymize(Purpose.SECURITY, "openid", value)
    assert analytics != security  # the two purposes' pseudonyms can't be joined (R1)
    assert p.pseudonymize(Purpose.ANALYTICS, "anonymous_id", value) != analytics
    assert len(analytics) == 32 and int(analytics, 16) >= 0


def test_no_unkeyed_digest_and_another_key_gives_other_pseudonyms():
    value = made_up_openid()
    p = Pseudonymizer.from_key_bytes(MASTER)
    other = Pseudonymizer.from_key_bytes(RNG.randbytes(32))
    pseudonym = p.pseudonymize(Purpose.SECURITY, "openid", value)
    digests = {
        hashlib.new(a, s.encode()).hexdigest() for a in ("md5", "sha1", "sha256") for s in (value, f"openid:{value}")
    }
    assert not any(d.startswith(pseudonym) for d in digests)
    assert other.pseudonymize(Purpose.SECURITY, "openid", value) != pseudonym
    assert other.key_id != p.key_id and len(p.key_id) == 8
    assert p.key_id == Pseudonymizer.from_key_bytes(MASTER).key_id




def test_pickles_without_its_caches():
    p = Pseudonymizer.from_key_bytes(MASTER)
    value = made_up_openid()
    before = p.pseudonymize(Purpose.SECURITY, "openid", value)
    shipped = pickle.dumps(p)
    assert value.encode() not in shipped  # the cache (raw identifiers) is not shipped
    clone = pickle.loads(shipped)
    assert clone.key_id == p.key_id
    assert clone.pseudonymize(Purpose.SECURITY, "openid", value) == before


def test_short_keys_are_refused():
    with pytest.raises(SeaportError, match="at least 32 bytes"):
        Pseudonymizer.from_key_bytes(b"x" * 31)


def test_environment_key_file(tmp_path, monkeypatch):
    key_file = tmp_path / "key"
    key_file.write_bytes(MASTER)
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file))
    p = Pseudonymizer.from_environment(dev=False, dev_dir=tmp_path / "dev")
    assert p.key_id == Pseudonymizer.from_key_bytes(MASTER).key_id
    assert not (tmp_path / "dev").exists()

    key_file.write_bytes(b"short")
    with pytest.raises(SeaportError, match="holds 5 bytes") as e:
        Pseudonymizer.from_environment(dev=True, dev_dir=tmp_path)
    assert "\n" not in str(e.value)

    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "missing"))
    with pytest.raises(SeaportError, match="cannot read the pseudonym key file"):
        Pseudonymizer.from_environment(dev=False, dev_dir=tmp_path)


def test_refuses_to_run_without_a_key_unless_dev(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    with pytest.raises(SeaportError, match=f"{KEY_FILE_ENV} is not set.*--dev"):
        Pseudonymizer.from_environment(dev=False, dev_dir=tmp_path)

    dev_dir = tmp_path / ".seaport"
    first = Pseudonymizer.from_environment(dev=True, dev_dir=dev_dir)
    key_file = dev_dir / "dev-pseudonym.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert len(key_file.read_bytes()) >= 32
    again = Pseudonymizer.from_environment(dev=True, dev_dir=dev_dir)
    assert again.key_id == first.key_id  # made once, reused after
    assert Pseudonymizer.from_environment(dev=True, dev_dir=tmp_path / "elsewhere").key_id != first.key_id
