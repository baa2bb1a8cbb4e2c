"""The command line's promise: every error is one line, exit 2, no stack trace, no identifier."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid

import pytest

from seaport.devtools.broker import free_port
from seaport.kafka.topics import topic_name
from tests.helpers import read_all


def seaport(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seaport.cli", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["ingest", "--k", "abc"], "invalid int value: 'abc'"),
        (["ingest", "--until-caught-up", "--streaming"], "not allowed with"),
        (["ingest", "--dev", "--k", "0"], "--k must be at least 1"),
        (["ingest", "--dev", "--security-retention-days", "-5"], "--security-retention-days must be at least 1"),
        (["ingest", "--dev", "--runner", "NoSuchRunner"], "unknown Beam runner 'NoSuchRunner'"),
        (["ingest", "--dev", "--group", " "], "--group must name a consumer group"),  # librdkafka aborted
        (["ingest", "--dev", "--runner", "FlinkRunner"], "FlinkRunner needs --flink_job_server_jar=..."),
        (
            ["ingest", "--dev", "--runner", "PrismRunner", "--environment_type=LOOPBACK"],
            "`seaport runners setup prism`",
        ),
        (["bench", "--runner", "FlinkRunner", "--flink_master=[local]"], "FlinkRunner needs --flink_job_server_jar"),
        (["runners", "setup", "storm"], "invalid choice: 'storm'"),
        (["ingest", "--dev", "--runner", "SparkRunner"], "`seaport runners setup spark`"),
        (["ingest", "--poll-seconds", "-1"], "must be a number of seconds above 0"),
        (["erase"], "one of the arguments --openid --anonymous-id --status is required"),
        (["erase", "--openid", "o-secret-person", "--anonymous-id", "c-x"], "not allowed with"),
        (["report", "bogus"], "invalid choice: 'bogus'"),
        (["nosuchcommand"], "invalid choice: 'nosuchcommand'"),
        ([], "required: COMMAND"),
        (["collect", "--port", "99999"], "must be a port number 1-65535"),
        (["collect", "--delivery-timeout-ms", "50"], "must be a number of milliseconds, 100 or more"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, says):
    done = seaport(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr
    assert "Traceback" not in done.stderr and "o-secret-person" not in done.stderr


def test_a_file_is_no_warehouse(kafka_bootstrap, tmp_path):
    (tmp_path / "afile").write_text("x")
    done = seaport("ingest", "--dev", "--bootstrap", kafka_bootstrap, "--topic-prefix", "cli1.",
                   "--warehouse", str(tmp_path / "afile"))  # fmt: skip
    assert done.returncode == 2 and "cannot use" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_every_command_explains_itself():
    from seaport.cli import COMMANDS

    for command in COMMANDS:
        done = seaport(command, "--help")
        assert done.returncode == 0 and f"usage: seaport {command}" in done.stdout, command


def assert_one_line_usage_error(done: subprocess.CompletedProcess, says: str, secret: str = "") -> None:
    """Exit 2, exactly one line on stderr saying `says`, no trace, and never the `secret` id."""
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    if secret:
        assert secret.strip() not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["broker", "start", "--port", "99999"], "--port: must be a port number 1-65535"),
        (["broker", "status", "--port", "0"], "--port: must be a port number 1-65535"),
        (["broker", "start", "--port", "abc"], "--port: must be a port number 1-65535"),
        (["broker", "stop", "--timeout", "-1"], "--timeout: must be a number of seconds above 0"),
        (["broker", "stop", "--timeout", "nan"], "--timeout: must be a number of seconds above 0"),
        (["bench", "--events", "-1"], "--events: must be a whole number above 0"),
        (["bench", "--events", "0"], "--events: must be a whole number above 0"),
        (["bench", "--runner", "NoSuchRunner"], "unknown Beam runner 'NoSuchRunner'"),
        (["ingest", "--in-process-below", "-1"], "--in-process-below: must be a whole number, 0 or more"),
        (["ingest", "--late-days", "0"], "--late-days: must be a whole number above 0"),
        (["report", "security", "--date", "20261121"], "--date must be a calendar date YYYY-MM-DD"),
        (["report", "security", "--date", "2026-02-30"], "--date must be a calendar date YYYY-MM-DD"),
    ],
)
def test_out_of_range_numbers_and_dates_are_usage_errors(args, says):
    assert_one_line_usage_error(seaport(*args), says)


@pytest.mark.parametrize("option", ["--openid", "--anonymous-id"])
@pytest.mark.parametrize("shape", ["", "   ", "{}\n", "\t{}", "{}\x1b", "\u200b{}", "{}\u3000"])
def test_erase_refuses_blank_and_invisible_ids_without_echo(option, shape):
    """R8: such an id names no subject, so the request would erase nothing while claiming success."""
    canary = f"c-{uuid.uuid4().hex[:12]}"
    done = seaport("erase", option, shape.format(canary), "--bootstrap", "127.0.0.1:1")
    assert_one_line_usage_error(done, f"argument {option}: must be a non-blank id", secret=canary)


def test_erase_files_a_padded_id_stripped(kafka_bootstrap, topic_prefix, kafka_client, tmp_path):
    canary = f"o-{uuid.uuid4().hex[:16]}"
    done = seaport("erase", "--openid", f"  {canary} ", "--bootstrap", kafka_bootstrap, "--topic-prefix", topic_prefix,
                   "--warehouse", str(tmp_path / "wh"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert canary not in done.stdout + done.stderr
    [record] = read_all(kafka_client(), topic_name("erasure.requests", topic_prefix))
    assert record.key == canary.encode()
    assert json.loads(record.value)["subject"] == {"openid": canary}


def test_broker_data_dir_under_a_file_is_one_line_error(tmp_path):
    (tmp_path / "afile").write_text("x")
    for data_dir in (tmp_path / "afile", tmp_path / "afile" / "kb"):
        done = seaport("broker", "start", "--port", str(free_port()), "--data-dir", str(data_dir))
        assert_one_line_usage_error(done, "as the broker's data folder: a file is in the way")


@pytest.mark.parametrize("out", ["{tmp}/afile/x.html", "/proc/x.html"])
def test_dashboard_unwritable_out_is_one_line_error(tmp_path, out):
    (tmp_path / "afile").write_text("x")
    done = seaport("dashboard", "--warehouse", str(tmp_path), "--out", out.format(tmp=tmp_path))
    assert_one_line_usage_error(done, "cannot write the dashboard to")


def test_security_report_creates_nothing_in_a_folder_that_is_no_warehouse(tmp_path):
    done = seaport("report", "security", "--date", "2026-11-24", "--warehouse", str(tmp_path))
    assert_one_line_usage_error(done, "no warehouse in")
    assert "run `seaport ingest` first" in done.stderr
    assert list(tmp_path.iterdir()) == []


def bench_topics(bootstrap: str) -> set[str]:
    from confluent_kafka.admin import AdminClient

    topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
    return {name for name in topics if name.startswith("bench-")}


def test_bench_leaves_no_topics_and_no_files_behind(kafka_bootstrap, tmp_path):
    before = bench_topics(kafka_bootstrap)
    command = [sys.executable, "-m", "seaport.cli", "bench", "--events", "40", "--increment-runs", "2",
               "--bootstrap", kafka_bootstrap]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=os.environ | {"TMPDIR": str(tmp_path)}
    )
    assert done.returncode == 0, done.stderr
    assert "producing about 40 messages" in done.stderr and "stored events" in done.stdout
    increments = [line for line in done.stdout.splitlines() if line.startswith("increment of")]
    # the same messages each time: the second run on a copy of the warehouse read what the first did
    assert [" into an empty warehouse: median of 2: " in increments[0], " on top of " in increments[1]] == [True, True]
    assert all(re.search(r"end to end [\d.]+ s \(runs [\d.]+–[\d.]+ s\)$", line) for line in increments), increments
    assert bench_topics(kafka_bootstrap) <= before
    assert list(tmp_path.glob("seaport-bench-*")) == []


def test_bench_state_days_shows_the_facts_bounded_by_the_late_window(kafka_bootstrap, tmp_path):
    """One run per simulated day; with --late-days 1 the warehouse holds at most the events of
    the last two days (each day's messages bound its events from above)."""
    before = bench_topics(kafka_bootstrap)
    command = [sys.executable, "-m", "seaport.cli", "bench", "--bootstrap", kafka_bootstrap,
               "--state-days", "3", "--users", "30", "--late-days", "1"]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=os.environ | {"TMPDIR": str(tmp_path)}
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("== state over 3 simulated days")))
    rows = [line.split() for line in lines[header + 2 : header + 5]]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    messages = [int(r[2].replace(",", "")) for r in rows]
    events = [int(r[4].replace(",", "")) for r in rows]
    assert all(m > 0 for m in messages) and events[0] > 0
    assert events[2] <= messages[2] + messages[1]  # the first day's events are gone
    assert bench_topics(kafka_bootstrap) <= before
    assert list(tmp_path.glob("seaport-bench-*")) == []


def test_bench_interrupted_leaves_no_topics_behind(kafka_bootstrap):
    before = bench_topics(kafka_bootstrap)
    command = [sys.executable, "-m", "seaport.cli", "bench", "--events", "3000000", "--bootstrap", kafka_bootstrap]
    bench = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert bench.stderr is not None and "producing" in bench.stderr.readline()
        assert bench_topics(kafka_bootstrap) - before  # its topics exist while it runs
        bench.send_signal(signal.SIGINT)  # Ctrl-C
        code = bench.wait(timeout=60)
        assert code == 130, f"exit {code}: {bench.stderr.read()[-2000:]}"
    finally:
        bench.kill()
        bench.wait()
    assert bench_topics(kafka_bootstrap) <= before


def test_bench_streaming_reads_each_run_and_its_phases_from_the_ingest_output(capsys):
    """The streaming bench reads `seaport ingest`'s own run lines: when each run published, how
    many messages it read, and its phases; then reports the median run."""
    import io
    import threading
    from datetime import UTC, datetime
    from pathlib import Path

    from pipelines.ingest import format_summary
    from seaport.devtools.bench_streaming import _read_runs, _report_runs
    from sinks.warehouse import OffsetRange, RunSummary

    def run(n: int, read_s: float) -> str:
        summary = RunSummary(
            f"r{n}", datetime.now(UTC), [OffsetRange("beacons.raw", "beacons.raw", 0, 0, n)], messages=n,
            rows={"page_views_daily": 3}, suppressed={"page_views_daily": 0},
            timings={f"reading and protecting {n:,} messages": read_s, "storing": 0.4, "publishing the aggregates": 1.5},
        )  # fmt: skip
        return format_summary(summary, Path("wh")) + "\n"

    class Ingest:
        stdout = io.StringIO(run(120_000, 2.5) + run(1_000, 0.5) + run(90_000, 2.0) + "ingest: caught up\n")

    published: list = []
    phases: list = []
    _read_runs(Ingest(), published, phases, threading.Event(), io.StringIO())  # type: ignore[arg-type]
    assert [(run_id, n) for run_id, _, n in published] == [("r120000", 120_000), ("r1000", 1_000), ("r90000", 90_000)]
    assert phases[0] == {"reading and protecting": 2.5, "storing": 0.4, "publishing the aggregates": 1.5}
    _report_runs(published, phases)
    assert capsys.readouterr().out == (
        "a run (medians of 3): 90,000 messages; reading and protecting 2.0 s, storing 0.4 s, "
        "publishing the aggregates 1.5 s\n"
    )
