"""The command line's promise: every error is one line, exit 2, no stack trace, no identifier."""

from __future__ import annotations

import subprocess
import sys

import pytest


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
        (["erase"], "one of the arguments --openid --anonymous-id is required"),
        (["erase", "--openid", "o-secret-person", "--anonymous-id", "c-x"], "not allowed with"),
        (["report", "bogus"], "invalid choice: 'bogus'"),
        (["nosuchcommand"], "invalid choice: 'nosuchcommand'"),
        ([], "required: COMMAND"),
        (["collect", "--port", "99999"], "not a valid host and port"),
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
