"""R5: the one masking rule every screen uses (`transforms.masking.mask`)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from transforms.masking import mask


def test_mask_shows_at_most_two_characters_at_each_end():
    assert mask("13800001111") == "13*******11"
    assert mask("short") == "*****"
    assert mask("ab" + "0" * 60 + "yz") == "ab" + "*" * 12 + "yz"  # a pseudonym: 4 of 64 characters
    assert mask(None) == mask("") == "—"


def test_mask_of_an_ip_network_keeps_its_first_octet_or_segment():
    assert mask("10.20.30.0/24") == "10.*.*.*/24"
    assert mask("2001:db8:1::/48") == "2001:*:*::/48"
    assert mask("/page/with/slashes") == "/p************es"  # not a network: the general rule


@given(st.text(alphabet=st.characters(blacklist_characters="*/"), min_size=1, max_size=200))
def test_a_masked_value_never_shows_more_than_four_of_its_characters(value):
    shown = mask(value)
    assert len(shown.replace("*", "")) <= 4
    if len(value) >= 5:
        assert value not in shown
