"""The Beam graph of an ingest run: offset ranges in, staged files and counters out.

    OffsetRanges -> SplitRanges -> Reshuffle -> ReadAndProtect (per range: read, validate, protect, stage)

Its DoFns call the steps of `pipelines/stage.py`; `pipelines/ingest.py` imports this module only
for a run that goes through Beam (importing Beam takes seconds, which a small run must not pay).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipelines.stage import gc_paused, read_batches, split_range, stage_batch
from schemas.staged import OffsetRange
from seaport.kafka.clients import make_client
from transforms.policy import FieldPolicy
from transforms.pseudonyms import Pseudonymizer

if TYPE_CHECKING:
    from pipelines.ingest import RunParams


def run_beam(
    ranges: list[OffsetRange],
    staging: Path,
    policy: FieldPolicy,
    pseudonymizer: Pseudonymizer,
    params: RunParams,
    messages: int,
) -> dict[str, int]:
    """Run the graph over `ranges` on `params.runner`; returns the run's counters."""
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines.ingest import SPLIT_OFFSETS, local_parallelism

    beam_args = [*local_parallelism(params.runner, params.beam_args, messages), *params.beam_args]
    pipeline = beam.Pipeline(options=PipelineOptions([f"--runner={params.runner}", *beam_args]))
    (
        pipeline
        | "OffsetRanges" >> beam.Create(ranges)
        | "SplitRanges" >> beam.FlatMap(split_range, SPLIT_OFFSETS)
        | "Distribute" >> beam.Reshuffle()
        | "ReadAndProtect"
        >> beam.ParDo(
            ReadAndProtect(
                ReadOffsetRange(params.kafka_client, params.bootstrap, params.max_batch),
                ValidateAndProtect(policy, pseudonymizer, str(staging)),
            )
        )
    )
    result = pipeline.run()
    result.wait_until_finish()
    counts: dict[str, int] = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace("ingest"))["counters"]:
        counts[counter.key.metric.name] = counts.get(counter.key.metric.name, 0) + int(
            counter.committed or counter.attempted or 0
        )
    return counts


class ReadOffsetRange(beam.DoFn):
    """Reads one offset range of one partition as batches of records (bounded: stops at end)."""

    def __init__(self, kafka_client: str, bootstrap: str, max_batch: int):
        self.kafka_client, self.bootstrap, self.max_batch = kafka_client, bootstrap, max_batch

    def setup(self) -> None:
        self.client = make_client(self.kafka_client, self.bootstrap)

    def process(self, r: OffsetRange) -> Iterator[tuple[OffsetRange, list[Any]]]:
        for batch in read_batches(self.client, r, self.max_batch):
            yield r, batch

    def teardown(self) -> None:
        self.client.close()


class ValidateAndProtect(beam.DoFn):
    """Parses and validates each message of a batch, applies the field policy, and stages the
    protected rows; rejected messages are staged as redacted dead letters. Never raises on bad
    input: it is counted and routed."""

    def __init__(self, policy: FieldPolicy, pseudonymizer: Pseudonymizer, staging: str):
        # a string: a URL (object storage, HDFS) is no local path, and Path() would fold its `//`
        self.policy, self.pseudonymizer, self.staging = policy, pseudonymizer, staging

    def setup(self) -> None:
        self.counters: dict[str, Any] = {}

    def _count(self, name: str, n: int = 1) -> None:
        if n:
            if name not in self.counters:
                self.counters[name] = Metrics.counter("ingest", name)
            self.counters[name].inc(n)

    def process(self, element: tuple[OffsetRange, list[Any]]) -> Iterator[tuple[str, int]]:
        """Yields (staged kind, rows staged) per file written."""
        counts, staged = stage_batch(*element, self.policy, self.pseudonymizer, self.staging)
        for name, n in counts.items():
            self._count(name, n)
        yield from staged.items()


class ReadAndProtect(beam.DoFn):
    """Reads one offset range and stages it, batch by batch: reading and protecting in one step."""

    def __init__(self, reader: ReadOffsetRange, protect: ValidateAndProtect):
        self.reader, self.protect = reader, protect

    def setup(self) -> None:
        self.reader.setup()
        self.protect.setup()

    def process(self, r: OffsetRange) -> Iterator[tuple[str, int]]:
        with gc_paused():  # the whole range, then its (small) outputs
            staged = [out for element in self.reader.process(r) for out in self.protect.process(element)]
        yield from staged

    def teardown(self) -> None:
        self.reader.teardown()
