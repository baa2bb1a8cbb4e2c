"""R5, masking on display: the one rule for every identifier a screen shows.

Every screen (the security report, the subject report, the audit's examples) shows an identifier
only through `mask`: partly replaced by symbols, never whole.
"""

from __future__ import annotations

import ipaddress


def mask(value: str | None) -> str:
    """`value` as a screen may show it (R5).

    - an IP network (`10.1.2.0/24`): its first octet or segment only (`10.*.*.*/24`);
    - shorter than 10 characters: every character replaced (`*****`);
    - otherwise at most 2 characters at each end (`13*******11`; a 64-character pseudonym keeps
      4 of them, `3f************a9`);
    - nothing: `—`."""
    if not value:
        return "—"
    network, slash, bits = value.partition("/")
    if slash:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            pass
        else:
            sep, rest = (".", ".*.*.*") if "." in network else (":", ":*:*::")
            return network.split(sep)[0] + rest + "/" + bits
    if len(value) < 10:
        return "*" * len(value)
    return value[:2] + "*" * min(len(value) - 4, 12) + value[-2:]


__all__ = ["mask"]
