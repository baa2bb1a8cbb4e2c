"""`seaport simulate --attacks` and `seaport eval security`: the detectors measured on labelled
scenarios with legitimate look-alikes, on two seeds, against the targets of issue #9 (R11)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from seaport.cli import main
from seaport.devtools.attacks import ATTACK_KINDS, LOOKALIKE_KINDS, simulate_attacks
from seaport.devtools.eval_security import TARGETS, Evaluation, evaluate_seed, format_evaluation

START = dt.date(2026, 11, 18)


@pytest.mark.parametrize("seed", [11, 12])
def test_detectors_meet_the_targets(seed: int) -> None:
    """Five quiet days then the attack day, 300 users: every attack kind found, few false findings."""
    result = evaluate_seed(300, 6, seed, START)
    assert set(result.total) == set(ATTACK_KINDS)
    for kind in ATTACK_KINDS:
        assert result.recall_of(kind) >= TARGETS["recall"], (kind, format_evaluation([result]))
    assert result.precision >= TARGETS["precision"], format_evaluation([result])
    assert result.false_per_quiet_day <= TARGETS["false_per_quiet_day"], format_evaluation([result])
    assert len(result.quiet_day_findings) == 5 and result.attack_day_findings >= len(ATTACK_KINDS) - 2
    assert result.meets_targets()


def test_simulate_attacks_keeps_the_labels_out_of_the_topics(tmp_path: Path, capsys) -> None:
    out = tmp_path / "traffic.jsonl"
    assert main(["simulate", "--attacks", "--users", "60", "--days", "2", "--seed", "3", "--start", "2026-11-23",
                 "--out", str(out)]) == 0  # fmt: skip
    labels = json.loads((tmp_path / "traffic.labels.json").read_text())
    assert {s["kind"] for s in labels if not s["benign"]} == set(ATTACK_KINDS)
    assert {s["kind"] for s in labels if s["benign"]} == set(LOOKALIKE_KINDS)
    assert {s["day"] for s in labels} == {"2026-11-24"}
    for path in tmp_path.glob("traffic*.jsonl"):
        text = path.read_text()
        assert "benign" not in text and "credential_stuffing" not in text
    assert "13 labelled scenarios" in capsys.readouterr().out  # nine attacks, four look-alikes
    again, scenarios = simulate_attacks(60, 2, 3, dt.date(2026, 11, 23))
    assert again.beacons == simulate_attacks(60, 2, 3, dt.date(2026, 11, 23))[0].beacons
    assert len(scenarios) == len(ATTACK_KINDS) + len(LOOKALIKE_KINDS)


def test_format_names_every_kind_and_the_verdict() -> None:
    result = Evaluation(1, found={"brute_force": 1}, total={k: 1 for k in ATTACK_KINDS}, attack_day_findings=4,
                        true_findings=3, quiet_day_findings=[0, 2])  # fmt: skip
    text = format_evaluation([result])
    assert all(kind in text for kind in ATTACK_KINDS)
    assert "0.75 (3/4)" in text and "1.00" in text and "NO" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seeds", "one,two"], "must be whole numbers separated by commas"),
        (["--warehouse", "somewhere"], "--warehouse and --labels go together"),
        (["--days", "1"], "--days must be at least 2"),
    ],
)
def test_bad_input_is_one_line(argv: list[str], message: str, capsys) -> None:
    try:
        code = main(["eval", "security", *argv])
    except SystemExit as e:  # argparse's usage errors
        code = int(e.code or 0)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err


def test_labels_that_are_no_labels_are_one_line(tmp_path: Path, capsys) -> None:
    bogus = tmp_path / "labels.json"
    bogus.write_text('{"not": "a list"}')
    (tmp_path / "security.duckdb").write_bytes(b"")
    code = main(["eval", "security", "--warehouse", str(tmp_path), "--labels", str(bogus), "--dev"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "is not a labels file" in err
