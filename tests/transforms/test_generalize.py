"""Generalizations: the fast reading of a dotted IPv4 address agrees with `ipaddress`."""

from __future__ import annotations

import random

import pytest

from transforms import generalize


class _NoMatch:
    @staticmethod
    def fullmatch(_: str) -> None:
        return None


def _slow(ip: str) -> str | None:
    fast, generalize._DOTTED = generalize._DOTTED, _NoMatch
    try:
        return generalize.ip_prefix.__wrapped__(ip)
    finally:
        generalize._DOTTED = fast


def test_dotted_addresses_give_the_network_ipaddress_gives() -> None:
    rng = random.Random(7)
    addresses = [".".join(str(rng.randrange(256)) for _ in range(4)) for _ in range(5000)]
    for ip in addresses:
        assert generalize.ip_prefix.__wrapped__(ip) == _slow(ip) == ip.rsplit(".", 1)[0] + ".0/24"


@pytest.mark.parametrize(
    "ip",
    ["0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3.04", "1.2.3", "1.2.3.4.5", " 1.2.3.4", "1.2.3.4\n",
     "1.2.3.4:443", "\u0661.\u0662.\u0663.\u0664", "1.2.3.\u0664", "::ffff:1.2.3.4", "2001:db8::1", "", "a.b.c.d",
     "1..2.3", "+1.2.3.4", "1.2.3.4/8", "999.1.1.1"],
)  # fmt: skip
def test_every_other_form_is_read_as_ipaddress_reads_it(ip: str) -> None:
    assert generalize.ip_prefix.__wrapped__(ip) == _slow(ip)
