"""The one project exception: the CLI prints its message as one line and exits non-zero."""


class MrtransError(Exception):
    """A known bad input or state. The message says what, which file, and what to do."""
