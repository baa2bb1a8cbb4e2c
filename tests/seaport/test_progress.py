"""seaport/progress.py: a bar on a terminal, plain lines with counts and rate elsewhere."""

from __future__ import annotations

import io
import re

from seaport.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_off_a_terminal_with_counts_and_rate():
    out = io.StringIO()
    with Progress("sending beacons.raw", total=30_000, every=0.0, stream=out) as bar:
        for _ in range(3):
            bar.update(10_000)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()  # no bar drawing in a log
    assert lines[-1].startswith("sending beacons.raw: 30,000/30,000 msg (")
    assert all(re.fullmatch(r"sending beacons\.raw: [\d,]+/30,000 msg \([\d,]+ msg/s\)", line) for line in lines)


def test_short_work_off_a_terminal_says_nothing():
    out = io.StringIO()
    with Progress("x", total=5, every=60.0, stream=out) as bar:
        bar.update(5)
    assert out.getvalue() == ""


def test_a_terminal_gets_a_bar():
    out = Terminal()
    with Progress("replaying beacons.raw", total=200, unit="line", stream=out) as bar:
        bar.update(200)
    text = out.getvalue()
    assert "replaying beacons.raw" in text and "200/200" in text and "\r" in text


def test_the_last_line_is_not_said_twice():
    out = io.StringIO()
    with Progress("x", total=10, every=0.0, stream=out) as bar:
        bar.update(10)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("x: 10/10 msg (")
