"""The one exception users see: a one-line message, no stack trace, no personal data."""

from __future__ import annotations

import tomllib
from pathlib import Path


class SeaportError(Exception):
    """Bad input or an unusable environment; `seaport` prints it as one line and exits 2."""


def read_toml(path: Path, what: str) -> dict:
    """A configuration file of TOML, or a one-line error naming `what` and the file (not its folder)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SeaportError(f"cannot read the {what} file {path.name}: {e.strerror}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise SeaportError(f"cannot read the {what} file {path.name}: {str(e).splitlines()[0][:200]}") from None
