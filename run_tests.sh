#!/usr/bin/env bash
# Sets everything up, then runs lint, type checks and the whole test suite (unit, property,
# integration against a real Kafka broker the tests start on a free port, end to end).
set -euo pipefail
cd "$(dirname "$0")"
SEAPORT_SETUP_TEST_TOOLS=1 bash scripts/setup.sh

echo "[tests] ruff"
.venv/bin/ruff check .
echo "[tests] mypy (the privacy core, the pipelines, the Kafka layer)"
.venv/bin/mypy
echo "[tests] pytest"
# two workers, a file each at a time (its module fixtures built once), each with its own broker:
# most of a test's time is a subprocess starting (Beam, Kafka, a browser): 655 s on two (2026-12-07)
.venv/bin/python -m pytest -n 2 --dist loadfile -m "not portable" "$@"
# The same ingest on Beam's portable runners (Flink, Spark, Prism), built on first use into .cache/ by
# `seaport runners setup`; a worker that cannot start makes a portable job hang, hence the timeout.
echo "[tests] the same warehouse on Beam's portable runners (Flink, Spark, Prism)"
timeout 1200 .venv/bin/python -m pytest -m portable tests/pipelines/test_portable_runners.py
