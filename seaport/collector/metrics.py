"""The collector's counters and latency histogram, rendered in Prometheus' text format.

Labels are endpoints, topics and rejection reasons (field names, never values), so the set
of series stays small and no personal data can reach a monitoring system.
"""

from __future__ import annotations

import bisect
from collections import Counter

# Request latency buckets, seconds.
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CollectorMetrics:
    """Counters kept on the event loop thread only (no locks needed)."""

    def __init__(self) -> None:
        self.accepted: Counter[str] = Counter()  # events, by endpoint
        self.rejected: Counter[str] = Counter()  # requests, by reason
        self.produced: Counter[str] = Counter()  # messages delivered, by topic
        self.produce_errors: Counter[str] = Counter()  # messages not delivered, by topic
        self._buckets: dict[str, list[int]] = {}
        self._sums: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()

    def delivered(self, topic: str, ok: bool) -> None:
        (self.produced if ok else self.produce_errors)[topic] += 1

    def observe_latency(self, endpoint: str, seconds: float) -> None:
        buckets = self._buckets.get(endpoint)
        if buckets is None:
            buckets = self._buckets[endpoint] = [0] * (len(LATENCY_BUCKETS) + 1)
        buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._sums[endpoint] += seconds
        self._counts[endpoint] += 1

    def render(self) -> str:
        """The Prometheus text exposition (format 0.0.4)."""
        lines: list[str] = []
        _counter(
            lines, "seaport_collector_events_accepted_total", "Events produced and acked", "endpoint", self.accepted
        )
        _counter(
            lines, "seaport_collector_requests_rejected_total", "Requests refused, by reason", "reason", self.rejected
        )
        _counter(
            lines, "seaport_collector_messages_produced_total", "Messages delivered to Kafka", "topic", self.produced
        )
        _counter(
            lines, "seaport_collector_produce_errors_total", "Messages Kafka did not take", "topic", self.produce_errors
        )
        name = "seaport_collector_request_duration_seconds"
        lines += [f"# HELP {name} Request latency, by endpoint", f"# TYPE {name} histogram"]
        for endpoint, buckets in sorted(self._buckets.items()):
            cumulative = 0
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), buckets, strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f'{name}_bucket{{endpoint="{endpoint}",le="{le}"}} {cumulative}')
            lines.append(f'{name}_sum{{endpoint="{endpoint}"}} {self._sums[endpoint]:.6f}')
            lines.append(f'{name}_count{{endpoint="{endpoint}"}} {self._counts[endpoint]}')
        return "\n".join(lines) + "\n"


def _counter(lines: list[str], name: str, help_text: str, label: str, values: Counter[str]) -> None:
    lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
    for key, value in sorted(values.items()):
        lines.append(f'{name}{{{label}="{_escaped(key)}"}} {value}')


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
