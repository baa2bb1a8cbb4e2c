"""Generalizations: keep what a purpose needs, drop the detail that singles a person out (R1, R4).

- an IP address becomes its network: /24 for IPv4, /48 for IPv6 (security only);
- a user agent becomes its browser family and major version ("Chrome 120");
- an OS version becomes its major ("17.1.2" -> "17").

Each is memoized: the same values repeat across millions of events.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

IPV4_PREFIX = 24
IPV6_PREFIX = 48
UNKNOWN_AGENT = "Other"
# HTTP clients and scanners whose name the security team needs to tell tools from browsers
KNOWN_TOOLS = frozenset(
    ["curl", "wget", "python-requests", "python-urllib", "python-httpx", "aiohttp", "go-http-client", "okhttp",
     "java", "apache-httpclient", "postmanruntime", "axios", "node-fetch", "libwww-perl", "httpie", "sqlmap",
     "nikto", "nmap scripting engine", "masscan", "zgrab", "nuclei", "dirbuster", "gobuster", "wpscan",
     "headlesschrome", "bot", "googlebot", "bingbot", "baiduspider", "yandexbot"]
)  # fmt: skip

# (family, pattern with the major version as group 1), most specific first: an Edge or a
# WeChat user agent also names Chrome and Safari.
_BROWSERS = [
    (name, re.compile(pattern))
    for name, pattern in (
        ("WeChat", r"MicroMessenger/(\d+)"),
        ("Edge", r"Edg(?:e|A|iOS)?/(\d+)"),
        ("Opera", r"(?:OPR|Opera)/(\d+)"),
        ("Samsung Internet", r"SamsungBrowser/(\d+)"),
        ("UC Browser", r"UCBrowser/(\d+)"),
        ("QQ Browser", r"M?QQBrowser/(\d+)"),
        ("Firefox", r"(?:Firefox|FxiOS)/(\d+)"),
        ("Chrome", r"(?:Chrome|CriOS)/(\d+)"),
        ("Safari", r"Version/(\d+)[^ ]*(?: Mobile/\S+)? Safari/"),
        ("IE", r"(?:MSIE |Trident/.*rv:)(\d+)"),
    )
]
# Tools and bots name themselves first ("curl/8.4.0", "sqlmap/1.7"): security wants to see them.
_PRODUCT = re.compile(r"([A-Za-z][A-Za-z0-9 ._\-]{0,23})/v?(\d+)")


# A plain dotted IPv4 address, each number as `ipaddress` writes it (no leading zero): its /24 is
# read off the text. Every other form goes through `ipaddress` (~30 µs, where a realistic stream
# misses the cache for one address in fifteen).
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # ASCII digits, as ipaddress reads
_DOTTED = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")


@lru_cache(maxsize=1 << 14)
def ip_prefix(ip: str) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) network of an address, e.g. "203.0.113.0/24"; None if invalid."""
    if m := _DOTTED.fullmatch(ip):
        return f"{m[1]}.{m[2]}.{m[3]}.0/{IPV4_PREFIX}"
    address = _parse_address(ip.strip())
    if address is None:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    bits = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{address}/{bits}", strict=False))


def _parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    candidates = [text]
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        candidates.append(text[1 : text.index("]")])
    elif text.count(":") == 1:  # "203.0.113.7:443"
        candidates.append(text.split(":")[0])
    for candidate in candidates:
        try:
            return ipaddress.ip_address(candidate.split("%")[0])
        except ValueError:
            continue
    return None


@lru_cache(maxsize=1 << 14)
def user_agent_family(user_agent: str) -> str:
    """Browser family and major version ("Chrome 120"); a tool's own name ("curl 8"); else "Other"."""
    for name, pattern in _BROWSERS:
        m = pattern.search(user_agent)
        if m:
            return f"{name} {m.group(1)}"
    m = _PRODUCT.match(user_agent.strip())
    # Only a known tool's name is kept: a made-up agent string may carry anything, a name included.
    if m and m.group(1).strip().lower() in KNOWN_TOOLS:
        return f"{m.group(1).strip()} {int(m.group(2))}"
    return UNKNOWN_AGENT


_MAJOR = re.compile(r"\d+")


@lru_cache(maxsize=1 << 12)
def os_major(version: str) -> str | None:
    """The major of an OS version: "17.1.2" -> "17", "Android 14" -> "14"; None if it has none."""
    m = _MAJOR.search(version)
    return str(int(m.group(0))) if m and len(m.group(0)) <= 6 else None


__all__ = ["ip_prefix", "os_major", "user_agent_family"]
