"""Progress of long work: a bar with counts and rate on a terminal (tqdm), plain lines otherwise.

    with Progress("sending beacons.raw", total=len(lines), unit="msg") as bar:
        bar.update(len(part))

On a terminal (stderr a TTY) it is tqdm's bar; otherwise (a log, CI, a pipe) one line every
`every` seconds and one at the end, e.g. `sending beacons.raw: 40,000/120,000 msg (21,300 msg/s)`,
so logs stay readable. Nothing is shown for work that ends within `quiet` seconds off a terminal.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Progress:
    def __init__(
        self, desc: str, total: int | None = None, unit: str = "msg", every: float = 10.0, stream: TextIO | None = None
    ) -> None:
        self.desc, self.total, self.unit, self.every = desc, total, unit, every
        self.stream = stream or sys.stderr
        self.count = self.said = 0
        self.started = self.last = time.monotonic()
        self._bar: Any = None
        if self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=f" {unit}", unit_scale=True, file=self.stream, leave=True)

    def update(self, n: int) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
        elif time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            self._line()

    def _line(self) -> None:
        self.said = self.count
        elapsed = max(time.monotonic() - self.started, 1e-9)
        done = f"{self.count:,}" + (f"/{self.total:,}" if self.total is not None else "")
        rate = self.count / elapsed
        # slow items (seeds, days) read better as seconds each
        pace = f"{rate:,.0f} {self.unit}/s" if rate >= 1 or not self.count else f"{1 / rate:,.0f} s/{self.unit}"
        print(f"{self.desc}: {done} {self.unit} ({pace})", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.last != self.started and self.said != self.count:  # said something, not yet the end
            self._line()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
