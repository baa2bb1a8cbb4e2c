"""The same ingest on Beam's portable runners gives the same warehouse as the in-process runner:
Flink (a mini cluster in Beam's Flink job server, parallelism 2), Spark (`local[2]`) and Prism,
on the same traffic and key, compared table by table (every analytics, state and security
table, the bookkeeping counts, the dead letters, every Parquet file), with what moves between any
two runs left out (`scripts/warehouse_fingerprint.py`'s rules, the runner's own name and the
command line in the audit trail).

Opt-in (`pytest -m portable`): `./run_tests.sh` runs it as its own step under a timeout, since a
worker that cannot start makes a portable job hang rather than fail. Skipped, with the reason, only
when the tool a runner is built with (Java and Maven; Go) is missing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pytest

from scripts.warehouse_fingerprint import VOLATILE, diff, dump_warehouse
from seaport.devtools.runners import ingest_options
from seaport.kafka.topics import create_topics
from tests.model import build_dataset
from tests.pipelines.test_ingest import ingest, produce

pytestmark = pytest.mark.portable

NEEDS = {"flink": ("java", "mvn"), "spark": ("java", "mvn"), "prism": ("go",)}


@pytest.fixture(scope="module")
def traffic(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory):
    """(prefix, key, folder with the in-process runner's warehouse and its dump, messages) over a
    seeded dataset."""
    root = tmp_path_factory.mktemp("portable")
    prefix = f"tport{os.getpid()}."
    create_topics(kafka_bootstrap, prefix)
    ds = build_dataset(seed=53, subjects=25, days=2, bad=8)
    produce(kafka_bootstrap, prefix, ds.messages)
    key = root / "pseudonym.key"
    key.write_bytes(os.urandom(32))
    ingest(kafka_bootstrap, prefix, root / "inprocess", key)
    dump_warehouse(root / "inprocess", root / "inprocess.dump")
    return prefix, key, root, sum(len(values) for values in ds.messages.values())


@pytest.mark.parametrize("runner", sorted(NEEDS))
def test_a_portable_runner_writes_the_same_warehouse(traffic, kafka_bootstrap: str, runner: str, capsys):
    missing = [tool for tool in NEEDS[runner] if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{runner} needs {', '.join(missing)} to be built, and this machine has none")
    prefix, key, root, traffic_messages = traffic
    warehouse: Path = root / runner
    options = ingest_options(runner)
    ingest(kafka_bootstrap, prefix, warehouse, key, *options)
    with duckdb.connect(str(warehouse / "analytics.duckdb"), read_only=True) as con:
        ran_on = con.execute("SELECT runner, messages FROM ingest_runs").fetchall()
    assert ran_on == [(options[1], traffic_messages)]  # one run, on the portable runner, of everything
    dump_warehouse(warehouse, root / f"{runner}.dump")
    capsys.readouterr()
    # what differs by design: the runner's name, and the command line in the audit trail's entry
    differing = diff(root / "inprocess.dump", root / f"{runner}.dump", VOLATILE | {"runner", "options"})
    assert differing == 0, capsys.readouterr().out[-4000:]
