"""The collector's limits: request size, batch size, per-IP rate, and who may call it (CORS, proxies)."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Limits:
    """Every bound a client can hit, each answered with its own 4xx."""

    max_body_bytes: int = 256 * 1024  # 413 body_too_large
    max_events: int = 50  # 413 too_many_events (per /collect batch or /logs request)
    rate_per_ip: float = 50.0  # requests per second per client IP; 0 disables; 429 rate_limited
    burst_per_ip: int = 200
    allowed_origins: frozenset[str] = frozenset()  # CORS: these origins only (plus the collector's own)
    trusted_proxies: tuple[IPNetwork, ...] = field(default_factory=tuple)
    # Third-party trackers (Sensors Data, Snowplow): their login id is the WeChat OpenId only when
    # the site says so; otherwise it is dropped, never guessed into `user.openid`.
    login_id_is_openid: bool = False


def parse_networks(values: list[str]) -> tuple[IPNetwork, ...]:
    """`--trusted-proxy` values: addresses or CIDR blocks."""
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


def client_ip(peer: str | None, forwarded_for: str | None, trusted: tuple[IPNetwork, ...]) -> str:
    """The client's IP: the socket peer, or, only when the peer is a trusted proxy, the right-most
    `X-Forwarded-For` entry that is not itself a trusted proxy (entries left of it are client-written).
    """
    ip = peer or "0.0.0.0"
    if not forwarded_for or not trusted or not _is_trusted(ip, trusted):
        return ip
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        if not hop:
            continue
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return ip  # a malformed chain: trust only the socket
        if not _is_trusted(hop, trusted):
            return hop
        ip = hop
    return ip


def _is_trusted(ip: str, trusted: tuple[IPNetwork, ...]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in net for net in trusted)


class RateLimiter:
    """A token bucket per client IP: `rate` requests/s, bursts up to `burst`."""

    _MAX_CLIENTS = 100_000  # beyond this, forget idle clients so memory stays bounded

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # ip -> (tokens, last refill)

    def allow(self, ip: str, now: float | None = None) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(ip, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[ip] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self._MAX_CLIENTS:
            self._forget_idle(now)
        return allowed

    def _forget_idle(self, now: float) -> None:
        full_after = self.burst / self.rate
        self._buckets = {ip: b for ip, b in self._buckets.items() if now - b[1] < full_after}
