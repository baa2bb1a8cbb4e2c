"""The one exception users see: a one-line message, no stack trace, no personal data."""


class SeaportError(Exception):
    """Bad input or an unusable environment; `seaport` prints it as one line and exits 2."""
